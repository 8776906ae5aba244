"""Plots of a recipe's results (the frames of ``nntransfer.analysis.results``).

Every function takes a frame, returns the matplotlib ``Figure`` (shown inline in notebooks) and, when
``path`` is given, saves it as a PNG. Experiments keep one colour across all plots; seeds are
aggregated: lines and bars show the mean over the seeds, bands and error bars one standard deviation,
dots the single seeds.

``plot_learning_curves``  objective per epoch, one panel per training data (steps trained on the same data
                          side by side: fine-tuning beside its from-scratch run), a line per step and mode
``plot_transfer_steps``   final objective per transfer step on every test set: lines join only the steps
                          tested on the same test set (a marker per test set)
``plot_final_accuracy``   a bar per step (teachers and pre-training too), grouped by test set
``plot_robustness``       objective against corruption severity or noise level, a panel per corruption/noise kind
``plot_accuracy_matrix``  steps x test sets as a heat map (``nntransfer.analysis.metrics.accuracy_matrix``)
``plot_all``              all of them for one :class:`~nntransfer.analysis.results.Results`

A step that several chains share (the same configs up to it, e.g. one pre-training step) is drawn once,
in gray, labelled with every experiment that shares it.

Many chains (a sweep) keep every plot readable and its size bounded (:data:`MAX_INCHES` at :data:`DPI`):
beyond :data:`MANY` experiments or steps, lines are drawn thin without legend entries beside their mean (in
black), the bars become a ranked dot plot per test set that names the best and the worst steps, and the
heat map drops its cell labels; the CSVs of ``nntransfer report`` hold every value.
"""

from __future__ import annotations

import io
import logging
import os
import sys
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
#: columns of a grid of panels
MAX_COLUMNS = 4


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


