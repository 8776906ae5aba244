"""Faults of the DataJoint backend (issue 11), against the real server: liveness of reservations by
heartbeat (another database user, reused connection ids), store files deleted with their rows, damaged
checkpoints and damaged finished steps, and a database lost in the middle of a job."""

import logging
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import datajoint as dj
import pytest
import torch
from datajoint.hash import key_hash
from recipe_factory import write_recipe, write_toy_recipe
from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig

from nntransfer.configs import Description, Experiment, TransferExperiment
from nntransfer.errors import DatabaseLost
from nntransfer.pipeline.store import DONE, INTERRUPTED, RUNNING, WAITING
from nntransfer.recipes.loading import Recipe, load_recipe
from nntransfer.tables import activate, compat, database
from nntransfer.tables.heartbeat import heartbeat, reservations
from nntransfer.tables.storage import collect_garbage, file_paths
from nntransfer.tables.store import DataJointStore

pytestmark = pytest.mark.database
TESTS = Path(__file__).parent
TIMEOUT = 2.0  # heartbeat timeout of these tests (seconds)


@pytest.fixture()
def short_heartbeat(monkeypatch):
    monkeypatch.setenv("NNTRANSFER_HEARTBEAT_TIMEOUT", str(TIMEOUT))
    return TIMEOUT


@pytest.fixture()
def faults(db_prefix, short_heartbeat):
    """The tables of a schema of this module's own (its jobs table is not shared with other tests)."""
    tables = activate(f"{db_prefix}_faults")
    yield tables
    (tables.schema.jobs & {}).delete_quick()
    activate(f"{db_prefix}_main")


@pytest.fixture()
def limited_user(db_prefix):
    """A second database user with every privilege on this session's schemas but not PROCESS: it sees only
    its own connections in ``information_schema.processlist``. Dropped afterwards."""
    name, password = f"nnt_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    conn = database.connect()
    conn.query(f"CREATE USER '{name}'@'%%' IDENTIFIED BY '{password}'")  # %% : the query is %-formatted
    try:
        pattern = db_prefix.replace("_", "\\_") + "\\_%%"  # this session's schemas, and no others
        conn.query(f"GRANT ALL PRIVILEGES ON `{pattern}`.* TO '{name}'@'%%'")
        yield name, password
    finally:
        conn.query(f"DROP USER IF EXISTS '{name}'@'%%'")


def one_step(seed, **trainer):
    return TransferExperiment(
        [Experiment(ToyDatasetConfig(), ToyModelConfig(init=0.5), ToyTrainerConfig(**trainer), seed=seed)]
    )


def two_steps(seed, **trainer):
    options = dict(compute_transfer_data=True, **trainer)
    return TransferExperiment(
        [
            Experiment(
                ToyDatasetConfig(),
                ToyModelConfig(init=0.5),
                ToyTrainerConfig(increment=1.0, **options),
                seed=seed,
                comment="A",
            ),
            Experiment(
                ToyDatasetConfig(),
                ToyModelConfig(),
                ToyTrainerConfig(increment=2.0, data_transfer=True, **trainer),
                seed=seed,
                comment="B",
            ),
        ]
    )


def recipe_of(name, chain, seed):
    return Recipe(name, None, {Description(name, seed): chain})


def toy_env(log=None, **extra):
    pythonpath = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=pythonpath, NNTRANSFER_HEARTBEAT_TIMEOUT=str(TIMEOUT), **extra)
    if log is not None:
        env["TOY_LOG"] = str(log)
    return env


def log_lines(path):
    import json

    return [json.loads(line) for line in Path(path).read_text().splitlines()] if Path(path).exists() else []


# ---------------------------------------------------------------------------- item 3 and 4: liveness by heartbeat

WORK_SCRIPT = """
import logging, sys
from nntransfer.recipes.loading import load_recipe
from nntransfer.tables import database
from nntransfer.tables.store import DataJointStore
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
database.configure()
store = DataJointStore(sys.argv[2])
try:
    store.work(load_recipe(sys.argv[1]), progress=False, poll_seconds=0.3, timeout=float(sys.argv[3]))
except TimeoutError:
    print("TIMEOUT")
"""


