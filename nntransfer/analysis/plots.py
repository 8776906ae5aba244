"""Plots of a recipe's results (the frames of ``nntransfer.analysis.results``).

Every function takes a frame, returns the matplotlib ``Figure`` (shown inline in notebooks) and, when
``path`` is given, saves it as a PNG. Experiments keep one colour across all plots; seeds are
aggregated: lines and points show the mean over the seeds, bands and error bars one standard deviation,
dots the single seeds. Legends of plots with many lines sit beside their panels, never over the lines.

``plot_learning_curves``  objective per epoch, one panel per training data (steps trained on the same data
                          side by side: fine-tuning beside its from-scratch run), a line per step and mode
``plot_transfer_steps``   final objective per transfer step, one panel per test set (shared y): lines join
                          the steps of an experiment tested on that set
``plot_final_accuracy``   a point per step (teachers and pre-training too), one panel per test set, on an
                          axis that starts near the data (not at 0), step names as horizontal row labels
``plot_robustness``       objective against corruption severity or noise level, a panel per corruption/noise kind
``plot_robustness_test_sets``  objective against the level of every test set that has levels (corrupted test
                          sets, named test sets such as ``test_noise_0.1``, ``test_noise_0.2``), a line per
                          step: the teacher and the other earlier steps of a chain too
``plot_accuracy_matrix``  steps x test sets as a heat map with the values in the cells, on a fixed scale
                          (0-100 for accuracy; ``nntransfer.analysis.metrics.accuracy_matrix``)
``plot_all``              all of them for one :class:`~nntransfer.analysis.results.Results`

A step that several chains share (the same configs up to it, e.g. one pre-training step) is drawn once,
in gray, labelled with every experiment that shares it.

Many chains (a sweep) keep every plot readable and its size bounded (:data:`MAX_INCHES` at :data:`DPI`):
beyond :data:`MANY` experiments or steps, lines are drawn thin without legend entries beside their mean (in
black), the points become a ranked dot plot per test set that names the best and the worst steps, and the
heat map drops its cell labels; the CSVs of ``nntransfer report`` hold every value.

matplotlib renders to files only (Agg) where there is no display, unless ``MPLBACKEND`` says otherwise: the
user's choice is kept, and saving a PNG works under every backend.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import matplotlib

if not os.environ.get("MPLBACKEND") and "ipykernel" not in sys.modules and sys.platform.startswith("linux") and not (
    os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
):
    matplotlib.use("Agg")  # no display (servers, workers, CI): render to files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from nntransfer.analysis.metrics import accuracy_matrix  # noqa: E402
from nntransfer.analysis.results import NOT_TEST_SETS, Results, default_task, seed_stats, select  # noqa: E402
from nntransfer.configs.test_sets import DERIVED_SPLITS, parse_earlier_split  # noqa: E402
from nntransfer.safe_files import write_atomically  # noqa: E402

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
MODE_STYLES = {"Validation": "-", "Training": "--"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
SHARED_COLOR = "0.35"
#: how a split and a noise kind read in titles
SPLIT_NAMES = {"c_test": "test", "validation_noise": "validation", "test_rotated": "rotated test"}
GROUP_NAMES = {"noise_std": "Gaussian noise (std)", "noise_snr": "Gaussian noise (SNR)"}
LEVEL_NAMES = {"noise_std": "noise std", "noise_snr": "signal-to-noise ratio"}
#: resolution of saved plots, and the largest figure (width, height) in inches: at most 2200 x 1760 pixels
DPI = 110
MAX_INCHES = (20.0, 16.0)
#: more lines or bars than this in one plot are drawn in the compact form (module docstring)
MANY = 16
#: columns of a grid of panels, and of a grid whose every panel carries its legend beside it
MAX_COLUMNS = 4
LEGEND_COLUMNS = 2
#: characters per line of a row or legend label: longer names wrap instead of running into their neighbours
LABEL_WIDTH = 34
#: inches per line of a wrapped row label of the dot plot (font "small" with its line spacing, and a gap)
LINE_INCHES = 0.17
#: fixed colour scales of the heat map by objective: a colour means the same value in every report
FIXED_SCALES = {"accuracy": (0.0, 100.0)}
#: a split named after its level: a name that ends in a number after a letter ("test_noise_0.1", "test_rot30")
LEVEL_SPLIT = re.compile(r"(?P<family>.*[A-Za-z])_?(?P<level>\d+(?:\.\d+)?)")
#: the name of the plot of the test sets that have levels (``plot_all``, ``nntransfer report``)
ROBUSTNESS_TEST_SETS = "robustness_test_sets"


def _label(objective: str) -> str:
    return "accuracy (%)" if objective == "accuracy" else objective


def split_name(split: str) -> str:
    """How a split reads in a title: ``"validation_noise"`` -> ``"validation"``, ``"c_test"`` -> ``"test"``."""
    return SPLIT_NAMES.get(split, split.replace("_", " "))


def robustness_title(split: str, group: Optional[str], objective: str) -> str:
    """``"validation accuracy under Gaussian noise (std)"``, ``"test accuracy under corruption: fog"``;
    ``group=None``: the mean over the kinds."""
    what = f"{split_name(split)} {objective}"
    if group is None:
        return f"{what}, mean over {'corruptions' if split == 'c_test' else 'noise kinds'}"
    if split == "c_test":
        return f"{what} under corruption: {group.replace('_', ' ')}"
    return f"{what} under {GROUP_NAMES.get(group, group.replace('_', ' '))}"


def experiment_colors(names: Sequence[str]) -> Dict[str, Any]:
    """One colour per experiment name, in the given order (the recipe's)."""
    cycle = plt.rcParams["axes.prop_cycle"].by_key().get("color") or ["C0"]
    return {name: cycle[i % len(cycle)] for i, name in enumerate(dict.fromkeys(names))}


def _figure(width: float, height: float, rows: int = 1, columns: int = 1, **options: Any):
    """``plt.subplots`` with the size clamped to :data:`MAX_INCHES`."""
    size = (min(width, MAX_INCHES[0]), min(height, MAX_INCHES[1]))
    return plt.subplots(rows, columns, figsize=size, squeeze=False, **options)


def _grid(count: int, max_columns: int = MAX_COLUMNS) -> Tuple[int, int]:
    """(rows, columns) of a grid of ``count`` panels, at most ``max_columns`` wide."""
    columns = max(1, min(count, max_columns))
    return -(-count // columns), columns


def _wrap(text: str, width: int = LABEL_WIDTH) -> str:
    """``text`` wrapped line by line at ``width`` characters: a long experiment name takes more lines, not
    the room of its neighbours ("0-4" stays whole)."""
    return "\n".join(textwrap.fill(line, width, break_on_hyphens=False) or line for line in str(text).split("\n"))


def _legend_beside(ax, handles: Optional[Sequence[Any]] = None, **options: Any):
    """A legend to the right of ``ax``, outside it, so that it never covers a line; the figure's layout
    engine (``layout="constrained"``) makes room for it."""
    settings = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="small", frameon=False)
    settings.update(options)
    if handles is None:
        return ax.legend(**settings)
    return ax.legend(handles=list(handles), **settings)


def _hide_unused(axes: np.ndarray, used: int) -> None:
    for ax in list(axes.flat)[used:]:
        ax.set_visible(False)


def _save(fig: Figure, path: Optional[PathLike]) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        image = io.BytesIO()
        fig.savefig(image, format="png", dpi=DPI)
        write_atomically(path, image.getvalue())  # a link planted at ``path`` is replaced, never written through
        logger.info("wrote %s", path)
    return fig


def _lines(frame: pd.DataFrame, by: Union[str, List[str]], columns: Sequence[str]) -> List[Tuple[Any, np.ndarray]]:
    """(key, the ``columns`` of its rows as one array) per group of ``by``, in the order of
    ``groupby(sort=False)`` and each group's rows in frame order: the arrays are cut from one array of the
    whole frame rather than from a frame per group (hundreds of steps in one panel)."""
    if frame.empty:
        return []
    codes = frame.groupby(by, sort=False).ngroup().to_numpy()
    first = frame.drop_duplicates(by)
    keys = list(zip(*(first[column] for column in by))) if isinstance(by, list) else list(first[by])
    order = np.argsort(codes, kind="stable")
    points = frame[list(columns)].to_numpy()
    return [(key, points[rows]) for key, rows in zip(keys, np.split(order, np.flatnonzero(np.diff(codes[order])) + 1))]


def _names(frame: pd.DataFrame) -> List[str]:
    return list(dict.fromkeys(frame["name"]))


def _last_steps(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of each chain's last step (``chain_steps - 1``)."""
    return frame[frame["step"] == frame["chain_steps"] - 1]


def _own_comment(comment: Any) -> str:
    return str(comment).split(" -> ")[-1] if isinstance(comment, str) else ""


def _with_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``config_id`` and, for final results, ``test_set`` (frames made by hand may lack them:
    every step is then its own, and a test split its own test set)."""
    frame = frame.copy()
    if "config_id" not in frame:
        frame["config_id"] = frame["name"].astype(str) + "|" + frame["step"].astype(str)
    if "split" in frame and "test_set" not in frame:
        frame["test_set"] = [("" if split in NOT_TEST_SETS else split) for split in frame["split"]]
    return frame


def _sharing(frame: pd.DataFrame) -> Dict[str, List[str]]:
    """config_id -> the experiments (in order) whose chains contain that step."""
    return {config_id: list(dict.fromkeys(rows["name"])) for config_id, rows in frame.groupby("config_id", sort=False)}


def _who(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names)} (shared)"


def _color(names: Sequence[str], colors: Mapping[str, Any]) -> Any:
    return colors[names[0]] if len(names) == 1 else SHARED_COLOR


def plot_learning_curves(
    curves: pd.DataFrame,
    objective: str = "accuracy",
    task: Optional[str] = None,
    modes: Sequence[str] = ("Training", "Validation"),
    path: Optional[PathLike] = None,
    steps: Optional[pd.DataFrame] = None,
) -> Figure:
    """``objective`` per epoch; one panel per training data ("trained on 5-9": the test set of the steps'
    data, from ``steps`` (``Results.steps``), else their own comment), so that a fine-tuning step sits
    beside the from-scratch run on the same data and pre-training gets its own panel; in it one line per
    step and mode (validation solid, training dashed, a marker per transfer step) with the seeds' spread
    as a band. A step that several chains share is one gray line. Each panel's legend (a colour and marker
    per step, a line style per mode) sits beside it: inside, it covered the lines it names."""
    rows = curves[(curves["objective"] == objective) & curves["mode"].isin(list(modes))]
    if rows.empty:
        available = sorted(set(curves["objective"][curves["mode"] != ""]))
        raise ValueError(f"no learning curves of {objective!r} in modes {list(modes)}; available objectives: {available}")
    task = task or default_task(rows)
    rows = _with_ids(rows[rows["task"] == task])
    colors = experiment_colors(_names(curves))
    sharing = _sharing(_with_ids(curves))
    if steps is not None and not steps.empty:
        data = steps.drop_duplicates("config_id").set_index("config_id")["test_set"].to_dict()
    else:
        data = {}
    rows = rows.assign(panel=[data.get(config_id) or _own_comment(comment) or f"step {step}"
                              for config_id, comment, step in zip(rows["config_id"], rows["comment"], rows["step"])])
    first_chain = {config_id: names[0] for config_id, names in sharing.items()}
    rows = rows[rows["name"].to_numpy() == rows["config_id"].map(first_chain).to_numpy()]  # a shared step once
    stats = (rows.groupby(["panel", "config_id", "mode", "epoch"], sort=False)["value"].agg(["mean", "std"])
             .reset_index().sort_values("epoch", kind="stable"))  # fmt: skip
    step_of = rows.drop_duplicates("config_id").set_index("config_id")["step"]
    panels = list(dict.fromkeys(rows["panel"]))
    lines, columns = _grid(len(panels), LEGEND_COLUMNS)
    entries = max(n if n <= MANY else 0 for n in rows.groupby("panel")["config_id"].nunique()) + len(modes)
    height = max(3.6, LINE_INCHES * 2 * entries + 0.9)  # room for a legend of two-line entries
    fig, axes = _figure(8.2 * columns, height * lines, lines, columns, sharey=True, layout="constrained")
    for ax, (panel, in_panel) in zip(axes.flat, stats.groupby("panel", sort=False)):
        if in_panel["config_id"].nunique() > MANY:
            _many_curves(ax, in_panel, modes, sharing, colors)
            _legend_beside(ax)
        else:
            _legend_beside(ax, _curve_lines(ax, in_panel, sharing, colors, step_of))
        ax.set_title(_wrap(f"trained on {panel}", 2 * LABEL_WIDTH))
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    _hide_unused(axes, len(panels))
    for ax in axes[:, 0]:
        ax.set_ylabel(_label(objective))
    return _save(fig, path)


def _curve_lines(ax, stats: pd.DataFrame, sharing: Mapping[str, List[str]], colors: Mapping[str, Any],
                 step_of: Mapping[str, Any]) -> List[Line2D]:
    """Draw a line per step and mode with its band; return the legend's handles: one per step (its colour
    and marker: a teacher and its student on the same data differ beyond colour) and one per mode (its line
    style), instead of one per line, which doubled the legend."""
    steps: Dict[str, Line2D] = {}
    modes: List[str] = []
    for (config_id, mode), line in stats.groupby(["config_id", "mode"], sort=False):
        names, color = sharing[config_id], _color(sharing[config_id], colors)
        step = int(step_of[config_id])
        marker = MARKERS[step % len(MARKERS)]
        mean, std = line["mean"].to_numpy(), line["std"].fillna(0.0).to_numpy()
        ax.plot(line["epoch"], mean, MODE_STYLES.get(mode, ":"), color=color, marker=marker, markersize=4,
                label=f"{_who(names)}, step {step} ({mode.lower()})")
        ax.fill_between(line["epoch"], mean - std, mean + std, color=color, alpha=0.15, linewidth=0)
        steps.setdefault(config_id, Line2D([], [], color=color, marker=marker, label=_wrap(f"{_who(names)}, step {step}")))
        modes += [] if mode in modes else [mode]
    return list(steps.values()) + [Line2D([], [], color="0.2", linestyle=MODE_STYLES.get(mode, ":"), label=mode.lower())
                                   for mode in modes]


def _many_curves(ax, stats: pd.DataFrame, modes: Sequence[str], sharing: Mapping[str, List[str]],
                 colors: Mapping[str, Any]) -> None:
    """Many steps in one panel: a thin line per step and mode (one collection: fast to draw), and per mode
    the mean over the steps in black, which alone has a legend entry."""
    for mode in modes:
        of_mode = stats[stats["mode"] == mode]
        if of_mode.empty:
            continue
        groups = _lines(of_mode, "config_id", ["epoch", "mean"])
        ax.add_collection(LineCollection([line for _, line in groups],
                                         colors=[_color(sharing[config_id], colors) for config_id, _ in groups],
                                         linestyles=MODE_STYLES.get(mode, ":"), linewidths=0.6, alpha=0.35))
        overall = of_mode.groupby("epoch")["mean"].mean()
        ax.plot(overall.index, overall.values, MODE_STYLES.get(mode, ":"), color="black", linewidth=2,
                label=f"mean of {len(groups)} steps ({mode.lower()})")
    ax.autoscale_view()


def _test_rows(final: pd.DataFrame, split: Optional[str], objective: str, task: Optional[str]) -> pd.DataFrame:
    """Plain rows of ``objective`` on test sets (one ``split``, or every split that is a test set)."""
    if split is not None:
        rows = select(final, split, objective, task)
    else:
        available = sorted(set(final["objective"]))
        if objective not in available:
            raise ValueError(f"no final results with objective {objective!r}; available: {', '.join(available) or 'none'}")
        rows = final[(final["objective"] == objective) & (final["variant"] == "plain")]
        rows = rows[rows["task"] == (task or default_task(rows))]
    rows = _with_ids(rows[rows["group"] == ""])
    return rows[rows["test_set"] != ""]


def plot_transfer_steps(
    final: pd.DataFrame,
    split: Optional[str] = None,
    objective: str = "accuracy",
    task: Optional[str] = None,
    path: Optional[PathLike] = None,
) -> Figure:
    """The final ``objective`` after each transfer step on every test set the steps evaluated (or on
    ``split`` only), one panel per test set with a shared y axis (small multiples: many chains on many
    test sets in one panel were a tangle). In a panel a colour per experiment; a line joins the steps of
    one experiment tested on that set (a step 0 on the digits 0-4 and a step 1 on 5-9 stay apart; a later
    step that evaluates 0-4 again joins step 0: forgetting). Points are means over the seeds, error bars
    one std (none for one seed), small dots the seeds; a shared step is one gray point."""
    rows = _test_rows(final, split, objective, task)
    if rows.empty:
        raise ValueError(f"no final {objective} results on a test set" + (f" for split {split!r}" if split else ""))
    colors = experiment_colors(_names(final))
    sharing = _sharing(rows)
    test_sets = list(dict.fromkeys(rows["test_set"]))
    names = _names(rows)
    many = len(names) > MANY
    steps = sorted(set(rows["step"]))
    lines, columns = _grid(len(test_sets))
    fig, axes = _figure(3.6 * columns + 3.4, 3.2 * lines + 0.7, lines, columns, sharey=True, layout="constrained")
    for ax, test_set in zip(axes.flat, test_sets):
        of_set = rows[rows["test_set"] == test_set]
        if many:
            _many_transfer_steps(ax, of_set, colors)
        else:
            _transfer_panel(ax, of_set, names, sharing, colors)
        ax.set_title(_wrap(f"tested on {test_set}"), fontsize="medium")
        ax.set_xticks(steps)
        ax.set_xlim(min(steps) - 0.5, max(steps) + 0.5)
        ax.set_xlabel("transfer step")
        ax.grid(alpha=0.3)
    _hide_unused(axes, len(test_sets))
    for ax in axes[:, 0]:
        ax.set_ylabel(_label(objective) if split is None else f"{split_name(split)} {_label(objective)}")
    where = "each test set" if split is None else f"the {split_name(split)} set"
    fig.suptitle(f"{objective} on {where} after each transfer step" + (" (mean over seeds)" if many else ""))
    _legend_beside(axes[0][columns - 1], _experiment_handles(names, sharing, colors, many))
    return _save(fig, path)


def _experiment_handles(names: Sequence[str], sharing: Mapping[str, List[str]], colors: Mapping[str, Any],
                        many: bool) -> List[Line2D]:
    """Legend handles of a plot coloured by experiment: one per experiment (or, for a sweep, the thin lines
    and their black mean), and the gray of a shared step when there is one."""
    if many:
        handles = [Line2D([], [], color="0.5", linewidth=0.8, label=f"each of {len(names)} experiments"),
                   Line2D([], [], color="black", linewidth=2, label="their mean")]
    else:
        handles = [Line2D([], [], color=colors[name], marker="o", label=_wrap(name)) for name in names]
    if any(len(chains) > 1 for chains in sharing.values()):
        handles.append(Line2D([], [], color=SHARED_COLOR, marker="o", linestyle="none", label="a step several chains share"))
    return handles


def _transfer_panel(ax, rows: pd.DataFrame, names: Sequence[str], sharing: Mapping[str, List[str]],
                    colors: Mapping[str, Any]) -> None:
    """One test set: per experiment a point per step (nudged sideways so that experiments do not hide each
    other) joined by a line; a shared step once, in gray, where every chain's line meets it."""
    offsets = dict(zip(names, np.linspace(-0.08, 0.08, len(names)) if len(names) > 1 else [0.0]))
    test_set = rows["test_set"].iloc[0]
    drawn = set()
    for name in names:
        values = rows[rows["name"] == name]
        points = []
        for (step, config_id), group in values.groupby(["step", "config_id"], sort=True):
            shared = len(sharing[config_id]) > 1
            stats = seed_stats(group.drop_duplicates(["seed", "split"])["value"])
            x = step + (0.0 if shared else offsets[name])
            points.append((x, stats["mean"]))
            if config_id in drawn:
                continue
            drawn.add(config_id)
            color = SHARED_COLOR if shared else colors[name]
            ax.errorbar([x], [stats["mean"]], yerr=[np.nan_to_num(stats["std"])], color=color, marker="o",
                        linestyle="none", capsize=3, gid=f"point|{'+'.join(sharing[config_id])}|{test_set}|{step}")
            ax.scatter(np.full(len(group), x), group["value"], color=color, s=10, alpha=0.5, zorder=3)
        if len(points) > 1:
            xs, ys = zip(*points)
            ax.plot(xs, ys, "-", color=colors[name], gid=f"line|{name}|{test_set}")


