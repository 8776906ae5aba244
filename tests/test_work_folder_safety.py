"""A work folder someone else wrote is data, never a trap (issue 20, items 4, 5, 6 and 9): FIFOs, links to
devices and deeply nested JSON make no command hang, read without end or crash; links planted in the work
folder or the report folder are never written through; names and errors are printed without terminal escape
codes; plots of many chains keep a readable size. Everything is real: FIFOs (``os.mkfifo``), symbolic links,
files. A command that would hang runs in a thread with a deadline: past it the test opens the FIFOs for
writing (so the stuck read ends) and fails."""

import json
import os
import struct
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from recipe_factory import write_recipe, write_toy_recipe

from nntransfer.cli.main import main
from nntransfer.configs.codec import make_hash
from nntransfer.pipeline.local import LocalStore
from nntransfer.recipes.loading import load_recipe

TESTS = Path(__file__).parent
DEADLINE = 20  # seconds; each command here takes well under one


def unique(name):
    return f"{name}_{uuid.uuid4().hex[:6]}"


def finishes(command, fifos=(), seconds=DEADLINE):
    """``command()``'s result, or a failure if it is still running after ``seconds`` (then the FIFOs it may be
    stuck on are opened for writing and closed, so that it ends)."""
    box = {}

    def target():
        try:
            box["result"] = command()
        except BaseException as err:  # noqa: BLE001 (re-raised in the test's thread)
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in fifos:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        thread.join(seconds)
        pytest.fail(f"still running after {seconds} s: it waits on a FIFO")
    if "error" in box:
        raise box["error"]
    return box["result"]


@pytest.fixture
def trained(tmp_path):
    """A toy recipe of one two-step chain, run to the end: (recipe folder, work folder, its two step folders)."""
    recipe = write_toy_recipe(tmp_path, unique("safety"), chains=1)
    workdir = tmp_path / "w"
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 0
    chain = next(iter(load_recipe(str(recipe)).transfer_experiments.values()))
    store = LocalStore(workdir)
    return recipe, workdir, [store.step_dir(chain.step_key(level)) for level in range(2)]


def plant_fifo(path):
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


# ---------------------------------------------------------------------- item 4: reading is never a trap


@pytest.mark.parametrize("command", ["status", "report", "lineage", "diff"])
def test_a_fifo_named_result_json_hangs_no_command(trained, tmp_path, capsys, caplog, command):
    """Defect: ``status``, ``report``, ``lineage`` and ``diff`` waited for ever on a FIFO ``result.json``."""
    recipe, workdir, steps = trained
    fifo = plant_fifo(steps[0] / "result.json")
    first, second = steps[0].name, steps[1].name
    argv = {"status": ["status", str(recipe)], "report": ["report", str(recipe), "--out", str(tmp_path / "out")],
            "lineage": ["lineage", second[:8]], "diff": ["diff", first[:8], second[:8]]}[command]  # fmt: skip
    capsys.readouterr()
    status = finishes(lambda: main(argv + ["--workdir", str(workdir)]), [fifo])
    out, err = capsys.readouterr()
    # report: toy steps have nothing to plot; diff: the damaged step is not stored: one line each, exit 2
    assert status == (2 if command in ("report", "diff") else 0), err
    if status:
        assert err.count("nntransfer: error") == 1 and "Traceback" not in err, err
    if command == "diff":
        assert first[:8] in err
    if command == "status":
        assert " waiting " in out and " done " in out  # the damaged step is to be trained again, the other is fine
    if command in ("status", "report"):
        assert "a FIFO, not a regular file" in caplog.text and str(fifo) in caplog.text
    if command == "lineage":
        assert second[:8] in out


def test_a_fifo_as_a_failure_record_hangs_no_status(tmp_path, capsys):
    """Defect: ``status`` waited for ever on a FIFO ``failed/<id>.txt``."""
    recipe = write_toy_recipe(tmp_path, unique("fifo_failure"), chains=1)
    workdir = tmp_path / "w"
    chain = next(iter(load_recipe(str(recipe)).transfer_experiments.values()))
    (workdir / "failed").mkdir(parents=True)
    fifo = plant_fifo(workdir / "failed" / f"{make_hash(chain.step_key(0))}.txt")
    status = finishes(lambda: main(["status", str(recipe), "--workdir", str(workdir)]), [fifo])
    out = capsys.readouterr().out
    assert status == 0
    assert " failed " in out and "cannot be read: a FIFO, not a regular file" in out


@pytest.mark.slow
def test_a_link_to_dev_zero_is_not_read(tmp_path):
    """Defect: ``status`` read ``/dev/zero`` behind a ``result.json`` link until memory ran out. Run in a
    process whose memory is capped, so that the old behaviour fails fast instead of eating the machine."""
    recipe = write_toy_recipe(tmp_path, unique("dev_zero"), chains=1)
    chain = next(iter(load_recipe(str(recipe)).transfer_experiments.values()))
    workdir = tmp_path / "w"
    step = LocalStore(workdir).step_dir(chain.step_key(0))
    step.mkdir(parents=True)
    (step / "result.json").symlink_to("/dev/zero")
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_DATA, (1 << 30, 1 << 30)); "
            "from nntransfer.cli.main import main; sys.exit(main(sys.argv[1:]))")  # fmt: skip
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", code, "status", str(recipe), "--workdir", str(workdir)],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "a symbolic link, not a regular file" in done.stderr and " waiting " in done.stdout


