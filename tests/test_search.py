"""``nntransfer search``: trials of a search space as ordinary chains, the study (Optuna) beside the steps, in a
work folder and in the tables (two processes sharing one study), and every bad input refused before anything
trains. The toy chain's score is a known function of the two searched increments (``toy_search_trainer``:
the validation accuracy peaks where the final weight is 3), so the best setting is known; ``$TOY_LOG`` counts
how often each step trained."""

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from recipe_factory import write_recipe

from nntransfer.cli.main import main
from nntransfer.search import run_search, trials_frame

TESTS = Path(__file__).parent

RECIPE = """
from nntransfer.configs import Description, Experiment, TransferExperiment
from toy_steps import ToyDatasetConfig, ToyModelConfig, ToySearchTrainerConfig, ToyTrainerConfig

chain = TransferExperiment([
    Experiment(ToyDatasetConfig(), ToyModelConfig(init=0.5), ToyTrainerConfig(increment=0.0), seed=1, comment="teacher"),
    Experiment(ToyDatasetConfig(), ToyModelConfig(init=0.5), ToySearchTrainerConfig(increment=1.0), seed=1, comment="student"),
])
transfer_experiments = {Description("toy search", 1): chain}
"""

# 16 settings whose final weights (0.5 + teacher + student) all differ: the best (nearest 3) is 0.3 and 2.0
SPACE = """
from nntransfer.search import {kinds}, SearchSpace

space = SearchSpace(
    chain="toy search",
    params={{
        ("teacher", "trainer", "increment"): {teacher},
        ("student", "trainer", "increment"): {student},
    }},
    sampler="{sampler}",
    objective="{objective}",{extra}
)
"""
BEST = {"teacher/trainer/increment": 0.3, "student/trainer/increment": 2.0}