@pytest.mark.slow
def test_a_user_without_process_privilege_leaves_a_live_reservation_alone(faults, limited_user, tmp_path):
    """Item 3: the old liveness check read ``information_schema.processlist``, where a user without the
    PROCESS privilege sees only its own connections: its worker deleted the root user's live reservation
    and trained the job a second time."""
    recipe = write_toy_recipe(tmp_path, "live_recipe", chains=1)
    chain = next(iter(load_recipe(str(recipe)).transfer_experiments.values()))
    store = DataJointStore(tables=faults)
    store.prepare(load_recipe(str(recipe)))
    log = tmp_path / "log.jsonl"
    user, password = limited_user
    with heartbeat(faults):  # this process is a live worker holding step 0
        assert faults.schema.jobs.reserve(faults.TransferredTrainedModel.table_name, chain.step_key(0))
        worker = subprocess.run(
            [sys.executable, "-c", WORK_SCRIPT, str(recipe), faults.schema_name, str(2 * TIMEOUT)],
            capture_output=True, text=True, timeout=180, env=toy_env(log, DJ_USER=user, DJ_PASS=password),
        )  # fmt: skip
        assert worker.returncode == 0, worker.stderr[-3000:]
        assert "TIMEOUT" in worker.stdout, worker.stderr[-3000:]
        assert log_lines(log) == []  # the job was not trained by the other user's worker
        assert store.states([chain.step_key(0)])[0].state == RUNNING
        # it said what it waited for: the step, who holds it, how long ago it beat
        assert f"held by {platform.node()}:{os.getpid()} (last heartbeat" in worker.stderr
        assert "toy0 (seed 1) step 0" in worker.stderr
    (faults.schema.jobs & {}).delete_quick()


def test_a_reservation_with_a_reused_connection_id_and_no_heartbeat_is_cleared(faults, tmp_path, caplog):
    """Item 4: after a server restart a connection id is handed out again; the old check saw the dead
    worker's id in the processlist (here: this test's own live connection) and waited forever."""
    chain = two_steps(seed=401, epochs=2)
    recipe = recipe_of("reused", chain, 401)
    store = DataJointStore(tables=faults)
    store.prepare(recipe)
    jobs = faults.schema.jobs
    dead = dict(
        table_name=faults.TransferredTrainedModel.table_name, key_hash=key_hash(chain.step_key(0)), status="reserved",
        host="gone-host", pid=4242, connection_id=faults.connection.connection_id, key=chain.step_key(0), user="someone@%",
    )  # fmt: skip
    jobs.insert1(dead, ignore_extra_fields=True)
    faults.connection.query(f"UPDATE {jobs.full_table_name} SET timestamp = CURRENT_TIMESTAMP - INTERVAL 1 HOUR")
    assert store.states([chain.step_key(0)])[0].state == WAITING  # a stale reservation is not "running"

    caplog.set_level(logging.WARNING, logger="nntransfer.tables.store")
    store.work(recipe, progress=False, poll_seconds=0.2, timeout=15)
    assert [s.state for s in store.states([chain.step_key(0), chain.step_key(1)])] == [DONE, DONE]
    assert "cleared the reservation of a stopped worker (gone-host:4242, no heartbeat" in caplog.text
    assert len(jobs & {"table_name": dead["table_name"]}) == 0


def test_a_reservation_whose_heartbeat_stopped_is_cleared_and_trained_once(faults, tmp_path, monkeypatch):
    """A worker that beat until a while ago and then died (SIGKILL): its step is taken over once the beat
    is older than the timeout, resumed from its checkpoints, and trained once."""
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("TOY_LOG", str(log))
    chain = one_step(seed=402, epochs=3)
    recipe = recipe_of("silent", chain, 402)
    store = DataJointStore(tables=faults)
    store.prepare(recipe)
    jobs, table = faults.schema.jobs, faults.TransferredTrainedModel
    # the dead worker's trace: its reservation, a heartbeat that stopped 5 timeouts ago, a checkpoint
    connection_id = 10**9 + 7  # an id no connection has
    jobs.insert1(
        dict(table_name=table.table_name, key_hash=key_hash(chain.step_key(0)), status="reserved", host="dead-host",
             pid=7, connection_id=connection_id, key=chain.step_key(0), user="x@%"),
        ignore_extra_fields=True,
    )  # fmt: skip
    faults.connection.query(
        f"INSERT INTO `{faults.schema_name}`.`~heartbeat` (host, pid, connection_id, beat) "
        f"VALUES ('dead-host', 7, {connection_id}, CURRENT_TIMESTAMP(3) - INTERVAL {5 * TIMEOUT} SECOND)"
    )
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.5 + 1 / 3)
    table().call_back(uid=chain.step_key(0), epoch=1, model=model, state={"action": "save", "score": 1.0})

    clearing = DataJointStore(tables=faults, heartbeat_timeout=60)  # a worker with a longer timeout waits
    assert clearing.clear_stale_reservations() == 0
    assert store.clear_stale_reservations() == 1
    store.work(recipe, progress=False, poll_seconds=0.2, timeout=30)
    runs = log_lines(log)
    assert [r["first_epoch"] for r in runs] == [2]  # once, resumed after the dead worker's checkpoint
    assert (table & chain.step_key(0)).fetch1("score") == pytest.approx(1.5)
    mine = f"SELECT COUNT(*) FROM `{faults.schema_name}`.`~heartbeat` WHERE pid={os.getpid()}"
    assert faults.connection.query(mine).fetchone()[0] == 0  # this process removed its beat when it stopped


