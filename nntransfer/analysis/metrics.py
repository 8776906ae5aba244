"""Transfer metrics of a recipe's results (:class:`~nntransfer.analysis.results.Results`).

``transfer_gain``       per transfer step: its accuracy minus that of its from-scratch run (a first step
                        with the same data and model whose trainer equals the step's without its transfer
                        settings; see ``nntransfer.analysis.baselines``), when the recipe has one
``forgetting``          per step and earlier step of its chain whose network it continues: how much
                        accuracy on the earlier step's test set was lost (never from a teacher to a student)
``accuracy_matrix``     steps x test sets: the mean accuracy of each step on every test set it evaluated
``continual_learning``  per chain of two or more tasks: average accuracy, backward and forward transfer
                        (BWT, FWT; Lopez-Paz & Ranzato 2017)

All are means over the seeds that finished; ``n`` says how many. A step that several chains share is
one row (``shared_by`` names the chains). ``nntransfer report`` writes them as ``transfer_gain.csv``,
``forgetting.csv``, ``accuracy_matrix.csv`` and ``continual_learning.csv``.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import pandas as pd

from nntransfer.analysis.results import Results, default_task

logger = logging.getLogger(__name__)

GAIN_COLUMNS = ["name", "step", "comment", "split", "test_set", "n", "mean", "scratch", "scratch_n", "scratch_mean",
                "gain"]
FORGETTING_COLUMNS = ["name", "step", "comment", "earlier_step", "test_set", "n", "learned", "after", "forgetting",
                      "forgetting_std"]
CL_COLUMNS = ["name", "tasks", "steps", "n", "acc", "bwt", "bwt_std", "fwt", "fwt_std", "scratch"]


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
    scratch_values = _scratch_values(rows, firsts)
    scratch_names = _scratch_names(firsts)
    mine = _values_by(rows, ["name", "step"])
    mine_test_set = _first(rows, ["name", "step"], "test_set")
    out = []
    later = steps[steps["step"] > 0].drop_duplicates(["name", "step"])  # each step's first row, as groupby's order
    for name, level, comment, scratch, test_set in zip(later["name"], later["step"], later["comment"], later["scratch_id"],
                                                       later["test_set"]):
        values = mine.get((name, level), _NONE)
        baseline = scratch_values.get(scratch, _NONE)
        mean = values.mean() if len(values) else math.nan
        scratch_mean = baseline.mean() if len(baseline) else math.nan
        out.append({"name": name, "step": int(level), "comment": comment, "split": split,
                    "test_set": mine_test_set.get((name, level), test_set), "n": len(values), "mean": mean,
                    "scratch": scratch_names.get(scratch, ""), "scratch_n": len(baseline), "scratch_mean": scratch_mean,
                    "gain": mean - scratch_mean})
    return pd.DataFrame(out, columns=GAIN_COLUMNS)


#: the values of a group that has none
_NONE = pd.Series([], dtype=float)


def _values_by(rows: pd.DataFrame, keys: Union[str, List[str]]) -> Dict[Any, pd.Series]:
    """key (a tuple for a list of columns) -> the ``value``\\ s of its rows, in the frame's order (so that every mean adds them up as before)."""
    return {key: values for key, values in rows.groupby(keys, sort=False)["value"]}


def _first(frame: pd.DataFrame, keys: List[str], column: str) -> Dict[Any, Any]:
    """key -> ``column`` of the key's first row."""
    first = frame.drop_duplicates(keys)
    return dict(zip(zip(*(first[k] for k in keys)), first[column]))


def _scratch_values(rows: pd.DataFrame, firsts: pd.DataFrame) -> Dict[str, pd.Series]:
    """scratch_id -> the ``value``\\ s of ``rows`` of the finished first steps with that ``scratch_id``, each
    trained step once however many chains share it (a step's ``config_id`` determines its ``scratch_id``)."""
    unique = firsts.drop_duplicates("step_id")[["name", "seed", "step", "config_id", "scratch_id"]]
    found = rows.merge(unique, on=["name", "seed", "step", "config_id"]).drop_duplicates("step_id")
    return _values_by(found, "scratch_id") if len(found) else {}


def _scratch_names(firsts: pd.DataFrame) -> Dict[str, str]:
    """scratch_id -> the experiments whose first step it is."""
    return {scratch: ", ".join(dict.fromkeys(names)) for scratch, names in firsts.groupby("scratch_id", sort=False)["name"]}


