"""Results of a recipe as tidy pandas frames.

Every finished step of every transfer experiment stores ``output = {"tracker": AdvancedTracker state,
"final": final evaluation, ...}`` (see ``nntransfer.trainer``). This module turns them into three frames:

``status``  one row per (name, seed, step) of the recipe, finished or not:
            name, seed, step, comment, state, score, error, chain_steps, chain_complete
``curves``  one row per value of the training log:
            name, seed, step, comment, mode, task, objective, epoch, value
``final``   one row per value of the final evaluation:
            name, seed, step, comment, split, variant, group, level, task, objective, value,
            chain_steps, chain_complete

In ``final``, ``split`` is the evaluated split ("validation", "test", "test_rotated", "c_test",
"validation_noise"), ``variant`` how it was evaluated ("plain", "bn_train", "mc_dropout"), ``group`` the
corruption or noise kind ("" for plain splits) and ``level`` its severity or noise level (NaN for plain
splits). Steps that are not finished appear only in ``status``; a chain with a missing step is logged
as a warning and marked ``chain_complete=False``, so nothing disappears silently.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from nntransfer.defaults import TASK_KEY
from nntransfer.pipeline.runner import open_store
from nntransfer.pipeline.store import DONE, Store, step_status
from nntransfer.recipes.loading import Recipe, as_recipe

logger = logging.getLogger(__name__)

STEP_COLUMNS = ["name", "seed", "step", "comment"]
STATUS_COLUMNS = STEP_COLUMNS + ["state", "score", "error", "chain_steps", "chain_complete"]
CURVE_COLUMNS = STEP_COLUMNS + ["mode", "task", "objective", "epoch", "value"]
FINAL_COLUMNS = STEP_COLUMNS + ["split", "variant", "group", "level", "task", "objective", "value",
                                "chain_steps", "chain_complete"]
#: suffixes the trainer appends to a split evaluated another way (e.g. "test_bn_train")
VARIANTS = ("bn_train", "mc_dropout")
MAIN_TASK = TASK_KEY


# ---------------------------------------------------------------------------- one output -> rows


def tracker_frame(tracker: Mapping[str, Any]) -> pd.DataFrame:
    """The training log of one step (``output["tracker"]``, an ``AdvancedTracker`` state) as rows
    ``mode, task, objective, epoch, value``.

    Values that sit beside a ``"normalization"`` entry (sums over the examples of an epoch) are divided
    by it; epochs whose normalisation is 0 were not evaluated (e.g. validation every ``interval``
    epochs) and give no row. Entry 0 of every list is the tracker's initial state before the first
    epoch and is skipped. Top-level entries such as ``lr`` get ``mode = task = ""``.
    """
    log = tracker.get("log", tracker)
    rows: List[Tuple[str, str, str, int, float]] = []

    def emit(path: Tuple[str, ...], values: np.ndarray, norm: Optional[np.ndarray]) -> None:
        mode = path[0] if len(path) > 1 else ""
        task = "/".join(path[1:-1])
        for epoch in range(1, len(values)):
            value = float(values[epoch])
            if norm is not None:
                if epoch >= len(norm) or norm[epoch] <= 0:
                    continue
                value /= float(norm[epoch])
            rows.append((mode, task, path[-1], epoch, value))

    def walk(node: Mapping[str, Any], path: Tuple[str, ...]) -> None:
        norm = node.get("normalization")
        norm = None if norm is None or isinstance(norm, Mapping) else np.asarray(norm, dtype=float)
        for key, child in node.items():
            if isinstance(child, Mapping):
                walk(child, path + (str(key),))
            elif key != "normalization" or norm is None:
                emit(path + (str(key),), np.atleast_1d(np.asarray(child, dtype=float)), norm)

    walk(log, ())
    return pd.DataFrame(rows, columns=["mode", "task", "objective", "epoch", "value"])


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (numbers.Number, np.number)) or (isinstance(value, np.ndarray) and value.ndim == 0)


def _is_task_results(node: Any) -> bool:
    """``{task: {objective: number}}``: the leaves of the final evaluation."""
    return (
        isinstance(node, Mapping)
        and bool(node)
        and all(isinstance(v, Mapping) and v and all(_is_scalar(x) for x in v.values()) for v in node.values())
    )


def _task_results(node: Any, path: Tuple[Any, ...] = ()) -> Iterator[Tuple[Tuple[Any, ...], Mapping]]:
    if _is_task_results(node):
        yield path, node
    elif isinstance(node, Mapping):
        for key, child in node.items():
            yield from _task_results(child, path + (key,))


def _split_variant(key: str) -> Tuple[str, str]:
    for variant in VARIANTS:
        if key.endswith("_" + variant) and len(key) > len(variant) + 1:
            return key[: -len(variant) - 1], variant
    return key, "plain"


def _group_level(path: Tuple[Any, ...]) -> Tuple[str, float]:
    """(corruption or noise kind, severity or level) of the keys between a split and its tasks."""
    if not path:
        return "", math.nan
    last = path[-1]
    if _is_scalar(last) and not isinstance(last, bool):
        return "/".join(str(p) for p in path[:-1]), float(last)
    return "/".join(str(p) for p in path), math.nan


def final_frame(final: Mapping[str, Any]) -> pd.DataFrame:
    """The final evaluation of one step (``output["final"]``) as rows
    ``split, variant, group, level, task, objective, value`` (see the module docstring)."""
    rows = []
    for key, node in final.items():
        split, variant = _split_variant(str(key))
        for path, tasks in _task_results(node):
            group, level = _group_level(path)
            for task, objectives in tasks.items():
                for objective, value in objectives.items():
                    rows.append((split, variant, group, level, str(task), str(objective), float(value)))
    frame = pd.DataFrame(rows, columns=["split", "variant", "group", "level", "task", "objective", "value"])
    frame["level"] = frame["level"].astype(float)
    return frame


# ---------------------------------------------------------------------------- a recipe's results


@dataclass
class Results:
    """The frames of one recipe (see the module docstring); ``where`` says where they were read."""

    recipe: str
    where: str
    status: pd.DataFrame
    curves: pd.DataFrame
    final: pd.DataFrame

    @property
    def incomplete(self) -> pd.DataFrame:
        """The status rows of chains with at least one unfinished step."""
        return self.status[~self.status["chain_complete"]].reset_index(drop=True)

    def summary(self, split: str = "test", objective: str = "accuracy", task: Optional[str] = None) -> pd.DataFrame:
        """Per experiment and step: mean, std, min, max of ``objective`` on ``split`` over the seeds
        that finished (``n_done`` of ``n_seeds``); see :func:`summarize`."""
        return summarize(self.final, self.status, split=split, objective=objective, task=task)

    def plot(self, out: Optional[Union[str, Path]] = None, **options: Any) -> Dict[str, Any]:
        """Every plot of :func:`nntransfer.analysis.plots.plot_all` (saved as PNGs in ``out`` if given)."""
        from nntransfer.analysis.plots import plot_all  # matplotlib only when plotting

        return plot_all(self, out=out, **options)


def _chain_order(status: pd.DataFrame) -> Dict[str, int]:
    return {name: i for i, name in enumerate(dict.fromkeys(status["name"]))}


def _sorted(frame: pd.DataFrame, order: Mapping[str, int], extra: Sequence[str] = ()) -> pd.DataFrame:
    if frame.empty:
        return frame.reset_index(drop=True)
    keys = frame["name"].map(order)
    frame = frame.assign(_order=keys).sort_values(["_order", "seed", "step", *extra], kind="stable")
    return frame.drop(columns="_order").reset_index(drop=True)


def _warn_incomplete(status: pd.DataFrame) -> None:
    missing = status[status["state"] != DONE]
    if missing.empty:
        return
    chains = []
    for (name, seed), rows in missing.groupby(["name", "seed"], sort=False):
        steps = ", ".join(f"step {r.step} {r.state}" for r in rows.itertuples())
        chains.append(f"{name} seed {seed} ({steps})")
    total = status.groupby(["name", "seed"]).ngroups
    logger.warning(
        "%d of %d chains are incomplete: %s; their finished steps are included, the rest is missing",
        len(chains), total, "; ".join(chains),
    )


def collect_results(recipe: Recipe, store: Store) -> Results:
    """Read every finished step of ``recipe`` from ``store`` (any :class:`~nntransfer.pipeline.store.Store`)
    into :class:`Results`. ValueError when no step is finished."""
    status_rows = step_status(store, recipe)
    status = pd.DataFrame(
        [(r.name, r.seed, r.step, r.comment, r.state, r.score, r.error) for r in status_rows],
        columns=STATUS_COLUMNS[:7],
    )
    if status.empty:
        raise ValueError(f"recipe {recipe.name} defines no experiments")
    chains = status.groupby(["name", "seed"], sort=False)
    status["chain_steps"] = chains["step"].transform("size").astype(int)
    status["chain_complete"] = chains["state"].transform(lambda states: bool((states == DONE).all())).astype(bool)
    status["score"] = status["score"].astype(float)
    done = status[status["state"] == DONE]
    if done.empty:
        raise ValueError(
            f"none of the {len(status)} steps of recipe {recipe.name} is finished in {store.where}; "
            "run the recipe first (nntransfer run RECIPE) or point to where it ran (--workdir / --schema)"
        )
    _warn_incomplete(status)

    steps = status.set_index(["name", "seed", "step"])
    curves, finals = [], []
    for description, chain in recipe.transfer_experiments.items():
        for level in range(len(chain)):
            info = steps.loc[(description.name, description.seed, level)]
            if info["state"] != DONE:
                continue
            output = store.load(chain.step_key(level)).output
            ids = dict(name=description.name, seed=description.seed, step=level, comment=chain[level].comment)
            if not isinstance(output, Mapping) or not ({"tracker", "final"} & set(output)):
                logger.warning("%s seed %s step %d: the output has no 'tracker' or 'final' entry; nothing to analyse",
                               description.name, description.seed, level)
                continue
            if "tracker" in output:
                curves.append(tracker_frame(output["tracker"]).assign(**ids))
            if "final" in output:
                chain_ids = dict(chain_steps=int(info["chain_steps"]), chain_complete=bool(info["chain_complete"]))
                finals.append(final_frame(output["final"]).assign(**ids, **chain_ids))
    order = _chain_order(status)
    curves_frame = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
    final_frame_ = pd.concat(finals, ignore_index=True) if finals else pd.DataFrame(columns=FINAL_COLUMNS)
    return Results(
        recipe=recipe.name,
        where=store.where,
        status=status[STATUS_COLUMNS],
        curves=_sorted(curves_frame[CURVE_COLUMNS], order, ["mode", "task", "objective", "epoch"]),
        final=_sorted(final_frame_[FINAL_COLUMNS], order),
    )


def open_results_store(workdir: Optional[Union[str, Path]] = None, schema: Optional[str] = None) -> Store:
    """The store that holds the results: the local work folder ``workdir`` (default
    ``./nntransfer_work``) or the tables of ``schema``; never creates either."""
    if workdir is not None and schema is not None:
        raise ValueError("give either a work folder (--workdir) or a database schema (--schema), not both")
    if schema is not None:
        return open_store("datajoint", schema=schema, create=False)
    return open_store("local", workdir=None if workdir is None else str(workdir), create=False)


def load_results(
    recipe: Union[str, Path, Recipe],
    experiment: Optional[str] = None,
    workdir: Optional[Union[str, Path]] = None,
    schema: Optional[str] = None,
) -> Results:
    """Load the results of ``recipe`` (a folder, ``.py`` file, module name, :class:`Recipe`, or the
    experiments themselves as :func:`nntransfer.run` takes them) from the
    local work folder ``workdir`` (default ``./nntransfer_work``) or from the tables of ``schema``.

    ``experiment`` picks one module of a recipe folder (like ``nntransfer run --experiment``).
    """
    recipe = as_recipe(recipe, experiment)
    return collect_results(recipe, open_results_store(workdir, schema))


# ---------------------------------------------------------------------------- aggregation


def default_task(frame: pd.DataFrame) -> str:
    """The main classification task if the frame has it, else its first task."""
    tasks = list(dict.fromkeys(frame["task"])) if not frame.empty else []
    if MAIN_TASK in tasks or not tasks:
        return MAIN_TASK
    return tasks[0]


def select(
    final: pd.DataFrame,
    split: str = "test",
    objective: str = "accuracy",
    task: Optional[str] = None,
    variant: str = "plain",
) -> pd.DataFrame:
    """Rows of ``final`` for one split, objective, task and variant; ValueError listing what exists."""
    for column, value in (("split", split), ("objective", objective), ("variant", variant)):
        available = sorted(set(final[column]))
        if value not in available:
            raise ValueError(f"no final results with {column} {value!r}; available: {', '.join(map(str, available)) or 'none'}")
    rows = final[(final["split"] == split) & (final["objective"] == objective) & (final["variant"] == variant)]
    task = task or default_task(rows)
    if task not in set(rows["task"]):
        raise ValueError(f"no final results for task {task!r} on {split}; available: {', '.join(sorted(set(rows['task'])))}")
    return rows[rows["task"] == task]


def seed_stats(values: pd.Series) -> pd.Series:
    """Mean, std (0 for one seed), min, max and count of one group's values."""
    return pd.Series(
        {
            "mean": values.mean(),
            "std": values.std(ddof=1) if len(values) > 1 else 0.0,
            "min": values.min(),
            "max": values.max(),
            "n_done": len(values),
        }
    )