def _many_transfer_steps(ax, rows: pd.DataFrame, colors: Mapping[str, Any]) -> None:
    """Many experiments on one test set: per experiment one thin line through its seeds' means, then the
    mean over the experiments in black (with the spread over them as error bars)."""
    means = rows.groupby(["name", "step"], sort=False)["value"].mean().reset_index().sort_values("step")
    groups = _lines(means, "name", ["step", "value"])
    ax.add_collection(LineCollection([line for _, line in groups], colors=[colors[name] for name, _ in groups],
                                     linewidths=0.6, alpha=0.35))
    ax.scatter(means["step"], means["value"], s=5, color="0.45", alpha=0.4, linewidths=0)
    overall = means.groupby("step")["value"]
    ax.errorbar(overall.mean().index, overall.mean().values, yerr=overall.std(ddof=1).fillna(0.0).values,
                color="black", linewidth=2, marker="o", capsize=3, gid=f"mean|{rows['test_set'].iloc[0]}")
    ax.autoscale_view()


def plot_final_accuracy(
    final: pd.DataFrame,
    split: str = "test",
    objective: str = "accuracy",
    task: Optional[str] = None,
    step: Optional[int] = None,
    path: Optional[PathLike] = None,
) -> Figure:
    """One row per step of every chain (pre-training and teachers too; transfer step ``step`` only if
    given): a point at the mean ``objective`` on its ``split`` over the seeds that finished it, error bars
    one std (none for one seed), dots the seeds, the value and ``n`` beside the row. A panel per test set
    (only the steps of one panel compare the same data), each on an axis that starts near its data: bars
    from 0 made 89 and 96 % look equal. Step names are horizontal row labels, wrapped, each row as tall as
    its label, so that neighbours never overlap; a step several chains share is one gray point."""
    rows = select(final, split, objective, task)
    rows = _with_ids(rows[rows["group"] == ""])
    if step is not None:
        rows = rows[rows["step"] == step]
    if rows.empty:
        raise ValueError(f"no finished step has {split} {objective} results" + (f" at transfer step {step}" if step is not None else ""))
    sharing = _sharing(rows)
    test_sets = list(dict.fromkeys(rows["test_set"]))
    panels = [(test_set, list(dict.fromkeys(rows[rows["test_set"] == test_set]["config_id"]))) for test_set in test_sets]
    which = "every step" if step is None else f"transfer step {step}"
    xlabel = f"{split_name(split)} {_label(objective)}"
    if sum(len(config_ids) for _, config_ids in panels) > MANY:
        return _save(_ranked_steps(rows, sharing, test_sets, f"{split_name(split)} {objective} of {which}", xlabel), path)
    colors = experiment_colors(_names(final))
    labelled = [[_step_row(rows, test_set, config_id, sharing) for config_id in config_ids] for test_set, config_ids in panels]
    heights = [sum(LINE_INCHES * (label.count("\n") + 1) + 0.16 for _, label in entries) + 0.8 for entries in labelled]
    fig, axes = _figure(8.5, sum(heights) + 0.5, len(panels), 1, layout="constrained",
                        gridspec_kw={"height_ratios": heights})
    for ax, (test_set, _), entries in zip(axes[:, 0], panels, labelled):
        _dot_panel(ax, entries, sharing, colors)
        ax.set_title(_wrap(f"tested on {test_set}", 2 * LABEL_WIDTH), fontsize="medium")
        ax.set_xlabel(xlabel, fontsize="small")
    fig.suptitle(f"{split_name(split)} {objective} of {which} (mean ± std over seeds, dots: seeds)")
    return _save(fig, path)


