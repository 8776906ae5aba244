"""Results of a recipe as tidy pandas frames.

Every finished step of every transfer experiment stores ``output = {"tracker": AdvancedTracker state,
"final": final evaluation, ...}`` (see ``nntransfer.trainer``). This module turns them into three frames:

``status``  one row per (name, seed, step) of the recipe, finished or not:
            name, seed, step, trained_seed, comment, state, score, error, chain_steps, chain_complete, code, step_id
``curves``  one row per value of the training log:
            name, seed, step, trained_seed, comment, mode, task, objective, epoch, value, step_id, config_id
``final``   one row per value of the final evaluation:
            name, seed, step, trained_seed, comment, split, variant, group, level, task, objective, value,
            chain_steps, chain_complete, test_set, step_id, config_id
``steps``   one row per (name, seed, step) of the recipe: who a step is (see below)
            name, seed, step, trained_seed, comment, label, state, step_id, config_id, shared_by, scratch_id, test_set, continues, code

In ``final``, ``split`` is the evaluated split ("validation", "test", "test_rotated", "c_test",
"validation_noise"), ``variant`` how it was evaluated ("plain", "bn_train", "mc_dropout"), ``group`` the
corruption or noise kind ("" for plain splits) and ``level`` its severity or noise level (NaN for plain
splits). Steps that are not finished appear only in ``status``; a chain with a missing step is logged
as a warning and marked ``chain_complete=False``, so nothing disappears silently.

``seed`` is the chain's (its ``Description``'s), ``trained_seed`` the one the step trained with: the same,
except for an earlier step whose ``Experiment`` has a seed of its own (one teacher that the chains of several
seeds share). Means over seeds count each trained step (``step_id``) once.

Which rows are comparable:

- ``test_set`` names the data a split tests on ("" for validation and training splits). Splits that the
  dataset config defines (``test``, ``test_rotated``, ``c_test``, each ``test_transforms`` entry) are the
  same test set when the config's test-relevant fields are equal (training-only settings such as
  ``batch_size``, ``examples_per_class`` or augmentation do not count); the name is the steps' own comment
  (``"0-4"``), or the data set and classes when the steps on it have different comments, plus the split
  (``"0-4 test_unseen"``). A step whose training data differ from an earlier step's in its chain also
  evaluates that step's test sets at the end, as the splits ``"step 0 test"`` (see
  ``nntransfer.pipeline.step``): they are the earlier step's test sets. A split a custom dataset function
  adds is the test set its name says: name it after an earlier step's test set (e.g. ``"0-4"``) and it
  counts as that test set in the forgetting and the accuracy matrix of ``nntransfer.analysis.metrics``.
- ``step_id`` is the step's id in the store: the hash of its full key (seed included), the name of its
  folder in a work folder, the id whose first 8 characters ``status`` and ``run`` print and whose unique
  prefix ``diff``, ``lineage`` and ``forget`` take (``nntransfer.run()``'s rows carry it as ``.id``).
- ``config_id`` is the same for the same configs from the chain's first step up to this one (the seed left
  out): chains that share a pre-training step share its ``config_id`` on every seed, and plots draw it once.
  ``shared_by`` lists the experiments that share it.
- ``scratch_id`` identifies a step's data, model and trainer without its transfer settings (the chain
  settings and every field and main-loop module of a transfer method's mixin; see
  ``nntransfer.analysis.baselines``); a first step with a later step's ``scratch_id`` is that step's
  from-scratch baseline.
- ``continues`` says whether a step trains the previous step's network further (it starts from its
  weights and is not a student of it): forgetting and the continual-learning metrics follow only such
  steps, never a teacher to its student.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from nntransfer.analysis.baselines import continues_previous, scratch_id
from nntransfer.configs.test_sets import DERIVED_SPLITS, NOT_TEST_SETS, parse_earlier_split, short_hash, split_identity
from nntransfer.configs.transfer_experiment import TransferExperiment
from nntransfer.defaults import TASK_KEY
from nntransfer.pipeline.addresses import open_store
from nntransfer.pipeline.backends import store_address
from nntransfer.pipeline.drift import current_drift, mark_drift
from nntransfer.pipeline.store import DONE, Store, step_status
from nntransfer.recipes.loading import Recipe, as_recipe
from nntransfer.recipes.selection import select_chains
from nntransfer.training_log import tracker_rows  # not the trainer package: reading results needs no torch

logger = logging.getLogger(__name__)

STEP_COLUMNS = ["name", "seed", "step", "trained_seed", "comment"]
STATUS_COLUMNS = STEP_COLUMNS + ["state", "score", "error", "chain_steps", "chain_complete", "code", "step_id"]
CURVE_COLUMNS = STEP_COLUMNS + ["mode", "task", "objective", "epoch", "value", "step_id", "config_id"]
FINAL_COLUMNS = STEP_COLUMNS + ["split", "variant", "group", "level", "task", "objective", "value",
                                "chain_steps", "chain_complete", "test_set", "step_id", "config_id"]
STEPS_COLUMNS = STEP_COLUMNS + ["label", "state", "step_id", "config_id", "shared_by", "scratch_id", "test_set", "continues", "code"]
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
    return pd.DataFrame(tracker_rows(tracker), columns=["mode", "task", "objective", "epoch", "value"])


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


def final_rows(final: Mapping[str, Any]) -> List[Tuple[str, str, str, float, str, str, float]]:
    """The final evaluation of one step (``output["final"]``) as tuples
    ``(split, variant, group, level, task, objective, value)`` (see the module docstring)."""
    rows = []
    for key, node in final.items():
        split, variant = _split_variant(str(key))
        for path, tasks in _task_results(node):
            group, level = _group_level(path)
            for task, objectives in tasks.items():
                for objective, value in objectives.items():
                    rows.append((split, variant, group, level, str(task), str(objective), float(value)))
    return rows


def final_frame(final: Mapping[str, Any]) -> pd.DataFrame:
    """The final evaluation of one step (``output["final"]``) as rows
    ``split, variant, group, level, task, objective, value`` (see the module docstring)."""
    frame = pd.DataFrame(final_rows(final), columns=["split", "variant", "group", "level", "task", "objective", "value"])
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
    steps: pd.DataFrame

    @property
    def incomplete(self) -> pd.DataFrame:
        """The status rows of chains with at least one unfinished step."""
        return self.status[~self.status["chain_complete"]].reset_index(drop=True)

    def summary(self, split: Optional[str] = "test", objective: str = "accuracy", task: Optional[str] = None) -> pd.DataFrame:
        """Per experiment, step and split: mean, std, min, max of ``objective`` over the seeds that
        finished (``n_done`` of ``n_seeds``; std is NaN for one seed); ``split=None``: every plain split.
        See :func:`summarize`."""
        return summarize(self.final, self.status, split=split, objective=objective, task=task)


# ---------------------------------------------------------------------------- who a step is


def own_comments(chain: TransferExperiment) -> List[str]:
    """Each step's own comment (``"5-9"``; ``step.comment`` is the chain's ``"0-4 -> 5-9"``)."""
    return [entry.get("comment") or "" for entry in chain.to_dict()["configs"]]


def config_ids(chain: TransferExperiment) -> List[str]:
    """Per step: the hash of the configs from the chain's first step up to it, seeds left out (the same
    for a pre-training step that several chains share)."""
    ids, history = [], []
    for level, step in enumerate(chain):
        history.append({role: config.to_dict() for role, config in step.configs.items()})
        history[-1]["data_transfer"] = bool(getattr(step.trainer, "data_transfer", False)) if level else False
        ids.append(short_hash(history))
    return ids


def _data_name(dataset: Mapping[str, Any]) -> str:
    """A readable name of a dataset config's data: ``"Digits 0-4"``."""
    name = str(dataset.get("dataset_cls") or str(dataset.get("fn", "data")).rsplit(".", 1)[-1])
    classes = dataset.get("filter_classes")
    if isinstance(classes, (list, tuple)) and len(classes) == 2:
        name += f" {classes[0]}-{classes[1] - 1}"
    return name


