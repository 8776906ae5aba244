"""Plots of a recipe's results (the frames of ``nntransfer.analysis.results``).

Every function takes a frame, returns the matplotlib ``Figure`` (shown inline in notebooks) and, when
``path`` is given, saves it as a PNG. Experiments keep one colour across all plots; seeds are
aggregated: lines and bars show the mean over the seeds, bands and error bars one standard deviation,
dots the single seeds.

``plot_learning_curves``  objective per epoch, one panel per transfer step, a line per experiment and mode
``plot_transfer_steps``   final objective per transfer step, a line per experiment
``plot_final_accuracy``   a bar per experiment: its chain's last step
``plot_robustness``       objective against corruption severity or noise level, a panel per corruption/noise kind
``plot_all``              all of them for one :class:`~nntransfer.analysis.results.Results`
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import matplotlib

if not os.environ.get("MPLBACKEND") and "ipykernel" not in sys.modules and sys.platform.startswith("linux") and not (
    os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
):
    matplotlib.use("Agg")  # no display (servers, workers, CI): render to files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nntransfer.analysis.results import Results, default_task, seed_stats, select  # noqa: E402

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
MODE_STYLES = {"Validation": "-", "Training": "--"}


def _label(objective: str) -> str:
    return "accuracy (%)" if objective == "accuracy" else objective


def experiment_colors(names: Sequence[str]) -> Dict[str, Any]:
    """One colour per experiment name, in the given order (the recipe's)."""
    cycle = plt.rcParams["axes.prop_cycle"].by_key().get("color") or ["C0"]
    return {name: cycle[i % len(cycle)] for i, name in enumerate(dict.fromkeys(names))}


def _save(fig: Figure, path: Optional[PathLike]) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        logger.info("wrote %s", path)
    return fig


def _names(frame: pd.DataFrame) -> List[str]:
    return list(dict.fromkeys(frame["name"]))


def _last_steps(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of each chain's last step (``chain_steps - 1``)."""
    return frame[frame["step"] == frame["chain_steps"] - 1]


def plot_learning_curves(
    curves: pd.DataFrame,
    objective: str = "accuracy",
    task: Optional[str] = None,
    modes: Sequence[str] = ("Training", "Validation"),
    path: Optional[PathLike] = None,
) -> Figure:
    """``objective`` per epoch; one panel per transfer step, in it one line per experiment and mode
    (validation solid, training dashed) with the seeds' spread as a band."""
    rows = curves[(curves["objective"] == objective) & curves["mode"].isin(list(modes))]
    if rows.empty:
        available = sorted(set(curves["objective"][curves["mode"] != ""]))
        raise ValueError(f"no learning curves of {objective!r} in modes {list(modes)}; available objectives: {available}")
    task = task or default_task(rows)
    rows = rows[rows["task"] == task]
    colors = experiment_colors(_names(curves))
    steps = sorted(set(rows["step"]))
    fig, axes = plt.subplots(1, len(steps), figsize=(4.2 * len(steps) + 1.0, 3.4), squeeze=False, sharey=True)
    for ax, step in zip(axes[0], steps):
        at_step = rows[rows["step"] == step]
        for name in _names(at_step):
            for mode in modes:
                values = at_step[(at_step["name"] == name) & (at_step["mode"] == mode)]
                if values.empty:
                    continue
                by_epoch = values.groupby("epoch")["value"]
                mean, std = by_epoch.mean(), by_epoch.std(ddof=1).fillna(0.0)
                ax.plot(mean.index, mean.values, MODE_STYLES.get(mode, ":"), color=colors[name], marker=".",
                        label=f"{name} ({mode.lower()})")
                ax.fill_between(mean.index, mean - std, mean + std, color=colors[name], alpha=0.15, linewidth=0)
        ax.set_title(f"transfer step {step}")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    axes[0][0].set_ylabel(_label(objective))
    fig.tight_layout()
    return _save(fig, path)


def plot_transfer_steps(
    final: pd.DataFrame,
    split: str = "test",
    objective: str = "accuracy",
    task: Optional[str] = None,
    path: Optional[PathLike] = None,
) -> Figure:
    """The final ``objective`` on ``split`` after each transfer step: one line per experiment (mean
    over the seeds, error bars one std, dots the seeds)."""
    rows = select(final, split, objective, task)
    rows = rows[rows["group"] == ""]
    colors = experiment_colors(_names(final))
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    names = _names(rows)
    offsets = np.linspace(-0.08, 0.08, len(names)) if len(names) > 1 else [0.0]
    for offset, name in zip(offsets, names):
        values = rows[rows["name"] == name]
        stats = values.groupby("step")["value"].apply(seed_stats).unstack()
        ax.errorbar(stats.index + offset, stats["mean"], yerr=stats["std"], color=colors[name], marker="o",
                    capsize=3, label=name)
        ax.scatter(values["step"] + offset, values["value"], color=colors[name], s=10, alpha=0.5, zorder=3)
    steps = sorted(set(rows["step"]))
    ax.set_xticks(steps)
    ax.set_xlim(min(steps) - 0.5, max(steps) + 0.5)
    ax.set_xlabel("transfer step")
    ax.set_ylabel(f"{split} {_label(objective)}")
    ax.set_title(f"{split} {objective} after each transfer step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, path)


def plot_final_accuracy(
    final: pd.DataFrame,
    split: str = "test",
    objective: str = "accuracy",
    task: Optional[str] = None,
    step: Optional[int] = None,
    path: Optional[PathLike] = None,
) -> Figure:
    """One bar per experiment: the mean ``objective`` on ``split`` over the seeds of its chain's last
    step (or of transfer step ``step``); error bars one std, dots the seeds, ``n`` under each bar.
    An experiment whose step no seed finished keeps its place, marked "not finished"."""
    rows = select(final, split, objective, task)
    rows = rows[rows["group"] == ""]
    rows = _last_steps(rows) if step is None else rows[rows["step"] == step]
    names = _names(final)
    colors = experiment_colors(names)
    stats = {name: seed_stats(rows[rows["name"] == name]["value"]) for name in names}
    means = [stats[name]["mean"] if stats[name]["n_done"] else np.nan for name in names]
    stds = [stats[name]["std"] if stats[name]["n_done"] else np.nan for name in names]
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 2.5, 3.8))
    x = np.arange(len(names))
    bars = ax.bar(x, np.nan_to_num(means), yerr=np.nan_to_num(stds), capsize=4, color=[colors[n] for n in names],
                  alpha=0.85, label=names)
    ax.bar_label(bars, labels=[f"{m:.1f}" if np.isfinite(m) else "not finished" for m in means],
                 label_type="center", fontsize="small")
    for i, name in enumerate(names):
        seeds = rows[rows["name"] == name]["value"]
        ax.scatter(np.full(len(seeds), x[i]), seeds, color="black", s=12, zorder=3)
    ax.set_xticks(x, [f"{name}\nn={int(stats[name]['n_done'])}" for name in names])
    ax.set_xlabel("experiment")
    ax.set_ylabel(f"{split} {_label(objective)}")
    which = "last transfer step" if step is None else f"transfer step {step}"
    ax.set_title(f"{split} {objective} ({which}, mean ± std over seeds)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


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
    panels = [("mean over " + ("corruptions" if split == "c_test" else "kinds"), None)] if len(groups) > 1 else []
    panels += [(group, group) for group in groups]
    columns = min(len(panels), 4)
    lines = -(-len(panels) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(4.0 * columns + 1.0, 3.4 * lines), squeeze=False, sharey=True)
    colors = experiment_colors(_names(final))
    for ax, (title, group) in zip(axes.flat, panels):
        panel = rows if group is None else rows[rows["group"] == group]
        for name in _names(panel):
            values = panel[panel["name"] == name]
            per_seed = values.groupby(["seed", "level"])["value"].mean().reset_index()  # mean over the groups
            by_level = per_seed.groupby("level")["value"]
            mean, std = by_level.mean(), by_level.std(ddof=1).fillna(0.0)
            ax.errorbar(mean.index, mean.values, yerr=std.values, color=colors[name], marker="o", capsize=3, label=name)
        ax.set_title(f"{split}: {title}")
        if split == "c_test":
            ax.set_xlabel("severity")
            ax.xaxis.get_major_locator().set_params(integer=True)
        else:
            ax.set_xlabel((group or "level").replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(_label(objective))
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
    """Every plot that ``results`` has data for, by name: ``learning_curves``, ``transfer_steps``,
    ``final_accuracy`` and ``robustness_<split>`` for each split per severity or noise level.
    With ``out``, each is saved as ``<out>/<name>.png``; ``close`` closes the figures afterwards
    (batch use; the returned figures can still be saved)."""
    out = Path(out) if out is not None else None

    def target(name: str) -> Optional[Path]:
        return out / f"{name}.png" if out is not None else None

    figures: Dict[str, Figure] = {}
    if not results.curves.empty:
        figures["learning_curves"] = plot_learning_curves(results.curves, objective, path=target("learning_curves"))
    if not results.final.empty:
        figures["transfer_steps"] = plot_transfer_steps(results.final, split, objective, path=target("transfer_steps"))
        figures["final_accuracy"] = plot_final_accuracy(results.final, split, objective, path=target("final_accuracy"))
        for level_split in level_splits(results.final):
            name = f"robustness_{level_split}"
            figures[name] = plot_robustness(results.final, level_split, objective, path=target(name))
    if close:
        for fig in figures.values():
            plt.close(fig)
    return figures
