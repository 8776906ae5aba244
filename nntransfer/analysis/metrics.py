"""Transfer metrics of a recipe's results (:class:`~nntransfer.analysis.results.Results`).

``transfer_gain``     per transfer step: its accuracy minus that of the matching from-scratch run (the same
                      data, model and trainer without the chain settings, no predecessor), when the recipe
                      has one
``forgetting``        per step and earlier step of its chain: how much accuracy on the earlier step's test
                      set was lost, when the later step evaluates that test set
``accuracy_matrix``   steps x test sets: the mean accuracy of each step on every test set it evaluated

All are means over the seeds that finished; ``n`` says how many. A step that several chains share is
one row (``shared_by`` names the chains). ``nntransfer report`` writes them as ``transfer_gain.csv``,
``forgetting.csv`` and ``accuracy_matrix.csv``.
"""

from __future__ import annotations

import math
from typing import Optional

import pandas as pd

from nntransfer.analysis.results import Results, default_task

GAIN_COLUMNS = ["name", "step", "comment", "split", "test_set", "n", "mean", "scratch", "scratch_n", "scratch_mean",
                "gain"]
FORGETTING_COLUMNS = ["name", "step", "comment", "earlier_step", "test_set", "n", "learned", "after", "forgetting",
                      "forgetting_std"]


def _plain(results: Results, objective: str, task: Optional[str]) -> pd.DataFrame:
    """Finished plain rows of ``objective`` on test sets (no validation, no corruption or noise levels)."""
    final = results.final
    rows = final[(final["variant"] == "plain") & (final["group"] == "") & (final["objective"] == objective)
                 & (final["test_set"] != "")]
    if rows.empty:
        available = sorted(set(final["objective"])) if not final.empty else []
        raise ValueError(f"no final results of {objective!r} on a test set; available objectives: {', '.join(available) or 'none'}")
    task = task or default_task(rows)
    return rows[rows["task"] == task]


def transfer_gain(results: Results, split: str = "test", objective: str = "accuracy", task: Optional[str] = None) -> pd.DataFrame:
    """One row per experiment and transfer step after the first: the mean ``objective`` on the step's
    ``split`` over its seeds (``n``), the matching from-scratch run's (``scratch`` names its experiments,
    ``scratch_n`` counts its finished runs, each shared step once) and ``gain`` = mean - scratch_mean.
    Steps without a from-scratch run in the recipe have ``scratch=""`` and NaN."""
    rows = _plain(results, objective, task)
    rows = rows[rows["split"] == split]
    steps = results.steps
    firsts = steps[(steps["step"] == 0) & (steps["state"] == "done")]
    out = []
    for (name, level), group in steps[steps["step"] > 0].groupby(["name", "step"], sort=False):
        mine = rows[(rows["name"] == name) & (rows["step"] == level)]
        baseline = firsts[firsts["scratch_id"] == group["scratch_id"].iloc[0]]
        # each trained step once, however many chains share it
        unique = baseline.drop_duplicates(["step_id", "seed"])
        values = rows.merge(unique[["name", "seed", "step", "step_id"]], on=["name", "seed", "step", "step_id"])
        values = values.drop_duplicates(["step_id", "seed"])["value"]
        mean = mine["value"].mean() if len(mine) else math.nan
        scratch_mean = values.mean() if len(values) else math.nan
        out.append({"name": name, "step": int(level), "comment": group["comment"].iloc[0], "split": split,
                    "test_set": mine["test_set"].iloc[0] if len(mine) else group["test_set"].iloc[0], "n": len(mine),
                    "mean": mean, "scratch": ", ".join(dict.fromkeys(baseline["name"])), "scratch_n": len(values),
                    "scratch_mean": scratch_mean, "gain": mean - scratch_mean})
    return pd.DataFrame(out, columns=GAIN_COLUMNS)


def forgetting(results: Results, objective: str = "accuracy", task: Optional[str] = None) -> pd.DataFrame:
    """One row per experiment, step and earlier step of the chain whose test set the step evaluates:
    ``learned`` is the earlier step's ``objective`` on its own test set (right after learning it),
    ``after`` the later step's on the same test set, ``forgetting`` = learned - after (mean over the seeds
    that finished both, ``n``; ``forgetting_std`` their std, NaN for one seed)."""
    rows = _plain(results, objective, task)
    steps = results.steps.set_index(["name", "seed", "step"])
    per_seed = []
    for (name, seed), chain in rows.groupby(["name", "seed"], sort=False):
        values = chain.groupby(["step", "test_set"])["value"].mean()
        for (later, test_set), after in values.items():
            for earlier in range(later):
                own = steps.loc[(name, seed, earlier), "test_set"] if (name, seed, earlier) in steps.index else ""
                if own != test_set or (earlier, test_set) not in values.index:
                    continue
                learned = values[(earlier, test_set)]
                per_seed.append({"name": name, "seed": seed, "step": int(later), "earlier_step": earlier,
                                 "test_set": test_set, "learned": learned, "after": after, "forgetting": learned - after,
                                 "comment": chain[chain["step"] == later]["comment"].iloc[0]})
    if not per_seed:
        return pd.DataFrame(columns=FORGETTING_COLUMNS)
    frame = pd.DataFrame(per_seed)
    out = []
    for (name, later, earlier, test_set), group in frame.groupby(["name", "step", "earlier_step", "test_set"], sort=False):
        out.append({"name": name, "step": later, "comment": group["comment"].iloc[0], "earlier_step": earlier,
                    "test_set": test_set, "n": len(group), "learned": group["learned"].mean(),
                    "after": group["after"].mean(), "forgetting": group["forgetting"].mean(),
                    "forgetting_std": group["forgetting"].std(ddof=1) if len(group) > 1 else math.nan})
    return pd.DataFrame(out, columns=FORGETTING_COLUMNS)


def accuracy_matrix(results: Results, objective: str = "accuracy", task: Optional[str] = None) -> pd.DataFrame:
    """Steps x test sets: the mean ``objective`` over the seeds of each step (rows ``experiment``,
    ``step``, ``comment``; a step shared by several chains is one row, ``experiment`` names them all) on
    each test set (columns, in the order they first appear); NaN where a step did not evaluate a test set."""
    rows = _plain(results, objective, task)
    shared = results.steps.drop_duplicates("step_id").set_index("step_id")["shared_by"]
    rows = rows.drop_duplicates(["step_id", "seed", "split", "test_set"])
    order = list(dict.fromkeys(rows["step_id"]))
    columns = list(dict.fromkeys(rows["test_set"]))
    means = rows.groupby(["step_id", "test_set"], sort=False)["value"].mean().unstack("test_set")
    first = rows.drop_duplicates("step_id").set_index("step_id")
    index = pd.MultiIndex.from_tuples(
        [(shared.get(step_id, first.loc[step_id, "name"]), int(first.loc[step_id, "step"]), first.loc[step_id, "comment"])
         for step_id in order], names=["experiment", "step", "comment"])
    matrix = means.reindex(index=order, columns=columns)
    matrix.index = index
    matrix.columns.name = "test set"
    return matrix
