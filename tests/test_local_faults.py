"""Faults on a local work folder (issue 11): damaged steps, a full disk or unwritable folder, kills while a
step is stored, two runs on one folder, SIGTERM and Ctrl-C, and random kills (the bench's short version).
Everything here writes real files in the real formats; the only stand-ins are file-system calls made to
fail like a full disk would."""

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import torch
from recipe_factory import write_toy_recipe
from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig

import nntransfer
from nntransfer.cli.main import main
from nntransfer.configs import (
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Description,
    Experiment,
    ImageDatasetConfig,
    TransferExperiment,
)
from nntransfer.errors import StorageError
from nntransfer.pipeline.local import LocalStore
from nntransfer.pipeline.step import StepMeta
from nntransfer.pipeline.store import BLOCKED, DONE, FAILED, INTERRUPTED, RUNNING, WAITING, step_status
from nntransfer.recipes.loading import as_recipe, load_recipe

TESTS = Path(__file__).parent
BENCH = TESTS.parent / "bench"


def unique(name):
    return f"{name}_{uuid.uuid4().hex[:6]}"


def read_log(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()] if Path(path).exists() else []


def toy_chain(epochs=1, fail_step=None, steps=2, seed=1, sleep=0.0):
    return TransferExperiment([
        Experiment(ToyDatasetConfig(), ToyModelConfig(init=0.5),
                   ToyTrainerConfig(increment=1.0 + i, epochs=epochs, compute_transfer_data=True, data_transfer=i > 0,
                                    fail=i == fail_step, sleep=sleep),
                   seed=seed, comment=f"s{i}")
        for i in range(steps)
    ])  # fmt: skip


def env_for_subprocess(log):
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]), TOY_LOG=str(log))


def full_disk_on(fragment):
    """An ``os.replace`` that fails like a full disk when the target path contains ``fragment``."""
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if fragment in str(dst):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst, *args, **kwargs)

    return replace


# ---------------------------------------------------------------------- item 7: damaged finished steps


def spoil_truncate(path):
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])


def spoil_same_size(path):
    path.write_bytes(b"\x00" * path.stat().st_size)


def spoil_delete(path):
    path.unlink()