def _step_row(rows: pd.DataFrame, test_set: str, config_id: str, sharing: Mapping[str, List[str]]) -> Tuple[pd.DataFrame, str]:
    """The rows of one step on one test set (one per seed) and its row label: who, own comment, step, n."""
    values = rows[(rows["config_id"] == config_id) & (rows["test_set"] == test_set)].drop_duplicates("step_id")
    comment = _own_comment(values["comment"].iloc[0])
    label = f"{_who(sharing[config_id])}\n{comment} (step {int(values['step'].iloc[0])}), n={len(values)}"
    return values, _wrap(label)


def _dot_panel(ax, entries: Sequence[Tuple[pd.DataFrame, str]], sharing: Mapping[str, List[str]],
               colors: Mapping[str, Any]) -> None:
    """One test set: a row per step, its mean ± std as a point with error bars, its seeds as dots, the value
    to the right of the axes (outside: never on a point); the x axis spans the data with a margin."""
    extent = []
    for y, (values, label) in enumerate(entries):
        stats = seed_stats(values["value"])
        config_id = values["config_id"].iloc[0]
        std = float(np.nan_to_num(stats["std"]))
        color = _color(sharing[config_id], colors)
        ax.errorbar([stats["mean"]], [y], xerr=[std], color=color, marker="o", markersize=7, capsize=4,
                    linestyle="none", gid=f"point|{'+'.join(sharing[config_id])}|{int(values['step'].iloc[0])}")
        ax.scatter(values["value"], np.full(len(values), y), color="black", s=12, zorder=3)
        spread = f" ± {stats['std']:.1f}" if stats["std"] == stats["std"] else ""
        ax.text(1.01, y, f"{stats['mean']:.1f}{spread}", transform=ax.get_yaxis_transform(), ha="left", va="center",
                fontsize="small")
        extent += [stats["mean"] - std, stats["mean"] + std, *values["value"]]
    ax.set_yticks(range(len(entries)), [label for _, label in entries], fontsize="small")
    ax.set_ylim(len(entries) - 0.5, -0.5)  # the first step on top
    ax.set_xlim(*near_data(extent))
    ax.grid(axis="x", alpha=0.3)


