"""Changed code is never reused silently: every stored step records a fingerprint of the user code it ran,
and ``run`` compares it with the code loaded now before anything trains (``nntransfer.fingerprint``,
``nntransfer.pipeline.drift``); ``run --dry-run`` shows what a run would do and writes nothing.

Each test writes a small recipe package to ``tmp_path`` (a name of its own, so that its modules never
collide in ``sys.modules``) and runs the real command line in this process, dropping the recipe's modules
before each command as a new process would."""

import json
import logging
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from nntransfer.cli.main import main

STEPS = '''
import torch
from torch import nn

from nntransfer.configs import DatasetConfig, ModelConfig, TrainerConfig

from .data import make_examples


class DriftDataset(DatasetConfig):
    fn = "{package}.steps.drift_dataset"

    def __init__(self, **kwargs):
        self.size = 4
        super().__init__(**kwargs)


class DriftModel(ModelConfig):
    fn = "{package}.steps.drift_model"


class DriftTrainer(TrainerConfig):
    fn = "{package}.steps.drift_trainer"

    def __init__(self, **kwargs):
        self.increment = 1.0
        super().__init__(**kwargs)


def drift_dataset(seed, **config):
    return {{"train": make_examples(config["size"])}}


def drift_model(dataloaders, seed, state_dict=None, transfer=False, **config):
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    return model


def drift_trainer(model, dataloaders, seed, uid=None, cb=None, **config):
    with torch.no_grad():
        model.weight.add_(config["increment"] + sum(dataloaders["train"]))
    return float(model.weight.item()), {{"final": {{}}}}, model.state_dict()
'''

DATA = '''
def make_examples(size):
    """The examples of the toy data set."""
    return [value * SCALE for value in range(size)]


SCALE = 1.0
'''

INIT = '''
from nntransfer.configs import Description, Experiment, TransferExperiment

from .steps import DriftDataset, DriftModel, DriftTrainer

transfer_experiments = {{
    Description("drift", 1): TransferExperiment([
        Experiment(DriftDataset(), DriftModel(), DriftTrainer(increment=1.0), seed=1, comment="first"),
        Experiment(DriftDataset(), DriftModel(), DriftTrainer(increment=2.0), seed=1, comment="second"),
    ]),
}}
'''


@pytest.fixture
def recipe(tmp_path):
    """A two-step recipe package whose data function uses ``data.make_examples``; returns its folder."""
    package = f"drift_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / package
    folder.mkdir()
    (folder / "__init__.py").write_text(textwrap.dedent(INIT.format(package=package)))
    (folder / "steps.py").write_text(textwrap.dedent(STEPS.format(package=package)))
    (folder / "data.py").write_text(textwrap.dedent(DATA))
    yield folder
    _forget_modules(package)
    sys.path[:] = [p for p in sys.path if p != str(tmp_path)]