@pytest.mark.slow
def test_a_live_worker_beats_while_it_trains(faults, monkeypatch):
    """The heartbeat of a populating process is fresh while its step trains (longer than the timeout),
    so another worker never takes the step over; afterwards the beat is removed."""
    chain = one_step(seed=403, epochs=2, sleep=TIMEOUT)
    recipe = recipe_of("beating", chain, 403)
    store = DataJointStore(tables=faults)
    store.prepare(recipe)
    seen = []
    # another worker's view: its own connection (make's is in a transaction, with a snapshot of the past)
    other = SimpleNamespace(
        connection=compat.clone_connection(faults.connection), schema=faults.schema, schema_name=faults.schema_name
    )

    def look(**kwargs):  # from the checkpoint callback: what another worker would see now
        seen.append(
            [
                (r["stale"], r["silent_for"])
                for r in reservations(other, [faults.TransferredTrainedModel.table_name], TIMEOUT)
            ]
        )
        callback(**kwargs)

    callback = faults.TransferredTrainedModel().checkpoint_callback()
    monkeypatch.setattr(DataJointStore, "checkpoints", lambda self, key: look)
    store.populate(recipe, progress=False)
    assert len(seen) >= 2 and all(len(rows) == 1 and rows[0][0] is False for rows in seen), seen
    assert all(rows[0][1] is not None and rows[0][1] < TIMEOUT for rows in seen)
    assert store.is_done(chain.step_key(0))
    mine = f"SELECT COUNT(*) FROM `{faults.schema_name}`.`~heartbeat` WHERE pid={os.getpid()}"
    assert faults.connection.query(mine).fetchone()[0] == 0


# ---------------------------------------------------------------------------- item 5: store files


def files_under(folder):
    return {str(p) for p in Path(folder).rglob("*") if p.is_file()}


@pytest.mark.parametrize("keep", [False, True])
def test_checkpoint_files_are_deleted_with_their_rows(faults, keep):
    """Item 5: deleting checkpoint rows (during training: only the last is kept; after it: all) must delete
    their files; DataJoint 0.14 kept every file ever written. ``keep_checkpoints=True`` keeps them."""
    seed = 501 + keep
    chain = two_steps(seed=seed, epochs=3, keep_checkpoints=keep)
    store = DataJointStore(tables=faults)
    folder = Path(dj.config["stores"]["minio"]["location"]) / faults.schema_name
    before = files_under(folder)
    store.run(recipe_of("files", chain, seed), progress=False)
    added = files_under(folder) - before
    table = faults.TransferredTrainedModel
    results = set()
    for level in range(2):
        results.update(file_paths(table.ModelStorage & chain.step_key(level), "model_state"))
        results.update(file_paths(table.DataStorage & chain.step_key(level), "transfer_data"))
    checkpoints = set()
    for level in range(2):
        checkpoints.update(file_paths(faults.TransferredCheckpoint & chain.step_key(level), "state"))
    assert len(results) == 3 and results <= added  # two weights files, one handed-on data file
    if keep:
        assert len(checkpoints) == 2 and added == results | checkpoints  # the last checkpoint of each step
    else:
        assert checkpoints == set() and added == results  # no checkpoint file left
    # deleting a finished step deletes its files too
    (table & chain.step_key(1)).delete(safemode=False)
    (table & chain.step_key(0)).delete(safemode=False)
    assert files_under(folder) - before == (checkpoints if keep else set())
    (faults.TransferredCheckpoint & chain.step_key(0)).delete_quick()
    (faults.TransferredCheckpoint & chain.step_key(1)).delete_quick()
    assert files_under(folder) - before == set()


