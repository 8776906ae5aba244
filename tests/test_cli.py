"""The nntransfer command: local runs, recipe discovery, and one clear line for bad input."""

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from recipe_factory import write_recipe, write_toy_recipe

from nntransfer.cli.main import DEFAULT_REPORT_DIR, EXIT_BAD_INPUT, EXIT_INTERRUPTED, RESUME_LINE, main

TESTS = Path(__file__).parent


def unique(name):
    return f"{name}_{uuid.uuid4().hex[:6]}"


def read_log(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()] if Path(path).exists() else []


def test_local_run_trains_each_step_once_and_skips_done_steps(tmp_path, monkeypatch, capsys):
    recipe = write_toy_recipe(tmp_path, unique("local"))
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("TOY_LOG", str(log))
    workdir = tmp_path / "work"
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "toy0" in out and "toy1" in out and "done" in out
    assert len(read_log(log)) == 4  # 2 chains x 2 steps
    # step 1 of toy0 starts from step 0's weight: 0.5 + 1.0, then + 2.0
    assert "3.5000" in out and "4.5000" in out
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 0
    assert len(read_log(log)) == 4  # nothing retrained
    steps = list((workdir / "steps").iterdir())
    assert len(steps) == 4 and all((s / "result.json").exists() and (s / "model_state.pt").exists() for s in steps)
    capsys.readouterr()
    assert main(["status", str(recipe), "--workdir", str(workdir)]) == 0
    assert capsys.readouterr().out.count(" done ") == 4


def test_experiment_option_picks_one_module(tmp_path, capsys):
    recipe = write_toy_recipe(tmp_path, unique("pick"), chains=1)
    assert main(["run", str(recipe), "--experiment", "chains", "--workdir", str(tmp_path / "w"), "--quiet"]) == 0
    assert "toy0" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv_tail, message",
    [
        (["no/such/recipe_folder_xyz"], "not found"),
        (["{recipe}", "--experiment", "chainz"], "no experiment 'chainz'"),
        (["{recipe}", "--experiment", "empty"], "defines no 'transfer_experiments'"),
    ],
)
def test_bad_recipe_input_is_one_line(tmp_path, capsys, argv_tail, message):
    recipe = write_toy_recipe(tmp_path, unique("bad"))
    argv = ["run"] + [a.format(recipe=recipe) for a in argv_tail] + ["--workdir", str(tmp_path / "w"), "--quiet"]
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith("nntransfer: error:") and message in err and "\n" not in err
    assert not (tmp_path / "w").exists()  # nothing written


