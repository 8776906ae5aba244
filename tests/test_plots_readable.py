"""What the user sees (issue "What the user sees, round 2"): each plot checked through its matplotlib artists
(positions, extents, limits, data), not its pixels, and ``report``'s ``index.html`` parsed as a browser would.

- ``final_accuracy``: step labels never overlap; points with error bars (mean ± std over seeds) on an axis
  that starts near the data, not bars from 0.
- ``transfer_steps``: one panel per test set, a shared y axis.
- ``accuracy_matrix``: the values in the cells, on a fixed 0-100 colour scale.
- ``robustness_test_sets``: accuracy against the level of named test sets (and corrupted ones), every step
  (the teacher too); not written when no test set has levels.
- ``learning_curves``: the legend beside the panel, not over its lines.
- ``index.html``: every plot and table of the report, user strings escaped.

No test here picks a matplotlib backend: the plots module keeps the one the user's shell sets (MPLBACKEND),
and renders headless (Agg) otherwise.
"""

import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer

from nntransfer.analysis.plots import (
    ROBUSTNESS_TEST_SETS,
    level_test_sets,
    plot_accuracy_matrix,
    plot_all,
    plot_final_accuracy,
    plot_learning_curves,
    plot_robustness_test_sets,
    plot_transfer_steps,
    split_level,
)
from nntransfer.analysis.results import Results

TESTS = Path(__file__).resolve().parent
TASK = "img_classification"
SEEDS = (1, 2)
SPREAD = 0.5  # seed 1 scores mean - SPREAD, seed 2 mean + SPREAD


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# ---------------------------------------------------------------------------- frames made by hand


def step(name, index, chain_steps, comment, config_id, data, evaluations):
    """One step of a chain: ``evaluations`` maps a split (or ``(split, group, level)``) to ``(test set, mean)``."""
    return dict(name=name, step=index, chain_steps=chain_steps, comment=comment, config_id=config_id, data=data,
                evaluations=evaluations)


def results_of(steps, curve_values=None):
    """A :class:`Results` of ``steps`` (see :func:`step`) over :data:`SEEDS`; every step trains 3 epochs
    (``curve_values(step) -> value``, default 80)."""
    status, curves, final, frame = [], [], [], []
    for spec in steps:
        for seed in SEEDS:
            who = dict(name=spec["name"], seed=seed, step=spec["step"], trained_seed=seed, comment=spec["comment"],
                       step_id=f"{spec['config_id']}-{seed}")  # one seed all along: as the store's ids
            status.append(dict(who, state="done", score=90.0, error="", chain_steps=spec["chain_steps"],
                               chain_complete=True, code=""))
            frame.append(dict(who, label=spec["comment"], state="done", config_id=spec["config_id"], shared_by=spec["name"],
                              scratch_id=spec["config_id"], test_set=spec["data"], continues=spec["step"] > 0, code=""))
            for epoch in (1, 2, 3):
                for mode in ("Training", "Validation"):
                    value = (curve_values or (lambda _: 80.0))(spec) + epoch
                    curves.append(dict(who, mode=mode, task=TASK, objective="accuracy", epoch=epoch, value=value,
                                       config_id=spec["config_id"]))
            for split, (test_set, mean) in spec["evaluations"].items():
                split, group, level = split if isinstance(split, tuple) else (split, "", np.nan)
                final.append(dict(who, split=split, variant="plain", group=group, level=level, task=TASK,
                                  objective="accuracy", value=mean + (SPREAD if seed == 2 else -SPREAD),
                                  chain_steps=spec["chain_steps"], chain_complete=True, test_set=test_set,
                                  config_id=spec["config_id"]))
    steps_frame = pd.DataFrame(frame)
    sharing = steps_frame.groupby("config_id", sort=False)["name"].agg(lambda n: ", ".join(dict.fromkeys(n)))
    steps_frame["shared_by"] = steps_frame["config_id"].map(sharing)
    return Results("hand-made", "nowhere", pd.DataFrame(status), pd.DataFrame(curves), pd.DataFrame(final), steps_frame)