def write_space(folder, name="space.py", teacher="Choice([0.0, 0.1, 0.2, 0.3])", student="Choice([0.0, 1.0, 2.0, 3.0])",
                sampler="grid", objective="validation accuracy", kinds="Choice, Uniform, IntRange, LogUniform", extra=""):
    path = Path(folder) / name
    path.write_text(SPACE.format(teacher=teacher, student=student, sampler=sampler, objective=objective, kinds=kinds, extra=extra))
    return path


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The recipe, a grid space over it, and the training-run log the toy steps write."""
    monkeypatch.syspath_prepend(str(TESTS))
    log = tmp_path / "runs.jsonl"
    monkeypatch.setenv("TOY_LOG", str(log))
    recipe = write_recipe(tmp_path, f"toy_search_{uuid.uuid4().hex[:8]}", RECIPE)  # a package name of its own
    return recipe, write_space(tmp_path), log


def runs(log):
    return [json.loads(line) for line in Path(log).read_text().splitlines()] if Path(log).exists() else []


@pytest.mark.slow
def test_a_grid_search_in_a_work_folder_finds_the_best_setting_and_never_trains_a_trial_twice(toy, tmp_path, capsys):
    recipe, space, log = toy
    store = f"local:{tmp_path / 'w'}"
    result = run_search(str(recipe), str(space), trials=16, store=store, progress=False)
    assert (result.ran, result.finished) == (16, 16)
    assert result.best_params == BEST and result.best_value == pytest.approx(100 - 0.2**2)
    assert len(runs(log)) == 4 + 16  # each of the 4 teacher steps once (shared by 4 trials each), 16 students

    again = run_search(str(recipe), str(space), trials=16, store=store, progress=False)
    assert again.ran == 0 and again.best_params == BEST and len(runs(log)) == 20  # continued: nothing trained

    frame = trials_frame(result.study, store=store)
    assert len(frame) == 16 and set(frame["state"]) == {"COMPLETE"}
    assert {"params_teacher/trainer/increment", "params_student/trainer/increment", "value", "chain", "step_id"} <= set(frame.columns)

    # the best setting on more seeds, as ordinary chains; then the report shows the search
    seeded = run_search(str(recipe), str(space), trials=16, store=store, progress=False, then_seeds=[2, 3])
    assert set(seeded.seeds) == {2, 3} and all(v == pytest.approx(100 - 0.2**2) for v in seeded.seeds.values())
    assert len(runs(log)) == 20 + 4  # two steps per seed
    assert main(["report", str(recipe), "--store", store, "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert f"search '{result.study}' (grid sampler, maximize validation accuracy): 16 of 16 trial(s) finished" in out
    assert "best: trial" in out and "teacher/trainer/increment=0.3, student/trainer/increment=2: 99.9600" in out, out[-1500:]
    assert main(["status", str(recipe), "--store", store]) == 0
    assert "16 of 16 trial(s) finished" in capsys.readouterr().out
    assert "importance: " in out and (tmp_path / "report" / f"search {result.study.replace(':', '_')}.csv").exists()


@pytest.mark.slow
def test_the_same_search_with_the_random_sampler_gives_the_same_trials_each_time(toy, tmp_path):
    recipe, _, _ = toy
    space = write_space(tmp_path, "random.py", teacher="Uniform(0.0, 0.3)", student="Uniform(0.0, 3.0)", sampler="random")
    first = trials_frame(run_search(str(recipe), str(space), 4, store=f"local:{tmp_path / 'a'}", progress=False).study, f"local:{tmp_path / 'a'}")
    second = trials_frame(run_search(str(recipe), str(space), 4, store=f"local:{tmp_path / 'b'}", progress=False).study, f"local:{tmp_path / 'b'}")
    assert first["params_student/trainer/increment"].tolist() == second["params_student/trainer/increment"].tolist()
    assert first["value"].tolist() == second["value"].tolist()


@pytest.mark.slow
@pytest.mark.database
def test_two_processes_share_one_study_in_the_tables_and_train_no_trial_twice(toy, tmp_path, db_prefix, capsys):
    recipe, space, log = toy
    schema = f"{db_prefix}_search"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "nntransfer", "search", str(recipe), "--space", str(space), "--trials", "16",
               "--schema", schema, "--quiet"]  # fmt: skip
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    trained = runs(log)
    assert len(trained) == 20, trained  # every step once, whichever process took it
    assert len({run["pid"] for run in trained}) == 2  # both processes trained
    frame = trials_frame(f"{recipe.name}:toy search:seed 1", store=f"datajoint:{schema}")
    assert len(frame) == 16 and set(frame["state"]) == {"COMPLETE"}
    best = frame.loc[frame["value"].idxmax()]
    assert (best["params_teacher/trainer/increment"], best["params_student/trainer/increment"]) == (0.3, 2.0)  # as in a work folder

    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "16 finished trial(s), 0 run now" in again.stdout, again.stderr[-2000:]
    assert len(runs(log)) == 20

    # status shows the study; on a schema without searches, reading creates none of Optuna's tables
    assert main(["status", str(recipe), "--schema", schema]) == 0
    assert "16 of 16 trial(s) finished" in capsys.readouterr().out
    main(["status", str(recipe), "--schema", f"{db_prefix}_main"])
    import datajoint as dj

    tables = dj.conn().query("SELECT table_name FROM information_schema.tables WHERE table_schema=%s", args=(f"{db_prefix}_main",)).fetchall()
    assert ("studies",) not in tables


# ---------------------------------------------------------------- bad input: one line, exit 2, nothing trained


@pytest.mark.parametrize("space_kwargs, trials, expected", [
    (dict(student="Choice([0.0, 1.0])", teacher="Uniform(0.0, 'x')"), 4, "a range needs two finite numbers"),
    (dict(student="IntRange(1, 3)"), 4, "IntRange needs a whole-number field"),
    (dict(student="Choice([0.0, 1.0])", teacher="Uniform(0.0, 1.0)", sampler="grid"), 4, "the grid sampler needs Choice or IntRange"),
    (dict(sampler="annealing"), 4, "sampler must be one of tpe, random, grid"),
    (dict(objective="accuracy"), 4, "the objective is 'SPLIT MEASURE'"),
    (dict(), 0, "--trials takes a number of at least 1"),
    (dict(extra="pruner='medain'"), 4, "pruner must be one of median, percentile, successive_halving, hyperband (or None), not 'medain'; did you mean 'median'?"),
    (dict(extra="pruner='median', pruner_options={'n_startup': 1}"), 4, "pruner_options {'n_startup': 1} do not fit optuna.pruners.MedianPruner"),
    (dict(extra="pruner_options={'n_startup_trials': 1}"), 4, "pruner_options without a pruner"),
    (dict(objective="test accuracy", extra="pruner='median'"), 4, "a pruner compares trials by their validation curves: the objective must be 'validation accuracy', not 'test accuracy'"),
])
def test_bad_search_input_is_one_line_and_trains_nothing(toy, tmp_path, capsys, space_kwargs, trials, expected):
    recipe, _, log = toy
    space = write_space(tmp_path, "bad.py", **space_kwargs)
    status = main(["search", str(recipe), "--space", str(space), "--trials", str(trials), "--store", f"local:{tmp_path / 'w'}"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("nntransfer: error:")]
    assert status == 2 and len(lines) == 1 and expected in lines[0], err
    assert runs(log) == [] and not (tmp_path / "w" / "search.sqlite3").exists()


def test_a_field_or_step_the_chain_lacks_is_refused_with_the_closest_name(toy, tmp_path, capsys):
    recipe, _, log = toy
    for source, expected in (
        ('("student", "trainer", "incremnt")', "ToySearchTrainerConfig has no field 'incremnt'; did you mean 'increment'?"),
        ('("studnt", "trainer", "increment")', "no step of the chain has the comment 'studnt'; did you mean 'student'?"),
        ('(5, "trainer", "increment")', "the chain has steps 0..1"),
        ('("student", "optimizer", "increment")', "the role is one of dataset, model, trainer"),
    ):
        space = tmp_path / "lacking.py"
        space.write_text(f"from nntransfer.search import Choice, SearchSpace\nspace = SearchSpace(chain='toy search', params={{{source}: Choice([1.0, 2.0])}})\n")
        status = main(["search", str(recipe), "--space", str(space), "--trials", "2", "--store", f"local:{tmp_path / 'w'}"])
        err = capsys.readouterr().err
        assert status == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert runs(log) == []


@pytest.mark.slow
def test_a_study_that_exists_with_another_space_is_refused(toy, tmp_path, capsys):
    recipe, space, log = toy
    store = f"local:{tmp_path / 'w'}"
    run_search(str(recipe), str(space), trials=1, store=store, progress=False)
    other = write_space(tmp_path, "other.py", student="Choice([0.0, 1.0])")
    trained = len(runs(log))
    status = main(["search", str(recipe), "--space", str(other), "--trials", "2", "--store", store])
    err = capsys.readouterr().err
    assert status == 2 and "exists in work folder" in err and "with another search space; name this search's study with --study" in err
    assert len(runs(log)) == trained


@pytest.mark.slow
@pytest.mark.database
@pytest.mark.slurm
def test_a_search_submitted_as_a_slurm_array_fills_its_study(toy, tmp_path, db_prefix, slurm_cluster, capsys, monkeypatch):
    recipe, space, log = toy
    schema = f"{db_prefix}_search_slurm"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("NNTRANSFER_HEARTBEAT_TIMEOUT", "600")
    status = main(["submit", str(recipe), "--schema", schema, "--workers", "2", "--space", str(space), "--trials", "16",
                   "--log-dir", str(tmp_path / "logs"), "--quiet"])  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0 and "submitted SLURM job" in out, out
    job = out.split("submitted SLURM job ")[1].split(":")[0]
    squeue = lambda: subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True, timeout=30).stdout.strip()  # noqa: E731
    deadline = time.time() + 300
    while squeue() and time.time() < deadline:
        time.sleep(1)
    assert not squeue(), f"job {job} still queued"
    frame = trials_frame(f"{recipe.name}:toy search:seed 1", store=f"datajoint:{schema}")
    assert len(frame) == 16 and set(frame["state"]) == {"COMPLETE"}
    trained = runs(log)
    assert len(trained) == 20 and len({run["pid"] for run in trained}) == 2, trained  # every step once, both tasks
    assert main(["submit", str(recipe), "--schema", schema, "--workers", "2", "--space", str(space), "--trials", "16",
                 "--log-dir", str(tmp_path / "again"), "--quiet"]) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith("nothing submitted: the study has 16 trial(s) already")
    from nntransfer.tables import activate

    activate(f"{db_prefix}_main")  # submit bound the tables to its schema in this process


@pytest.mark.slow
def test_a_trial_whose_process_was_killed_is_tried_again_and_resumes_its_step(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    log = tmp_path / "runs.jsonl"
    monkeypatch.setenv("TOY_LOG", str(log))
    monkeypatch.setenv("NNTRANSFER_HEARTBEAT_TIMEOUT", "2")
    slow = RECIPE.replace("ToySearchTrainerConfig(increment=1.0)", "ToySearchTrainerConfig(increment=1.0, sleep=0.3, epochs=20)")
    recipe = write_recipe(tmp_path, f"toy_killed_{uuid.uuid4().hex[:8]}", slow)
    space = write_space(tmp_path, teacher="Choice([0.0])", student="Choice([1.0, 2.0])")
    store = f"local:{tmp_path / 'w'}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    searching = subprocess.Popen([sys.executable, "-m", "nntransfer", "search", str(recipe), "--space", str(space), "--trials", "2",
                                  "--store", store, "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while not any(run["step"] == 1 for run in runs(log)) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # a few epochs, each checkpointed
    searching.kill()
    searching.wait()
    time.sleep(3)  # its trial's heartbeat goes stale

    result = run_search(str(recipe), str(space), trials=2, store=store, progress=False)
    assert result.finished == 2
    frame = trials_frame(result.study, store=store)
    assert sorted(frame["state"]) == ["COMPLETE", "COMPLETE", "FAIL"]  # the abandoned trial, failed and not counted
    students = [run for run in runs(log) if run["step"] == 1]
    assert students[1]["first_epoch"] > 1, students  # the killed setting resumed from its checkpoint


DIGITS_RECIPE = """
from nntransfer.configs import ClassificationModelConfig, ClassificationTrainerConfig, Description, Experiment, ImageDatasetConfig, TransferExperiment