def _step_lookup(steps: pd.DataFrame) -> Dict[Tuple[Any, Any, int], Any]:
    """(name, seed, step) -> the row of ``results.steps`` (a named tuple)."""
    return {(row.name, row.seed, row.step): row for row in steps.itertuples(index=False)}


def _continuing(steps: Mapping[Tuple[Any, Any, int], Any], name: str, seed: Any, earlier: int, later: int) -> bool:
    """Whether every step after ``earlier`` up to ``later`` trains the network of the step before it."""
    return all((name, seed, k) in steps and bool(steps[(name, seed, k)].continues) for k in range(earlier + 1, later + 1))


def _means_by_chain(rows: pd.DataFrame) -> Dict[Tuple[Any, Any], Dict[Tuple[int, str], float]]:
    """(name, seed) -> {(step, test_set): mean value}, each chain's entries ordered by step and test set."""
    out: Dict[Tuple[Any, Any], Dict[Tuple[int, str], float]] = {}
    for (name, seed, step, test_set), mean in rows.groupby(["name", "seed", "step", "test_set"])["value"].mean().items():
        out.setdefault((name, seed), {})[(step, test_set)] = mean
    return out


def forgetting(results: Results, objective: str = "accuracy", task: Optional[str] = None) -> pd.DataFrame:
    """One row per experiment, step and earlier step of the chain whose test set the step evaluates, where
    the step trained on other data and continues the earlier step's network (each step in between starts
    from the weights before it; ``steps.continues``), never from a teacher to its student:
    ``learned`` is the earlier step's ``objective`` on its own test set (right after learning it),
    ``after`` the later step's on the same test set, ``forgetting`` = learned - after (mean over the seeds
    that finished both, ``n``; ``forgetting_std`` their std, NaN for one seed)."""
    rows = _plain(results, objective, task)
    steps = _step_lookup(results.steps)
    means = _means_by_chain(rows)
    comments = _first(rows, ["name", "seed", "step"], "comment")
    per_seed = []
    for name, seed in dict.fromkeys(zip(rows["name"], rows["seed"])):
        values = means[(name, seed)]
        for (later, test_set), after in values.items():
            trained_on = steps[(name, seed, later)].test_set if (name, seed, later) in steps else ""
            if trained_on == test_set:  # its own task: not forgetting
                continue
            for earlier in range(later):
                own = steps[(name, seed, earlier)].test_set if (name, seed, earlier) in steps else ""
                if own != test_set or (earlier, test_set) not in values:
                    continue
                if not _continuing(steps, name, seed, earlier, later):
                    continue
                learned = values[(earlier, test_set)]
                per_seed.append({"name": name, "seed": seed, "step": int(later), "earlier_step": earlier,
                                 "test_set": test_set, "learned": learned, "after": after, "forgetting": learned - after,
                                 "comment": comments[(name, seed, later)]})
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
    shared = results.steps.drop_duplicates("config_id").set_index("config_id")["shared_by"]
    rows = rows.drop_duplicates(["step_id", "split", "test_set"])
    order = list(dict.fromkeys(rows["config_id"]))
    columns = list(dict.fromkeys(rows["test_set"]))
    means = rows.groupby(["config_id", "test_set"], sort=False)["value"].mean().unstack("test_set")
    first = rows.drop_duplicates("config_id").set_index("config_id")
    index = pd.MultiIndex.from_tuples(
        [(shared.get(config_id, first.loc[config_id, "name"]), int(first.loc[config_id, "step"]), first.loc[config_id, "comment"])
         for config_id in order], names=["experiment", "step", "comment"])
    matrix = means.reindex(index=order, columns=columns)
    matrix.index = index
    matrix.columns.name = "test set"
    return matrix


def _tasks_of(steps: Mapping[Tuple[Any, Any, int], Any], name: str, seed: Any, last: int) -> List[int]:
    """The steps of one network's training in a chain: the last step and, going back, every step it
    continues (``steps.continues``), first to last."""
    sequence = [last]
    while sequence[0] > 0 and bool(steps[(name, seed, sequence[0])].continues):
        sequence.insert(0, sequence[0] - 1)
    return sequence