def _forget_modules(package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


def nntransfer(recipe: Path, workdir: Path, *args: str) -> int:
    """``nntransfer run|status RECIPE --workdir DIR ARGS`` as a new process would see the recipe's code."""
    _forget_modules(recipe.name)
    command, *rest = args or ("run",)
    quiet = ["--quiet"] if command == "run" else []
    return main([command, str(recipe), "--workdir", str(workdir), *quiet, *rest])


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def results(workdir: Path):
    """step folder -> result.json, of every stored step."""
    return {p.parent.name: json.loads(p.read_text()) for p in (workdir / "steps").glob("*/result.json")}


def test_every_stored_step_records_the_fingerprint_of_the_user_code_it_ran(recipe, tmp_path):
    work = tmp_path / "work"
    assert nntransfer(recipe, work) == 0
    stored = results(work)
    assert len(stored) == 2
    for info in stored.values():
        assert len(info["code_hash"]) == 64
        assert set(info["code_files"]) == {recipe.name + ".steps", recipe.name + ".data"}


def test_a_real_change_of_the_data_code_stops_the_run_before_anything_trains(recipe, tmp_path, capsys):
    work = tmp_path / "work"
    assert nntransfer(recipe, work) == 0
    before = {name: info["finished"] for name, info in results(work).items()}
    capsys.readouterr()
    edit(recipe / "data.py", "SCALE = 1.0", "SCALE = 2.0")  # a constant the data function uses
    assert nntransfer(recipe, work) == 2
    err = capsys.readouterr().err.splitlines()
    assert "2 stored step(s) were trained with code that has changed since" in err[0]
    assert "--rerun-changed" in err[0] and "--reuse-changed" in err[0]
    for step in (0, 1):
        assert any(f"drift (seed 1) step {step} [" in line and f"{recipe.name}.data" in line and "data.py" in line for line in err[1:])
    assert {name: info["finished"] for name, info in results(work).items()} == before  # nothing trained or written
    assert not list((work / "failed").iterdir())


@pytest.mark.parametrize("change", ["comment", "docstring", "format", "unrelated line"])
def test_changes_that_change_no_code_a_step_runs_reuse_the_stored_steps(recipe, tmp_path, capsys, change):
    work = tmp_path / "work"
    assert nntransfer(recipe, work) == 0
    before = {name: info["finished"] for name, info in results(work).items()}
    if change == "comment":
        edit(recipe / "data.py", "SCALE = 1.0", "SCALE = 1.0  # the unit of the examples")
    elif change == "docstring":
        edit(recipe / "data.py", '"""The examples of the toy data set."""', '"""The toy examples: 0, 1, 2, ... times SCALE."""')
    elif change == "format":
        edit(recipe / "data.py", "return [value * SCALE for value in range(size)]", "return [\n        value*SCALE\n        for value in range(size)\n    ]")
    else:  # a line of the recipe that no step uses: a new helper and a new constant
        (recipe / "__init__.py").write_text((recipe / "__init__.py").read_text() + "\n\ndef helper():\n    return 3\n\n\nUNUSED = 5\n")
        edit(recipe / "data.py", "SCALE = 1.0", "SCALE = 1.0\nOTHER = 7")
    capsys.readouterr()
    assert nntransfer(recipe, work, "run", "--dry-run") == 0
    plan = capsys.readouterr().out.splitlines()
    assert [line.split()[3] for line in plan if line.startswith("drift ")] == ["reuse", "reuse"]
    assert not any(line.startswith("    ") for line in plan)  # no note: the code is the same
    assert nntransfer(recipe, work) == 0
    assert "2 reused, 0 trained" in capsys.readouterr().out
    assert {name: info["finished"] for name, info in results(work).items()} == before


def test_rerun_changed_trains_the_changed_step_and_the_steps_after_it_again(recipe, tmp_path, capsys):
    work = tmp_path / "work"
    assert nntransfer(recipe, work) == 0
    old = results(work)
    edit(recipe / "steps.py", 'model.weight.add_(config["increment"] + sum(dataloaders["train"]))',
         'model.weight.add_(2 * config["increment"] + sum(dataloaders["train"]))')
    capsys.readouterr()
    assert nntransfer(recipe, work, "run", "--rerun-changed") == 0
    assert "0 reused, 2 trained" in capsys.readouterr().out
    new = results(work)
    assert set(new) == set(old)  # the same steps, replaced
    for name in new:
        assert new[name]["code_hash"] != old[name]["code_hash"]
        assert new[name]["score"] != old[name]["score"]
    assert nntransfer(recipe, work) == 0  # the code now matches: no more drift


def test_rerun_changed_keeps_the_steps_before_the_first_changed_one(recipe, tmp_path, capsys):
    work = tmp_path / "work"
    assert nntransfer(recipe, work) == 0
    first, second = sorted(results(work).items(), key=lambda item: item[1]["step"])
    # the second step alone uses a new trainer class: only its code changes
    (recipe / "steps.py").write_text((recipe / "steps.py").read_text() + textwrap.dedent('''

        class SecondTrainer(DriftTrainer):
            pass
        '''))
    edit(recipe / "__init__.py", "DriftTrainer(increment=2.0)", "SecondTrainer(increment=2.0)")
    edit(recipe / "__init__.py", "import DriftDataset, DriftModel, DriftTrainer", "import DriftDataset, DriftModel, DriftTrainer, SecondTrainer")
    # a new class of the same fields hashes to the same key; its code is new, so step 1 changed
    capsys.readouterr()
    assert nntransfer(recipe, work) == 2
    err = capsys.readouterr().err
    assert "1 stored step(s)" in err and "step 1 [" in err and "step 0 [" not in err
    assert nntransfer(recipe, work, "run", "--rerun-changed") == 0
    assert "1 reused, 1 trained" in capsys.readouterr().out
    now = results(work)
    assert now[first[0]]["finished"] == first[1]["finished"]
    assert now[second[0]]["code_hash"] != second[1]["code_hash"]


def test_reuse_changed_keeps_the_steps_and_records_that_it_did(recipe, tmp_path, capsys):
    work = tmp_path / "work"
    assert nntransfer(recipe, work) == 0
    old = results(work)
    edit(recipe / "data.py", "SCALE = 1.0", "SCALE = 3.0")
    capsys.readouterr()
    assert nntransfer(recipe, work, "run", "--reuse-changed") == 0
    assert "2 reused, 0 trained" in capsys.readouterr().out
    new = results(work)
    for name, info in new.items():
        assert info["finished"] == old[name]["finished"] and info["code_hash"] == old[name]["code_hash"]
        kept = info["code_reused"]
        assert kept["code_hash"] != info["code_hash"] and kept["changed"] == [f"{recipe.name}.data"] and kept["when"]
    assert nntransfer(recipe, work) == 0  # kept for exactly this code: the next run does not stop
    capsys.readouterr()
    assert nntransfer(recipe, work, "status") == 0
    out = capsys.readouterr().out
    assert out.count("kept (--reuse-changed) although its code changed") == 2


def test_status_shows_changed_steps_with_their_files(recipe, tmp_path, capsys):
    work = tmp_path / "work"
    assert nntransfer(recipe, work) == 0
    edit(recipe / "data.py", "for value in range(size)", "for value in range(size + 1)")
    capsys.readouterr()
    assert nntransfer(recipe, work, "status") == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith("drift ")]
    assert len(rows) == 2 and all(line.split()[3] == "changed" for line in rows)
    notes = [line for line in lines if line.strip().startswith("code: code changed since it was trained")]
    assert len(notes) == 2 and all(f"{recipe.name}.data" in line for line in notes)