def test_store_files_no_row_references_can_be_collected(faults, tmp_path):
    """A worker killed between uploading a checkpoint file and inserting its row leaves a registered file
    that no row references: ``collect_garbage`` removes those older than its grace period, and nothing else."""
    external = faults.schema.external["minio"]
    orphan = tmp_path / "orphan.pth.tar"
    orphan.write_bytes(b"left behind by a killed worker")
    digest = external.upload_attachment(str(orphan))
    (path,) = [str(p) for _, p in (external & {"hash": digest}).fetch_external_paths()]
    assert Path(path).exists()
    assert path not in collect_garbage(faults.schema, grace_seconds=3600).entries  # too young: may be in use soon
    referenced = len(external.used())
    faults.connection.query(f"UPDATE {external.full_table_name} SET timestamp = CURRENT_TIMESTAMP - INTERVAL 2 HOUR")
    assert path in collect_garbage(faults.schema, grace_seconds=3600).entries
    assert not Path(path).exists() and len(external.used()) == referenced


# ---------------------------------------------------------------------------- item 6: damaged checkpoints


def save_checkpoints(table, uid, epochs):
    model = torch.nn.Linear(1, 1, bias=False)
    for epoch in epochs:
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        state = {"action": "save", "score": float(epoch), "keep_best_n": 5, "keep_last_n": 5, "tag": epoch}
        table().call_back(uid=uid, epoch=epoch, model=model, state=state)


def checkpoint_file(table, uid, epoch):
    (path,) = file_paths(table.checkpoint_table & uid & {"epoch": epoch}, "state")
    return Path(path)


def restore_last(table, uid):
    target = torch.nn.Linear(1, 1, bias=False)
    state = {"action": "last", "maximize_score": True, "net": target}
    table().call_back(uid=uid, epoch=0, model=target, state=state)
    return state.get("epoch"), target.weight.item()


def test_a_damaged_checkpoint_falls_back_to_an_earlier_one_or_starts_over(faults, caplog):
    """Item 6: a truncated, garbage or missing checkpoint file made every attempt of its step fail."""
    table = faults.TransferredTrainedModel
    uid = two_steps(seed=601).step_key(0)
    faults.TransferredTrainedModel.add_transfer_experiment(two_steps(seed=601))
    save_checkpoints(table, uid, (1, 2, 3))
    last = checkpoint_file(table, uid, 3)
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated
    caplog.set_level(logging.WARNING, logger="nntransfer.tables.checkpoints")
    assert restore_last(table, uid) == (2, 2.0)
    assert "skipped the damaged checkpoint of epoch 3 of step 0 (seed 601)" in caplog.text
    assert str(last) in caplog.text and "trying an earlier one" in caplog.text
    assert sorted((table.checkpoint_table & uid).fetch("epoch")) == [1, 2]  # the damaged one is gone
    assert not last.exists()

    checkpoint_file(table, uid, 2).write_bytes(b"not a checkpoint at all")  # garbage
    checkpoint_file(table, uid, 1).unlink()  # deleted from the store while its row exists
    caplog.clear()
    assert restore_last(table, uid)[0] is None  # nothing restored: the step starts over
    assert "epoch 2" in caplog.text and "epoch 1" in caplog.text and "the step starts over" in caplog.text
    assert len(table.checkpoint_table & uid) == 0


def test_a_step_whose_only_checkpoint_is_damaged_trains_from_the_start(faults, tmp_path, monkeypatch, caplog):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("TOY_LOG", str(log))
    chain = one_step(seed=602, epochs=2, keep_checkpoints=True)
    recipe = recipe_of("damaged", chain, 602)
    store = DataJointStore(tables=faults)
    store.run(recipe, progress=False)
    table = faults.TransferredTrainedModel
    first = (table & chain.step_key(0)).fetch1("score")
    (table & chain.step_key(0)).delete(safemode=False)  # as if the job died before storing its row
    checkpoint_file(table, chain.step_key(0), 2).write_bytes(b"\x00" * 10)
    caplog.set_level(logging.WARNING, logger="nntransfer.tables.checkpoints")
    store.run(recipe, progress=False)
    assert store.states([chain.step_key(0)])[0].state == DONE
    assert (table & chain.step_key(0)).fetch1("score") == first
    assert [r["first_epoch"] for r in log_lines(log)] == [1, 1]  # started over, instead of failing
    assert "skipped the damaged checkpoint of epoch 2 of step 0 (seed 602)" in caplog.text


