"""``nntransfer submit`` / ``cancel`` and what ``status`` shows of them, against a real single-node SLURM
cluster (started by the ``slurm_cluster`` fixture) and the real database server. The workers run the toy
steps (``toy_steps``), which log every training run to ``$TOY_LOG``: how often a step trained, in which
process, from which epoch."""

import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from recipe_factory import write_recipe, write_toy_recipe

from nntransfer.cli.main import main

pytestmark = [pytest.mark.database, pytest.mark.slurm]
TESTS = Path(__file__).parent
#: where SLURM's commands are, whatever PATH a test sets
SLURM_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin", "/bin"])


@pytest.fixture
def cluster_env(slurm_cluster, db_prefix, tmp_path, monkeypatch):
    """What the workers inherit through sbatch: the toy steps on PYTHONPATH, the training-run log; a
    heartbeat timeout far beyond a test's length, so that only a release (never a timeout) frees a step.
    Yields the log's path; cancels every job array the test submitted afterwards (a failed test leaves none)."""
    log = tmp_path / "toy_runs.jsonl"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("TOY_LOG", str(log))
    monkeypatch.setenv("NNTRANSFER_HEARTBEAT_TIMEOUT", "600")
    yield log
    if SUBMITTED:
        slurm_command("scancel", *SUBMITTED)
        SUBMITTED.clear()
    from nntransfer.tables import activate

    activate(f"{db_prefix}_main")  # submit (in this process) bound the tables to the test's schema: bind them back


def queued_jobs():
    return slurm_command("squeue", "-h", "-r", "-o", "%i").stdout.split()


def slurm_command(*command):
    return subprocess.run(command, capture_output=True, text=True, timeout=30, env=dict(os.environ, PATH=SLURM_PATH))


def read_runs(log):
    return [json.loads(line) for line in Path(log).read_text().splitlines()] if Path(log).exists() else []


#: job arrays the running test submitted
SUBMITTED = []


def submit(capsys, *args):
    status = main(["submit", *map(str, args), "--quiet"])
    captured = capsys.readouterr()
    if "submitted SLURM job " in captured.out:
        SUBMITTED.append(job_id(captured.out))
    return status, captured.out, captured.err


def job_id(out):
    line = next(line for line in out.splitlines() if line.startswith("submitted SLURM job "))
    return line.split()[3].rstrip(":")