def near_data(values: Sequence[float], margin: float = 0.12, least: float = 0.5) -> Tuple[float, float]:
    """Axis limits around ``values`` with ``margin`` of their range (at least ``least``) on each side, not
    from 0: on an axis from 0, 89 and 96 % look equal."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    pad = max(margin * (high - low), least)
    return low - pad, high + pad


def _ranked_steps(rows: pd.DataFrame, sharing: Mapping[str, List[str]], test_sets: Sequence[str], what: str,
                  ylabel: str, named: int = 3) -> Figure:
    """Many steps: a panel per test set, each step a point at its rank (mean over seeds, error bar one std),
    the ``named`` best and worst steps listed in the panel."""
    lines, columns = _grid(len(test_sets))
    fig, axes = _figure(5.5 * columns + 1.0, 4.2 * lines, lines, columns, sharey=True)
    for ax, test_set in zip(axes.flat, test_sets):
        of_set = rows[rows["test_set"] == test_set].drop_duplicates("step_id")
        stats = of_set.groupby("config_id", sort=False).agg(mean=("value", "mean"), std=("value", "std"),
                                                          step=("step", "first"), comment=("comment", "first"))
        stats = stats.sort_values("mean", ascending=False)
        rank = np.arange(1, len(stats) + 1)
        colors = [SHARED_COLOR if len(sharing[config_id]) > 1 else "C0" for config_id in stats.index]
        ax.errorbar(rank, stats["mean"], yerr=np.nan_to_num(stats["std"].to_numpy()), fmt="none", ecolor="0.6",
                    linewidth=0.6)
        ax.scatter(rank, stats["mean"], c=colors, s=9, zorder=3)

        def who(config_id: str, row: Any) -> str:
            return f"{_who(sharing[config_id])}, {_own_comment(row.comment)} (step {int(row.step)}): {row['mean']:.1f}"

        best = [who(i, r) for i, r in stats.head(named).iterrows()]
        worst = [who(i, r) for i, r in stats.tail(named).iterrows()] if len(stats) > 2 * named else []
        text = "best: " + "\n      ".join(best) + ("\nworst: " + "\n      ".join(worst) if worst else "")
        ax.text(0.02, 0.03, text, transform=ax.transAxes, fontsize="x-small", va="bottom", family="monospace",
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"})
        ax.set_title(f"tested on {test_set}: {len(stats)} steps")
        ax.set_xlabel("rank")
        ax.grid(alpha=0.3)
    _hide_unused(axes, len(test_sets))
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    fig.suptitle(f"{what}, ranked (mean ± std over seeds; gray: shared by several chains)")
    fig.tight_layout()
    return fig


def plot_robustness(
    final: pd.DataFrame,
    split: str = "c_test",
    objective: str = "accuracy",
    task: Optional[str] = None,
    step: Optional[int] = None,
    path: Optional[PathLike] = None,
) -> Figure:
    """``objective`` against corruption severity (``split="c_test"``) or noise level
    (``split="validation_noise"``): one panel per corruption or noise kind (plus their mean when there
    are several), one line per experiment, at its chain's last step (or transfer step ``step``)."""
    rows = select(final, split, objective, task)
    rows = rows[(rows["group"] != "") & rows["level"].notna()]
    if rows.empty:
        raise ValueError(f"split {split!r} has no results per severity or noise level")
    rows = _last_steps(rows) if step is None else rows[rows["step"] == step]
    groups = list(dict.fromkeys(rows["group"]))
    panels = [(robustness_title(split, None, objective), None)] if len(groups) > 1 else []
    panels += [(robustness_title(split, group, objective), group) for group in groups]
    lines, columns = _grid(len(panels))
    fig, axes = _figure(4.0 * columns + 1.0, 3.4 * lines, lines, columns, sharey=True)
    colors = experiment_colors(_names(final))
    for ax, (title, group) in zip(axes.flat, panels):
        panel = rows if group is None else rows[rows["group"] == group]
        for name in _names(panel):
            values = panel[panel["name"] == name]
            per_seed = values.groupby(["seed", "level"])["value"].mean().reset_index()  # mean over the groups
            by_level = per_seed.groupby("level")["value"]
            mean, std = by_level.mean(), by_level.std(ddof=1).fillna(0.0)
            ax.errorbar(mean.index, mean.values, yerr=std.values, color=colors[name], marker="o", capsize=3, label=name,
                        **({"linewidth": 0.6, "markersize": 2, "alpha": 0.5} if len(_names(panel)) > MANY else {}))
        ax.set_title(title)
        if split == "c_test":
            ax.set_xlabel("severity")
            ax.xaxis.get_major_locator().set_params(integer=True)
        else:
            ax.set_xlabel(LEVEL_NAMES.get(group, (group or "level").replace("_", " ")))
        ax.grid(alpha=0.3)
        if len(_names(panel)) <= MANY:  # a legend of a sweep would cover the panel
            ax.legend(fontsize="small")
    _hide_unused(axes, len(panels))
    for ax in axes[:, 0]:
        ax.set_ylabel(_label(objective))
    fig.tight_layout()
    return _save(fig, path)


