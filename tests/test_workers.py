"""What the docker image runs, without docker: several ``nntransfer worker`` processes against the real
server. Every job runs exactly once, results match the local backend, a killed worker's job is recovered
(its reservation cleared, its checkpoints reused), and a stopped one (SIGTERM, what ``docker stop`` sends)
leaves its job resumable. The workers inherit this session's schema prefix (conftest)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datajoint as dj
import pytest
from recipe_factory import write_recipe, write_toy_recipe

from nntransfer.pipeline.local import LocalStore
from nntransfer.pipeline.store import step_status
from nntransfer.recipes.loading import load_recipe
from nntransfer.tables import activate
from nntransfer.tables.store import DataJointStore

pytestmark = [pytest.mark.database, pytest.mark.slow]
TESTS = Path(__file__).parent


def worker_env(log):
    pythonpath = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    # a killed worker's reservation is cleared once its heartbeat is this many seconds old
    return dict(os.environ, PYTHONPATH=pythonpath, TOY_LOG=str(log), NNTRANSFER_HEARTBEAT_TIMEOUT="3")


_started = []


@pytest.fixture(autouse=True)
def no_worker_left_behind():
    """A test that fails while its workers run kills them: none recreates a schema the session dropped."""
    yield
    while _started:
        worker = _started.pop()
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def start_worker(recipe, schema, env):
    worker = subprocess.Popen(
        [sys.executable, "-m", "nntransfer", "worker", str(recipe), "--schema", schema, "--poll", "0.3", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    _started.append(worker)
    return worker


def read_log(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()] if Path(path).exists() else []


def test_three_concurrent_workers_run_every_job_once(db_prefix, tmp_path):
    recipe = write_toy_recipe(tmp_path, "concurrent_recipe", chains=3, sleep=0.4, epochs=2)
    log = tmp_path / "log.jsonl"
    schema = f"{db_prefix}_workers"
    env = worker_env(log)
    workers = [start_worker(recipe, schema, env) for _ in range(3)]
    outputs = [w.communicate(timeout=240) for w in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-2000:]
    runs = read_log(log)
    assert len(runs) == 6, runs  # 3 chains x 2 steps, each exactly once
    assert len({(r["step"], r["increment"]) for r in runs}) >= 4  # steps differ across chains
    assert len({r["pid"] for r in runs}) >= 2  # the work was shared

    # the same scores as the local backend
    status = subprocess.run(
        [sys.executable, "-m", "nntransfer", "status", str(recipe), "--schema", schema],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    local = LocalStore(tmp_path / "local")
    loaded = load_recipe(str(recipe))
    local.run(loaded, progress=False)
    for row in step_status(local, loaded):
        line = f"{row.name}  {row.seed}     {row.step}     done   {row.score:.4f}"
        assert line in status.stdout, (line, status.stdout)


def wait_for_checkpoint(schema, epoch=2, seconds=120):
    """Wait until a worker saved the checkpoint of ``epoch`` in ``schema``."""
    conn = dj.conn()
    deadline = time.time() + seconds
    saved = 0
    while time.time() < deadline and saved < epoch:
        time.sleep(0.3)
        try:
            saved = conn.query(f"SELECT MAX(epoch) FROM `{schema}`.`transferred_checkpoint`").fetchone()[0] or 0
        except Exception:  # the table does not exist yet
            saved = 0
    assert saved >= epoch, "the first worker never saved a checkpoint"
    return conn


def test_killed_worker_is_recovered_from_checkpoints(db_prefix, tmp_path):
    recipe = write_toy_recipe(tmp_path, "killed_recipe", chains=1, sleep=0.6, epochs=6)
    log = tmp_path / "log.jsonl"
    schema = f"{db_prefix}_killed"
    env = worker_env(log)
    first = start_worker(recipe, schema, env)
    conn = wait_for_checkpoint(schema)
    first.kill()
    first.wait(timeout=30)
    reserved = conn.query(f"SELECT COUNT(*) FROM `{schema}`.`~jobs` WHERE status='reserved'").fetchone()[0]
    assert reserved == 1  # the killed worker left its reservation behind

    second = start_worker(recipe, schema, env)
    out, err = second.communicate(timeout=240)
    assert second.returncode == 0, err[-2000:]
    runs = read_log(log)
    step0 = [r for r in runs if r["step"] == 0]
    assert len(step0) == 2 and step0[0]["first_epoch"] == 1
    assert step0[1]["first_epoch"] >= 3  # resumed after the saved epoch instead of starting over
    assert "1.5000" in out and "3.5000" in out  # same result as an uninterrupted run
    assert conn.query(f"SELECT COUNT(*) FROM `{schema}`.`~jobs`").fetchone()[0] == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopped_worker_leaves_its_job_resumable(db_prefix, tmp_path, signum):
    """Item 2: DataJoint turns SIGTERM (what ``docker stop`` sends) into SystemExit and Ctrl-C into a job
    error, and records the job as failed; the worker releases it instead. After Ctrl-C, DataJoint's
    ``populate`` went on with its next key (here: the other chain's first step); the worker stops."""
    recipe = write_toy_recipe(tmp_path, f"stopped_{signum.name.lower()}", chains=2, sleep=0.3, epochs=4)
    log = tmp_path / "log.jsonl"
    schema = f"{db_prefix}_stopped_{signum.name.lower()}"
    env = worker_env(log)
    first = start_worker(recipe, schema, env)
    conn = wait_for_checkpoint(schema)
    first.send_signal(signum)
    first.communicate(timeout=60)
    assert first.returncode != 0
    assert [r["pid"] for r in read_log(log)] == [first.pid]  # it trained no other step after the signal
    assert conn.query(f"SELECT COUNT(*) FROM `{schema}`.`~jobs`").fetchone()[0] == 0  # neither failed nor reserved
    assert conn.query(f"SELECT COUNT(*) FROM `{schema}`.`~heartbeat`").fetchone()[0] == 0  # its beat is gone
    tables = activate(schema)
    try:
        loaded = load_recipe(str(recipe))
        rows = step_status(DataJointStore(tables=tables), loaded)  # the stopped step resumes from its checkpoint
        assert {row.state for row in rows} == {"interrupted", "waiting"} and sum(row.state == "interrupted" for row in rows) == 1
    finally:
        activate(f"{db_prefix}_main")

    second = start_worker(recipe, schema, env)
    out, err = second.communicate(timeout=240)
    assert second.returncode == 0, err[-2000:]
    step0 = [r for r in read_log(log) if r["step"] == 0]
    assert len(step0) == 3 and step0[1]["first_epoch"] >= 3  # resumed from its checkpoints, then the other chain
    assert "1.5000" in out and "3.5000" in out


def _scores(text):
    """{(name, seed, step): score} from a status table."""
    scores = {}
    for line in text.splitlines()[1:]:
        parts = line.split("  ")
        parts = [p.strip() for p in parts if p.strip()]
        if len(parts) >= 5 and parts[3] == "done":
            scores[(parts[0], parts[1], parts[2])] = parts[4]
    return scores


def test_digits_recipe_gives_the_same_scores_locally_with_run_and_with_workers(db_prefix, tmp_path):
    recipe = "nntransfer.recipes.digits_transfer"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    local = subprocess.run(
        [sys.executable, "-m", "nntransfer", "run", recipe, "--workdir", str(tmp_path / "work"), "--quiet"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert local.returncode == 0, local.stderr[-2000:]
    expected = _scores(local.stdout)
    assert len(expected) == 6  # two seeds of the fine-tuning chain (two steps) and of its from-scratch run

    run = subprocess.run(
        [sys.executable, "-m", "nntransfer", "run", recipe, "--schema", f"{db_prefix}_digits_run", "--quiet"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert _scores(run.stdout) == expected

    schema = f"{db_prefix}_digits_workers"
    workers = [
        subprocess.Popen([sys.executable, "-m", "nntransfer", "worker", recipe, "--schema", schema, "--poll", "0.3", "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(3)
    ]  # fmt: skip
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-2000:]
        assert _scores(out) == expected


def test_failed_job_is_reported_and_the_worker_exits_non_zero(db_prefix, tmp_path):
    folder = write_recipe(
        tmp_path,
        "failing_recipe",
        "from nntransfer.configs import Description, Experiment, TransferExperiment\n"
        "from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig\n"
        "steps = [Experiment(ToyDatasetConfig(), ToyModelConfig(), ToyTrainerConfig(fail=True), seed=3, comment='bad'),\n"
        "         Experiment(ToyDatasetConfig(), ToyModelConfig(), ToyTrainerConfig(), seed=3, comment='after')]\n"
        "transfer_experiments = {Description('failing', 3): TransferExperiment(steps)}\n",
    )
    schema = f"{db_prefix}_failing"
    env = worker_env(tmp_path / "log.jsonl")
    worker = start_worker(folder, schema, env)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 1, err[-2000:]
    assert "failed" in out and "toy trainer asked to fail" in out and "blocked" in out
    status = subprocess.run(
        [sys.executable, "-m", "nntransfer", "status", str(folder), "--schema", schema],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert status.returncode == 0 and "failed" in status.stdout and "blocked" in status.stdout
    runs = len(read_log(tmp_path / "log.jsonl"))
    again = start_worker(folder, schema, env)  # without --retry-failed the failed job stays failed
    assert again.wait(timeout=120) == 1 and len(read_log(tmp_path / "log.jsonl")) == runs
    retry = subprocess.Popen(
        [sys.executable, "-m", "nntransfer", "worker", str(folder), "--schema", schema, "--quiet", "--retry-failed"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert retry.wait(timeout=120) == 1  # it ran again (and failed again)
    assert len(read_log(tmp_path / "log.jsonl")) == runs + 1


def test_status_of_a_schema_that_does_not_exist_creates_nothing(db_prefix, tmp_path):
    recipe = write_toy_recipe(tmp_path, "status_recipe", chains=1)
    schema = f"{db_prefix}_typo"
    result = subprocess.run(
        [sys.executable, "-m", "nntransfer", "status", str(recipe), "--schema", schema],
        capture_output=True, text=True, env=worker_env(tmp_path / "log.jsonl"), timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "does not exist" in result.stderr
    exists = dj.conn().query("SELECT 1 FROM information_schema.schemata WHERE schema_name=%s", args=(schema,)).fetchone()
    assert exists is None