def test_a_deeply_nested_result_json_is_a_damaged_step_not_a_traceback(trained, capsys, caplog):
    """Defect: ``lineage`` and ``diff`` ended in a RecursionError traceback."""
    recipe, workdir, steps = trained
    (steps[0] / "result.json").write_text("[" * 200_000 + "]" * 200_000)
    assert main(["lineage", steps[1].name[:8], "--workdir", str(workdir)]) == 0
    assert steps[1].name[:8] in capsys.readouterr().out
    assert main(["status", str(recipe), "--workdir", str(workdir)]) == 0
    assert " waiting " in capsys.readouterr().out and "nested too deeply" in caplog.text


def test_a_record_over_the_size_limit_is_not_read(trained, caplog):
    recipe, workdir, steps = trained
    with open(steps[0] / "result.json", "r+b") as handle:
        handle.truncate(64 << 20)  # sparse: 64 MiB of zeros, no disk used
    assert LocalStore(workdir).states([json.loads((steps[0] / "key.json").read_text())["key"]])[0].state == "waiting"
    assert "more than the" in caplog.text and "a record may hold" in caplog.text


# ---------------------------------------------------------------------- item 5: nothing is written outside


def test_a_planted_lock_link_is_not_truncated(tmp_path, capsys):
    """Defect: ``run`` truncated the file a planted ``locks/<id>.lock`` link led to."""
    recipe = write_toy_recipe(tmp_path, unique("lock_link"), chains=1)
    chain = next(iter(load_recipe(str(recipe)).transfer_experiments.values()))
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    workdir = tmp_path / "w"
    (workdir / "locks").mkdir(parents=True)
    (workdir / "locks" / f"{make_hash(chain.step_key(0))}.lock").symlink_to(precious)
    status = main(["run", str(recipe), "--workdir", str(workdir), "--quiet"])
    assert precious.read_text() == "keep me"
    assert status == 1 and "a symbolic link, not a regular file" in capsys.readouterr().err


def test_a_planted_checkpoint_folder_link_gets_no_files(tmp_path, capsys):
    """Defect: a ``checkpoints/<id>`` link to another folder received the step's checkpoint files."""
    recipe = write_toy_recipe(tmp_path, unique("checkpoint_link"), chains=1)
    chain = next(iter(load_recipe(str(recipe)).transfer_experiments.values()))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "epoch_000001.tmp").write_text("someone else's")
    workdir = tmp_path / "w"
    (workdir / "checkpoints").mkdir(parents=True)
    (workdir / "checkpoints" / make_hash(chain.step_key(0))).symlink_to(outside)
    status = main(["run", str(recipe), "--workdir", str(workdir), "--quiet"])
    assert sorted(p.name for p in outside.iterdir()) == ["epoch_000001.tmp"]  # nothing written, nothing deleted
    assert status == 1 and "is not a folder (a symbolic link" in capsys.readouterr().err


def test_a_planted_sub_folder_link_is_refused_before_anything_is_written(tmp_path, capsys):
    recipe = write_toy_recipe(tmp_path, unique("steps_link"), chains=1)
    outside = tmp_path / "outside"
    outside.mkdir()
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "steps").symlink_to(outside)
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 1
    assert list(outside.iterdir()) == []
    assert "where a folder should be" in capsys.readouterr().err


def test_a_planted_step_folder_link_is_replaced_not_followed(trained):
    recipe, workdir, steps = trained
    outside = steps[0].parent.parent.parent / "outside_step"
    steps[0].rename(outside)  # a complete, valid step folder, now outside the work folder
    steps[0].symlink_to(outside)
    assert not LocalStore(workdir).is_done(json.loads((outside / "key.json").read_text())["key"])
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 0
    assert not steps[0].is_symlink() and steps[0].is_dir() and (outside / "result.json").is_file()


DIGITS_RECIPE = """
from nntransfer.configs import (ClassificationModelConfig, ClassificationTrainerConfig, Description, Experiment,
                                ImageDatasetConfig, TransferExperiment)

step = Experiment(ImageDatasetConfig(dataset_cls="Digits", input_size=8, comment="digits"),
                  ClassificationModelConfig(type="mlp", input_size=8, mlp_hidden_sizes=[8]),
                  ClassificationTrainerConfig(max_iter=1, show_progress=False), seed=1, comment="tiny")
transfer_experiments = {Description(name="tiny", seed=1): TransferExperiment([step])}
"""