def plot_accuracy_matrix(matrix: pd.DataFrame, objective: str = "accuracy", path: Optional[PathLike] = None,
                         limits: Optional[Tuple[float, float]] = None) -> Figure:
    """The steps x test sets frame of :func:`nntransfer.analysis.metrics.accuracy_matrix` as a heat map,
    each cell labelled with its value (blank where a step did not evaluate a test set). The colour scale is
    ``limits``, else fixed for the objective (:data:`FIXED_SCALES`: 0-100 for accuracy), so that a colour
    means the same value in every report; scaled to the data, 89 % looked as bad as 0 %."""
    if matrix.empty:
        raise ValueError("the accuracy matrix is empty: no finished step has results on a test set")
    values = matrix.to_numpy(dtype=float)
    rows = [f"{experiment} · step {step}" for experiment, step, _ in matrix.index]
    rows = [_wrap(row, 44) for row in rows] if len(rows) <= 2 * MANY else rows  # a sweep's labels are thinned instead
    low, high = limits or FIXED_SCALES.get(objective) or near_data(values.ravel(), margin=0.0, least=0.0)
    row_inches = max(0.45, LINE_INCHES * max(row.count("\n") + 1 for row in rows) + 0.12)
    fig, axes = _figure(1.4 * values.shape[1] + 5.5, row_inches * values.shape[0] + 2.2, layout="constrained")
    ax = axes[0][0]
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto", vmin=low, vmax=high)
    if len(rows) <= 2 * MANY:  # beyond, the cells are too small to be labelled (accuracy_matrix.csv has them)
        _cell_labels(ax, image, values)
    ax.set_xticks(range(values.shape[1]), [_wrap(f"tested on {c}", 20) for c in matrix.columns], rotation=30,
                  ha="right", fontsize="small")
    every = max(1, -(-len(rows) // 60))  # at most 60 row labels
    ax.set_yticks(range(0, len(rows), every), rows[::every], fontsize="small" if every == 1 else "x-small")
    ax.set_title(f"{objective} of every step on every test set (mean over seeds)")
    fig.colorbar(image, ax=ax, label=_label(objective))
    return _save(fig, path)


def _cell_labels(ax, image, values: np.ndarray) -> None:
    """Each finite cell's value printed in it, white on dark colours and black on light ones."""
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            red, green, blue, _ = image.cmap(image.norm(value))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize="small", color="white" if dark else "black")


def level_splits(final: pd.DataFrame) -> List[str]:
    """The plain splits of ``final`` with results per severity or noise level."""
    rows = final[(final["variant"] == "plain") & (final["group"] != "") & final["level"].notna()]
    return list(dict.fromkeys(rows["split"]))


def split_level(split: str) -> Optional[Tuple[str, float]]:
    """``(family, level)`` of a split named after its level (``"test_noise_0.1"`` -> ``("test_noise", 0.1)``;
    an earlier step's ``"step 0 test_noise_0.1"`` too), else None: the named test sets of a recipe carry
    their level only in their names. ``test``, ``test_rotated``, ``c_test`` and names without a letter
    before the number (``"0-4"``) have none."""
    earlier = parse_earlier_split(split)
    inner = earlier[1] if earlier else str(split)
    if inner == "test" or inner in DERIVED_SPLITS or inner in NOT_TEST_SETS:
        return None
    found = LEVEL_SPLIT.fullmatch(inner)
    return (found.group("family"), float(found.group("level"))) if found else None


LEVEL_COLUMNS = ["panel", "xlabel", "config_id", "name", "seed", "step", "comment", "last", "level", "value"]


def level_test_sets(final: pd.DataFrame, objective: str = "accuracy", task: Optional[str] = None) -> pd.DataFrame:
    """One row per step, seed, test set with levels and level (:data:`LEVEL_COLUMNS`): the severities of a
    corrupted test set (``c_test``; the mean over its corruptions) or of any test split nested by kind and
    level, and the named test sets whose names differ only in a trailing level (``test_noise_0.1``,
    ``test_noise_0.2``: two levels or more); ``panel`` is the test set without its level, ``last`` whether
    the step is its chain's last. Empty when no test set has levels."""
    if final.empty or objective not in set(final["objective"]):
        return pd.DataFrame(columns=LEVEL_COLUMNS)
    rows = _with_ids(final[(final["objective"] == objective) & (final["variant"] == "plain")])
    rows = rows[(rows["task"] == (task or default_task(rows))) & (rows["test_set"] != "")]
    rows = rows.assign(last=rows["step"] == rows["chain_steps"] - 1) if "chain_steps" in rows else rows.assign(last=True)
    frames = [_nested_levels(rows[(rows["group"] != "") & rows["level"].notna()]), _named_levels(rows[rows["group"] == ""])]
    found = pd.concat([frame for frame in frames if not frame.empty] or [pd.DataFrame(columns=LEVEL_COLUMNS)])
    return found[LEVEL_COLUMNS].reset_index(drop=True)


def _nested_levels(rows: pd.DataFrame) -> pd.DataFrame:
    """Level rows of test splits nested by kind (``c_test[corruption][severity]``): per test set, step,
    seed and level the mean over the kinds."""
    if rows.empty:
        return pd.DataFrame(columns=LEVEL_COLUMNS)
    kinds = rows.groupby("test_set")["group"].agg(lambda groups: list(dict.fromkeys(groups)))
    corrupted = rows.groupby("test_set")["split"].agg(lambda splits: any(s.endswith("c_test") for s in splits))
    panel = {test_set: f"{test_set}: {kinds[test_set][0].replace('_', ' ')}" if len(kinds[test_set]) == 1 else
             f"{test_set}, mean over {len(kinds[test_set])} {'corruptions' if corrupted[test_set] else 'kinds'}"
             for test_set in kinds.index}  # fmt: skip
    xlabel = {test_set: "severity" if corrupted[test_set] else LEVEL_NAMES.get(kinds[test_set][0], "level")
              for test_set in kinds.index}
    keys = ["test_set", "config_id", "name", "seed", "step", "comment", "last", "level"]
    means = rows.groupby(keys, sort=False, dropna=False)["value"].mean().reset_index()
    return means.assign(panel=means["test_set"].map(panel), xlabel=means["test_set"].map(xlabel))


def _named_levels(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of named test sets that differ only in a trailing level (:func:`split_level`), with two levels
    or more: ``"0-4 test_noise_0.1"`` is panel ``"0-4 test_noise"`` at level 0.1."""
    parsed = [split_level(split) for split in rows["split"]]
    keep = np.array([found is not None for found in parsed], dtype=bool)
    if not keep.any():
        return pd.DataFrame(columns=LEVEL_COLUMNS)
    rows = rows[keep]
    parsed = [found for found in parsed if found is not None]
    panels, levels, labels = [], [], []
    for (family, level), split, test_set in zip(parsed, rows["split"], rows["test_set"]):
        inner = split.split(" ", 2)[-1] if parse_earlier_split(split) else split
        panels.append(test_set[: -len(inner)] + family if test_set.endswith(inner) else family)
        levels.append(level)
        labels.append(f"{family.replace('_', ' ')}: level")
    rows = rows.assign(panel=panels, level=levels, xlabel=labels)
    rows = rows[rows.groupby("panel")["level"].transform("nunique") >= 2]
    keys = ["panel", "xlabel", "config_id", "name", "seed", "step", "comment", "last", "level"]
    return rows.groupby(keys, sort=False, dropna=False)["value"].mean().reset_index()


def plot_robustness_test_sets(
    final: pd.DataFrame,
    objective: str = "accuracy",
    task: Optional[str] = None,
    path: Optional[PathLike] = None,
) -> Figure:
    """``objective`` against the level of every test set that has levels (:func:`level_test_sets`), one
    panel per test set (shared y), a line per step that evaluated it: each chain's last step solid, its
    earlier steps (the teacher, a pre-training) dashed beside it, a marker per transfer step, so that a
    student's robustness reads against its teacher's. Means over the seeds, error bars one std.
    ValueError when no test set has levels: no empty figure."""
    rows = level_test_sets(final, objective, task)
    if rows.empty:
        raise ValueError(f"no test set has {objective} results per level (a corrupted test set, or named test sets "
                         "such as test_noise_0.1 and test_noise_0.2)")
    colors = experiment_colors(_names(final))
    sharing = _sharing(_with_ids(final))
    panels = list(dict.fromkeys(rows["panel"]))
    lines, columns = _grid(len(panels))
    fig, axes = _figure(3.6 * columns + 3.6, 3.2 * lines + 0.7, lines, columns, sharey=True, layout="constrained")
    for ax, panel in zip(axes.flat, panels):
        of_panel = rows[rows["panel"] == panel]
        _level_lines(ax, of_panel, sharing, colors)
        ax.set_title(_wrap(panel), fontsize="medium")
        ax.set_xlabel(of_panel["xlabel"].iloc[0])
        if ax.get_xlabel() == "severity":
            ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    _hide_unused(axes, len(panels))
    for ax in axes[:, 0]:
        ax.set_ylabel(_label(objective))
    fig.suptitle(f"{objective} against the level of each test set, every step (mean ± std over seeds)")
    names = list(dict.fromkeys(rows["name"]))
    handles = _experiment_handles(names, sharing, colors, len(names) > MANY)
    handles += [Line2D([], [], color="0.2", linestyle="-", label="a chain's last step"),
                Line2D([], [], color="0.2", linestyle="--", label="an earlier step\n(teacher, pre-training)")]
    handles += [Line2D([], [], color="0.2", marker=MARKERS[step % len(MARKERS)], linestyle="none", label=f"step {step}")
                for step in sorted(set(rows["step"]))[:MANY // 2]]
    _legend_beside(axes[0][columns - 1], handles)
    return _save(fig, path)


def _level_lines(ax, rows: pd.DataFrame, sharing: Mapping[str, List[str]], colors: Mapping[str, Any]) -> None:
    """One test set: a line per step through its mean over the seeds at each level, error bars one std
    (a shared step once, in gray); beyond :data:`MANY` steps thin lines and their mean in black."""
    config_ids = list(dict.fromkeys(rows["config_id"]))
    many = len(config_ids) > MANY
    for config_id in config_ids:
        of_step = rows[rows["config_id"] == config_id]
        of_step = of_step[of_step["name"] == of_step["name"].iloc[0]]  # a shared step: its seeds once
        by_level = of_step.groupby("level")["value"]
        mean, std = by_level.mean(), by_level.std(ddof=1).fillna(0.0)
        step = int(of_step["step"].iloc[0])
        style = {"linewidth": 0.6, "alpha": 0.4, "markersize": 2} if many else {"capsize": 3}
        ax.errorbar(mean.index, mean.values, yerr=None if many else std.values, color=_color(sharing[config_id], colors),
                    linestyle="-" if of_step["last"].all() else "--", marker=MARKERS[step % len(MARKERS)],
                    gid=f"level|{rows['panel'].iloc[0]}|{'+'.join(sharing[config_id])}|{step}", **style)
    if many:
        overall = rows.groupby(["config_id", "level"])["value"].mean().groupby("level").mean()
        ax.plot(overall.index, overall.values, color="black", linewidth=2)


def plot_all(
    results: Results,
    out: Optional[PathLike] = None,
    split: str = "test",
    objective: str = "accuracy",
    close: bool = False,
) -> Dict[str, Figure]:
    """Every plot that ``results`` has data for, by name: ``learning_curves``, ``transfer_steps`` (every
    test set), ``final_accuracy`` (every step on ``split``), ``robustness_<split>`` for each split per
    severity or noise level, ``robustness_test_sets`` when a test set has levels (none otherwise: no
    empty figure), and ``accuracy_matrix``. With ``out``, each is saved as ``<out>/<name>.png``;
    ``close`` closes the figures afterwards (batch use; the returned figures can still be saved)."""
    out = Path(out) if out is not None else None

    def target(name: str) -> Optional[Path]:
        return out / f"{name}.png" if out is not None else None

    figures: Dict[str, Figure] = {}
    if not results.curves.empty:
        figures["learning_curves"] = plot_learning_curves(results.curves, objective, path=target("learning_curves"),
                                                          steps=results.steps)
    final = results.final
    tested = not final.empty and bool(((final["test_set"] != "") & (final["objective"] == objective)).any())
    if tested:
        figures["transfer_steps"] = plot_transfer_steps(final, None, objective, path=target("transfer_steps"))
    if not final.empty and split in set(final["split"]):
        figures["final_accuracy"] = plot_final_accuracy(final, split, objective, path=target("final_accuracy"))
    if not final.empty:
        for level_split in level_splits(final):
            name = f"robustness_{level_split}"
            figures[name] = plot_robustness(final, level_split, objective, path=target(name))
        if ROBUSTNESS_TEST_SETS not in figures and not level_test_sets(final, objective).empty:
            figures[ROBUSTNESS_TEST_SETS] = plot_robustness_test_sets(final, objective, path=target(ROBUSTNESS_TEST_SETS))
    if tested:
        figures["accuracy_matrix"] = plot_accuracy_matrix(accuracy_matrix(results, objective), objective,
                                                          path=target("accuracy_matrix"))
    if close:
        for fig in figures.values():
            plt.close(fig)
    return figures