# ---------------------------------------------------------------------------- item 7: a damaged finished step


@pytest.mark.parametrize("damage", ["garbage", "missing"])
def test_damaged_weights_of_a_finished_step_make_run_train_it_again(faults, damage, caplog):
    """Item 7: the next step failed on every run with an error naming no file and no way out. Now ``run``
    checks a finished step's files against the checksums recorded with them before populating, and trains
    a damaged step again (as the work folder does); ``tests/test_tables_integrity.py`` has the error for a
    damaged file met when loading."""
    seed = 701 if damage == "garbage" else 702
    chain = two_steps(seed=seed)
    recipe = recipe_of("damaged_step", chain, seed)
    store = DataJointStore(tables=faults)
    store.prepare(recipe)
    table = faults.TransferredTrainedModel
    table.populate(chain.step_key(0), reserve_jobs=True)
    (weights,) = file_paths(table.ModelStorage & chain.step_key(0), "model_state")
    if damage == "garbage":
        Path(weights).write_bytes(b"garbage" * 10)
    else:
        Path(weights).unlink()

    caplog.set_level(logging.WARNING, logger="nntransfer.tables.store")
    store.run(recipe, progress=False)
    assert f"damaged step: step 0 (seed {seed})" in caplog.text and weights in caplog.text
    assert [s.state for s in store.states([chain.step_key(0), chain.step_key(1)])] == [DONE, DONE]
    assert (table & chain.step_key(1)).fetch1("score") == pytest.approx(3.5)


# ---------------------------------------------------------------------------- item 10: the database lost mid-job


def wait_for(condition, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("condition never met")


def kill_when_reserved_after_a_checkpoint(schema, conn, seed=1):
    """KILL the connection of the worker holding a job in ``schema`` once the job of ``seed`` saved the
    checkpoint of epoch 2."""

    def reserved_after_a_checkpoint():
        try:
            epoch = (
                conn.query(f"SELECT MAX(epoch) FROM `{schema}`.`transferred_checkpoint` WHERE seed={seed}").fetchone()[
                    0
                ]
                or 0
            )
            ids = conn.query(f"SELECT connection_id FROM `{schema}`.`~jobs` WHERE status='reserved'").fetchall()
        except dj.errors.DataJointError:  # the tables do not exist yet
            return None
        return ids[0][0] if epoch >= 2 and ids else None

    conn.query(f"KILL {int(wait_for(reserved_after_a_checkpoint))}")


@pytest.mark.slow
def test_losing_the_database_mid_job_raises_one_line_and_leaves_the_job_resumable(faults, tmp_path, monkeypatch):
    """Item 10 (the API ``nntransfer run --backend datajoint`` calls): the old code recorded the job as
    failed with the connection error (or, with the server gone, raised a long traceback)."""
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("TOY_LOG", str(log))
    chain = one_step(seed=1001, epochs=5, sleep=0.3)
    recipe = recipe_of("lost", chain, 1001)
    store = DataJointStore(tables=faults)
    killer = threading.Thread(
        target=kill_when_reserved_after_a_checkpoint,
        args=(faults.schema_name, compat.clone_connection(faults.connection), 1001),
    )
    killer.start()
    with pytest.raises(DatabaseLost) as info:
        store.run(recipe, progress=False)
    killer.join()
    message = str(info.value)
    assert "\n" not in message and message.startswith("lost the database at ")
    assert "while training step 0 (seed 1001)" in message and "resume from their checkpoints" in message
    assert len(faults.schema.jobs) == 0  # neither failed nor reserved
    assert store.states([chain.step_key(0)])[0].state == INTERRUPTED  # its checkpoints are kept

    store.run(recipe, progress=False)
    runs = log_lines(log)
    assert len(runs) == 2 and runs[1]["first_epoch"] >= 3  # resumed from its checkpoints
    assert (faults.TransferredTrainedModel & chain.step_key(0)).fetch1("score") == pytest.approx(1.5)


@pytest.mark.slow
def test_a_worker_that_loses_the_database_prints_one_line_and_exits_1(db_prefix, tmp_path):
    """Item 10, the command: one line (no traceback), exit status 1, and the next worker resumes."""
    recipe = write_recipe(
        tmp_path,
        "lost_worker",
        "from nntransfer.configs import Description, Experiment, TransferExperiment\n"
        "from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig\n"
        "step = Experiment(ToyDatasetConfig(), ToyModelConfig(init=0.5), ToyTrainerConfig(sleep=0.3, epochs=5), seed=1)\n"
        "transfer_experiments = {Description('lost', 1): TransferExperiment([step])}\n",
    )
    schema = f"{db_prefix}_lost_worker"
    log = tmp_path / "log.jsonl"
    args = [sys.executable, "-m", "nntransfer", "worker", str(recipe), "--schema", schema, "--quiet"]
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=toy_env(log))
    conn = database.connect()
    try:
        kill_when_reserved_after_a_checkpoint(schema, conn)
        out, err = first.communicate(timeout=120)
    finally:  # never leave a worker behind that recreates the schema after the session dropped it
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 1  # the job did not finish (2 is for bad input)
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("nntransfer: error:")]
    assert len(lines) == 1 and "lost the database at" in lines[0] and "resume from their checkpoints" in lines[0], err[
        -3000:
    ]
    assert conn.query(f"SELECT COUNT(*) FROM `{schema}`.`~jobs`").fetchone()[0] == 0  # not failed, not reserved

    again = subprocess.run(args, capture_output=True, text=True, timeout=180, env=toy_env(log))
    assert again.returncode == 0, again.stderr[-3000:]
    step0 = [r for r in log_lines(log) if r["step"] == 0]
    assert len(step0) == 2 and step0[1]["first_epoch"] >= 3  # resumed from its checkpoints
    assert "lost  1     0     done   1.5000" in again.stdout


