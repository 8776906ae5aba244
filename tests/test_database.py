"""The DataJoint set-up and the nnfabrik 0.2.1 fixes, each against the real server."""

import subprocess
import sys

import datajoint as dj
import pytest

from nntransfer import database


def test_nnfabrik_needs_and_gets_the_collections_fix():
    plain = subprocess.run([sys.executable, "-c", "import nnfabrik.utility.dj_helpers"], capture_output=True, text=True)
    assert plain.returncode != 0 and "Iterable" in plain.stderr  # the bug is real on this Python
    fixed = subprocess.run(
        [sys.executable, "-c", "import nntransfer, nnfabrik.utility.dj_helpers, nnfabrik.builder"],
        capture_output=True,
        text=True,
    )
    assert fixed.returncode == 0, fixed.stderr


def test_configure_defaults(db_prefix):
    assert dj.config["database.use_tls"] is False
    assert dj.config["stores"][database.STORE_NAME]["protocol"] == "file"
    assert "latin1" in dj.config["connection.init_function"]


def test_schemas_are_created_latin1(db_prefix):
    schema = dj.Schema(f"{db_prefix}_charset")
    charset = dj.conn().query(
        "SELECT default_character_set_name FROM information_schema.schemata WHERE schema_name=%s",
        args=(schema.database,),
    ).fetchone()[0]
    schema.drop(force=True)
    assert charset == "latin1"


def test_clone_conn_fix_works_without_tls(db_prefix):
    conn = database.connect()
    assert "ssl" not in conn.conn_info  # what makes nnfabrik's own clone_conn raise KeyError
    database.patch_template_modules()
    import nnfabrik.templates.checkpoint as checkpoint
    import nnfabrik.templates.transfer.checkpoint as transfer_checkpoint
    from nnfabrik.utility import dj_helpers

    for module in (checkpoint, transfer_checkpoint, dj_helpers):
        clone = module.clone_conn(conn)
        assert clone.is_connected and clone is not conn
        assert clone.query("SELECT 1").fetchone()[0] == 1


def test_delete_accepts_verbose(db_prefix):
    schema = dj.Schema(f"{db_prefix}_delete")

    @schema
    class Plain(dj.Manual):
        definition = "id: int"

    @schema
    class Fixed(database.VerboseDeleteMixin, dj.Manual):
        definition = "id: int"

    Plain.insert([{"id": 1}, {"id": 2}])
    Fixed.insert([{"id": 1}, {"id": 2}])
    with pytest.raises(TypeError, match="verbose"):
        (Plain & "id=1").delete(verbose=False, safemode=False)  # how nnfabrik's checkpoints call it
    (Fixed & "id=1").delete(verbose=False, safemode=False)
    assert Fixed.fetch("id").tolist() == [2]
    schema.drop(force=True)


def test_unreachable_database_gives_one_clear_line():
    saved = dj.config["database.host"]
    dj.config["database.host"] = "127.0.0.1:1"
    try:
        with pytest.raises(database.DatabaseError) as info:
            database.connect(reset=True)
    finally:
        dj.config["database.host"] = saved
        if getattr(dj.conn, "connection", None) is not None:
            dj.conn(reset=True)
    message = str(info.value)
    assert "\n" not in message
    assert "127.0.0.1:1" in message and "DJ_HOST" in message