def _grid(count: int) -> Tuple[int, int]:
    """(rows, columns) of a grid of ``count`` panels, at most :data:`MAX_COLUMNS` wide."""
    columns = max(1, min(count, MAX_COLUMNS))
    return -(-count // columns), columns


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
    """``frame`` with ``step_id`` and, for final results, ``test_set`` (frames made by hand may lack them:
    every step is then its own, and a test split its own test set)."""
    frame = frame.copy()
    if "step_id" not in frame:
        frame["step_id"] = frame["name"].astype(str) + "|" + frame["step"].astype(str)
    if "split" in frame and "test_set" not in frame:
        frame["test_set"] = [("" if split in NOT_TEST_SETS else split) for split in frame["split"]]
    return frame


def _sharing(frame: pd.DataFrame) -> Dict[str, List[str]]:
    """step_id -> the experiments (in order) whose chains contain that step."""
    return {step_id: list(dict.fromkeys(rows["name"])) for step_id, rows in frame.groupby("step_id", sort=False)}


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
    step and mode (validation solid, training dashed) with the seeds' spread as a band. A step that
    several chains share is one gray line."""
    rows = curves[(curves["objective"] == objective) & curves["mode"].isin(list(modes))]
    if rows.empty:
        available = sorted(set(curves["objective"][curves["mode"] != ""]))
        raise ValueError(f"no learning curves of {objective!r} in modes {list(modes)}; available objectives: {available}")
    task = task or default_task(rows)
    rows = _with_ids(rows[rows["task"] == task])
    colors = experiment_colors(_names(curves))
    sharing = _sharing(_with_ids(curves))
    if steps is not None and not steps.empty:
        data = steps.drop_duplicates("step_id").set_index("step_id")["test_set"].to_dict()
    else:
        data = {}
    rows = rows.assign(panel=[data.get(step_id) or _own_comment(comment) or f"step {step}"
                              for step_id, comment, step in zip(rows["step_id"], rows["comment"], rows["step"])])
    first_chain = {step_id: names[0] for step_id, names in sharing.items()}
    rows = rows[rows["name"].to_numpy() == rows["step_id"].map(first_chain).to_numpy()]  # a shared step once
    stats = (rows.groupby(["panel", "step_id", "mode", "epoch"], sort=False)["value"].agg(["mean", "std"])
             .reset_index().sort_values("epoch", kind="stable"))  # fmt: skip
    step_of = rows.drop_duplicates("step_id").set_index("step_id")["step"]
    panels = list(dict.fromkeys(rows["panel"]))
    lines, columns = _grid(len(panels))
    fig, axes = _figure(4.6 * columns + 1.0, 3.6 * lines, lines, columns, sharey=True)
    for ax, (panel, in_panel) in zip(axes.flat, stats.groupby("panel", sort=False)):
        if in_panel["step_id"].nunique() > MANY:
            _many_curves(ax, in_panel, modes, sharing, colors)
        for (step_id, mode), line in [] if in_panel["step_id"].nunique() > MANY else in_panel.groupby(
                ["step_id", "mode"], sort=False):  # fmt: skip
            names, color = sharing[step_id], _color(sharing[step_id], colors)
            mean, std = line["mean"].to_numpy(), line["std"].fillna(0.0).to_numpy()
            ax.plot(line["epoch"], mean, MODE_STYLES.get(mode, ":"), color=color, marker=".",
                    label=f"{_who(names)}, step {int(step_of[step_id])} ({mode.lower()})")
            ax.fill_between(line["epoch"], mean - std, mean + std, color=color, alpha=0.15, linewidth=0)
        ax.set_title(f"trained on {panel}")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    _hide_unused(axes, len(panels))
    for ax in axes[:, 0]:
        ax.set_ylabel(_label(objective))
    fig.tight_layout()
    return _save(fig, path)


def _many_curves(ax, stats: pd.DataFrame, modes: Sequence[str], sharing: Mapping[str, List[str]],
                 colors: Mapping[str, Any]) -> None:
    """Many steps in one panel: a thin line per step and mode (one collection: fast to draw), and per mode
    the mean over the steps in black, which alone has a legend entry."""
    for mode in modes:
        of_mode = stats[stats["mode"] == mode]
        if of_mode.empty:
            continue
        groups = _lines(of_mode, "step_id", ["epoch", "mean"])
        ax.add_collection(LineCollection([line for _, line in groups],
                                         colors=[_color(sharing[step_id], colors) for step_id, _ in groups],
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
    ``split`` only): a colour per experiment, a marker per test set; lines join only the steps of one
    experiment tested on the same test set (a step 0 on the digits 0-4 and a step 1 on 5-9 stay apart;
    a later step that evaluates 0-4 again joins step 0: forgetting). Points are means over the seeds,
    error bars one std (none for one seed), small dots the seeds; a shared step is one gray point."""
    rows = _test_rows(final, split, objective, task)
    if rows.empty:
        raise ValueError(f"no final {objective} results on a test set" + (f" for split {split!r}" if split else ""))
    colors = experiment_colors(_names(final))
    sharing = _sharing(rows)
    test_sets = list(dict.fromkeys(rows["test_set"]))
    markers = {test_set: MARKERS[i % len(MARKERS)] for i, test_set in enumerate(test_sets)}
    names = _names(rows)
    many = len(names) > MANY
    offsets = np.linspace(-0.08, 0.08, len(names)) if len(names) > 1 and not many else np.zeros(len(names))
    fig, axes = _figure(6.5 if not many else 9.0, 4.2 if not many else 5.5)
    ax = axes[0][0]
    if many:
        _many_transfer_steps(ax, rows, names, colors, markers)
    drawn_shared = set()
    for offset, name in zip(offsets, [] if many else names):
        for test_set in test_sets:
            values = rows[(rows["name"] == name) & (rows["test_set"] == test_set)]
            if values.empty:
                continue
            points = []
            for (step, step_id), group in values.groupby(["step", "step_id"], sort=True):
                shared = len(sharing[step_id]) > 1
                stats = seed_stats(group.drop_duplicates(["seed", "split"])["value"])
                x = step + (0.0 if shared else offset)
                points.append((x, stats["mean"]))
                if shared:
                    if (step_id, test_set) in drawn_shared:
                        continue
                    drawn_shared.add((step_id, test_set))
                color = SHARED_COLOR if shared else colors[name]
                ax.errorbar([x], [stats["mean"]], yerr=[np.nan_to_num(stats["std"])], color=color,
                            marker=markers[test_set], linestyle="none", capsize=3,
                            gid=f"point|{'+'.join(sharing[step_id])}|{test_set}|{step}")
                ax.scatter(np.full(len(group), x), group["value"], color=color, s=10, alpha=0.5, zorder=3)
            if len(points) > 1:
                xs, ys = zip(*points)
                ax.plot(xs, ys, "-", color=colors[name], gid=f"line|{name}|{test_set}")
    steps = sorted(set(rows["step"]))
    ax.set_xticks(steps)
    ax.set_xlim(min(steps) - 0.5, max(steps) + 0.5)
    ax.set_xlabel("transfer step")
    ax.set_ylabel(_label(objective) if split is None else f"{split_name(split)} {_label(objective)}")
    where = "each test set" if split is None else f"the {split_name(split)} set"
    ax.set_title(f"{objective} on {where} after each transfer step" + (" (mean over seeds)" if many else ""))
    if many:
        handles = [Line2D([], [], color="0.5", linewidth=0.8, label=f"each of {len(names)} experiments"),
                   Line2D([], [], color="black", linewidth=2, label="their mean")]
    else:
        handles = [Line2D([], [], color=colors[name], label=name) for name in names]
    handles += [Line2D([], [], color="0.2", marker=markers[t], linestyle="none", label=f"tested on {t}") for t in test_sets]
    if any(len(sharing[step_id]) > 1 for step_id in sharing):
        handles.append(Line2D([], [], color=SHARED_COLOR, marker="o", linestyle="none", label="a step several chains share"))
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize="small", loc="best")
    fig.tight_layout()
    return _save(fig, path)