def extents(fig, artists):
    """Window extents of ``artists`` after the figure's layout ran (any backend: no pixels are rendered)."""
    fig.draw_without_rendering()
    return [artist.get_window_extent() for artist in artists]


def overlap(a, b):
    """The area two boxes share, in pixels squared."""
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(width, 0) * max(height, 0)


def visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def legends(fig):
    return [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)


def assert_legends_beside_the_panels(fig):
    """Every legend is inside the figure and covers no panel."""
    found = legends(fig)
    assert found, "no legend"
    boxes = extents(fig, found)
    panels = extents(fig, visible_axes(fig))
    figure = fig.bbox
    for box in boxes:
        assert box.x0 >= figure.x0 - 1 and box.x1 <= figure.x1 + 1 and box.y0 >= figure.y0 - 1 and box.y1 <= figure.y1 + 1
        for panel in panels:
            assert overlap(box, panel) < 1, (box, panel)


# ---------------------------------------------------------------------------- final_accuracy.png

LONG = ["distillation, T=4, alpha=0.5, teacher ResNet-18", "fine-tune every layer with a small learning rate",
        "frozen core, new readout only"]


def shared_pretraining():
    """Three chains share their pre-training step (a long shared label), then fine-tune on 5-9; a scratch run.
    On 5-9 the steps score 89 to 96 %."""
    steps = [step(name, 0, 2, "pre-train 0-4", "pre", "0-4", {"test": ("0-4", 93.0)}) for name in LONG]
    steps += [step(name, 1, 2, f"pre-train 0-4 -> {name[:12]}", f"ft{i}", "5-9", {"test": ("5-9", 89.0 + 3 * i)})
              for i, name in enumerate(LONG)]
    steps.append(step("scratch", 0, 1, "from scratch 5-9", "scratch", "5-9", {"test": ("5-9", 96.0)}))
    return results_of(steps)


def tick_labels(fig):
    labels = []
    for ax in visible_axes(fig):
        labels += [t for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_visible() and t.get_text()]
    return labels


def test_final_accuracy_labels_never_overlap_their_neighbours():
    fig = plot_final_accuracy(shared_pretraining().final)
    labels = tick_labels(fig)
    boxes = extents(fig, labels)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert overlap(boxes[i], boxes[j]) < 1, (labels[i].get_text(), labels[j].get_text())
    names = [t.get_text().replace("\n", " ") for t in labels]
    # every step is named (labels wrap: compared word by word), the shared one once with all its chains
    shared = [name for name in names if "(shared)" in name]
    assert len(shared) == 1 and all(" ".join(chain.split()) in " ".join(shared[0].split()) for chain in LONG)
    assert sum("(step 1)" in name for name in names) == 3 and sum("from scratch 5-9" in name for name in names) == 1


def test_final_accuracy_draws_points_with_error_bars_on_an_axis_near_the_data():
    results = shared_pretraining()
    fig = plot_final_accuracy(results.final)
    panels = {ax.get_title(): ax for ax in visible_axes(fig)}
    assert set(panels) == {"tested on 0-4", "tested on 5-9"}  # only steps on the same data side by side
    ax = panels["tested on 5-9"]
    assert not [c for a in fig.axes for c in a.containers if isinstance(c, BarContainer)]  # no bars from 0
    points = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(points) == 4
    std = np.std([-SPREAD, SPREAD], ddof=1)
    means = sorted(c.lines[0].get_xdata()[0] for c in points)
    assert np.allclose(means, [89.0, 92.0, 95.0, 96.0])
    for container in points:
        mean = container.lines[0].get_xdata()[0]
        (segment,) = container.lines[2][0].get_segments()  # the horizontal error bar: mean ± std over the seeds
        assert np.allclose(sorted(segment[:, 0]), [mean - std, mean + std])
    low, high = ax.get_xlim()
    assert 80 < low < 89 - std and 96 + std < high < 100  # starts near the data, not at 0
    assert (96 - 89) / (high - low) > 0.5  # 89 and 96 % are far apart on the page
    values = [t.get_text() for t in ax.texts]
    assert f"96.0 ± {std:.1f}" in values and f"89.0 ± {std:.1f}" in values