@dataclass
class _ChainFacts:
    """What a load needs of one chain's configs, computed once per load: hashing configs is what a report
    of many chains spends its time on."""

    comments: List[str]  # each step's own comment
    ids: List[str]  # config_ids
    datasets: List[Dict[str, Any]]  # each step's dataset config's to_dict()
    test_sets: List[Optional[str]]  # the identity of each step's test split


def _chain_facts(recipe: Recipe) -> Dict[Any, _ChainFacts]:
    seen: Dict[int, Tuple[Dict[str, Any], Optional[str]]] = {}  # id(dataset config): a config chains share, once
    facts = {}
    for description, chain in recipe.transfer_experiments.items():
        for step in chain:
            if id(step.dataset) not in seen:
                dataset = step.dataset.to_dict()
                seen[id(step.dataset)] = (dataset, split_identity(dataset, "test"))
        datasets, identities = zip(*(seen[id(step.dataset)] for step in chain))
        facts[description] = _ChainFacts(own_comments(chain), config_ids(chain), list(datasets), list(identities))
    return facts


def name_test_sets(recipe: Recipe) -> Dict[str, str]:
    """identity -> readable name of every config-defined test set of ``recipe`` (see the module
    docstring): the own comment its steps agree on, else the data set and classes; the split is added
    for splits other than ``test``; a name two test sets would share gets a hash suffix."""
    return _name_test_sets(_chain_facts(recipe).values())