DAMAGES = {
    "result.json truncated": ("result.json", spoil_truncate),
    "result.json garbage": ("result.json", spoil_same_size),
    "model_state.pt truncated": ("model_state.pt", spoil_truncate),
    "model_state.pt garbage of the same size": ("model_state.pt", spoil_same_size),
    "model_state.pt missing": ("model_state.pt", spoil_delete),
    "output.json garbage of the same size": ("output.json", spoil_same_size),
    "output.json missing": ("output.json", spoil_delete),
    "transfer_data.npz truncated": ("transfer_data.npz", spoil_truncate),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_step_is_reported_and_trained_again(tmp_path, monkeypatch, caplog, damage):
    """Defect: a truncated result.json made status, report and run fail with "Expecting value" naming no
    file; a garbage model_state.pt failed the next step on every run."""
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("TOY_LOG", str(log))
    chains = {Description("toy", 1): toy_chain()}
    nntransfer.run(chains, workdir=tmp_path / "w", progress=False)
    store = LocalStore(tmp_path / "w")
    first, second = (toy_chain().step_key(level) for level in (0, 1))
    name, spoil = DAMAGES[damage]
    damaged = store.step_dir(first) / name
    spoil(damaged)

    rows = step_status(LocalStore(tmp_path / "w"), as_recipe(chains))  # never raises
    quick = "same size" in damage  # status compares sizes; the checksum is compared when the step is read
    assert [r.state for r in rows] == [DONE if quick else WAITING, DONE]
    if not quick:
        assert str(damaged) in caplog.text and "will be trained again" in caplog.text
    with pytest.raises(ValueError) as raised:
        {"result.json": store.load, "output.json": store.load, "model_state.pt": store.load_weights,
         "transfer_data.npz": store.load_transfer_data}[name](first)  # fmt: skip
    assert name in str(raised.value) and "\n" not in str(raised.value)

    caplog.clear()
    rows = nntransfer.run(chains, workdir=tmp_path / "w", progress=False)
    assert [r.state for r in rows] == [DONE, DONE]
    assert str(damaged) in caplog.text and "will be trained again" in caplog.text
    assert [entry["increment"] for entry in read_log(log)] == [1.0, 2.0, 1.0]  # only the damaged step again
    fresh = LocalStore(tmp_path / "w")
    assert fresh.is_done(first) and fresh.is_done(second)
    assert torch.equal(fresh.load_weights(first)["weight"], torch.tensor([[1.5]]))


def test_status_and_report_commands_survive_a_damaged_folder(tmp_path, capsys):
    recipe = write_toy_recipe(tmp_path, unique("damaged"), chains=1)
    workdir = tmp_path / "w"
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 0
    folders = sorted((workdir / "steps").iterdir(), key=lambda p: json.loads((p / "result.json").read_text())["step"])
    (folders[0] / "result.json").write_text('{"score": ')  # truncated
    capsys.readouterr()
    assert main(["status", str(recipe), "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out
    assert " waiting " in out and " done " in out
    main(["report", str(recipe), "--workdir", str(workdir), "--out", str(tmp_path / "report")])
    assert "Expecting value" not in capsys.readouterr().err  # (toy steps have nothing to plot: that error is fine)


def test_odd_damage_never_crashes_status(tmp_path):
    chains = {Description("a", 1): toy_chain(), Description("b", 2): toy_chain(seed=2)}
    nntransfer.run(chains, workdir=tmp_path, progress=False)
    store = LocalStore(tmp_path)
    keys = [chain.step_key(level) for chain in chains.values() for level in range(2)]
    (store.step_dir(keys[0]) / "result.json").write_text("[1, 2]")  # JSON, but not a record
    (store.step_dir(keys[1]) / "result.json").unlink()
    (store.step_dir(keys[1]) / "result.json").mkdir()  # not even a file
    for path in store.step_dir(keys[2]).iterdir():
        path.unlink()  # an empty folder
    store.failure_file(keys[2]).parent.mkdir(exist_ok=True)
    store.failure_file(keys[2]).mkdir()  # an unreadable failure record
    store.failure_file(keys[3]).write_text("")  # an empty failure record (step 3 is done: done wins)
    states = [s.state for s in LocalStore(tmp_path).states(keys)]
    assert states == [WAITING, WAITING, FAILED, DONE]


def test_an_empty_failure_record_reads_as_failed(tmp_path):
    store = LocalStore(tmp_path)
    key = toy_chain().step_key(0)
    store.failure_file(key).parent.mkdir(parents=True)
    store.failure_file(key).write_text("")
    assert (store.states([key])[0].state, store.states([key])[0].error) == (FAILED, "failed (no message recorded)")


def test_a_step_stored_before_result_json_recorded_its_files_is_still_done(tmp_path):
    nntransfer.run({Description("old", 1): toy_chain()}, workdir=tmp_path, progress=False)
    store = LocalStore(tmp_path)
    key = toy_chain().step_key(0)
    result = store.step_dir(key) / "result.json"
    info = json.loads(result.read_text())
    del info["files"]
    result.write_text(json.dumps(info))
    fresh = LocalStore(tmp_path)
    assert fresh.is_done(key) and fresh.load(key).score == 1.5
    assert torch.equal(fresh.load_weights(key)["weight"], torch.tensor([[1.5]]))
    (store.step_dir(key) / "model_state.pt").write_bytes(b"garbage")
    assert not LocalStore(tmp_path).is_done(key)  # verified by loading


# ---------------------------------------------------------------------- item 8: full disk, unwritable folder


def test_an_unwritable_work_folder_is_one_line_before_anything_is_trained(tmp_path, monkeypatch):
    """Defect: 46-64 lines of tracebacks, and an empty failure record that made status crash."""
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("TOY_LOG", str(log))
    workdir = tmp_path / "w"
    workdir.write_text("a file where the work folder should be")  # root ignores permissions: this it cannot
    with pytest.raises(StorageError) as raised:
        nntransfer.run({Description("toy", 1): toy_chain()}, workdir=workdir, progress=False)
    message = str(raised.value)
    assert "\n" not in message and str(workdir) in message and "--workdir" in message
    assert not log.exists()  # nothing trained


def test_a_full_disk_while_storing_a_step_is_one_line_and_the_step_resumes(tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("TOY_LOG", str(log))
    workdir = tmp_path / "w"
    chains = {Description("toy", 1): toy_chain(epochs=3)}
    real_write = Path.write_bytes

    def write_half_then_fail(path, data):  # what a disk that fills up mid-file does
        if path.name == "model_state.pt":
            real_write(path, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(Path, "write_bytes", write_half_then_fail)
    with pytest.raises(StorageError) as raised:
        nntransfer.run(chains, workdir=workdir, progress=False)
    monkeypatch.undo()
    message = str(raised.value)
    assert "\n" not in message and "No space left on device" in message and str(workdir / "steps") in message
    assert not list((workdir / "steps").iterdir())  # the temporary folder is gone
    assert not list((workdir / "failed").iterdir())  # a full disk is not the step's failure
    store = LocalStore(workdir)
    assert [r.state for r in step_status(store, as_recipe(chains))] == [INTERRUPTED, WAITING]  # its checkpoints are kept
    key = toy_chain(epochs=3).step_key(0)
    assert sorted(store.checkpoints(key).checkpoints(dict(key))) == [3]  # kept

    monkeypatch.setenv("TOY_LOG", str(log))
    rows = nntransfer.run(chains, workdir=workdir, progress=False)
    assert [r.state for r in rows] == [DONE, DONE]
    assert [e["first_epoch"] for e in read_log(log)] == [1, 4, 1]  # step 0 resumed after its last epoch


def test_a_full_disk_while_recording_a_failure_leaves_no_empty_record(tmp_path, monkeypatch):
    chains = {Description("toy", 1): toy_chain(fail_step=0)}
    monkeypatch.setattr(os, "replace", full_disk_on(os.sep + "failed" + os.sep))
    with pytest.raises(StorageError) as raised:
        nntransfer.run(chains, workdir=tmp_path, progress=False)
    monkeypatch.undo()
    assert "cannot record the failure" in str(raised.value) and "\n" not in str(raised.value)
    assert not list((tmp_path / "failed").iterdir())  # neither an empty record nor a temporary file
    assert [r.state for r in step_status(LocalStore(tmp_path), as_recipe(chains))] == [WAITING, WAITING]


def test_a_full_disk_while_checkpointing_stops_the_run_without_a_failure_record(tmp_path, monkeypatch):
    chains = {Description("toy", 1): toy_chain(epochs=2)}
    monkeypatch.setattr(os, "replace", full_disk_on(os.sep + "checkpoints" + os.sep))
    with pytest.raises(StorageError, match="cannot write the checkpoint"):
        nntransfer.run(chains, workdir=tmp_path, progress=False)
    monkeypatch.undo()
    assert not list((tmp_path / "failed").iterdir()) and not list(tmp_path.rglob("*.tmp"))
    assert [r.state for r in step_status(LocalStore(tmp_path), as_recipe(chains))] == [WAITING, WAITING]


# ---------------------------------------------------------------------- item 9: a kill while a step is stored


def digits_experiment(max_iter=2):
    return Experiment(
        ImageDatasetConfig(dataset_cls="Digits", train_subset=0.2, batch_size=64),
        ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[16]),
        ClassificationTrainerConfig(max_iter=max_iter, show_progress=False),
        seed=3,
    )


def test_a_kill_while_a_real_step_is_stored_resumes_from_its_checkpoints(tmp_path, monkeypatch, caplog):
    """Defect: the trainer deleted its checkpoints before the store saved the step: a kill in between
    trained the whole step again. Temporary folders of killed runs stayed forever."""
    caplog.set_level(logging.INFO, logger="nntransfer")
    experiment = digits_experiment()
    key = TransferExperiment([experiment]).step_key(0)
    reference = nntransfer.run(experiment, workdir=tmp_path / "reference", progress=False)

    real_replace = os.replace

    def kill_when_storing(src, dst, *args, **kwargs):  # the step's folder written, not yet renamed into place
        if os.sep + "steps" + os.sep in str(dst):
            raise KeyboardInterrupt("killed while storing the step")
        return real_replace(src, dst, *args, **kwargs)

    workdir = tmp_path / "w"
    monkeypatch.setattr(os, "replace", kill_when_storing)
    with pytest.raises(KeyboardInterrupt):
        nntransfer.run(experiment, workdir=workdir, progress=False)
    monkeypatch.undo()
    store = LocalStore(workdir)
    assert sorted(store.checkpoints(key).checkpoints(dict(key))) == [2]  # kept until the step is stored
    assert (store.states([key])[0].state, store.states([key])[0].resumes_after) == (INTERRUPTED, 2)
    stale = workdir / "steps" / f".{store.step_dir(key).name}.999999999.tmp"  # as a SIGKILL leaves it
    stale.mkdir()
    (stale / "model_state.pt").write_bytes(b"half")

    caplog.clear()
    rows = nntransfer.run(experiment, workdir=workdir, progress=False)
    assert "resumed from the checkpoint of epoch 2" in caplog.text
    assert rows[0].state == DONE and rows[0].score == reference[0].score
    weights, expected = LocalStore(workdir).load_weights(key), LocalStore(tmp_path / "reference").load_weights(key)
    assert all(torch.equal(weights[k], expected[k]) for k in expected)
    assert not stale.exists() and not list((workdir / "checkpoints").iterdir())


def test_a_kill_after_a_step_is_stored_trains_nothing_again_and_tidies_up(tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("TOY_LOG", str(log))
    chains = {Description("toy", 1): toy_chain(epochs=2)}

    def killed(self, key):
        raise KeyboardInterrupt("killed before the checkpoints were cleared")

    with monkeypatch.context() as patched:
        patched.setattr(LocalStore, "clear_checkpoints", killed)
        with pytest.raises(KeyboardInterrupt):
            nntransfer.run(chains, workdir=tmp_path, progress=False)
    assert list((tmp_path / "checkpoints").iterdir())
    rows = nntransfer.run(chains, workdir=tmp_path, progress=False)
    assert [r.state for r in rows] == [DONE, DONE]
    assert [e["increment"] for e in read_log(log)] == [1.0, 2.0]  # step 0 was not trained again
    assert not list((tmp_path / "checkpoints").iterdir()) and not list((tmp_path / "locks").iterdir())


# ---------------------------------------------------------------------- item 13: two runs on one folder


@pytest.mark.slow
def test_two_runs_on_one_folder_share_the_work_step_by_step(tmp_path):
    """Defect: two local runs on one work folder both trained every step."""
    recipe = write_toy_recipe(tmp_path, unique("shared"), chains=3, sleep=0.25, epochs=2)
    workdir, log = tmp_path / "w", tmp_path / "log.jsonl"
    command = [sys.executable, "-m", "nntransfer", "run", str(recipe), "--workdir", str(workdir), "--quiet"]
    runs = [subprocess.Popen(command, env=env_for_subprocess(log), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]  # fmt: skip
    recipe_steps = load_recipe(str(recipe))
    seen_running = False
    while any(run.poll() is None for run in runs):  # status while they train: the other run's step is running
        if workdir.exists():
            seen_running |= any(r.state == RUNNING for r in step_status(LocalStore(workdir), recipe_steps))
        time.sleep(0.05)
    outputs = [run.communicate() for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    entries = read_log(log)
    assert len(entries) == 6, entries  # 3 chains x 2 steps, each trained once
    assert sorted(e["increment"] for e in entries if e["step"] == 0) == [1.0, 2.0, 3.0]
    assert all(out.count(" done ") == 6 for out, _ in outputs)  # both end with every step done
    assert seen_running


def run_in_thread(chains, workdir):
    """``nntransfer.run`` in a thread (as a second run would be); returns the thread and its outcome list."""
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(nntransfer.run(chains, workdir=workdir, progress=False)), daemon=True)
    thread.start()
    return thread, outcome


def wait_for(condition, seconds=30):
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("holder_ends", ["failed", "died"])
def test_a_step_another_run_holds_is_left_to_it(tmp_path, monkeypatch, holder_ends):
    """A run trains the other chains while another run holds a step; if that run records a failure, the
    chain stops there (no second attempt); if it dies without one, this run takes the step over."""
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("TOY_LOG", str(log))
    held, free = toy_chain(seed=1), toy_chain(seed=2)
    chains = {Description("held", 1): held, Description("free", 2): free}
    other = LocalStore(tmp_path)  # the other run
    with other.claim(held.step_key(0)) as mine:
        assert mine and LocalStore(tmp_path).states([held.step_key(0)])[0].state == RUNNING
        thread, outcome = run_in_thread(chains, tmp_path)
        wait_for(lambda: LocalStore(tmp_path).is_done(free.step_key(1)))  # the free chain goes on meanwhile
        assert thread.is_alive() and len(read_log(log)) == 2  # ... while this one waits for the held step
        if holder_ends == "failed":
            other.record_failure(held.step_key(0), RuntimeError("failed in the other run"), StepMeta())
    thread.join(30)
    states = [row.state for row in outcome[0]]
    if holder_ends == "failed":
        assert states == [FAILED, BLOCKED, DONE, DONE] and len(read_log(log)) == 2
    else:
        assert states == [DONE] * 4 and len(read_log(log)) == 4


# ---------------------------------------------------------------------- item 2: SIGTERM and Ctrl-C


@pytest.mark.slow
def test_sigterm_leaves_the_step_resumable(tmp_path, monkeypatch):
    """Defect: SIGTERM (docker stop, pre-emption) killed a local run without a word or any cleanup; it now
    stops the run like Ctrl-C: no failure record, checkpoints kept, the step waiting."""
    recipe = write_toy_recipe(tmp_path, unique("terminated"), chains=1, sleep=0.3, epochs=6)
    workdir, log = tmp_path / "w", tmp_path / "log.jsonl"
    run = subprocess.Popen([sys.executable, "-m", "nntransfer", "run", str(recipe), "--workdir", str(workdir), "--quiet"],
                           env=env_for_subprocess(log), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 60
    while not list(workdir.glob("checkpoints/*/epoch_000001.pt")) and time.time() < deadline and run.poll() is None:
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=60)
    assert "interrupted (SIGTERM) while training toy0 (seed 1) step 0" in err
    assert_resumable(workdir, load_recipe(str(recipe)))
    monkeypatch.setenv("TOY_LOG", str(log))
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 0
    first_epochs = [e["first_epoch"] for e in read_log(log)]
    assert len(first_epochs) == 3 and first_epochs[0] == 1 and first_epochs[1] > 1  # resumed, not restarted


@pytest.mark.slow
def test_ctrl_c_leaves_the_step_resumable(tmp_path, monkeypatch, caplog):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("TOY_LOG", str(log))
    chain = toy_chain(epochs=20, sleep=0.1)
    chains = {Description("toy", 1): chain}
    checkpoint = tmp_path / "checkpoints" / LocalStore(tmp_path).step_dir(chain.step_key(0)).name / "epoch_000002.pt"

    def press_ctrl_c():  # from another thread, as the terminal would: the run's main thread gets it
        while not checkpoint.exists():
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    with pytest.raises(KeyboardInterrupt):
        nntransfer.run(chains, workdir=tmp_path, progress=False)
    presser.join()
    assert "interrupted (Ctrl-C) while training toy (seed 1) step 0" in caplog.text
    assert_resumable(tmp_path, as_recipe(chains))
    rows = nntransfer.run(chains, workdir=tmp_path, progress=False)
    assert [r.state for r in rows] == [DONE, DONE]
    assert [e["first_epoch"] for e in read_log(log)][:2] == [1, 3]


def assert_resumable(workdir, recipe):
    assert not list((workdir / "failed").iterdir())  # not a failure
    assert list(workdir.glob("checkpoints/*/epoch_*.pt"))  # kept
    rows = step_status(LocalStore(workdir), recipe)
    assert [r.state for r in rows] == [INTERRUPTED, WAITING]  # step 0 has checkpoints: it resumes from its last
    assert rows[0].resumes_after == max(int(p.stem.split("_")[1]) for p in workdir.glob("checkpoints/*/epoch_*.pt"))


def test_sigterm_handler_is_restored_after_a_run(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    nntransfer.run({Description("toy", 1): toy_chain()}, workdir=tmp_path, progress=False)
    assert signal.getsignal(signal.SIGTERM) is before


# ---------------------------------------------------------------------- random kills (bench/fault_injection_local.py)


@pytest.mark.slow
def test_random_kills_lose_nothing_and_train_nothing_twice(tmp_path, capsys):
    sys.path.insert(0, str(BENCH))
    try:
        import fault_injection_local
    finally:
        sys.path.remove(str(BENCH))
    argv = ["--rounds", "1", "--kills", "2", "--chains", "2", "--steps", "2", "--epochs", "2", "--sleep", "0.25",
            "--concurrent", "1", "--seed", "1", "--keep", str(tmp_path / "faults")]  # fmt: skip
    code = fault_injection_local.main(argv)
    out = capsys.readouterr().out
    assert code == 0 and "violations: 0" in out, out
