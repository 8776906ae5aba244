"""The nntransfer command: local runs, recipe discovery, and one clear line for bad input."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from recipe_factory import write_recipe, write_toy_recipe

from nntransfer.cli.main import EXIT_BAD_INPUT, main

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


def test_unreachable_database_is_one_line(tmp_path):
    recipe = write_toy_recipe(tmp_path, unique("unreach"))
    env = {"PYTHONPATH": str(TESTS), "DJ_HOST": "127.0.0.1:1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "nntransfer", "run", str(recipe), "--backend", "datajoint", "--schema", "nnt_unreachable"],
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
    assert "1.5000" in out and "failed" not in out  # same result as an uninterrupted run; failure cleared
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
    capsys.readouterr()
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


def test_datajoint_backend_needs_a_schema(tmp_path, capsys):
    import datajoint as dj

    recipe = write_toy_recipe(tmp_path, unique("noschema"))
    saved = dj.config.get("custom")
    dj.config["custom"] = {}  # no schema configured in DataJoint's own config either
    try:
        assert main(["run", str(recipe), "--backend", "datajoint", "--quiet"]) == EXIT_BAD_INPUT
    finally:
        dj.config["custom"] = saved
    assert "needs --schema" in capsys.readouterr().err


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


@pytest.mark.parametrize("name", sorted(BAD_RECIPES))
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