def continual_learning(results: Results, objective: str = "accuracy", task: Optional[str] = None) -> pd.DataFrame:
    """Continual-learning metrics per experiment whose network learns two or more tasks one after another.

    The tasks of a chain are the steps of the network its last step trains: that step and, going back,
    every step it continues (it starts from that step's weights, ``steps.continues``), each step's task
    being its own test set; a chain qualifies when these hold two or more different test sets. With
    R[i, j] the ``objective`` on task j's test set after training task i (each step evaluates the test
    sets of the earlier steps; see ``nntransfer.pipeline.step``) and T tasks, per seed:

    ``acc`` = 1/T * sum_j R[T, j]                      the average accuracy at the end
    ``bwt`` = 1/(T-1) * sum_{j<T} (R[T, j] - R[j, j])  backward transfer (Lopez-Paz & Ranzato 2017):
                                                       negative = forgetting of the earlier tasks
    ``fwt`` = 1/(T-1) * sum_{j>1} (R[j, j] - S_j)      forward transfer: what learning the earlier tasks
                                                       did for task j, against S_j, the mean ``objective``
                                                       of task j's from-scratch run (the baseline of
                                                       ``transfer_gain``, over its finished seeds)

    FWT differs from Lopez-Paz & Ranzato's R[j-1, j] - b_j (the accuracy on task j before learning it,
    against a randomly initialised network's): with a new readout per task that is chance, so the
    trained from-scratch network is the reference here (as in Díaz-Rodríguez et al. 2018). ``fwt`` is NaN
    unless every task after the first has a finished from-scratch run (``scratch`` names them).

    One row per experiment (means over the seeds whose matrix is complete, ``n``; ``*_std`` their std, NaN
    for one seed): name, tasks ("0-4 -> 5-9"), steps ("0, 1"), n, acc, bwt, bwt_std, fwt, fwt_std, scratch.
    A seed whose chain is incomplete is left out; one whose matrix misses a value although every step
    finished (e.g. a step stored before steps evaluated the earlier test sets) is left out and logged at
    WARNING.
    """
    rows = _plain(results, objective, task)
    steps = _step_lookup(results.steps)
    firsts = results.steps[(results.steps["step"] == 0) & (results.steps["state"] == "done")]
    values = rows.groupby(["name", "seed", "step", "test_set"])["value"].mean().to_dict()
    baselines = _scratch_means(rows, firsts)
    per_seed: List[Dict[str, Any]] = []
    for (name, seed), last in results.steps.groupby(["name", "seed"], sort=False)["step"].max().items():
        sequence = _tasks_of(steps, name, seed, int(last))
        tasks = [steps[(name, seed, k)].test_set for k in sequence]
        if len(set(tasks)) < 2 or any(steps[(name, seed, k)].state != "done" for k in sequence):
            continue  # one task, or an incomplete chain (load_results reported it)
        matrix = [[values.get((name, seed, i, t), math.nan) for t in tasks] for i in sequence]
        final, last = matrix[-1], len(tasks) - 1
        needed = final + [matrix[j][j] for j in range(last)]
        if any(math.isnan(v) for v in needed):
            logger.warning("%s seed %s: no %s for every task after every step (%s); left out of the continual-learning "
                           "metrics", name, seed, objective, " -> ".join(tasks))
            continue
        scratch = [baselines.get(steps[(name, seed, k)].scratch_id, (math.nan, "")) for k in sequence[1:]]
        fwt = sum(matrix[j][j] - scratch[j - 1][0] for j in range(1, len(tasks))) / last
        per_seed.append({"name": name, "seed": seed, "tasks": " -> ".join(tasks), "steps": ", ".join(map(str, sequence)),
                         "acc": sum(final) / len(final), "bwt": sum(final[j] - matrix[j][j] for j in range(last)) / last,
                         "fwt": fwt, "scratch": ", ".join(dict.fromkeys(n for _, n in scratch)) if fwt == fwt else ""})
    if not per_seed:
        return pd.DataFrame(columns=CL_COLUMNS)
    out = []
    for (name, tasks), group in pd.DataFrame(per_seed).groupby(["name", "tasks"], sort=False):
        spread = {f"{m}_std": group[m].std(ddof=1) if len(group) > 1 else math.nan for m in ("bwt", "fwt")}
        out.append({"name": name, "tasks": tasks, "steps": group["steps"].iloc[0], "n": len(group),
                    "acc": group["acc"].mean(), "bwt": group["bwt"].mean(), "fwt": group["fwt"].mean(), **spread,
                    "scratch": group["scratch"].iloc[0]})
    return pd.DataFrame(out, columns=CL_COLUMNS)


def _scratch_means(rows: pd.DataFrame, firsts: pd.DataFrame) -> Dict[str, Any]:
    """scratch_id -> (mean value on the own test set over the finished seeds, names of the experiments)."""
    names = _scratch_names(firsts)
    found = _scratch_values(rows[rows["split"] == "test"].drop_duplicates("step_id"), firsts)
    return {scratch: (values.mean(), names[scratch]) for scratch, values in found.items()}