def _name_test_sets(facts: Iterable[_ChainFacts]) -> Dict[str, str]:
    comments: Dict[str, List[str]] = {}
    data: Dict[str, Tuple[Mapping[str, Any], List[str]]] = {}
    for chain in facts:
        for dataset, base, comment in zip(chain.datasets, chain.test_sets, chain.comments):
            comments.setdefault(base, []).append(comment)
            transforms = dataset.get("test_transforms") or {}
            splits = ["test", *DERIVED_SPLITS, *(transforms if isinstance(transforms, Mapping) else ())]
            data.setdefault(base, (dataset, splits))
    names: Dict[str, str] = {}
    taken: Dict[str, str] = {}
    for base, (dataset, splits) in data.items():
        agreed = set(comments[base])
        stem = comments[base][0] if len(agreed) == 1 and comments[base][0] else _data_name(dataset)
        for split in splits:
            identity = split_identity(dataset, split)
            name = stem if split == "test" else f"{stem} {split}"
            if taken.get(name, identity) != identity:
                name = f"{name} #{identity[:6]}"
            taken[name] = identity
            names[identity] = name
    return names


def step_frame(recipe: Recipe, status: pd.DataFrame) -> pd.DataFrame:
    """The ``steps`` frame (see the module docstring): one row per step of ``recipe``."""
    facts = _chain_facts(recipe)
    return _step_frame(recipe, status, _name_test_sets(facts.values()), facts)


def _step_frame(recipe: Recipe, status: pd.DataFrame, names: Mapping[str, str], facts: Mapping[Any, _ChainFacts]) -> pd.DataFrame:
    positions = list(zip(status["name"], status["seed"], status["step"]))
    state = dict(zip(positions, status["state"]))
    code = dict(zip(positions, status["code"])) if "code" in status else {}
    ids = dict(zip(positions, status["step_id"])) if "step_id" in status else {}
    rows = []
    for description, chain in recipe.transfer_experiments.items():
        known = facts[description]
        for level, (step, label, config_id, identity) in enumerate(zip(chain, known.comments, known.ids, known.test_sets)):
            position = (description.name, description.seed, level)
            rows.append(dict(name=description.name, seed=description.seed, step=level, trained_seed=step.seed, comment=step.comment,
                             label=label or step.comment or f"step {level}", state=state[position],
                             step_id=ids.get(position, ""), config_id=config_id, scratch_id=scratch_id(step), test_set=names.get(identity, ""),
                             continues=continues_previous(step, level), code=code.get(position, "")))
    frame = pd.DataFrame(rows, columns=[c for c in STEPS_COLUMNS if c != "shared_by"])
    sharing = frame.groupby("config_id", sort=False)["name"].agg(lambda n: ", ".join(dict.fromkeys(n)))
    frame["shared_by"] = frame["config_id"].map(sharing)
    return frame[STEPS_COLUMNS]


def split_test_sets(final: pd.DataFrame, dataset: Mapping[str, Any], names: Mapping[str, str],
                    earlier: Sequence[Mapping[str, Any]] = ()) -> List[str]:
    """The ``test_set`` of each row of one step's ``final`` frame (``dataset``: its config's ``to_dict()``;
    ``earlier``: those of the steps before it in its chain, whose test sets it evaluated as "step 0 test")."""
    return [_split_test_set(split, dataset, names, earlier) for split in final["split"]]


