"""The DataJoint store's files are checked, not trusted (issue 20, items 1, 7 and 8), against the real server:
every stored file's SHA-256 and size are in the tables and checked when it is read back or when ``run``
decides whether a step is done; SIGTERM stops ``run`` and ``worker`` like Ctrl-C; ``gc`` removes what no
row references."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import datajoint as dj
import numpy as np
import pytest
import torch
from recipe_factory import write_recipe
from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig

from nntransfer.cli.main import RESUME_LINE
from nntransfer.configs import Description, Experiment, TransferExperiment
from nntransfer.configs.codec import make_hash
from nntransfer.pipeline.step import StepResult
from nntransfer.pipeline.store import DONE, FAILED
from nntransfer.provenance import recipe_record
from nntransfer.recipes.loading import Recipe
from nntransfer.tables import activate, database
from nntransfer.tables.storage import collect_garbage, file_paths
from nntransfer.tables.store import DamagedStep, DataJointStore

pytestmark = pytest.mark.database
TESTS = Path(__file__).parent


@pytest.fixture()
def integrity(db_prefix):
    """The tables of a schema of this module's own."""
    tables = activate(f"{db_prefix}_integrity")
    yield tables
    (tables.schema.jobs & {}).delete_quick()
    activate(f"{db_prefix}_main")