# ---------------------------------------------------------------------------- transfer_steps.png

TASKS = [f"task {letter}" for letter in "ABCDE"]
CHAINS = ["ewc", "l2-sp", "replay", "naive"]


def continual_chains():
    """4 chains x 5 tasks: step k trains on task k and is tested on tasks 0..k."""
    steps = []
    for c, name in enumerate(CHAINS):
        for k in range(5):
            evaluations = {"test" if j == k else f"step {j} test": (TASKS[j], 90.0 - 10 * (k - j) + c) for j in range(k + 1)}
            steps.append(step(name, k, 5, f"{name} {k}", f"{name}{k}", TASKS[k], evaluations))
    return results_of(steps)


def test_transfer_steps_has_one_panel_per_test_set_sharing_y():
    results = continual_chains()
    fig = plot_transfer_steps(results.final)
    axes = visible_axes(fig)
    assert [ax.get_title() for ax in axes] == [f"tested on {t}" for t in TASKS]
    assert all(axes[0].get_shared_y_axes().joined(axes[0], ax) for ax in axes)
    for j, (ax, test_set) in enumerate(zip(axes, TASKS)):
        gids = [c.lines[0].get_gid() for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert len(gids) == len(CHAINS) * (5 - j) and all(f"|{test_set}|" in gid for gid in gids)
        lines = {line.get_gid(): line for line in ax.get_lines() if str(line.get_gid()).startswith("line|")}
        if j < 4:  # a chain's steps tested on this set are joined: its forgetting of the task
            assert sorted(lines) == sorted(f"line|{name}|{test_set}" for name in CHAINS)
            assert np.allclose(lines[f"line|ewc|{test_set}"].get_ydata(), [90.0 - 10 * (k - j) for k in range(j, 5)])
        else:
            assert not lines
    assert_legends_beside_the_panels(fig)
    assert [t.get_text() for t in legends(fig)[0].get_texts()] == CHAINS


# ---------------------------------------------------------------------------- accuracy_matrix.png


def test_accuracy_matrix_prints_values_on_a_fixed_scale():
    matrix = pd.DataFrame([[89.0, 96.0], [92.5, np.nan]], columns=["0-4", "5-9"],
                          index=pd.MultiIndex.from_tuples([("a", 0, "x"), ("b", 1, "y")], names=["experiment", "step", "comment"]))
    fig = plot_accuracy_matrix(matrix)
    ax = fig.axes[0]
    (image,) = ax.get_images()
    assert image.get_clim() == (0.0, 100.0)  # not 89-96: 89 % is not the colour of nothing
    assert [t.get_text() for t in ax.texts] == ["89.0", "96.0", "92.5"]
    positions = [t.get_position() for t in ax.texts]
    assert positions == [(0, 0), (1, 0), (0, 1)]  # each value in its own cell
    # another objective keeps the range of its data
    (image,) = plot_accuracy_matrix(matrix / 100, objective="loss").axes[0].get_images()
    assert np.allclose(image.get_clim(), (0.89, 0.96))


# ---------------------------------------------------------------------------- learning_curves.png


def test_learning_curves_legend_sits_beside_the_lines():
    """Five steps trained on the same data, training and validation: ten lines on top of each other."""
    names = [f"method {i} with a descriptive name" for i in range(5)]
    results = results_of([step(name, 0, 1, "5-9", name, "5-9", {"test": ("5-9", 90.0)}) for name in names])
    fig = plot_learning_curves(results.curves, steps=results.steps)
    (ax,) = visible_axes(fig)
    assert len(ax.get_lines()) == 10
    assert_legends_beside_the_panels(fig)
    entries = [" ".join(t.get_text().split()) for t in ax.get_legend().get_texts()]
    assert entries == [f"{name}, step 0" for name in names] + ["training", "validation"]


# ---------------------------------------------------------------------------- robustness of test sets with levels


def test_split_level_reads_the_level_from_a_split_name():
    assert split_level("test_noise_0.1") == ("test_noise", 0.1)
    assert split_level("step 0 test_noise_0.25") == ("test_noise", 0.25)
    assert split_level("test_rot30") == ("test_rot", 30.0)
    for split in ("test", "c_test", "test_rotated", "0-4", "step 0 test", "test_unseen", "validation"):
        assert split_level(split) is None, split


def robust_chains():
    """A teacher and its student on the same digits (named noise levels, a corrupted test set); a continual
    chain whose second step evaluates the first step's rotated test sets; a one-level name (not a series)."""
    noise = {f"test_noise_{level}": (f"digits test_noise_{level}", mean) for level, mean in ((0.1, 90.0), (0.3, 70.0), (0.6, 40.0))}
    corrupted = {("c_test", kind, severity): ("digits c_test", 80.0 - 20 * severity - (10 if kind == "fog" else 0))
                 for kind in ("fog", "blur") for severity in (1, 2)}
    student = {split: (test_set, mean + 5) for split, (test_set, mean) in {**noise, **corrupted}.items()}
    rotations = {f"test_rot{angle}": (f"0-4 test_rot{angle}", 95.0 - angle) for angle in (15, 30)}
    return results_of([
        step("kd", 0, 2, "teacher", "teacher", "digits", {"test": ("digits", 95.0), "test_blur_1": ("digits test_blur_1", 50.0),
                                                          **noise, **corrupted}),
        step("kd", 1, 2, "teacher -> student", "student", "digits", {"test": ("digits", 96.0), **student}),
        step("continual", 0, 2, "0-4", "c0", "0-4", {"test": ("0-4", 97.0), **rotations}),
        step("continual", 1, 2, "0-4 -> 5-9", "c1", "5-9", {
            "test": ("5-9", 97.0), **{f"step 0 {split}": (test_set, mean - 30) for split, (test_set, mean) in rotations.items()}}),
    ])


def level_panels(fig):
    panels = {}
    for ax in visible_axes(fig):
        panels[" ".join(ax.get_title().split())] = {c.lines[0].get_gid(): c for c in ax.containers if isinstance(c, ErrorbarContainer)}
    return panels


def test_robustness_of_named_test_sets_shows_every_step_with_the_teacher():
    results = robust_chains()
    fig = plot_robustness_test_sets(results.final)
    panels = level_panels(fig)
    assert set(panels) == {"digits test_noise", "digits c_test, mean over 2 corruptions", "0-4 test_rot"}
    noise = panels["digits test_noise"]
    assert set(noise) == {"level|digits test_noise|kd|0", "level|digits test_noise|kd|1"}
    teacher, student = noise["level|digits test_noise|kd|0"], noise["level|digits test_noise|kd|1"]
    assert list(teacher.lines[0].get_xdata()) == [0.1, 0.3, 0.6]
    assert np.allclose(teacher.lines[0].get_ydata(), [90.0, 70.0, 40.0])
    assert np.allclose(student.lines[0].get_ydata(), [95.0, 75.0, 45.0])
    assert teacher.lines[0].get_linestyle() == "--" and student.lines[0].get_linestyle() == "-"  # earlier step dashed
    (segment, *_) = teacher.lines[2][0].get_segments()
    assert np.allclose(sorted(segment[:, 1]), [90.0 - np.std([-SPREAD, SPREAD], ddof=1), 90.0 + np.std([-SPREAD, SPREAD], ddof=1)])
    corrupted = panels["digits c_test, mean over 2 corruptions"]["level|digits c_test, mean over 2 corruptions|kd|0"]
    assert list(corrupted.lines[0].get_xdata()) == [1.0, 2.0]
    assert np.allclose(corrupted.lines[0].get_ydata(), [55.0, 35.0])  # the mean over fog and blur
    rotated = panels["0-4 test_rot"]  # the continual step's evaluation of step 0's test sets joins step 0
    assert np.allclose(rotated["level|0-4 test_rot|continual|0"].lines[0].get_ydata(), [80.0, 65.0])
    assert np.allclose(rotated["level|0-4 test_rot|continual|1"].lines[0].get_ydata(), [50.0, 35.0])
    axes = visible_axes(fig)
    assert all(axes[0].get_shared_y_axes().joined(axes[0], ax) for ax in axes)
    assert [ax.get_xlabel() for ax in axes if ax.get_title().startswith("digits c_test")] == ["severity"]
    assert_legends_beside_the_panels(fig)


def test_robustness_plot_is_written_only_when_a_test_set_has_levels(tmp_path):
    with_levels = robust_chains()
    figures = plot_all(with_levels, out=tmp_path / "with", close=True)
    assert ROBUSTNESS_TEST_SETS in figures and (tmp_path / "with" / f"{ROBUSTNESS_TEST_SETS}.png").stat().st_size > 1000
    without = continual_chains()
    assert level_test_sets(without.final).empty
    with pytest.raises(ValueError, match="no test set has accuracy results per level"):
        plot_robustness_test_sets(without.final)  # an error, never an empty figure
    figures = plot_all(without, out=tmp_path / "without", close=True)
    assert ROBUSTNESS_TEST_SETS not in figures
    assert not (tmp_path / "without" / f"{ROBUSTNESS_TEST_SETS}.png").exists()
    # one level of a name is no series
    one = robust_chains().final
    assert "digits test_blur" not in set(level_test_sets(one)["panel"])


# ---------------------------------------------------------------------------- the backend is the user's


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["svg", None])
def test_plots_keep_the_users_backend_and_save_pngs(tmp_path, backend):
    """A shell's MPLBACKEND is kept (``svg`` here); without one on a machine without display, Agg. PNGs
    are written either way."""
    environment = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY", "WAYLAND_DISPLAY")}
    if backend:
        environment["MPLBACKEND"] = backend
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        import matplotlib
        from nntransfer.analysis.plots import plot_all
        from test_plots_readable import robust_chains
        figures = plot_all(robust_chains(), out={str(tmp_path)!r}, close=True)
        print(matplotlib.get_backend().lower(), sorted(figures))
    """)
    done = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == (backend or "agg")
    for png in tmp_path.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {p.stem for p in tmp_path.glob("*.png")} >= {"transfer_steps", "final_accuracy", ROBUSTNESS_TEST_SETS}


# ---------------------------------------------------------------------------- index.html of a real report

NAME = "<script>alert('x')</script> & co"
RECIPE = '''
from nntransfer.configs import (ClassificationModelConfig, ClassificationTrainerConfig, Description, Experiment,
                                ImageDatasetConfig, TransferExperiment)

NOISE = {f"test_noise_{std}": {"transform": "gaussian_noise", "std": std} for std in (0.1, 0.5, 1.0)}
DATA = ImageDatasetConfig(dataset_cls="Digits", batch_size=128, examples_per_class=40, test_transforms=NOISE)
MODEL = ClassificationModelConfig(type="lenet300-100")


def step(seed, comment, **options):
    return Experiment(DATA, MODEL, ClassificationTrainerConfig(max_iter=1, show_progress=False, **options), seed=seed,
                      comment=comment)


transfer_experiments = {}
for seed in (1, 2):
    transfer_experiments[Description("teacher -> student", seed)] = TransferExperiment(
        [step(seed, "teacher"), step(seed, "student", lr=0.001)])
    transfer_experiments[Description(%r, seed)] = TransferExperiment([step(seed, "<b>scratch</b>", lr=0.003)])
''' % NAME


@pytest.fixture(scope="module")
def levels_run(tmp_path_factory):
    """A teacher -> student chain and a scratch run named with markup, on digits with three named noise
    levels, trained once (1 epoch, 2 seeds): (recipe folder, work folder)."""
    from nntransfer.pipeline.local import LocalStore
    from nntransfer.recipes.loading import load_recipe

    root = tmp_path_factory.mktemp("levels")
    folder = root / "levels_recipe"
    folder.mkdir()
    (folder / "__init__.py").write_text(RECIPE)
    LocalStore(root / "work").run(load_recipe(str(folder)), progress=False)
    return folder, root / "work"


class Page(HTMLParser):
    """What a browser would build of the page: its start tags, img sources, links, text, and per table
    section (``data-table``) the number of <table> elements in it."""

    def __init__(self):
        super().__init__()
        self.tags, self.images, self.links, self.text, self.tables = [], [], [], [], {}
        self.section = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "a":
            self.links.append(attrs["href"])
        if tag == "section" and "data-table" in attrs:
            self.section = attrs["data-table"]
            self.tables[self.section] = 0
        if tag == "table" and self.section is not None:
            self.tables[self.section] += 1

    def handle_endtag(self, tag):
        if tag == "section":
            self.section = None

    def handle_data(self, data):
        self.text.append(data)


def read_page(path):
    page = Page()
    page.feed(Path(path).read_text(encoding="utf-8"))
    page.close()
    return page


@pytest.mark.slow
def test_report_index_shows_every_plot_and_table_and_escapes_names(levels_run, tmp_path, capsys):
    from nntransfer.cli.main import main

    folder, workdir = levels_run
    out = tmp_path / "report"
    assert main(["report", str(folder), "--workdir", str(workdir), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    page = read_page(out / "index.html")
    pngs = {p.name for p in out.glob("*.png")}
    assert f"{ROBUSTNESS_TEST_SETS}.png" in pngs  # named test sets with levels: the robustness plot is written
    assert {unquote(src) for src in page.images} == pngs and len(page.images) == len(pngs)
    assert all((out / unquote(src)).is_file() and "/" not in src for src in page.images)  # relative, in the folder
    csvs = {p.stem for p in out.glob("*.csv")}
    assert csvs >= {"status", "steps", "curves", "final", "summary", "transfer_gain", "forgetting", "continual_learning",
                    "accuracy_matrix"}
    assert page.tables == {name: 1 for name in csvs}  # every table, once, as an HTML table
    assert all((out / unquote(link)).is_file() for link in page.links if not link.startswith("#"))
    text = "".join(page.text)
    assert "script" not in page.tags  # the name is text, not a tag
    assert "<script>" not in (out / "index.html").read_text() and NAME in text and "<b>scratch</b>" in text
    summary = printed.splitlines()[1:4]  # what report printed is on the page too
    assert summary and all(line in text for line in summary)


@pytest.mark.slow
def test_report_without_levels_writes_no_robustness_plot(levels_run, tmp_path):
    from nntransfer.analysis import load_results, write_report

    folder, workdir = levels_run
    results = load_results(str(folder), workdir=str(workdir))
    teacher = plot_robustness_test_sets(results.final)
    gids = {c.lines[0].get_gid() for ax in teacher.axes for c in ax.containers if isinstance(c, ErrorbarContainer)}
    assert {"level|Digits test_noise|teacher -> student|0", "level|Digits test_noise|teacher -> student|1"} <= gids
    plain = replace(results, final=results.final[~results.final["split"].str.startswith("test_noise")])
    written = write_report(plain, tmp_path)
    assert not (tmp_path / f"{ROBUSTNESS_TEST_SETS}.png").exists() and f"{ROBUSTNESS_TEST_SETS}.png" not in written
    page = read_page(written["index.html"])
    assert {unquote(src) for src in page.images} == {p.name for p in tmp_path.glob("*.png")}