def _many_transfer_steps(ax, rows: pd.DataFrame, names: Sequence[str], colors: Mapping[str, Any],
                         markers: Mapping[str, str]) -> None:
    """Many experiments: per experiment and test set one thin line through its seeds' means, then the mean
    over the experiments in black (with the spread over them as error bars)."""
    means = rows.groupby(["name", "test_set", "step"], sort=False)["value"].mean().reset_index().sort_values("step")
    groups = _lines(means, ["name", "test_set"], ["step", "value"])
    ax.add_collection(LineCollection([line for _, line in groups],
                                     colors=[colors[name] for (name, _), _ in groups], linewidths=0.6, alpha=0.35))
    for test_set, of_set in means.groupby("test_set", sort=False):
        ax.scatter(of_set["step"], of_set["value"], s=5, marker=markers[test_set], color="0.45", alpha=0.4, linewidths=0)
        overall = of_set.groupby("step")["value"]
        ax.errorbar(overall.mean().index, overall.mean().values, yerr=overall.std(ddof=1).fillna(0.0).values,
                    color="black", linewidth=2, marker=markers[test_set], capsize=3, gid=f"mean|{test_set}")


def plot_final_accuracy(
    final: pd.DataFrame,
    split: str = "test",
    objective: str = "accuracy",
    task: Optional[str] = None,
    step: Optional[int] = None,
    path: Optional[PathLike] = None,
) -> Figure:
    """One bar per step of every chain (pre-training and teachers too; transfer step ``step`` only if
    given): the mean ``objective`` on its ``split`` over the seeds that finished it, error bars one std
    (none for one seed), dots the seeds, ``n`` under each bar. Bars are grouped by test set (only bars
    of one group compare the same data); a step several chains share is one gray bar."""
    rows = select(final, split, objective, task)
    rows = _with_ids(rows[rows["group"] == ""])
    if step is not None:
        rows = rows[rows["step"] == step]
    if rows.empty:
        raise ValueError(f"no finished step has {split} {objective} results" + (f" at transfer step {step}" if step is not None else ""))
    colors = experiment_colors(_names(final))
    sharing = _sharing(rows)
    test_sets = list(dict.fromkeys(rows["test_set"]))
    bars = []  # (test set, step_id)
    for test_set in test_sets:
        bars += [(test_set, step_id) for step_id in dict.fromkeys(rows[rows["test_set"] == test_set]["step_id"])]
    which = "every step" if step is None else f"transfer step {step}"
    if len(bars) > MANY:
        return _save(_ranked_steps(rows, sharing, test_sets, f"{split_name(split)} {objective} of {which}",
                                   f"{split_name(split)} {_label(objective)}"), path)
    fig, axes = _figure(1.25 * len(bars) + 2.5, 4.2)
    ax = axes[0][0]
    x = np.arange(len(bars))
    means, stds, labels, bar_colors = [], [], [], []
    for i, (test_set, step_id) in enumerate(bars):
        values = rows[(rows["step_id"] == step_id) & (rows["test_set"] == test_set)].drop_duplicates(["seed"])
        stats = seed_stats(values["value"])
        names = sharing[step_id]
        means.append(stats["mean"])
        stds.append(stats["std"])
        bar_colors.append(_color(names, colors))
        labels.append(f"{_who(names)}\n{_own_comment(values['comment'].iloc[0])} (step {int(values['step'].iloc[0])})"
                      f"\nn={int(stats['n_done'])}")
        ax.scatter(np.full(len(values), x[i]), values["value"], color="black", s=12, zorder=3)
    container = ax.bar(x, means, yerr=np.nan_to_num(stds), capsize=4, color=bar_colors, alpha=0.85)
    ax.bar_label(container, labels=[f"{m:.1f}" for m in means], label_type="center", fontsize="small")
    ax.set_xticks(x, labels, fontsize="small")
    start = 0
    for test_set in test_sets:
        width = sum(1 for t, _ in bars if t == test_set)
        if start:
            ax.axvline(start - 0.5, color="0.5", linewidth=0.8, linestyle="--")
        ax.text(start + (width - 1) / 2, 1.01, f"tested on {test_set}", transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize="small")
        start += width
    ax.set_ylabel(f"{split_name(split)} {_label(objective)}")
    ax.set_title(f"{split_name(split)} {objective} of {which} (mean ± std over seeds)", pad=18)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _ranked_steps(rows: pd.DataFrame, sharing: Mapping[str, List[str]], test_sets: Sequence[str], what: str,
                  ylabel: str, named: int = 3) -> Figure:
    """Many steps: a panel per test set, each step a point at its rank (mean over seeds, error bar one std),
    the ``named`` best and worst steps listed in the panel."""
    lines, columns = _grid(len(test_sets))
    fig, axes = _figure(5.5 * columns + 1.0, 4.2 * lines, lines, columns, sharey=True)
    for ax, test_set in zip(axes.flat, test_sets):
        of_set = rows[rows["test_set"] == test_set].drop_duplicates(["step_id", "seed"])
        stats = of_set.groupby("step_id", sort=False).agg(mean=("value", "mean"), std=("value", "std"),
                                                          step=("step", "first"), comment=("comment", "first"))
        stats = stats.sort_values("mean", ascending=False)
        rank = np.arange(1, len(stats) + 1)
        colors = [SHARED_COLOR if len(sharing[step_id]) > 1 else "C0" for step_id in stats.index]
        ax.errorbar(rank, stats["mean"], yerr=np.nan_to_num(stats["std"].to_numpy()), fmt="none", ecolor="0.6",
                    linewidth=0.6)
        ax.scatter(rank, stats["mean"], c=colors, s=9, zorder=3)

        def who(step_id: str, row: Any) -> str:
            return f"{_who(sharing[step_id])}, {_own_comment(row.comment)} (step {int(row.step)}): {row['mean']:.1f}"

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


