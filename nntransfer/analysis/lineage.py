"""Steps as a graph: each stored step's ancestors and descendants across chains, and how steps are named.

A step's id is the hash of its full key (``make_hash(TransferExperiment.step_key(level))``): the same in a
work folder (the name of its folder ``steps/<id>``) and in the tables, and what ``nntransfer status`` prints
(its first 8 characters). A step's ``collapsed_history`` is its predecessor's id, so the graph of stored
steps needs nothing but their keys: chains that share a pre-training step share its id, and that step's
descendants are the steps of every chain that continues from it, from any recipe run into the same store.

A *reference* to steps is one of:

* a step id, or a unique prefix of one (at least 4 characters), looked up in the store (and the recipe);
* ``NAME:SEED:STEP``, ``NAME:SEED`` (the whole chain) or ``NAME`` (a name with one seed): a transfer
  experiment of the recipe, by the name and seed ``status`` prints, e.g. ``"digits 0-4 -> 5-9:1:0"``;
* in Python, an ``Experiment`` (one step) or a ``TransferExperiment`` (the chain).

In Python::

    from nntransfer.analysis import lineage
    print(lineage("d710c56a", workdir="nntransfer_work"))         # a tree; .frame() is a DataFrame

From the shell: ``nntransfer lineage d710c56a --store local:nntransfer_work`` (or ``--workdir nntransfer_work``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from nntransfer.configs.codec import make_hash
from nntransfer.configs.experiment import Experiment
from nntransfer.configs.json_io import class_path
from nntransfer.configs.transfer_experiment import TransferExperiment
from nntransfer.pipeline.addresses import open_store
from nntransfer.pipeline.backends import store_address
from nntransfer.pipeline.store import DONE, SHORT_ID, WAITING, Store
from nntransfer.recipes.loading import Recipe, as_recipe, load_recipe
from nntransfer.terminal import printable

__all__ = ["StepRecord", "Lineage", "catalog", "resolve", "lineage", "ROLES"]
logger = logging.getLogger(__name__)

ROLES = ("dataset", "model", "trainer")
#: fewest characters of a step id a reference may give
MIN_PREFIX = 4

_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass
class StepRecord:
    """One step: its ``id``, full ``key``, ``configs`` (role -> ``{"class": dotted class or "", "fields": the
    hashed fields}``), where it is in its chain (``step``, ``parent``: the previous step's id, ``""`` at
    step 0), and what is known of it: ``name`` and ``comment``, ``state`` and ``score`` in the store."""

    id: str
    key: Dict[str, Any]
    configs: Dict[str, Dict[str, Any]]
    name: str = ""
    comment: str = ""
    state: str = WAITING
    score: Optional[float] = None

    @property
    def seed(self) -> int:
        return int(self.key["seed"])

    @property
    def step(self) -> int:
        return int(self.key["transfer_step"])

    @property
    def parent(self) -> str:
        return str(self.key.get("collapsed_history") or "")

    @property
    def short_id(self) -> str:
        return self.id[:SHORT_ID]

    def describe(self) -> str:
        """``d710c56a digits 0-4 -> 5-9 (seed 1) step 0: pre-train 0-4``."""
        who = f"{self.name} (seed {self.seed})" if self.name else f"seed {self.seed}"
        return printable(f"{self.short_id} {who} step {self.step}" + (f": {self.comment}" if self.comment else ""))


# ---------------------------------------------------------------------- building records


def _config_entry(config: Any) -> Dict[str, Any]:
    return {"class": class_path(type(config)), "fields": config.to_dict()}


def records_of_chain(chain: TransferExperiment, name: str = "") -> List[StepRecord]:
    """The records of every step of ``chain`` (not looked up in any store: state ``waiting``)."""
    records = []
    for level in range(len(chain)):
        key = chain.step_key(level)
        step = chain[level]
        configs = {role: _config_entry(getattr(step, role)) for role in ROLES}
        records.append(StepRecord(make_hash(key), key, configs, name=name, comment=step.comment))
    return records


def stored_steps(store: Store) -> List[StepRecord]:
    """Every finished step in ``store`` (``Store.stored_steps``), with its state and score."""
    records = [StepRecord(entry.id, entry.key, entry.configs, name=entry.name, comment=entry.comment)
               for entry in store.stored_steps()]
    for record, found in zip(records, store.states([r.key for r in records])):
        record.state, record.score = found.state, found.score
    return [record for record in records if record.state == DONE]


def catalog(store: Optional[Store] = None, recipe: Optional[Recipe] = None) -> Dict[str, StepRecord]:
    """id -> record of every step stored in ``store`` and every step of ``recipe`` (those not stored with
    their state in the store, or ``waiting`` without one). Names come from the recipe where the store has
    none (the tables do not keep them)."""
    found: Dict[str, StepRecord] = {}
    if store is not None:
        found.update((record.id, record) for record in stored_steps(store))
    if recipe is not None:
        planned = [r for description, chain in recipe.transfer_experiments.items() for r in records_of_chain(chain, description.name)]
        missing = [r for r in planned if r.id not in found]
        if store is not None and missing:
            for record, state in zip(missing, store.states([r.key for r in missing])):
                record.state, record.score = state.state, state.score
        for record in planned:
            if record.id in found:
                found[record.id].name = found[record.id].name or record.name
                found[record.id].configs = {
                    role: {"class": entry["class"] or record.configs[role]["class"], "fields": entry["fields"]}
                    for role, entry in found[record.id].configs.items()
                }
            else:
                found[record.id] = record
    return found


# ---------------------------------------------------------------------- references


Reference = Union[str, Experiment, TransferExperiment]


def _recipe_reference(text: str, recipe: Recipe) -> Optional[Tuple[List[Any], Optional[int]]]:
    """``NAME[:SEED[:STEP]]`` in ``recipe``: the chain's descriptions and the step (None: whole chain), or
    None when no name of the recipe matches."""
    names: Dict[str, List[Any]] = {}
    for description in recipe.transfer_experiments:
        names.setdefault(description.name, []).append(description)
    parts = text.split(":")
    for cut in range(len(parts), max(len(parts) - 3, 0), -1):  # the longest name first: names may hold ':'
        name, numbers = ":".join(parts[:cut]), parts[cut:]
        if name not in names or not all(re.fullmatch(r"-?\d+", n) for n in numbers):
            continue
        chains = names[name]
        if numbers:
            chains = [d for d in chains if d.seed == int(numbers[0])]
            if not chains:
                seeds = ", ".join(str(d.seed) for d in names[name])
                raise ValueError(f"{name!r} has no seed {numbers[0]} in recipe {recipe.name} (seeds: {seeds})")
        return chains, int(numbers[1]) if len(numbers) > 1 else None
    return None


def resolve(reference: Reference, steps: Mapping[str, StepRecord], recipe: Optional[Recipe] = None, where: str = "") -> List[StepRecord]:
    """The chain a reference names (see the module docstring), from step 0 to the step it names: for a
    step id, its ancestors as far as ``steps`` knows them. ``ValueError`` (one line, how to fix) if it names
    nothing or more than one thing."""
    if isinstance(reference, (Experiment, TransferExperiment)):
        chain = reference if isinstance(reference, TransferExperiment) else TransferExperiment([reference])
        return [steps.get(r.id, r) for r in records_of_chain(chain)]
    text = str(reference).strip()
    if recipe is not None:
        found = _recipe_reference(text, recipe)
        if found is not None:
            chains, level = found
            if len(chains) > 1:
                seeds = ", ".join(str(d.seed) for d in chains)
                raise ValueError(f"{text!r} has seeds {seeds} in recipe {recipe.name}; add one: '{text}:{chains[0].seed}'")
            chain = recipe.transfer_experiments[chains[0]]
            if level is not None and not 0 <= level < len(chain):
                raise ValueError(f"{text!r}: {chains[0].name} has steps 0..{len(chain) - 1}")
            records = [steps.get(r.id, r) for r in records_of_chain(chain, chains[0].name)]
            return records if level is None else records[: level + 1]
    lowered = text.lower()
    if len(lowered) < MIN_PREFIX or not _HEX.match(lowered):
        hint = "a step id as 'nntransfer status' prints it" + ("" if recipe is not None else ", or NAME:SEED:STEP with --recipe")
        raise ValueError(f"{text!r} names no step{' of recipe ' + recipe.name if recipe is not None else ''}; give {hint}")
    matches = sorted(i for i in steps if i.startswith(lowered))
    if not matches:
        raise ValueError(f"no step with id {text} in {where or 'the store'}; 'nntransfer status' prints the ids of a recipe's steps")
    if len(matches) > 1:
        raise ValueError(f"step id {text} is ambiguous ({len(matches)} steps start with it); give more characters")
    return _with_ancestors(steps[matches[0]], steps)


def _with_ancestors(record: StepRecord, steps: Mapping[str, StepRecord]) -> List[StepRecord]:
    chain = [record]
    while chain[0].parent and chain[0].parent in steps:
        chain.insert(0, steps[chain[0].parent])
    if chain[0].parent:
        logger.warning("the history of %s is incomplete: its step %d (%s) is not stored", record.short_id, chain[0].step - 1, chain[0].parent[:SHORT_ID])
    return chain


# ---------------------------------------------------------------------- lineage


@dataclass
class Lineage:
    """A step with its ``ancestors`` (step 0 first) and ``descendants`` (``(depth, record)`` in tree order:
    depth 1 is a direct successor), across every chain of the store (and recipe) it was read from."""

    step: StepRecord
    ancestors: List[StepRecord]
    descendants: List[Tuple[int, StepRecord]] = field(default_factory=list)

    def frame(self):
        """One row per step: relation (ancestor / step / descendant), distance (negative for ancestors),
        id, name, seed, step, state, score, comment."""
        import pandas as pd

        rows = [("ancestor", r.step - self.step.step, r) for r in self.ancestors] + [("step", 0, self.step)]
        rows += [("descendant", depth, r) for depth, r in self.descendants]
        return pd.DataFrame(
            [dict(relation=rel, distance=d, id=r.id, name=r.name, seed=r.seed, step=r.step, state=r.state, score=r.score, comment=r.comment)
             for rel, d, r in rows]
        )

    def __str__(self) -> str:
        lines = []
        for depth, record in enumerate(self.ancestors):
            lines.append(_tree_line(depth, record, ""))
        base = len(self.ancestors)
        lines.append(_tree_line(base, self.step, "  <- this step"))
        for depth, record in self.descendants:
            lines.append(_tree_line(base + depth, record, ""))
        if not self.descendants:
            lines.append(f"{'   ' * (base + 1)}(no stored step continues from it)")
        return "\n".join(lines)


def _tree_line(depth: int, record: StepRecord, mark: str) -> str:
    score = "" if record.score is None else f" {record.score:.4f}"
    who = f"{record.name} (seed {record.seed})" if record.name else f"seed {record.seed}"
    comment = f": {record.comment}" if record.comment else ""
    return printable(f"{'   ' * depth}{'└─ ' if depth else ''}{record.short_id}  step {record.step}  {record.state}{score}  {who}{comment}{mark}")


def descendants_of(record: StepRecord, steps: Mapping[str, StepRecord]) -> List[Tuple[int, StepRecord]]:
    """``(depth, record)`` of every step that continues from ``record``, depth first, children sorted by
    name, seed and comment."""
    children: Dict[str, List[StepRecord]] = {}
    for other in steps.values():
        if other.parent:
            children.setdefault(other.parent, []).append(other)
    found: List[Tuple[int, StepRecord]] = []

    def walk(parent: StepRecord, depth: int) -> None:
        for child in sorted(children.get(parent.id, []), key=lambda r: (r.name, r.seed, r.comment, r.id)):
            found.append((depth, child))
            walk(child, depth + 1)

    walk(record, 1)
    return found


def open_context(
    recipe: Optional[Union[str, Recipe, Any]] = None,
    experiment: Optional[str] = None,
    workdir: Optional[Union[str, Path]] = None,
    schema: Optional[str] = None,
    store: Optional[Union[str, Store]] = None,
    read_only: bool = True,
) -> Tuple[Optional[Store], Optional[Recipe]]:
    """The store (at the address ``store``, or a Store; or the work folder ``workdir`` or schema ``schema``;
    none if none is named) and recipe that references are looked up in. Nothing is created; ``read_only=False``
    for a caller that deletes (``forget``)."""
    address = store_address(store, workdir, schema, default=None)
    store = open_store(address, create=False, read_only=read_only) if address is not None else None
    if recipe is not None and not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, experiment) if isinstance(recipe, (str, Path)) else as_recipe(recipe)
    return store, recipe


def lineage(
    step: Reference,
    workdir: Optional[Union[str, Path]] = None,
    schema: Optional[str] = None,
    recipe: Optional[Union[str, Recipe, Any]] = None,
    experiment: Optional[str] = None,
    store: Optional[Union[str, Store]] = None,
) -> Lineage:
    """The ancestors and descendants of ``step`` (a step id or prefix, ``NAME:SEED:STEP`` of ``recipe``, or
    an ``Experiment``/``TransferExperiment``: its last step) among the steps stored in the store at the
    address ``store`` (or the work folder ``workdir``, or the schema ``schema``) and the steps of ``recipe``."""
    store, recipe = open_context(recipe, experiment, workdir, schema, store)
    if store is None and recipe is None and isinstance(step, str):
        raise ValueError("give where the steps are: a store (store=/--store, or workdir=, schema=) or a recipe")
    steps = catalog(store, recipe)
    chain = resolve(step, steps, recipe, where=store.where if store is not None else "")
    target = steps.get(chain[-1].id, chain[-1])
    return Lineage(target, chain[:-1], descendants_of(target, steps))