def _split_test_set(split: str, dataset: Mapping[str, Any], names: Mapping[str, str],
                    earlier: Sequence[Mapping[str, Any]]) -> str:
    identity = split_identity(dataset, split)
    of_earlier = parse_earlier_split(split)
    if of_earlier is not None and of_earlier[0] < len(earlier):
        identity = split_identity(earlier[of_earlier[0]], of_earlier[1])
    if identity is not None:
        return names.get(identity, str(split))
    return "" if split in NOT_TEST_SETS else str(split)  # a custom split: its name


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
    # every step's key once: hashing the configs is most of what reading a recipe's results costs
    keys = {(description.name, description.seed, level): chain.step_key(level)
            for description, chain in recipe.transfer_experiments.items() for level in range(len(chain))}
    # a step trained by code that changed since stays done (its results are read) and says so in ``code``
    status_rows = mark_drift(step_status(store, recipe, list(keys.values())), current_drift(store, recipe, list(keys.values())),
                             changed_state=False)
    status = pd.DataFrame(
        [(r.name, r.seed, r.step, r.trained_seed, r.comment, r.state, r.score, r.error, r.code, r.id) for r in status_rows],
        columns=STATUS_COLUMNS[:8] + ["code", "step_id"],
    )
    if status.empty:
        raise ValueError(f"recipe {recipe.name} defines no experiments")
    chains = [status["name"], status["seed"]]
    status["chain_steps"] = status.groupby(chains, sort=False)["step"].transform("size").astype(int)
    status["chain_complete"] = status["state"].eq(DONE).groupby(chains, sort=False).transform("all").astype(bool)
    status["score"] = status["score"].astype(float)
    done = status[status["state"] == DONE]
    if done.empty:
        raise ValueError(
            f"none of the {len(status)} steps of recipe {recipe.name} is finished in {store.where}; "
            "run the recipe first (nntransfer run RECIPE) or point to where it ran (--store ADDRESS)"
        )
    _warn_incomplete(status)

    positions = list(zip(status["name"], status["seed"], status["step"]))
    state = dict(zip(positions, status["state"]))
    step_id = dict(zip(positions, status["step_id"]))
    completeness = dict(zip(positions, zip(status["chain_steps"], status["chain_complete"])))
    facts = _chain_facts(recipe)
    test_sets = _name_test_sets(facts.values())
    curves: List[Tuple[Any, ...]] = []
    finals: List[Tuple[Any, ...]] = []
    # (the dataset configs up to a step, split) -> its test set: the same configs in many chains, named once
    named: Dict[Tuple[Tuple[int, ...], str], str] = {}
    for description, chain in recipe.transfer_experiments.items():
        known = facts[description]
        for level in range(len(chain)):
            position = (description.name, description.seed, level)
            if state[position] != DONE:
                continue
            output = store.load(keys[position]).output
            if not isinstance(output, Mapping) or not ({"tracker", "final"} & set(output)):
                logger.warning("%s seed %s step %d: the output has no 'tracker' or 'final' entry; nothing to analyse",
                               description.name, description.seed, level)
                continue
            ids = (description.name, description.seed, level, chain[level].seed, chain[level].comment)
            if "tracker" in output:
                curves.extend((*ids, *row, step_id[position], known.ids[level]) for row in tracker_rows(output["tracker"]))
            if "final" in output:
                chain_steps, chain_complete = completeness[position]
                datasets = tuple(id(step.dataset) for step in chain[: level + 1])
                for row in final_rows(output["final"]):
                    if (datasets, row[0]) not in named:
                        named[(datasets, row[0])] = _split_test_set(row[0], known.datasets[level], test_sets,
                                                                    known.datasets[:level])
                    finals.append((*ids, *row, int(chain_steps), bool(chain_complete), named[(datasets, row[0])],
                                   step_id[position], known.ids[level]))
    order = _chain_order(status)
    curves_frame = pd.DataFrame(curves, columns=CURVE_COLUMNS) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
    final_frame_ = pd.DataFrame(finals, columns=FINAL_COLUMNS) if finals else pd.DataFrame(columns=FINAL_COLUMNS)
    final_frame_["level"] = final_frame_["level"].astype(float)
    return Results(
        recipe=recipe.name,
        where=store.where,
        status=status[STATUS_COLUMNS],
        curves=_sorted(curves_frame, order, ["mode", "task", "objective", "epoch"]),
        final=_sorted(final_frame_, order),
        steps=_sorted(_step_frame(recipe, status, test_sets, facts), order),
    )


def open_results_store(store: Optional[Union[str, Store]] = None, workdir: Optional[Union[str, Path]] = None,
                       schema: Optional[str] = None) -> Store:
    """The store that holds the results: at the address ``store`` (default ``local:./nntransfer_work``), or
    its shortcuts, the work folder ``workdir`` or the tables of ``schema``; never creates it."""
    return open_store(store_address(store, workdir, schema), read_only=True)