def plot_accuracy_matrix(matrix: pd.DataFrame, objective: str = "accuracy", path: Optional[PathLike] = None) -> Figure:
    """The steps x test sets frame of :func:`nntransfer.analysis.metrics.accuracy_matrix` as a heat map,
    each cell labelled with its value (blank where a step did not evaluate a test set)."""
    if matrix.empty:
        raise ValueError("the accuracy matrix is empty: no finished step has results on a test set")
    values = matrix.to_numpy(dtype=float)
    rows = [f"{experiment} · step {step}" for experiment, step, _ in matrix.index]
    fig, axes = _figure(1.4 * values.shape[1] + 3.5, 0.45 * values.shape[0] + 1.8)
    ax = axes[0][0]
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto")
    if len(rows) <= 2 * MANY:  # beyond, the cells are too small to be labelled (accuracy_matrix.csv has them)
        middle = np.nanmean(values)
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize="small",
                        color="white" if value < middle else "black")
    ax.set_xticks(range(values.shape[1]), [f"tested on {c}" for c in matrix.columns], rotation=20, ha="right")
    every = max(1, -(-len(rows) // 60))  # at most 60 row labels
    ax.set_yticks(range(0, len(rows), every), rows[::every], fontsize="small" if every == 1 else "x-small")
    ax.set_title(f"{objective} of every step on every test set (mean over seeds)")
    fig.colorbar(image, ax=ax, label=_label(objective))
    fig.tight_layout()
    return _save(fig, path)


def level_splits(final: pd.DataFrame) -> List[str]:
    """The plain splits of ``final`` with results per severity or noise level."""
    rows = final[(final["variant"] == "plain") & (final["group"] != "") & final["level"].notna()]
    return list(dict.fromkeys(rows["split"]))


def plot_all(
    results: Results,
    out: Optional[PathLike] = None,
    split: str = "test",
    objective: str = "accuracy",
    close: bool = False,
) -> Dict[str, Figure]:
    """Every plot that ``results`` has data for, by name: ``learning_curves``, ``transfer_steps`` (every
    test set), ``final_accuracy`` (every step on ``split``), ``robustness_<split>`` for each split per
    severity or noise level, and ``accuracy_matrix``. With ``out``, each is saved as ``<out>/<name>.png``;
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
    if tested:
        figures["accuracy_matrix"] = plot_accuracy_matrix(accuracy_matrix(results, objective), objective,
                                                          path=target("accuracy_matrix"))
    if close:
        for fig in figures.values():
            plt.close(fig)
    return figures