chain = TransferExperiment([Experiment(
    ImageDatasetConfig(dataset_cls="Digits", filter_classes=(5, 10), batch_size=32),
    ClassificationModelConfig(type="lenet300-100"),
    ClassificationTrainerConfig(max_iter=6, lr=0.003, early_stopping=False, show_progress=False),
    seed=1, comment="scratch")])
transfer_experiments = {Description("digits", 1): chain}
"""

# one learning rate that learns, three too small to move the weights off chance in 6 epochs
PRUNED_SPACE = """
from nntransfer.search import Choice, SearchSpace

space = SearchSpace(params={("scratch", "trainer", "lr"): Choice([1e-8, 3e-3, 1e-9, 1e-10])}, sampler="grid", seed=5,
                    pruner="median", pruner_options={"n_startup_trials": 1})
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", pytest.param("datajoint", marks=pytest.mark.database)])
def test_a_pruner_stops_the_hopeless_trials_early_and_stores_none_of_their_steps(tmp_path, capsys, backend, request):
    recipe = write_recipe(tmp_path, f"digits_pruned_{uuid.uuid4().hex[:8]}", DIGITS_RECIPE)
    space = tmp_path / "pruned.py"
    space.write_text(PRUNED_SPACE)
    store = f"local:{tmp_path / 'w'}" if backend == "local" else f"datajoint:{request.getfixturevalue('db_prefix')}_pruned"
    result = run_search(str(recipe), str(space), trials=4, store=store, progress=False)
    frame = trials_frame(result.study, store=store).set_index("params_scratch/trainer/lr")
    # grid order (seed 5): 1e-8 (the startup trial, trained to the end), then 3e-3, then the two hopeless ones
    assert frame["number"].to_dict() == {1e-8: 0, 3e-3: 1, 1e-10: 2, 1e-9: 3}
    assert frame["state"].to_dict() == {1e-8: "COMPLETE", 3e-3: "COMPLETE", 1e-9: "PRUNED", 1e-10: "PRUNED"}
    assert frame.loc[1e-9, "pruned_at"] == 1 and frame.loc[1e-10, "pruned_at"] == 1  # behind the median at the first epoch
    assert (result.finished, result.pruned, result.best_params) == (2, 2, {"scratch/trainer/lr": 3e-3})
    assert "2 finished trial(s) and 2 pruned, 4 run now" in str(result)

    from nntransfer.pipeline.addresses import open_store
    from nntransfer.pipeline.store import DONE, INTERRUPTED
    from nntransfer.recipes.loading import load_recipe
    from nntransfer.search.run import load_space

    base = next(iter(load_recipe(str(recipe)).transfer_experiments.values()))
    keys = {lr: load_space(str(space)).trial_chain(base, {"scratch/trainer/lr": lr}).step_key(0) for lr in frame.index}
    states = [state.state for state in open_store(store).states(list(keys.values()))]
    # pruned: not stored, not failed; their checkpoints stay, so the same setting tried again resumes
    assert dict(zip(keys, states)) == {1e-8: DONE, 3e-3: DONE, 1e-9: INTERRUPTED, 1e-10: INTERRUPTED}

    again = run_search(str(recipe), str(space), trials=4, store=store, progress=False)
    assert again.ran == 0 and again.pruned == 2  # pruned trials count: nothing is trained again
    assert main(["status", str(recipe), "--store", store]) == 0
    assert "2 of 4 trial(s) finished, 2 pruned" in capsys.readouterr().out