def load_results(
    recipe: Union[str, Path, Recipe],
    experiment: Optional[str] = None,
    workdir: Optional[Union[str, Path]] = None,
    schema: Optional[str] = None,
    chains: Optional[Sequence[str]] = None,
    seeds: Optional[Sequence[int]] = None,
    store: Optional[Union[str, Store]] = None,
) -> Results:
    """Load the results of ``recipe`` (a folder, ``.py`` file, module name, :class:`Recipe`, or the
    experiments themselves as :func:`nntransfer.run` takes them) from the store at the address ``store``
    (default ``local:./nntransfer_work``), or its shortcuts: the work folder ``workdir``, the tables of ``schema``.

    ``experiment`` picks one module of a recipe folder (like ``nntransfer run --experiment``); ``chains``
    (names) and ``seeds`` pick chains of the recipe (like ``--chain`` and ``--seed``).
    """
    recipe = select_chains(as_recipe(recipe, experiment), chains, seeds)
    return collect_results(recipe, open_results_store(store, workdir, schema))


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
    """Mean, std (NaN for one seed: no spread can be measured), min, max and count of one group's values."""
    return pd.Series(dict(zip(("mean", "std", "min", "max", "n_done"), _seed_stats(values))))


def _seed_stats(values: pd.Series) -> Tuple[float, float, float, float, int]:
    return (values.mean(), values.std(ddof=1) if len(values) > 1 else math.nan, values.min(), values.max(), len(values))


SUMMARY_COLUMNS = ["name", "step", "comment", "split", "test_set", "n_done", "n_seeds", "mean", "std", "min", "max"]


def summarize(
    final: pd.DataFrame,
    status: pd.DataFrame,
    split: Optional[str] = "test",
    objective: str = "accuracy",
    task: Optional[str] = None,
) -> pd.DataFrame:
    """One row per experiment name, transfer step of ``status`` (finished or not) and plain split
    (``split``, or every split without corruption or noise levels when ``split`` is None): comment,
    the split's ``test_set``, ``n_done`` of ``n_seeds``, and mean/std/min/max of ``objective`` over the
    finished seeds (NaN where none finished; std NaN for one seed), each trained step (``step_id``) once."""
    if split is None:
        if final.empty:
            raise ValueError("no final results to summarise")
        plain = final[(final["variant"] == "plain") & (final["group"] == "") & (final["objective"] == objective)]
        if plain.empty:
            raise ValueError(f"no final results with objective {objective!r}; available: {', '.join(sorted(set(final['objective'])))}")
        task = task or default_task(plain)
        plain = plain[plain["task"] == task]
        splits = list(dict.fromkeys(plain["split"]))
    else:
        plain = select(final, split, objective, task)
        plain = plain[plain["group"] == ""]
        splits = [split]
    keys = ["name", "step", "split"]
    plain = plain.drop_duplicates(["name", "step_id", "split"])  # a step the chains of several seeds share: once
    first = plain.drop_duplicates(keys)
    test_sets = dict(zip(zip(*(first[k] for k in keys)), first["test_set"])) if "test_set" in plain else {}
    stats = {key: _seed_stats(values) for key, values in plain.groupby(keys, sort=False)["value"]}
    missing = (math.nan, math.nan, math.nan, math.nan, 0)
    steps = status.drop_duplicates(["name", "step"])  # each step's first row, in groupby's order
    seeds = status.groupby(["name", "step"], sort=False)["step_id"].nunique().to_dict()
    rows = []
    for name, step, comment in zip(steps["name"], steps["step"], steps["comment"]):
        before = len(rows)
        for one_split in splits:
            key = (name, step, one_split)
            if split is None and key not in stats:
                continue  # a step that did not evaluate this split (or did not finish): listed under its others
            mean, std, low, high, n_done = stats.get(key, missing)
            rows.append({"name": name, "step": int(step), "comment": comment, "split": one_split,
                         "test_set": test_sets.get(key, ""), "n_done": int(n_done), "n_seeds": seeds[(name, step)],
                         "mean": mean, "std": std, "min": low, "max": high})
        if len(rows) == before:  # nothing finished: the step keeps its row
            rows.append({"name": name, "step": int(step), "comment": comment, "split": "",
                         "test_set": "", "n_done": 0, "n_seeds": seeds[(name, step)], "mean": math.nan, "std": math.nan,
                         "min": math.nan, "max": math.nan})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