def summarize(
    final: pd.DataFrame,
    status: pd.DataFrame,
    split: str = "test",
    objective: str = "accuracy",
    task: Optional[str] = None,
) -> pd.DataFrame:
    """One row per experiment name and transfer step of ``status`` (finished or not): comment,
    ``n_done`` of ``n_seeds``, and mean/std/min/max of ``objective`` on the plain ``split`` over the
    finished seeds (NaN where none finished)."""
    plain = select(final, split, objective, task)
    plain = plain[plain["group"] == ""]
    stats = {key: seed_stats(rows["value"]) for key, rows in plain.groupby(["name", "step"], sort=False)}
    rows = []
    for (name, step), steps in status.groupby(["name", "step"], sort=False):
        values = stats.get((name, step), pd.Series({"mean": math.nan, "std": math.nan, "min": math.nan,
                                                    "max": math.nan, "n_done": 0}))
        rows.append({"name": name, "step": int(step), "comment": steps["comment"].iloc[0],
                     "n_done": int(values["n_done"]), "n_seeds": len(steps),
                     "mean": values["mean"], "std": values["std"], "min": values["min"], "max": values["max"]})
    return pd.DataFrame(rows, columns=["name", "step", "comment", "n_done", "n_seeds", "mean", "std", "min", "max"])