def test_report_replaces_a_planted_link_instead_of_writing_through_it(tmp_path):
    """Defect: ``report --out`` overwrote the files planted ``.csv`` and ``.png`` links led to."""
    recipe = write_recipe(tmp_path, unique("tiny_digits"), DIGITS_RECIPE)
    workdir, out = tmp_path / "w", tmp_path / "report"
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 0
    out.mkdir()
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    for name in ("summary.csv", "status.csv", "final_accuracy.png"):
        (out / name).symlink_to(precious)
    assert main(["report", str(recipe), "--workdir", str(workdir), "--out", str(out), "--quiet"]) == 0
    assert precious.read_text() == "keep me"
    for name in ("summary.csv", "status.csv", "final_accuracy.png"):
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 0
    assert "tiny" in (out / "status.csv").read_text()


# ---------------------------------------------------------------------- item 6: no escape codes printed

ESCAPES = "\x1b[2J\x1b]0;owned\x07\x1b[31m"


def test_names_comments_and_errors_are_printed_without_escape_codes(tmp_path, capsys, caplog):
    """Defect: a recipe name or a failure record with escape codes cleared the screen, retitled the window
    and coloured everything after it."""
    recipe = write_recipe(tmp_path, unique("escapes"), '''
from nntransfer.configs import Description, Experiment, TransferExperiment
from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig

ESCAPES = "\\x1b[2J\\x1b]0;owned\\x07\\x1b[31m"
chain = TransferExperiment([Experiment(ToyDatasetConfig(), ToyModelConfig(), ToyTrainerConfig(fail=True), seed=1,
                                       comment="comment" + ESCAPES)])
transfer_experiments = {Description(name="name" + ESCAPES + "x", seed=1): chain}
''')
    workdir = tmp_path / "w"
    main(["run", str(recipe), "--workdir", str(workdir)])
    failure = next((workdir / "failed").iterdir())
    failure.write_text(f"RuntimeError: error{ESCAPES}text\n")
    main(["status", str(recipe), "--workdir", str(workdir)])
    main(["lineage", failure.stem[:8], "--recipe", str(recipe), "--workdir", str(workdir)])
    captured = capsys.readouterr()
    for text in (captured.out, captured.err):
        assert "\x1b" not in text and "\x07" not in text
    assert "namex" in captured.out and "errortext" in captured.out and "comment" in captured.out
    from nntransfer.pipeline.runner import log_handler

    record = next(r for r in caplog.records if "name" in r.getMessage() and "\x1b" in r.getMessage())
    assert "\x1b" not in log_handler().format(record)  # what the CLI's log lines show


# ---------------------------------------------------------------------- item 9: plots of many chains


def png_size(path):
    with open(path, "rb") as handle:
        return struct.unpack(">II", handle.read(24)[16:24])


def sweep_results(chains):
    """The frames of ``chains`` two-step chains (a sweep: each its own name, one seed, its own steps)."""
    from nntransfer.analysis.results import Results

    status, curves, final, steps = [], [], [], []
    rng = np.random.default_rng(0)
    for index in range(chains):
        name = f"lr {index}"
        for step, test_set in enumerate(("0-4", "5-9")):
            config_id = f"{index}-{step}"
            who = dict(name=name, seed=1, step=step, trained_seed=1, step_id=f"{config_id}-1",
                       comment=f"pre-train -> {test_set}"[: 9 if step == 0 else None])
            status.append(dict(who, state="done", score=0.9, error="", chain_steps=2, chain_complete=True))
            steps.append(dict(who, label=name, state="done", config_id=config_id, shared_by=name, scratch_id=config_id,
                              test_set=test_set))
            for epoch in range(1, 6):
                for mode in ("Training", "Validation"):
                    curves.append(dict(who, mode=mode, task="img_classification", objective="accuracy", epoch=epoch,
                                       value=float(rng.uniform(50, 100)), config_id=config_id))
            final.append(dict(who, split="test", variant="plain", group="", level=np.nan, task="img_classification",
                              objective="accuracy", value=float(rng.uniform(50, 100)), chain_steps=2,
                              chain_complete=True, test_set=test_set, config_id=config_id))
    return Results("sweep", "nowhere", pd.DataFrame(status), pd.DataFrame(curves), pd.DataFrame(final),
                   pd.DataFrame(steps))


@pytest.mark.slow
def test_plots_of_many_chains_keep_a_readable_size(tmp_path):
    """Defect: 300 chains made an 82763 x 450 pixel bar plot, a 29885 pixel tall heat map and legends of
    hundreds of entries."""
    from nntransfer.analysis.plots import plot_all

    figures = plot_all(sweep_results(120), out=tmp_path, close=True)
    assert {"learning_curves", "transfer_steps", "final_accuracy", "accuracy_matrix"} <= set(figures)
    for name, figure in figures.items():
        width, height = png_size(tmp_path / f"{name}.png")
        assert width <= 2400 and height <= 2000, (name, width, height)
        for ax in figure.axes:
            legend = ax.get_legend()
            assert legend is None or len(legend.get_texts()) <= 20, name
