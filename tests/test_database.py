"""Binding the tables on demand, the DataJoint set-up and the nnfabrik 0.2.1 fixes (one test each, failing
without the fix), against the real server."""

import multiprocessing
import os
import subprocess
import sys
import uuid

import datajoint as dj
import pytest
from conftest import schemas_with_prefix

from nntransfer.errors import DatabaseError
from nntransfer.tables import activate, compat, database

# ---------------------------------------------------------------------------- binding on demand


@pytest.mark.slow
def test_importing_the_tables_connects_to_nothing():
    code = (
        "import sys\n"
        "import nntransfer.tables\n"
        "assert 'datajoint' not in sys.modules, 'nntransfer.tables imported DataJoint'\n"
        "import datajoint as dj\n"
        "dj.config['database.host'] = '127.0.0.1:1'\n"  # nothing listens there: any connection attempt fails
        "import pkgutil, importlib\n"
        "for module in pkgutil.iter_modules(nntransfer.tables.__path__):\n"
        "    importlib.import_module('nntransfer.tables.' + module.name)\n"
        "import nntransfer.tables.nnfabrik, nntransfer.tables.transfer, nntransfer.tables.trained_model\n"
        "assert getattr(dj.conn, 'connection', None) is None, 'a connection was opened'\n"
        "assert 'nnfabrik.main' not in sys.modules\n"
        "from nntransfer.errors import DatabaseError\n"
        "try:\n"
        "    nntransfer.tables.nnfabrik.Dataset\n"  # the first read activates, and so connects
        "except DatabaseError as err:\n"
        "    print('activated on first use:', err)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "activated on first use: cannot reach the database at 127.0.0.1:1" in result.stdout


@pytest.mark.database
def test_activating_a_schema_twice_gives_the_same_classes(tables):
    again = activate(tables.schema_name)
    assert again is tables and again.TransferredTrainedModel is tables.TransferredTrainedModel
    from nntransfer.tables.nnfabrik import Dataset, TrainedModelTransferRecipe, schema
    from nntransfer.tables.trained_model import TrainedModel
    from nntransfer.tables.transfer import TransferredTrainedModel

    assert (Dataset, TrainedModelTransferRecipe, schema) == (tables.Dataset, tables.TrainedModelTransferRecipe, tables.schema)
    assert TrainedModel is tables.TrainedModel and TransferredTrainedModel is tables.TransferredTrainedModel
    assert tables["Model"] is tables.Model  # how nnfabrik's templates find their tables


@pytest.mark.database
def test_another_schema_in_the_same_process_gets_its_own_classes(tables, db_prefix):
    import nntransfer.tables.nnfabrik as module

    try:
        other = activate(f"{db_prefix}_other")
        assert other is not tables and other.Seed is not tables.Seed
        assert other.Seed.full_table_name == f"`{db_prefix}_other`.`seed`"
        assert module.Seed is other.Seed  # the module paths follow the schema activated last
        other.Seed.insert1({"seed": 987654}, skip_duplicates=True)
        assert len(other.Seed & {"seed": 987654}) == 1 and len(tables.Seed & {"seed": 987654}) == 0
        assert other.TransferredTrainedModel.transfer_recipe == [other.TrainedModelTransferRecipe]
        assert other.TransferredTrainedModel.checkpoint_table is other.TransferredCheckpoint
    finally:
        activate(tables.schema_name)
    assert module.Seed is tables.Seed


@pytest.mark.database
@pytest.mark.parametrize(
    "name", ["nnt_test_x'; DROP DATABASE mysql; --", 'nnt_test_"quoted"', "nnt_test_`tick`", "nnt_test_" + "x" * 60, "with space", "dash-ed"]
)
def test_invalid_schema_names_are_refused_before_anything_is_created(db_prefix, name):
    from nntransfer.tables.store import DataJointStore

    conn = database.connect()
    before = schemas_with_prefix(conn, "")
    for attempt in (activate, lambda n: database.create_schema(conn, n), DataJointStore):
        with pytest.raises(ValueError) as info:
            attempt(name)
        assert "\n" not in str(info.value) and "invalid schema name" in str(info.value)
        assert "letters, digits and underscores, at most 64 characters" in str(info.value)
    assert schemas_with_prefix(conn, "") == before
    if len(name) > 64:
        assert "(69 characters)" in str(info.value)


@pytest.mark.database
def test_missing_schema_is_not_created_when_create_is_false(db_prefix):
    name = f"{db_prefix}_absent"
    with pytest.raises(ValueError, match=f"schema '{name}' does not exist on the database server; pass the store the recipe ran with"):
        activate(name, create=False)
    assert not database.schema_exists(database.connect(), name)


def _activate_together(barrier, names, core, results):
    """One of several processes: activate each schema of ``names`` at the moment all others do."""
    from nntransfer.tables import activation  # the heavy imports before the start line

    os.environ["NNFABRIK_SCHEMA_NAME"] = core
    database.configure()
    database.connect()
    for name in names:
        barrier.wait(timeout=120)
        try:
            activation.activate(name)
            results.put("ok")
        except Exception as err:  # what a worker would crash with
            results.put(f"{type(err).__name__}: {err}")


@pytest.mark.database
@pytest.mark.slow
def test_workers_activating_a_fresh_schema_together_all_succeed(db_prefix):
    """Defect 3: ``docker compose up --scale worker=N`` starts N workers on a fresh schema at once.
    DataJoint's schema creation (check, then CREATE DATABASE) let all but one crash with "Can't create
    database ...; database exists" about half the time; every round here starts four processes at once
    on a fresh schema (and, in the first, a fresh nnfabrik core schema)."""
    context = multiprocessing.get_context("spawn")
    processes, rounds = 4, 3
    barrier, results = context.Barrier(processes), context.Queue()
    run = uuid.uuid4().hex[:6]
    names = [f"{db_prefix}_race_{run}_{i}" for i in range(rounds)]
    core = f"{db_prefix}_race_{run}_core"  # a fresh nnfabrik core schema too
    workers = [context.Process(target=_activate_together, args=(barrier, names, core, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=300) for _ in range(processes * rounds)]
    for worker in workers:
        worker.join(timeout=60)
    assert outcomes == ["ok"] * (processes * rounds), [o for o in outcomes if o != "ok"]
    conn = database.connect()
    assert all(database.schema_exists(conn, name) for name in names)
    assert database.schema_exists(conn, core)


# ---------------------------------------------------------------------------- configuration


def test_configure_defaults(db_prefix):
    assert dj.config["database.use_tls"] is False
    assert dj.config["stores"][database.STORE_NAME]["protocol"] == "file"
    assert "latin1" in dj.config["connection.init_function"]
    assert dj.config["nnfabrik.schema_name"] == f"{db_prefix}_core"  # from NNFABRIK_SCHEMA_NAME


def _charset(name):
    query = "SELECT default_character_set_name FROM information_schema.schemata WHERE schema_name=%s"
    return dj.conn().query(query, args=(name,)).fetchone()[0]


def test_schemas_are_created_latin1(db_prefix):
    schema = dj.Schema(f"{db_prefix}_charset")  # by DataJoint, through the session's init function
    charset = _charset(schema.database)
    schema.drop(force=True)
    assert charset == "latin1"
    database.create_schema(dj.conn(), f"{db_prefix}_charset2")  # by nntransfer
    database.create_schema(dj.conn(), f"{db_prefix}_charset2")  # again: no error
    assert _charset(f"{db_prefix}_charset2") == "latin1"


@pytest.mark.slow
@pytest.mark.database
@pytest.mark.parametrize("in_code", [True, False], ids=["dj.config set in code wins", "DJ_HOST alone is used"])
def test_dj_config_set_in_code_wins_over_the_environment(db_prefix, in_code):
    """DataJoint's precedence: ``DJ_HOST``/``DJ_USER``/``DJ_PASS`` are read when DataJoint is imported, and
    what code sets in ``dj.config`` afterwards (a notebook) wins; ``configure`` must not undo it."""
    server = dj.config["database.host"]
    env = dict(os.environ, DJ_USER=dj.config["database.user"], DJ_PASS=dj.config["database.password"] or "",
               DJ_HOST="127.0.0.1:1" if in_code else server)  # nothing listens on port 1
    code = (
        "import datajoint as dj\n"
        + (f"dj.config['database.host'] = {server!r}\n" if in_code else "")
        + "from nntransfer.tables import database\n"
        "database.configure()\n"
        "database.connect()\n"
        "print('connected to', dj.config['database.host'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"connected to {server}"


def test_unreachable_database_gives_one_clear_line():
    saved = dj.config["database.host"]
    dj.config["database.host"] = "127.0.0.1:1"
    try:
        with pytest.raises(DatabaseError) as info:
            database.connect(reset=True)
    finally:
        dj.config["database.host"] = saved
        if getattr(dj.conn, "connection", None) is not None:
            dj.conn(reset=True)
    message = str(info.value)
    assert "\n" not in message
    assert "127.0.0.1:1" in message and "DJ_HOST" in message


# ---------------------------------------------------------------------------- the nnfabrik 0.2.1 fixes


@pytest.mark.slow
def test_nnfabrik_needs_and_gets_the_collections_fix():
    plain = subprocess.run([sys.executable, "-c", "import nnfabrik.utility.dj_helpers"], capture_output=True, text=True)
    assert plain.returncode != 0 and "Iterable" in plain.stderr  # the bug is real on this Python
    fixed = subprocess.run(
        [sys.executable, "-c", "from nntransfer.tables import compat; compat.apply(); import nnfabrik.utility.dj_helpers, nnfabrik.builder"],
        capture_output=True,
        text=True,
    )
    assert fixed.returncode == 0, fixed.stderr


@pytest.mark.database
def test_clone_conn_fix_works_without_tls(tables):
    conn = database.connect()
    assert "ssl" not in conn.conn_info  # what makes nnfabrik's own clone_conn raise KeyError
    import nnfabrik.templates.checkpoint as checkpoint
    import nnfabrik.templates.transfer.checkpoint as transfer_checkpoint
    from nnfabrik.utility import dj_helpers

    compat.apply()  # again: idempotent
    for module in (checkpoint, transfer_checkpoint, dj_helpers):
        assert module.clone_conn is compat.clone_connection
        clone = module.clone_conn(conn)
        assert clone.is_connected and clone is not conn
        assert clone.query("SELECT 1").fetchone()[0] == 1


def test_delete_accepts_verbose(db_prefix):
    schema = dj.Schema(f"{db_prefix}_delete")

    @schema
    class Plain(dj.Manual):
        definition = "id: int"

    @schema
    class Fixed(compat.VerboseDeleteMixin, dj.Manual):
        definition = "id: int"

    Plain.insert([{"id": 1}, {"id": 2}])
    Fixed.insert([{"id": 1}, {"id": 2}])
    with pytest.raises(TypeError, match="verbose"):
        (Plain & "id=1").delete(verbose=False, safemode=False)  # how nnfabrik's checkpoints call it
    (Fixed & "id=1").delete(verbose=False, safemode=False)
    assert Fixed.fetch("id").tolist() == [2]
    schema.drop(force=True)