# ---------------------------------------------------------------------------- random kills (bench/fault_injection_workers.py)


@pytest.mark.slow
def test_random_kills_of_workers_lose_nothing_and_train_nothing_twice(db_prefix, tmp_path):
    """The short version of ``bench/fault_injection_workers.py``: workers killed at random (SIGKILL, SIGTERM,
    SIGINT, a killed database connection) and replaced; the results equal an uninterrupted run's."""
    bench = TESTS.parent / "bench" / "fault_injection_workers.py"
    result = subprocess.run(
        [sys.executable, str(bench), "--workers", "2", "--rounds", "1", "--kills", "2", "--chains", "2", "--steps", "2",
         "--epochs", "3", "--sleep", "0.2", "--heartbeat", "2", "--seed", "3", "--prefix", f"{db_prefix}_bench", "--keep", str(tmp_path / "bench")],
        capture_output=True, text=True, timeout=600, env=toy_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "violations: 0" in result.stdout


def test_a_heartbeat_table_from_before_clusters_gains_its_cluster_job_column(db_prefix, monkeypatch):
    """Schemas made by 0.5.0 have ``~heartbeat`` without ``cluster_job``: activating one adds it, and a
    worker in a SLURM job beats with its job id, which ``status`` shows beside the step it holds."""
    from nntransfer.tables import heartbeat as liveness

    name = f"{db_prefix}_old_heartbeat"
    conn = database.connect()
    conn.query(f"CREATE DATABASE IF NOT EXISTS `{name}`")
    conn.query(f"CREATE TABLE `{name}`.`~heartbeat` (host varchar(255) NOT NULL, pid int unsigned NOT NULL, "
               "connection_id bigint unsigned NOT NULL, beat timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), "
               "PRIMARY KEY (host, pid, connection_id))")
    tables = activate(name)
    try:
        columns = conn.query("SELECT column_name FROM information_schema.columns WHERE table_schema=%s AND table_name='~heartbeat'",
                             args=(name,)).fetchall()
        assert ("cluster_job",) in columns
        monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
        with liveness.Heartbeat(tables):
            beat = conn.query(f"SELECT cluster_job FROM `{name}`.`~heartbeat` WHERE pid=%s", args=(os.getpid(),)).fetchone()
        assert beat == ("77_3",)
    finally:
        activate(f"{db_prefix}_main")