def test_steps_stored_before_fingerprints_existed_are_reused_with_one_warning(recipe, tmp_path, capsys, caplog):
    work = tmp_path / "work"
    assert nntransfer(recipe, work) == 0
    for path in (work / "steps").glob("*/result.json"):  # as 0.3 wrote them
        info = json.loads(path.read_text())
        del info["code_hash"], info["code_files"]
        path.write_text(json.dumps(info))
    edit(recipe / "data.py", "SCALE = 1.0", "SCALE = 2.0")
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="nntransfer"):
        assert nntransfer(recipe, work) == 0
    assert "2 reused, 0 trained" in capsys.readouterr().out
    warnings = [r.getMessage() for r in caplog.records if "before code fingerprints were recorded" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("2 stored step(s)")


def test_another_nntransfer_or_torch_version_warns_once_and_reuses(recipe, tmp_path, capsys, caplog):
    work = tmp_path / "work"
    assert nntransfer(recipe, work) == 0
    for path in (work / "steps").glob("*/result.json"):
        info = json.loads(path.read_text())
        info["torch_version"] = "1.0.0"
        path.write_text(json.dumps(info))
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="nntransfer"):
        assert nntransfer(recipe, work) == 0
    assert "2 reused, 0 trained" in capsys.readouterr().out
    warnings = [r.getMessage() for r in caplog.records if "other package versions" in r.getMessage()]
    assert len(warnings) == 1 and "torch 1.0.0" in warnings[0]


def test_dry_run_prints_the_plan_and_writes_nothing(recipe, tmp_path, capsys):
    work = tmp_path / "work"
    assert nntransfer(recipe, work, "run", "--dry-run") == 0
    out = capsys.readouterr().out
    assert not work.exists()  # not even the work folder
    assert [line.split()[3] for line in out.splitlines() if line.startswith("drift ")] == ["train", "train"]
    assert "nothing trained or written" in out

    assert nntransfer(recipe, work) == 0
    edit(recipe / "data.py", "SCALE = 1.0", "SCALE = 2.0")
    listing = sorted(str(p.relative_to(work)) + str(p.stat().st_mtime_ns) for p in work.rglob("*"))
    capsys.readouterr()
    assert nntransfer(recipe, work, "run", "--dry-run") == 0
    out = capsys.readouterr().out
    assert [line.split()[3] for line in out.splitlines() if line.startswith("drift ")] == ["changed", "changed"]
    assert f"code changed: {recipe.name}.data" in out and "a run would stop before training" in out
    assert nntransfer(recipe, work, "run", "--dry-run", "--rerun-changed") == 0
    out = capsys.readouterr().out
    assert [line.split()[3] for line in out.splitlines() if line.startswith("drift ")] == ["train", "train"]
    assert sorted(str(p.relative_to(work)) + str(p.stat().st_mtime_ns) for p in work.rglob("*")) == listing