# 16 settings of a real digits step: 8 learning rates x 2 batch sizes
DIGITS_GRID = """
from nntransfer.search import Choice, SearchSpace

space = SearchSpace(params={("scratch", "trainer", "lr"): Choice([1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 3e-2]),
                            ("scratch", "dataset", "batch_size"): Choice([32, 64])}, sampler="grid", seed=7)
"""


@pytest.mark.slow
@pytest.mark.database
def test_a_digits_search_by_two_processes_on_the_tables_trains_each_trial_once_and_finds_the_local_best(tmp_path, db_prefix):
    recipe = write_recipe(tmp_path, f"digits_grid_{uuid.uuid4().hex[:8]}", DIGITS_RECIPE.replace("max_iter=6", "max_iter=2"))
    space = tmp_path / "grid.py"
    space.write_text(DIGITS_GRID)
    schema = f"{db_prefix}_digits_search"
    command = [sys.executable, "-m", "nntransfer", "search", str(recipe), "--space", str(space), "--trials", "16", "--schema", schema]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=900) for p in processes]
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
    trained = [line for _, err in outputs for line in err.splitlines() if "nntransfer.pipeline.step: training " in line]
    assert len(trained) == 16 and all(any(line in err for line in trained) for _, err in outputs), trained  # each once, both worked
    tables = trials_frame(f"{recipe.name}:digits:seed 1", store=f"datajoint:{schema}")
    assert len(tables) == 16 and set(tables["state"]) == {"COMPLETE"} and tables["step_id"].nunique() == 16

    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "16 finished trial(s), 0 run now" in again.stdout, again.stderr[-2000:]
    assert "nntransfer.pipeline.step: training " not in again.stderr

    local = run_search(str(recipe), str(space), trials=16, store=f"local:{tmp_path / 'w'}", progress=False)
    best = tables.loc[tables["value"].idxmax()]
    assert local.best_params == {"scratch/trainer/lr": best["params_scratch/trainer/lr"],
                                 "scratch/dataset/batch_size": best["params_scratch/dataset/batch_size"]}  # fmt: skip
    assert local.best_value == best["value"]  # the same numbers on CPU, whichever process trained a trial