@pytest.fixture()
def toy_log(tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("TOY_LOG", str(log))
    return log


def runs_of(log, step):
    lines = [json.loads(line) for line in Path(log).read_text().splitlines()] if Path(log).exists() else []
    return [entry for entry in lines if entry.get("step") == step]


def chain_of(seed, init=0.5):
    teacher = Experiment(ToyDatasetConfig(), ToyModelConfig(init=init), ToyTrainerConfig(increment=1.0, compute_transfer_data=True),
                         seed=seed, comment="A")  # fmt: skip
    student = Experiment(ToyDatasetConfig(), ToyModelConfig(), ToyTrainerConfig(increment=2.0, data_transfer=True), seed=seed, comment="B")
    return TransferExperiment([teacher, student])


def recipe_of(name, chain, seed):
    return Recipe(name, None, {Description(name, seed): chain})


def weights_file(tables, key):
    (path,) = file_paths(tables.TransferredTrainedModel.ModelStorage & key, "model_state")
    return Path(path)


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------------------- item 1: checksums of stored files


def test_every_stored_file_records_its_sha256_and_size(integrity, toy_log):
    chain = chain_of(seed=11)
    DataJointStore(tables=integrity).run(recipe_of("sums", chain, 11), progress=False)
    table = integrity.TransferredTrainedModel
    for part, attribute in ((table.ModelStorage, "model_state"), (table.DataStorage, "transfer_data")):
        digest, size = (part & chain.step_key(0)).fetch1("file_sha256", "file_size")
        (path,) = file_paths(part & chain.step_key(0), attribute)
        assert size == os.path.getsize(path) and len(digest) == 64


def test_a_flipped_byte_in_a_finished_steps_weights_makes_run_train_it_again(integrity, toy_log, caplog):
    """A same-size byte flip in step 0's weights was loaded as step 0 by the next run (silently); now
    ``run`` finds it before populating, warns naming the file, and trains step 0 again."""
    chain = chain_of(seed=12)
    recipe = recipe_of("flipped", chain, 12)
    DataJointStore(tables=integrity).run(recipe_of("flipped", TransferExperiment([chain[0]]), 12), progress=False)
    path = weights_file(integrity, chain.step_key(0))
    flip_a_byte(path)
    caplog.set_level(logging.WARNING, logger="nntransfer.tables.store")
    store = DataJointStore(tables=integrity)
    assert not store.is_done(chain.step_key(0))
    store.run(recipe, progress=False)
    assert "damaged step: step 0 (seed 12)" in caplog.text and str(path) in caplog.text
    assert "does not match the checksum recorded when it was stored" in caplog.text
    assert len(runs_of(toy_log, 0)) == 2 and len(runs_of(toy_log, 1)) == 1
    assert [s.state for s in store.states([chain.step_key(0), chain.step_key(1)])] == [DONE, DONE]
    assert (integrity.TransferredTrainedModel & chain.step_key(1)).fetch1("score") == pytest.approx(3.5)
    assert DataJointStore(tables=integrity).damage(chain.step_key(0)) == []  # stored whole again


def test_another_runs_file_copied_over_a_finished_step_is_refused_with_the_command_that_deletes_it(integrity, toy_log):
    """A valid weights file of another step copied over step 0's was loaded as its teacher; now loading it
    is a one-line error naming the step, the file and ``nntransfer forget``. Deleting the step as that
    command does makes the next run train it again and retry the step that failed on it: no loop."""
    chain, other = chain_of(seed=13), chain_of(seed=14, init=3.0)
    recipe = recipe_of("swapped", chain, 13)
    table = integrity.TransferredTrainedModel
    store = DataJointStore(tables=integrity)
    store.run(recipe_of("other", TransferExperiment([other[0]]), 14), progress=False)
    store.run(recipe_of("swapped", TransferExperiment([chain[0]]), 13), progress=False)
    store.prepare(recipe)
    path = weights_file(integrity, chain.step_key(0))
    shutil.copyfile(weights_file(integrity, other.step_key(0)), path)  # a valid state dict, of another step

    with pytest.raises(DamagedStep) as info:
        store.load_weights(chain.step_key(0))
    message = str(info.value)
    command = f"nntransfer forget {make_hash(chain.step_key(0))} --schema {integrity.schema_name}"
    assert "\n" not in message and "stored weights of finished step 0 (seed 13)" in message and str(path) in message
    assert message.endswith(f"delete that step to retrain it: {command}")

    # the student populated on its own (as another worker would) fails on it, loudly
    table.populate(chain.step_key(1), reserve_jobs=True, suppress_errors=True)
    assert store.states([chain.step_key(1)])[0].state == FAILED
    assert store.states([chain.step_key(1)])[0].error.startswith("DamagedStep: the stored weights of finished step 0")
    (table & chain.step_key(0)).delete(safemode=False)  # what the command deletes: the step, with its files
    store.run(recipe, progress=False)
    assert [s.state for s in store.states([chain.step_key(0), chain.step_key(1)])] == [DONE, DONE]
    assert len(runs_of(toy_log, 0)) == 3  # the other chain's, this one's, and trained again (not loaded again)
    assert (table & chain.step_key(1)).fetch1("score") == pytest.approx(3.5)  # 0.5 + 1 + 2: its own teacher's


def test_handed_on_data_that_does_not_match_its_checksum_is_refused(integrity, toy_log):
    chain = chain_of(seed=15)
    store = DataJointStore(tables=integrity)
    store.run(recipe_of("data", TransferExperiment([chain[0]]), 15), progress=False)
    (path,) = file_paths(integrity.TransferredTrainedModel.DataStorage & chain.step_key(0), "transfer_data")
    flip_a_byte(Path(path))
    with pytest.raises(DamagedStep, match=r"stored handed-on data of finished step 0 \(seed 15\).* does not match the checksum"):
        store.load_transfer_data(chain.step_key(0))


def test_a_checkpoint_file_swapped_for_another_epochs_is_skipped(integrity, caplog):
    """Another epoch's valid checkpoint copied over the last one was restored as the last (wrong epoch,
    wrong weights); now it fails its checksum, is skipped with a warning, and the one before is used."""
    table = integrity.TransferredTrainedModel
    chain = chain_of(seed=16)
    table.add_transfer_experiment(chain)
    uid = chain.step_key(0)
    model = torch.nn.Linear(1, 1, bias=False)
    for epoch in (1, 2, 3):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        state = {"action": "save", "score": float(epoch), "keep_best_n": 5, "keep_last_n": 5}
        table().call_back(uid=uid, epoch=epoch, model=model, state=state)
    paths = {epoch: Path(file_paths(table.checkpoint_table & uid & {"epoch": epoch}, "state")[0]) for epoch in (1, 3)}
    shutil.copyfile(paths[1], paths[3])
    caplog.set_level(logging.WARNING, logger="nntransfer.tables.checkpoints")
    target = torch.nn.Linear(1, 1, bias=False)
    state = {"action": "last", "maximize_score": True, "net": target}
    table().call_back(uid=uid, epoch=0, model=target, state=state)
    assert (state["epoch"], target.weight.item()) == (2, 2.0)
    assert "skipped the damaged checkpoint of epoch 3 of step 0 (seed 16)" in caplog.text
    assert "does not match the checksum" in caplog.text
    (table.checkpoint_table & uid).delete_quick()


OLD_SCHEMA_RUN = """
import logging, sys
from nntransfer.configs import Description
from nntransfer.recipes.loading import Recipe
from nntransfer.tables.store import DataJointStore
from test_tables_integrity import chain_of
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
store = DataJointStore(sys.argv[1])
chain = chain_of(seed=17)
recipe = Recipe("old", None, {Description("old", 17): chain})
store.run(recipe, progress=False)
print(store.table().fetch_weights(chain.step_key(0)) is not None, [s.state for s in store.states([chain.step_key(1)])])
"""


@pytest.mark.slow
def test_a_schema_without_the_checksum_columns_keeps_working_with_one_warning(db_prefix, tmp_path):
    """A schema declared before the checksum columns existed (here: the columns dropped) stores and loads
    its steps as before, and says once that its files are not checked."""
    schema = f"{db_prefix}_oldsums"
    tables = activate(schema)
    activate(f"{db_prefix}_main")
    names = [tables.TransferredTrainedModel.ModelStorage, tables.TransferredTrainedModel.DataStorage, tables.TransferredCheckpoint]
    for table in names:
        tables.connection.query(f"ALTER TABLE {table.full_table_name} DROP COLUMN file_sha256, DROP COLUMN file_size")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-c", OLD_SCHEMA_RUN, schema], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "True ['done']"
    assert result.stderr.count("have no checksum columns") == 1, result.stderr[-3000:]


# ---------------------------------------------------------------------------- item 7: SIGTERM


def wait_for(condition, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("condition never met")


@pytest.mark.slow
@pytest.mark.parametrize("command, signals", [("worker", 1), ("run", 1), ("worker", 6)], ids=["worker", "run", "worker, SIGTERM repeated"])
def test_sigterm_stops_the_datajoint_backend_like_ctrl_c(db_prefix, tmp_path, command, signals):
    """SIGTERM exited 1 with a bare "SIGTERM received" on the DataJoint backend (0 with the resume line
    locally): a supervisor could not tell a stop from a failed job. Now exit 130 and the resume line, the
    step released, and the next run resumes it from its checkpoint. SIGTERM sent again while the first is
    handled (srun's forced termination after a SLURM requeue does) changes none of it: a second one in the
    middle of the release left the step recorded as failed."""
    recipe = write_recipe(
        tmp_path, f"term_{command}_{signals}",
        "from nntransfer.configs import Description, Experiment, TransferExperiment\n"
        "from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig\n"
        "step = Experiment(ToyDatasetConfig(), ToyModelConfig(init=0.5), ToyTrainerConfig(sleep=0.4, epochs=6), seed=1)\n"
        "transfer_experiments = {Description('term', 1): TransferExperiment([step])}\n",
    )  # fmt: skip
    schema = f"{db_prefix}_term_{command}_{signals}"
    log = tmp_path / "log.jsonl"
    env = dict(os.environ, TOY_LOG=str(log), PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    args = [sys.executable, "-m", "nntransfer", command, str(recipe), "--schema", schema, "--quiet"]
    conn = database.connect()
    worker = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        def after_a_checkpoint():
            try:
                return conn.query(f"SELECT MAX(epoch) FROM `{schema}`.`transferred_checkpoint`").fetchone()[0]
            except dj.errors.DataJointError:  # the tables do not exist yet
                return None

        wait_for(after_a_checkpoint)
        for _ in range(signals):
            worker.send_signal(signal.SIGTERM)
            time.sleep(0.02)
        out, err = worker.communicate(timeout=60)
    finally:  # never leave a worker behind that recreates the schema after the session dropped it
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    # a SIGTERM that comes after the stop was handled may end the process by the signal itself (-15)
    assert worker.returncode == 130 or (signals > 1 and worker.returncode == -signal.SIGTERM), err[-3000:]
    assert RESUME_LINE in err and "SIGTERM received" not in err and "Traceback" not in err, err[-3000:]
    assert conn.query(f"SELECT COUNT(*) FROM `{schema}`.`~jobs`").fetchone()[0] == 0  # released, not failed
    last = conn.query(f"SELECT MAX(epoch) FROM `{schema}`.`transferred_checkpoint`").fetchone()[0]
    status = subprocess.run([sys.executable, "-m", "nntransfer", "status", str(recipe), "--schema", schema],
                            capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert " interrupted " in status.stdout and f"resumes from its checkpoint of epoch {last}" in status.stdout, status.stdout

    again = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    runs = runs_of(log, 0)
    assert len(runs) == 2 and runs[1]["first_epoch"] >= 2  # resumed from its checkpoint


def test_a_second_sigterm_during_the_release_leaves_the_step_resumable(tables, monkeypatch):
    """A SLURM requeue sends SIGTERM, and srun may send it again while the first is being handled: a second
    one in the middle of the release ended the process with DataJoint's bare SystemExit and left the step
    recorded as failed (so the requeued task trained nothing). The release is deaf to it now."""
    import toy_steps

    def stopped_mid_training(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # DataJoint's populate handler turns it into SystemExit
        time.sleep(5)
        raise AssertionError("SIGTERM did not stop the step")

    store = DataJointStore(tables=tables)
    release = store.release_interrupted

    def release_while_signalled():
        os.kill(os.getpid(), signal.SIGTERM)  # the second SIGTERM, in the middle of the release
        return release()

    monkeypatch.setattr(toy_steps, "toy_trainer", stopped_mid_training)
    monkeypatch.setattr(store, "release_interrupted", release_while_signalled)
    chain = TransferExperiment([Experiment(ToyDatasetConfig(), ToyModelConfig(init=0.123), ToyTrainerConfig(), seed=57)])
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        store.run(recipe_of("second sigterm", chain, 57), progress=False)
    assert signal.getsignal(signal.SIGTERM) == before  # DataJoint's handler does not outlive the stop
    key = chain.step_key(0)
    assert store.states([key])[0].state != FAILED
    assert not (store.jobs & {"key_hash": dj.hash.key_hash(dict(key))})  # released: neither failed nor held


# ---------------------------------------------------------------------------- item 8: gc


def age(path, seconds):
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_gc_removes_what_no_row_references_once_older_than_the_grace_period(integrity, toy_log, tmp_path):
    """A killed worker left a partial ``.copying`` copy and the full upload of a transaction that rolled
    back (no entry registers them), and a registered entry no row references; ``delete_unused_files``
    saw only the last. ``gc`` removes all three once they are older than the grace period, leaves young
    ones (a live worker's upload) and everything a row references, and a dry run removes nothing."""
    chain = chain_of(seed=18)
    DataJointStore(tables=integrity).run(recipe_of("gc", TransferExperiment([chain[0]]), 18), progress=False)
    kept = weights_file(integrity, chain.step_key(0))
    folder = kept.parents[2]  # <store>/<schema>/<sub>/<sub>/<file>
    assert folder.name == integrity.schema_name
    partial = folder / "ab" / "cd" / "abcd.pth.tar.copying"
    rolled_back = folder / "ef" / "01" / "ef01.pth.tar"
    for path in (partial, rolled_back):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"left behind by a killed worker")
        age(path, 7200)
    young = folder / "ab" / "cd" / "young.pth.tar.copying"
    young.write_bytes(b"a live worker's copy")
    external = integrity.schema.external["minio"]
    orphan = tmp_path / "unreferenced.pth.tar"
    orphan.write_bytes(b"registered, then its row was rolled back")
    digest = external.upload_attachment(str(orphan))
    integrity.connection.query(f"UPDATE {external.full_table_name} SET timestamp = CURRENT_TIMESTAMP - INTERVAL 2 HOUR "
                               f"WHERE hash=%s", args=(digest.bytes,))  # fmt: skip
    ((_, registered),) = (external & {"hash": digest}).fetch_external_paths()
    age(registered, 7200)

    dry = collect_garbage(integrity.schema, dry_run=True, grace_seconds=3600)
    assert sorted(dry.files) == sorted([str(partial), str(rolled_back)]) and dry.entries == [str(registered)]
    assert dry.young >= 1 and not dry.removed and partial.exists() and Path(registered).exists()
    assert "would remove (dry run) 3 file(s)" in str(dry)

    done = collect_garbage(integrity.schema, grace_seconds=3600)
    assert done.removed and not done.errors
    assert not partial.exists() and not rolled_back.exists() and not Path(registered).exists()
    assert young.exists() and kept.exists() and len(external & {"hash": digest}) == 0
    assert DataJointStore(tables=integrity).damage(chain.step_key(0)) == []  # what rows reference is whole
    young.unlink()


def test_gc_command_lists_with_dry_run_and_refuses_a_missing_schema(integrity, toy_log, capsys):
    from nntransfer.cli.main import main

    assert main(["gc", "--schema", integrity.schema_name, "--dry-run"]) == 0
    assert f"schema {integrity.schema_name}: would remove (dry run)" in capsys.readouterr().out
    assert main(["gc", "--schema", f"{integrity.schema_name}_nosuch"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_files_copied_to_the_store_by_a_job_whose_transaction_rolls_back_are_removed(integrity):
    """DataJoint copies a result's files to the store before the transaction that registers them commits;
    a job interrupted in between (Ctrl-C, an error while committing) left them there, registered nowhere.
    Now they are removed when the transaction has ended."""
    chain = chain_of(seed=19)
    table = integrity.TransferredTrainedModel
    table.add_transfer_experiment(chain)
    key = chain.step_key(0)
    fabrikant = integrity.Fabrikant.current_user()
    result = StepResult(1.0, {"final": 1.0}, {"weight": torch.ones(1, 1)}, {"soft_labels": np.ones((4, 2))})
    folder = Path(dj.config["stores"]["minio"]["location"]) / integrity.schema_name
    before = {p for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(KeyboardInterrupt):
        with table.connection.transaction:
            table().insert_result(key, result, "rolled back", fabrikant, recipe_record(None))
            assert len({p for p in folder.rglob("*") if p.is_file()} - before) == 2  # weights and data, copied
            raise KeyboardInterrupt  # before the commit
    table().clear_rolled_back_uploads()
    assert {p for p in folder.rglob("*") if p.is_file()} == before and len(table & key) == 0