def wait_until(predicate, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def array_done(job):
    return not any(j.split("_")[0] == job for j in queued_jobs())


def logs_of(folder, job):
    return "\n".join(p.read_text(errors="replace") for p in sorted(Path(folder).glob(f"{job}_*_log.out")))


def reservations(schema):
    import datajoint as dj

    return dj.conn().query(f"SELECT key_hash, status FROM `{schema}`.`~jobs` WHERE status='reserved'").fetchall()


def max_checkpoint_epoch(schema):
    import datajoint as dj

    return dj.conn().query(f"SELECT MAX(epoch) FROM `{schema}`.`transferred_checkpoint`").fetchone()[0] or 0


# ---------------------------------------------------------------- bad input: one line, exit 2, nothing submitted


@pytest.fixture
def toy_recipe(tmp_path):
    return write_toy_recipe(tmp_path, "slurm_bad_input", chains=1)


def assert_refused(capsys, args, expected, log_dir):
    status, out, err = submit(capsys, *args)
    lines = [line for line in err.splitlines() if line.startswith("nntransfer: error:")]
    assert status == 2, (out, err)
    assert len(lines) == 1 and expected in lines[0], err
    # nothing submitted: submitit writes its job script and pickle into the log folder before sbatch runs
    assert not Path(log_dir).exists()


def test_submit_refuses_a_local_work_folder(cluster_env, toy_recipe, tmp_path, capsys):
    logs = tmp_path / "logs"
    assert_refused(capsys, [toy_recipe, "--store", f"local:{tmp_path / 'w'}", "--workers", 2, "--log-dir", logs],
                   "reachable from this machine only", logs)
    assert not (tmp_path / "w").exists()


def test_submit_refuses_a_relative_external_store(cluster_env, db_prefix, toy_recipe, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NNTRANSFER_STORE", "relative/store")
    logs = tmp_path / "logs"
    assert_refused(capsys, [toy_recipe, "--schema", f"{db_prefix}_slurm_bad", "--workers", 2, "--log-dir", logs],
                   "NNTRANSFER_STORE is the relative path", logs)


def test_submit_refuses_without_sbatch_on_path(cluster_env, db_prefix, toy_recipe, tmp_path, capsys, monkeypatch):
    python_only = tmp_path / "bin"
    python_only.mkdir()
    monkeypatch.setenv("PATH", str(python_only))
    logs = tmp_path / "logs"
    status, out, err = submit(capsys, toy_recipe, "--schema", f"{db_prefix}_slurm_bad", "--workers", 2, "--log-dir", logs)
    assert status == 2 and "sbatch" in err and "not found on PATH" in err, err
    assert len(err.strip().splitlines()) == 1 and not logs.exists()


def test_submit_refuses_an_unknown_partition(cluster_env, db_prefix, toy_recipe, tmp_path, capsys):
    logs = tmp_path / "logs"
    assert_refused(capsys, [toy_recipe, "--schema", f"{db_prefix}_slurm_bad", "--workers", 2, "--partition", "debugg",
                            "--log-dir", logs], "SLURM has no partition 'debugg'; did you mean 'debug'?", logs)


def test_submit_refuses_an_unreachable_database(cluster_env, toy_recipe, tmp_path):
    env = {"PYTHONPATH": str(TESTS), "DJ_HOST": "127.0.0.1:1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "NNTRANSFER_STORE": str(tmp_path / "store"), "SLURM_CONF": os.environ["SLURM_CONF"]}
    logs = tmp_path / "logs"
    result = subprocess.run(
        [sys.executable, "-m", "nntransfer", "submit", str(toy_recipe), "--store", "datajoint:nnt_unreachable",
         "--workers", "2", "--log-dir", str(logs)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "cannot reach the database" in lines[0], result.stderr
    assert not logs.exists()


def test_submit_refuses_a_recipe_that_fails_its_checks(cluster_env, db_prefix, tmp_path, capsys):
    recipe = write_recipe(tmp_path, "slurm_broken", "from nntransfer.configs import *\nimport toy_steps\n"
                          "from nntransfer.configs import Description, Experiment, TransferExperiment\n"
                          "class Broken(toy_steps.ToyTrainerConfig):\n    fn = 'toy_steps.no_such_trainer'\n"
                          "transfer_experiments = {Description(name='broken', seed=1): TransferExperiment(["
                          "Experiment(toy_steps.ToyDatasetConfig(), toy_steps.ToyModelConfig(), Broken(), seed=1)])}\n")
    logs = tmp_path / "logs"
    assert_refused(capsys, [recipe, "--schema", f"{db_prefix}_slurm_bad", "--workers", 2, "--log-dir", logs],
                   "no_such_trainer", logs)


def test_what_sbatch_refuses_is_one_line_and_leaves_no_files(cluster_env, db_prefix, toy_recipe, tmp_path, capsys):
    logs = tmp_path / "logs"
    assert_refused(capsys, [toy_recipe, "--schema", f"{db_prefix}_slurm_bad", "--workers", 2, "--mem", "100000G",
                            "--log-dir", logs], "sbatch refused the job array: Batch job submission failed", logs)


@pytest.mark.parametrize("option, expected", [
    (["--workers", 0], "--workers takes a number of at least 1"),
    (["--workers", 2, "--time", "two hours"], "--time takes a SLURM time limit"),
    (["--workers", 2, "--mem", "lots"], "--mem takes a SLURM memory size"),
    (["--workers", 2, "--slurm", "array=0-9"], "set by nntransfer submit itself"),
    (["--workers", 2, "--slurm", "account"], "--slurm takes KEY=VALUE"),
])
def test_submit_refuses_bad_slurm_options(cluster_env, db_prefix, toy_recipe, tmp_path, capsys, option, expected):
    logs = tmp_path / "logs"
    assert_refused(capsys, [toy_recipe, "--schema", f"{db_prefix}_slurm_bad", *option, "--log-dir", logs], expected, logs)


# ---------------------------------------------------------------- on the cluster


@pytest.mark.slow
def test_gpus_per_task_reach_slurm_and_each_worker_sees_the_gpu_it_was_given(cluster_env, db_prefix, tmp_path, capsys):
    # the test cluster declares two GPUs (character devices nothing opens): SLURM allocates them per task
    recipe = write_toy_recipe(tmp_path, "slurm_gpus", chains=2)
    schema = f"{db_prefix}_slurm_gpus"
    logs = tmp_path / "logs"
    status, out, err = submit(capsys, recipe, "--schema", schema, "--workers", 2, "--gpus-per-task", 1, "--log-dir", logs,
                              "--poll", "0.3")
    assert status == 0, err
    job = job_id(out)
    shown = slurm_command("scontrol", "show", "job", job).stdout
    assert "TresPerTask=gres:gpu:1" in shown, shown
    assert "TimeLimit=UNLIMITED" in shown  # no --time: the partition's limit (none here), not submitit's 5 minutes
    wait_until(lambda: array_done(job), 120, f"job array {job}")
    seen = re.findall(r"GPUs SLURM gave it: CUDA_VISIBLE_DEVICES=(\S+)", logs_of(logs, job))
    assert len(seen) == 2 and set(seen) <= {"0", "1"}, logs_of(logs, job)[-2000:]
    assert len(read_runs(cluster_env)) == 4


@pytest.mark.slow
def test_twenty_chains_on_four_array_tasks_store_every_step_once(cluster_env, db_prefix, tmp_path, capsys):
    recipe = write_toy_recipe(tmp_path, "slurm_twenty", chains=20, sleep=0.05, epochs=2)
    schema = f"{db_prefix}_slurm_twenty"
    logs = tmp_path / "logs"
    status, out, err = submit(capsys, recipe, "--schema", schema, "--workers", 4, "--log-dir", logs, "--poll", "0.3")
    assert status == 0, err
    job = job_id(out)
    assert f"nntransfer status {recipe} --store datajoint:{schema}" in out
    wait_until(lambda: array_done(job), 300, f"job array {job} to finish")

    runs = read_runs(cluster_env)
    assert len(runs) == 40, logs_of(logs, job)[-3000:]  # 20 chains x 2 steps, each trained exactly once
    assert all(run["first_epoch"] == 1 for run in runs)  # none resumed: none was taken twice
    assert len({run["pid"] for run in runs}) >= 2  # the tasks shared the work
    worker_logs = logs_of(logs, job)
    assert worker_logs.count("worker finished:") == 4, worker_logs[-3000:]

    # the same scores as a local run of the same recipe
    main(["run", str(recipe), "--store", f"local:{tmp_path / 'local'}", "--quiet"])
    local = capsys.readouterr().out
    main(["status", str(recipe), "--schema", schema])
    remote = capsys.readouterr().out
    table = lambda text: [line for line in text.splitlines() if line.startswith("toy")]  # noqa: E731
    assert table(remote) == table(local) and len(table(remote)) == 40
    assert f"SLURM job {job}: 0 pending, 0 running, 4 finished of 4 task(s)" in remote

    # submitted again: every step is stored, so nothing is submitted
    status, out, err = submit(capsys, recipe, "--schema", schema, "--workers", 4, "--log-dir", tmp_path / "again")
    assert status == 0 and out.startswith("nothing submitted: no step waits"), (out, err)
    assert not (tmp_path / "again").exists()


@pytest.mark.slow
def test_a_cancelled_task_releases_its_step_at_once_and_a_second_submit_resumes_it(cluster_env, db_prefix, tmp_path, capsys):
    recipe = write_toy_recipe(tmp_path, "slurm_cancel", chains=1, sleep=0.4, epochs=40)
    schema = f"{db_prefix}_slurm_cancel"
    logs = tmp_path / "logs"
    status, out, err = submit(capsys, recipe, "--schema", schema, "--workers", 1, "--log-dir", logs, "--poll", "0.3")
    assert status == 0, err
    job = job_id(out)
    wait_until(lambda: max_checkpoint_epoch(schema) >= 3, 120, "the first checkpoints")

    main(["status", str(recipe), "--schema", schema])
    during = capsys.readouterr().out
    assert "running" in during and f"held by: {platform.node()} pid" in during, during
    assert f"SLURM job {job}\n" in during  # who holds the step, from its heartbeat (one worker: a job, not an array)
    assert f"SLURM job {job}: 0 pending, 1 running, 0 finished of 1 task(s)" in during

    assert main(["cancel", "--schema", schema]) == 0
    assert f"cancelled SLURM job {job}" in capsys.readouterr().out
    cancelled_at = time.time()
    wait_until(lambda: not reservations(schema), 5, "the step's release")  # the heartbeat timeout is 600 s
    assert time.time() - cancelled_at < 5
    saved = max_checkpoint_epoch(schema)
    assert saved >= 3  # the checkpoints are kept
    wait_until(lambda: array_done(job), 60, "the cancelled task to end")
    assert "its step was released" in logs_of(logs, job)
    main(["status", str(recipe), "--schema", schema])
    assert "waiting" in capsys.readouterr().out

    status, out, err = submit(capsys, recipe, "--schema", schema, "--workers", 1, "--log-dir", logs, "--poll", "0.3")
    assert status == 0, err
    second = job_id(out)
    wait_until(lambda: array_done(second), 120, "the second job array")
    runs = [run for run in read_runs(cluster_env) if run["step"] == 0]
    assert len(runs) == 2 and runs[1]["first_epoch"] >= saved + 1, runs  # resumed, not trained from epoch 1
    main(["status", str(recipe), "--schema", schema])
    final = capsys.readouterr().out
    assert final.count(" done ") == 2, final  # both steps of the chain stored, once each


@pytest.mark.slow
def test_a_task_at_its_time_limit_is_requeued_and_resumes_from_its_checkpoint(cluster_env, db_prefix, tmp_path, capsys):
    # 2 minutes: SIGUSR2 comes 30 s before the limit (SLURM may send it up to 60 s earlier), mid-step
    recipe = write_toy_recipe(tmp_path, "slurm_requeue", chains=1, sleep=0.5, epochs=260)
    schema = f"{db_prefix}_slurm_requeue"
    logs = tmp_path / "logs"
    status, out, err = submit(capsys, recipe, "--schema", schema, "--workers", 1, "--log-dir", logs, "--time", "00:02:00",
                              "--requeue", "--poll", "0.3")
    assert status == 0, err
    job = job_id(out)
    wait_until(lambda: len([r for r in read_runs(cluster_env) if r["step"] == 0]) >= 2, 240, "the requeued task to start again")
    runs = [run for run in read_runs(cluster_env) if run["step"] == 0]
    assert runs[1]["first_epoch"] > 1, runs  # resumed from the epoch it stopped at
    shown = slurm_command("scontrol", "show", "job", job).stdout
    assert "Restarts=1" in shown, shown
    assert "requeued" in logs_of(logs, job)


@pytest.mark.parametrize("limit, expected", [("30", 30), ("90:30", 91), ("02:00:00", 120), ("1-12", 2160), ("1-00:00:01", 1441)])
def test_time_limits_in_every_slurm_form_become_whole_minutes(limit, expected):
    from nntransfer.cluster.slurm import minutes

    assert minutes(limit) == expected