def test_dry_run_still_refuses_bad_input(recipe, tmp_path, capsys):
    edit(recipe / "steps.py", 'fn = "{}.steps.drift_model"'.format(recipe.name), 'fn = "{}.steps.no_such_model"'.format(recipe.name))
    assert nntransfer(recipe, tmp_path / "work", "run", "--dry-run") == 2
    assert "no_such_model" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def test_fingerprints_follow_helpers_into_other_modules_and_ignore_what_no_step_uses(tmp_path):
    from nntransfer.fingerprint import fingerprint

    package = f"fp_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / package
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "helpers.py").write_text("FACTOR = 2\n\n\ndef scale(x):\n    return x * FACTOR\n\n\ndef unused():\n    return 1\n")
    (folder / "main.py").write_text("from . import helpers\nfrom .helpers import scale\n\nmodel = 1\n\n\n"
                                    "def used(x):\n    model = scale(x)\n    return model + helpers.FACTOR\n")
    sys.path.insert(0, str(tmp_path))
    try:
        def current():
            _forget_modules(package)
            module = __import__(f"{package}.main", fromlist=["used"])
            return fingerprint([module.used])

        first = current()
        assert set(first.files) == {f"{package}.main", f"{package}.helpers"}
        edit(folder / "helpers.py", "return 1", "return 2")  # a function nothing the step uses calls
        assert current() == first
        edit(folder / "main.py", "model = 1", "model = 2")  # a module-level name the function's local shadows
        assert current() == first
        edit(folder / "helpers.py", "FACTOR = 2", "FACTOR = 3")  # a constant it uses, through two paths
        changed = current()
        assert changed.changed_files(first.files) == [f"{package}.helpers"]
    finally:
        _forget_modules(package)
        sys.path.remove(str(tmp_path))


def test_report_frames_flag_steps_whose_code_changed(recipe, tmp_path):
    from nntransfer.analysis.report import code_text
    from nntransfer.analysis.results import load_results

    work = tmp_path / "work"
    assert nntransfer(recipe, work) == 0
    edit(recipe / "data.py", "SCALE = 1.0", "SCALE = 2.0")
    _forget_modules(recipe.name)
    found = load_results(str(recipe), workdir=str(work))
    assert list(found.status["state"]) == ["done", "done"]  # still read and analysed
    assert all(code.startswith("code changed since it was trained") for code in found.status["code"])
    assert all(code.startswith("code changed since it was trained") for code in found.steps["code"])
    text = code_text(found.status)
    assert text.startswith("2 step(s) were trained with code that has changed since")
    assert "code: drift (seed 1) step 1: code changed" in text


@pytest.mark.database
@pytest.mark.slow
def test_the_tables_record_the_fingerprint_and_stop_keep_or_retrain_changed_steps(recipe, db_prefix, capsys):
    from nntransfer.tables import activate

    schema = f"{db_prefix}_drift_{uuid.uuid4().hex[:6]}"
    where = ["--store", f"datajoint:{schema}"]

    def run(*args):
        _forget_modules(recipe.name)
        return main(["run", str(recipe), "--quiet", *where, *args])

    try:
        assert run() == 0
        tables = activate(schema, create=False)
        provenance = tables.TransferredTrainedModel.Provenance
        first = provenance.fetch("code_hash", "code_files", as_dict=True)
        assert len(first) == 2 and all(len(row["code_hash"]) == 64 for row in first)
        assert all(set(row["code_files"]) == {recipe.name + ".steps", recipe.name + ".data"} for row in first)

        edit(recipe / "data.py", "SCALE = 1.0", "SCALE = 2.0")
        capsys.readouterr()
        assert run() == 2
        assert "2 stored step(s) were trained with code that has changed since" in capsys.readouterr().err

        assert run("--reuse-changed") == 0
        kept = provenance.fetch("code_reused")
        assert all(record["changed"] == [recipe.name + ".data"] for record in kept)
        assert run() == 0  # kept for this code

        edit(recipe / "data.py", "SCALE = 2.0", "SCALE = 4.0")
        capsys.readouterr()
        assert run("--rerun-changed") == 0
        assert "0 reused, 2 trained" in capsys.readouterr().out
        rows = provenance.fetch("code_hash", "code_reused", as_dict=True)
        assert len(rows) == 2 and all(row["code_hash"] not in {r["code_hash"] for r in first} and row["code_reused"] is None for row in rows)
    finally:
        activate(f"{db_prefix}_main")


def test_python_run_raises_code_changed_with_the_same_lines(recipe, tmp_path):
    import nntransfer
    from nntransfer.errors import CodeChanged

    work = str(tmp_path / "work")
    _forget_modules(recipe.name)
    nntransfer.run(str(recipe), workdir=work, progress=False)
    edit(recipe / "data.py", "SCALE = 1.0", "SCALE = 2.0")
    _forget_modules(recipe.name)
    with pytest.raises(CodeChanged) as raised:
        nntransfer.run(str(recipe), workdir=work, progress=False)
    assert isinstance(raised.value, ValueError) and len(raised.value.problems) == 3
    assert str(raised.value).splitlines() == raised.value.problems
    _forget_modules(recipe.name)
    plan = nntransfer.run(str(recipe), workdir=work, progress=False, dry_run=True, reuse_changed=True)
    assert [step.action for step in plan] == ["reuse", "reuse"]
    _forget_modules(recipe.name)
    assert nntransfer.run(str(recipe), workdir=work, progress=False, reuse_changed=True).summary.reused == 2