def test_unresolvable_function_is_one_line_and_writes_nothing(tmp_path, capsys):
    folder = write_recipe(
        tmp_path,
        unique("broken"),
        "from nntransfer.configs import Description, Experiment, TransferExperiment\n"
        "from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig\n"
        "transfer_experiments = {Description('x', 1): TransferExperiment([Experiment(ToyDatasetConfig(), ToyModelConfig(),"
        " ToyTrainerConfig(fn='toy_steps.missing_trainer'), seed=1)])}\n",
    )
    assert main(["run", str(folder), "--workdir", str(tmp_path / "w"), "--quiet"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "toy_steps.missing_trainer" in err and err.count("\n") == 1
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_unreachable_database_is_one_line(tmp_path):
    recipe = write_toy_recipe(tmp_path, unique("unreach"))
    env = {"PYTHONPATH": str(TESTS), "DJ_HOST": "127.0.0.1:1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "nntransfer", "run", str(recipe), "--store", "datajoint:nnt_unreachable"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == EXIT_BAD_INPUT
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot reach the database" in lines[0], result.stderr


def test_local_run_resumes_a_crashed_step_from_its_checkpoints(tmp_path, monkeypatch, capsys):
    recipe = write_toy_recipe(tmp_path, unique("crash"), chains=1, epochs=4)
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("TOY_LOG", str(log))
    monkeypatch.setenv("TOY_CRASH_AT_EPOCH", "3")
    workdir = tmp_path / "work"
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 1  # a failed step
    out = capsys.readouterr().out
    assert "failed" in out and "toy trainer crashed at epoch 3" in out and "blocked" in out
    assert not (workdir / "steps").exists() or not any((workdir / "steps").iterdir())  # nothing half-stored
    monkeypatch.delenv("TOY_CRASH_AT_EPOCH")
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 0
    runs = read_log(log)
    assert [r["first_epoch"] for r in runs] == [1, 3, 1]  # step 0 crashed, resumed at epoch 3; step 1 fresh
    out = capsys.readouterr().out
    assert "1.5000" in out and "0 reused, 2 trained, 0 failed" in out and "error:" not in out  # as uninterrupted; failure cleared
    assert not any((workdir / "checkpoints").iterdir())  # cleared once the steps finished


def test_results_record_versions_and_the_recipe_commit(tmp_path, capsys):
    import git

    repo_dir = tmp_path / unique("repo")
    recipe = write_toy_recipe(repo_dir, unique("versioned"), chains=1)
    repo = git.Repo.init(repo_dir)
    repo.index.add([str(p.relative_to(repo_dir)) for p in recipe.iterdir()])
    commit = repo.index.commit("recipe", author=git.Actor("t", "t@x"), committer=git.Actor("t", "t@x")).hexsha
    workdir = tmp_path / "work"
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 0
    results = [json.loads((s / "result.json").read_text()) for s in (workdir / "steps").iterdir()]
    assert results and all(r["recipe_commit"] == commit for r in results)
    assert all(r["torch_version"] and r["nnfabrik_version"] == "0.2.1" and r["nntransfer_version"] for r in results)


def test_a_failing_chain_does_not_stop_the_others(tmp_path, monkeypatch, capsys):
    folder = write_recipe(
        tmp_path,
        unique("mixed"),
        "from nntransfer.configs import Description, Experiment, TransferExperiment\n"
        "from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig\n"
        "def chain(fail):\n"
        "    return TransferExperiment([Experiment(ToyDatasetConfig(), ToyModelConfig(), ToyTrainerConfig(fail=fail), seed=1),\n"
        "                               Experiment(ToyDatasetConfig(), ToyModelConfig(), ToyTrainerConfig(increment=2.0), seed=1)])\n"
        "transfer_experiments = {Description('bad', 1): chain(True), Description('good', 1): chain(False)}\n",
    )
    workdir = tmp_path / "w"
    assert main(["run", str(folder), "--workdir", str(workdir), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert f"0 reused, 2 trained, 1 failed, 1 blocked; results in work folder {workdir}" in out
    assert out.splitlines()[-1].startswith("next: fix what failed (errors above; 'nntransfer status")
    assert main(["status", str(folder), "--workdir", str(workdir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    states = {(line.split()[0], line.split()[2]): line.split()[3] for line in lines[1:] if not line.startswith(" ")}
    assert states == {("bad", "0"): "failed", ("bad", "1"): "blocked", ("good", "0"): "done", ("good", "1"): "done"}
    assert any("toy trainer asked to fail" in line for line in lines)


def test_reading_commands_do_not_create_what_is_missing(tmp_path, capsys):
    recipe = write_toy_recipe(tmp_path, unique("readonly"))
    assert main(["status", str(recipe), "--workdir", str(tmp_path / "nowhere")]) == EXIT_BAD_INPUT
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


def test_the_removed_backend_option_names_the_store_option_that_replaces_it(tmp_path, capsys):
    recipe = write_toy_recipe(tmp_path, unique("noschema"))
    assert main(["run", str(recipe), "--backend", "datajoint", "--schema", "x", "--quiet"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip().splitlines() == [
        "nntransfer: error: --backend is gone: name the store with --store ADDRESS (datajoint:SCHEMA or local:DIR), "
        "or its shortcuts --schema SCHEMA and --workdir DIR"]


def test_a_name_that_is_not_registered_in_a_later_step_is_caught_before_training(tmp_path, capsys, monkeypatch):
    folder = write_recipe(
        tmp_path,
        unique("badtype"),
        "from nntransfer.configs import *\n"
        "data = ImageDatasetConfig(train_subset=0.2)\n"
        "trainer = ClassificationTrainerConfig(max_iter=1, show_progress=False)\n"
        "steps = [Experiment(data, ClassificationModelConfig(type='mlp'), trainer, seed=1),\n"
        "         Experiment(data, ClassificationModelConfig(type='lenet300'), trainer, seed=1)]\n"
        "transfer_experiments = {Description('typo', 1): TransferExperiment(steps)}\n",
    )
    assert main(["run", str(folder), "--workdir", str(tmp_path / "w"), "--quiet"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "unknown model type 'lenet300'; did you mean 'lenet300-100'?" in err and err.count("\n") == 1
    assert not (tmp_path / "w").exists()  # step 0 was not trained


def test_a_recipe_path_from_the_wrong_folder_suggests_the_module(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "nntransfer/recipes/digits_transfer", "--quiet"]) == EXIT_BAD_INPUT
    assert "nntransfer run nntransfer.recipes.digits_transfer" in capsys.readouterr().err


BAD_RECIPES = {
    "model_too_large": (
        "from nntransfer.configs import *\n"
        "experiments = [Experiment(ImageDatasetConfig(dataset_cls='Digits'), ClassificationModelConfig(type='lenet5'),\n"
        "                          ClassificationTrainerConfig(max_iter=1), seed=1, comment='lenet on 8x8')]\n",
        "experiment 'lenet on 8x8' (seed 1) step 0: cannot build its model: input shape (1, 8, 8) is too small",
    ),
    "missing_files": (
        "from nntransfer.configs import *\n"
        "experiments = [Experiment(ImageDatasetConfig(dataset_cls='MNIST', input_size=28, data_dir='{tmp}/nodata'),\n"
        "                          ClassificationModelConfig(type='mlp'), ClassificationTrainerConfig(max_iter=1), seed=1, comment='m')]\n",
        "cannot build its data: MNIST not found in data_dir=",
    ),
    "nan_lr": (
        "from nntransfer.configs import *\n"
        "trainer = ClassificationTrainerConfig(lr=float('nan'))\n",
        "ClassificationTrainerConfig.lr must be a positive finite number, got nan ({tmp}/nan_lr.py, line 2)",
    ),
    "raises": (
        "from nntransfer.configs import *\n\n\ndef broken():\n    return undefined_name\n\n\nexperiments = broken()\n",
        "failed to load: NameError: name 'undefined_name' is not defined ({tmp}/raises.py, line 5)",
    ),
}


# these two load torch and build data in a fresh process: slow
SLOW_BAD_RECIPES = {"missing_files", "model_too_large"}


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_BAD_RECIPES else name
                                  for name in sorted(BAD_RECIPES)])
def test_bad_input_in_a_recipe_is_one_line_before_anything_is_written(tmp_path, name):
    """A model too large for its input, missing data files, a NaN learning rate, a recipe that raises:
    one line naming the experiment (or the file and line), exit 2, no work folder."""
    source, message = BAD_RECIPES[name]
    recipe = tmp_path / f"{name}.py"
    recipe.write_text(source.format(tmp=tmp_path))
    workdir = tmp_path / "work"
    done = subprocess.run(
        [sys.executable, "-m", "nntransfer", "run", str(recipe), "--workdir", str(workdir), "--quiet"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == EXIT_BAD_INPUT, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message.format(tmp=tmp_path) in lines[0], done.stderr
    assert not workdir.exists()


# ---------------------------------------------------------------------- what the user sees (issue 15)

LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: \S")

TINY_DIGITS = (
    "from nntransfer.configs import *\n"
    "data = ImageDatasetConfig(dataset_cls='Digits', train_subset=0.3, batch_size=64)\n"
    "model = ClassificationModelConfig(type='mlp', mlp_hidden_sizes=[16])\n"
    "trainer = ClassificationTrainerConfig(max_iter={epochs}, show_progress=True, show_epoch_progress=True)\n"
    "transfer_experiments = {{Description('tiny', 1): TransferExperiment([Experiment(data, model, trainer, seed=1, comment='tiny')])}}\n"
)


def interruptible(argv, env=None, **options):
    """A child whose Ctrl-C acts as in a terminal (a shell running tests in the background ignores SIGINT)."""
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **options,
    )  # fmt: skip


def wait_for(condition, seconds=120, what="the condition"):
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def child_env(**extra):
    pythonpath = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=pythonpath, **extra)


def test_run_prints_a_summary_where_the_results_are_and_what_to_run_next(tmp_path, capsys):
    recipe = write_toy_recipe(tmp_path, unique("summary"))
    workdir = tmp_path / "work"
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("  ")[:5] == ["name", "seed", "step", "state", "score"]  # toy trainers: no validation objective
    ids = {line.split()[5] for line in lines[1:5]}
    assert ids == {folder.name[:8] for folder in (workdir / "steps").iterdir()}  # the step ids diff and lineage take
    assert f"0 reused, 4 trained, 0 failed; results in work folder {workdir}" in lines
    assert lines[-1].startswith(f"next: nntransfer report {recipe} --store local:{workdir}")  # the one address
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 0
    assert f"4 reused, 0 trained, 0 failed; results in work folder {workdir}" in capsys.readouterr().out


def test_the_score_column_is_named_for_the_validation_objective():
    from nntransfer.cli.main import _score_label
    from nntransfer.configs import (
        ClassificationModelConfig,
        ClassificationTrainerConfig,
        Experiment,
        ImageDatasetConfig,
    )
    from nntransfer.pipeline.store import StepStatus, status_table
    from nntransfer.recipes.loading import as_recipe

    def label(trainer, **dataset):
        return _score_label(as_recipe(Experiment(ImageDatasetConfig(**dataset), ClassificationModelConfig(), trainer, seed=1)))

    assert label(ClassificationTrainerConfig()) == "val accuracy"
    assert label(ClassificationTrainerConfig(objective="loss", maximize=False)) == "val loss"
    assert label(ClassificationTrainerConfig(), valid_size=0) == "score"  # no validation set: the training objective
    table = status_table([StepStatus("a", 1, 0, "c", "done", 97.5, id="0123abcd" + "9" * 24)], score_label="val accuracy")
    assert table.splitlines() == ["name  seed  step  state  val accuracy  step id   comment",
                                  "a     1     0     done   97.5000       0123abcd  c"]


def test_version_help_and_examples(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"nntransfer {metadata.version('nntransfer')}"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "nntransfer diff" in text and "nntransfer report" in text
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    store = " ".join(capsys.readouterr().out.rsplit("--store ADDRESS", 1)[1].split("--workdir")[0].split())
    assert "local:DIR, datajoint:SCHEMA" in store and "--backend" not in store
    for command in ("diff", "lineage"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "NAME:SEED:STEP" in capsys.readouterr().out


def test_report_without_out_writes_to_a_default_folder_and_says_where(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.py").write_text(TINY_DIGITS.format(epochs=1))
    assert main(["run", "tiny.py", "--quiet"]) == 0
    assert main(["report", "tiny.py", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"report written to {DEFAULT_REPORT_DIR}"
    assert (tmp_path / DEFAULT_REPORT_DIR / "summary.csv").exists()


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_running_again_resumes(tmp_path):
    recipe = write_toy_recipe(tmp_path, unique("ctrlc"), chains=1, sleep=0.3, epochs=8)
    workdir = tmp_path / "work"
    log = tmp_path / "log.jsonl"
    argv = [sys.executable, "-m", "nntransfer", "run", str(recipe), "--workdir", str(workdir)]
    child = interruptible(argv, env=child_env(TOY_LOG=str(log)))
    wait_for(lambda: any((workdir / "checkpoints").glob("*/*")), what="a checkpoint")
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err and err.splitlines()[-1] == RESUME_LINE
    assert all(LOG_LINE.match(line) for line in err.splitlines()[:-1]), err
    done = subprocess.run(argv + ["--quiet"], capture_output=True, text=True, env=child_env(TOY_LOG=str(log)), timeout=120)
    assert done.returncode == 0, done.stderr
    assert [entry["first_epoch"] > 1 for entry in read_log(log)] == [False, True, False]  # step 0 resumed; step 1 fresh


def test_ctrl_c_in_python_logs_how_to_resume_and_propagates(tmp_path, monkeypatch, caplog):
    import nntransfer
    from nntransfer.pipeline.local import LocalStore

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(LocalStore, "train", interrupted)
    recipe = write_toy_recipe(tmp_path, unique("pyint"), chains=1)
    with pytest.raises(KeyboardInterrupt):
        nntransfer.run(str(recipe), workdir=str(tmp_path / "w"))
    hints = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "call the same run again to resume" in r.getMessage()]
    assert len(hints) == 1


@pytest.mark.slow
def test_run_in_python_shows_each_epoch_and_no_progress_bars_off_a_terminal(tmp_path):
    """Nothing configured logging (a notebook, a script): ``nntransfer.run`` shows its INFO lines, one per
    epoch with the training loss and the validation accuracy; progress bars (on in this config) stay off when
    stderr is a pipe."""
    (tmp_path / "tiny.py").write_text(TINY_DIGITS.format(epochs=2))
    code = f"import nntransfer; rows = nntransfer.run({str(tmp_path / 'tiny.py')!r}, workdir={str(tmp_path / 'w')!r}); print(rows.summary)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=child_env())
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    epochs = [line.split(": ", 1)[1] for line in lines if "trainer: epoch" in line]
    assert [re.sub(r"\d+(\.\d+)?", "N", line.split(" (")[0]) for line in epochs] == [
        f"epoch {n}: training loss N; validation accuracy N" for n in "NN"]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1", "epoch 2"]
    assert all(LOG_LINE.match(line) for line in lines), done.stderr  # nothing but log lines: no bar, no escape codes
    assert "\x1b[" not in done.stderr and "epochs:" not in done.stderr
    assert done.stdout.strip() == "0 reused, 1 trained, 0 failed"


@pytest.mark.slow
def test_progress_bars_on_a_terminal_never_share_a_line_with_a_log_line(tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    (tmp_path / "tiny.py").write_text(TINY_DIGITS.format(epochs=3))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    child = subprocess.Popen([sys.executable, "-m", "nntransfer", "run", "tiny.py"], cwd=tmp_path, env=child_env(),
                             stdin=slave, stdout=slave, stderr=slave, close_fds=True)  # fmt: skip
    os.close(slave)
    raw = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        raw += chunk
    os.close(master)
    assert child.wait(timeout=60) == 0
    text = raw.decode(errors="replace")
    assert "epochs:" in text and "Training 1:" in text  # the bars were drawn
    starts = [m.start() for m in re.finditer(r"\d\d:\d\d:\d\d (INFO|WARNING) nntransfer", text)]
    assert len(starts) >= 5
    for start in starts:  # each log line starts a fresh line: the bar was cleared first
        assert start == 0 or text[start - 1] in "\r\n", repr(text[max(0, start - 80):start + 40])
    assert "0 reused, 1 trained, 0 failed" in text


def test_results_record_a_hash_of_the_recipe_source_outside_git(tmp_path, capsys):
    from nntransfer.provenance import source_hash

    recipe = write_toy_recipe(tmp_path / "not_in_git", unique("hashed"), chains=1)
    assert main(["run", str(recipe), "--workdir", str(tmp_path / "w"), "--quiet"]) == 0
    results = [json.loads((s / "result.json").read_text()) for s in (tmp_path / "w" / "steps").iterdir()]
    digest = source_hash(str(recipe))
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert {(r["recipe_commit"], r["recipe_hash"]) for r in results} == {("", digest)}
    moved = tmp_path / "elsewhere" / recipe.name
    shutil.copytree(recipe, moved)
    assert source_hash(str(moved)) == digest  # the code, not where it lives
    assert source_hash(str(moved / "chains.py")) == digest  # a module of the recipe: the whole package
    (moved / "chains.py").write_text((moved / "chains.py").read_text() + "\n# changed\n")
    assert source_hash(str(moved)) != digest


@pytest.mark.slow
@pytest.mark.database
def test_worker_logs_in_one_format_quietly_and_ctrl_c_is_one_line(db_prefix, tmp_path):
    """DataJoint's lines in nntransfer's format, no "Deleting 0 rows" as checkpoints are replaced every epoch,
    Ctrl-C one line (no traceback, no empty DataJoint error); ``--quiet`` also silences DataJoint; the
    tables record the recipe's source hash."""
    from nntransfer.provenance import source_hash
    from nntransfer.tables import activate

    recipe = write_toy_recipe(tmp_path, unique("djlogs"), chains=1, sleep=0.3, epochs=8)
    schema = f"{db_prefix}_cli_logs"
    argv = [sys.executable, "-m", "nntransfer", "worker", str(recipe), "--schema", schema, "--poll", "0.3"]
    child = interruptible(argv, env=child_env())
    wait_for(lambda: "epoch 3" in _checkpoint_epochs(schema), what="three checkpoints")
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == EXIT_INTERRUPTED, err
    lines = err.splitlines()
    assert lines[-1] == RESUME_LINE and "Traceback" not in err and "Deleting" not in err
    assert all(LOG_LINE.match(line) for line in lines[:-1]), err  # one format, DataJoint's lines included
    assert any(" INFO datajoint: DataJoint " in line and "connected" in line for line in lines)
    done = subprocess.run(argv + ["--quiet"], capture_output=True, text=True, env=child_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "connected" not in done.stderr and "Deleting" not in done.stderr and not done.stderr.strip(), done.stderr
    assert "0 reused, 2 trained, 0 failed; results in schema " + schema in done.stdout
    tables = activate(schema, create=False)
    try:
        assert set(tables.TransferredTrainedModel.Provenance.fetch("recipe_hash")) == {source_hash(str(recipe))}
    finally:
        activate(f"{db_prefix}_main")


def _checkpoint_epochs(schema):
    from nntransfer.tables import database

    conn = database.connect()
    try:
        epochs = conn.query(f"SELECT epoch FROM `{schema}`.`transferred_checkpoint`").fetchall()
    except Exception:  # not declared yet
        return ""
    return " ".join(f"epoch {e}" for (e,) in epochs)


def test_quiet_silences_datajoint_reconnections_and_no_empty_error_line_is_logged(caplog):
    """What a worker's ``--quiet`` keeps of DataJoint: its real warnings and errors, not its automatic
    reconnections, and never the empty error ``populate`` logs for an interrupted job."""
    from nntransfer.cli.main import setup_logging
    from nntransfer.tables.store import DataJointStore

    datajoint_logger = logging.getLogger("datajoint")
    saved = (datajoint_logger.handlers[:], datajoint_logger.propagate, datajoint_logger.level, datajoint_logger.filters[:])
    try:
        setup_logging(quiet=True)
        DataJointStore.configure_logging(quiet=True)
        with caplog.at_level(logging.INFO):
            datajoint_logger.warning("Reconnecting to MySQL server.")
            datajoint_logger.error(KeyboardInterrupt())
            datajoint_logger.info("DataJoint 0.14.10 connected to root@localhost:3306")
            datajoint_logger.warning("a real warning")
        assert [r.getMessage() for r in caplog.records if r.name == "datajoint"] == ["a real warning"]
        caplog.clear()
        setup_logging(quiet=False)
        DataJointStore.configure_logging(quiet=False)
        with caplog.at_level(logging.INFO):
            datajoint_logger.warning("Reconnecting to MySQL server.")
            datajoint_logger.error(KeyboardInterrupt())
        assert [r.getMessage() for r in caplog.records if r.name == "datajoint"] == ["Reconnecting to MySQL server."]
    finally:
        datajoint_logger.handlers, datajoint_logger.propagate, datajoint_logger.filters = saved[0], saved[1], saved[3]
        datajoint_logger.setLevel(saved[2])


FOUR_CHAINS = (
    "from nntransfer.configs import *\n"
    "data = ImageDatasetConfig(dataset_cls='Digits', train_subset=0.2, batch_size=64)\n"
    "model = ClassificationModelConfig(type='mlp', mlp_hidden_sizes=[16])\n"
    "def one(name, seed, lr):\n"
    "    trainer = ClassificationTrainerConfig(max_iter=1, lr=lr, show_progress=False)\n"
    "    return TransferExperiment([Experiment(data, model, trainer, seed=seed, comment=name)])\n"
    "transfer_experiments = {Description(n, s): one(n, s, lr) for n, lr in (('small lr', 0.001), ('large lr', 0.01)) for s in (1, 2)}\n"
)


def table_rows(out):
    """(name, seed, state) of the rows of a step table (names of two words)."""
    return [(" ".join(line.split()[:2]), int(line.split()[2]), line.split()[4]) for line in out.splitlines()[1:]
            if line.startswith(("small lr", "large lr"))]


def test_chain_and_seed_filters_run_show_and_report_part_of_a_recipe(tmp_path, capsys):
    import nntransfer

    recipe = tmp_path / f"{unique('four')}.py"
    recipe.write_text(FOUR_CHAINS)
    where = ["--workdir", str(tmp_path / "work")]
    assert main(["run", str(recipe), *where, "--chain", "small lr", "--seed", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert table_rows(out) == [("small lr", 2, "done")] and "0 reused, 1 trained, 0 failed" in out
    assert "next: nntransfer report" in out and "--chain 'small lr' --seed 2" in out  # the next command keeps the filter

    assert main(["status", str(recipe), *where, "--chain", "small lr"]) == 0
    assert table_rows(capsys.readouterr().out) == [("small lr", 1, "waiting"), ("small lr", 2, "done")]
    assert main(["status", str(recipe), *where]) == 0
    assert [row[2] for row in table_rows(capsys.readouterr().out)] == ["waiting", "done", "waiting", "waiting"]

    rows = nntransfer.run(str(recipe), workdir=str(tmp_path / "work"), seeds=[2], progress=False)  # the same in Python
    assert [(r.name, r.seed, r.state) for r in rows] == [("small lr", 2, "done"), ("large lr", 2, "done")]
    assert (rows.summary.reused, rows.summary.trained) == (1, 1)

    stored = sorted((tmp_path / "work" / "steps").iterdir())
    for argv, message in [
        (["run", str(recipe), *where, "--chain", "smal lr"], "has no chain 'smal lr' (chains: 'small lr', 'large lr'); did you mean 'small lr'?"),
        (["run", str(recipe), *where, "--seed", "7"], "no chain of recipe"),
        (["status", str(recipe), *where, "--chain", "large lr", "--seed", "3"], "no chain named 'large lr' has seed 3 (seeds: 1, 2)"),
        (["report", str(recipe), *where, "--chain", "tiny", "--out", str(tmp_path / "r2")], "has no chain 'tiny'"),
    ]:
        assert main(argv) == EXIT_BAD_INPUT
        captured = capsys.readouterr()
        assert captured.err.startswith("nntransfer: error:") and message in captured.err and captured.err.count("\n") == 1, captured.err
        assert captured.out == ""
    assert sorted((tmp_path / "work" / "steps").iterdir()) == stored and not (tmp_path / "r2").exists()


@pytest.mark.slow  # a report writes its plots
def test_report_takes_the_chain_and_seed_filters(tmp_path, capsys):
    recipe = tmp_path / f"{unique('four')}.py"
    recipe.write_text(FOUR_CHAINS)
    where = ["--workdir", str(tmp_path / "work")]
    assert main(["run", str(recipe), *where, "--chain", "large lr", "--seed", "2", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", str(recipe), *where, "--chain", "large lr", "--seed", "2", "--out", str(tmp_path / "report"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "large lr" in out and "small lr" not in out and "incomplete" not in out  # the other chains are not asked for
    status_csv = (tmp_path / "report" / "status.csv").read_text().splitlines()
    assert len(status_csv) == 2 and status_csv[1].startswith("large lr,2,")


LABELLED = """
from nntransfer.configs import Description, Experiment, TransferExperiment
from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyScoredTrainerConfig

# the two trainers differ only by their comment, which is not part of a config's hash: one Trainer row
chain = TransferExperiment([
    Experiment(ToyDatasetConfig(comment="toy data"), ToyModelConfig(comment="one weight"), ToyScoredTrainerConfig(comment="teacher"), seed=1),
    Experiment(ToyDatasetConfig(comment="toy data"), ToyModelConfig(comment="one weight"), ToyScoredTrainerConfig(comment="student"), seed=1),
])
transfer_experiments = {Description("KD", 1): chain}
"""


@pytest.mark.database
def test_the_datajoint_backend_labels_steps_as_the_local_one_and_says_connected_once(db_prefix, tmp_path):
    recipe = write_recipe(tmp_path, unique("labelled"), LABELLED)
    schema = f"{db_prefix}_labels"

    def nntransfer(*args):
        done = subprocess.run([sys.executable, "-m", "nntransfer", *args], capture_output=True, text=True, env=child_env(), timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    def training_lines(stderr):
        return [line.split(" INFO ", 1)[1] for line in stderr.splitlines() if "nntransfer.pipeline.step: training " in line]

    local = nntransfer("run", str(recipe), "--workdir", str(tmp_path / "w"))
    tables = nntransfer("run", str(recipe), "--schema", schema)
    assert training_lines(tables.stderr) == training_lines(local.stderr) == [
        "nntransfer.pipeline.step: training KD (seed 1) step 0: toy data.one weight.teacher",
        "nntransfer.pipeline.step: training KD (seed 1) step 1: toy data.one weight.teacher -> toy data.one weight.student",
    ]
    assert sum(" connected to " in line for line in tables.stderr.splitlines()) == 1, tables.stderr
    for command in (["lineage", "KD:1:1", "--recipe", str(recipe)], ["diff", "KD:1:0", "KD:1:1", "--recipe", str(recipe)]):
        read = nntransfer(*command, "--schema", schema)
        assert " connected to " not in read.stderr, read.stderr
    lineage = nntransfer("lineage", "KD:1:1", "--recipe", str(recipe), "--schema", schema).stdout
    assert "KD (seed 1): toy data.one weight.teacher -> toy data.one weight.student  <- this step" in lineage, lineage


def _subcommands():
    from nntransfer.cli.main import build_parser

    parser = build_parser()
    (commands,) = [action for action in parser._actions if action.dest == "command"]
    return commands.choices


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_command_takes_quiet(command):
    # a script that quiets one command may quiet them all: none refuses --quiet as an unknown argument
    options = {option for action in _subcommands()[command]._actions for option in action.option_strings}
    assert "--quiet" in options


def test_status_with_quiet_prints_its_table(tmp_path, capsys):
    recipe = write_toy_recipe(tmp_path)
    workdir = str(tmp_path / "work")
    assert main(["run", str(recipe), "--workdir", workdir, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["status", str(recipe), "--workdir", workdir, "--quiet"]) == 0
    assert " done " in capsys.readouterr().out
