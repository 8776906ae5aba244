"""Forgetting stored steps: a step and every step stored after it, so that the next run trains them again.

A step's descendants are the steps of any chain that continue from it (:func:`nntransfer.analysis.lineage`
shows the same tree): their weights, teachers or handed-on data came from the step, so they go with it.
Steps are named as ``lineage`` names them (an id or unique prefix, or ``NAME:SEED:STEP`` with a recipe); a
reference that names nothing or more than one step is a one-line ``ValueError`` and deletes nothing.

In Python::

    import nntransfer
    deleted = nntransfer.forget("d710c56a", workdir="nntransfer_work")   # the StepRecords deleted

From the shell: ``nntransfer forget d710c56a --store local:nntransfer_work`` lists the steps and asks first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

from nntransfer.analysis.lineage import (
    Reference,
    StepRecord,
    catalog,
    descendants_of,
    open_context,
    resolve,
)
from nntransfer.pipeline.store import Store
from nntransfer.recipes.loading import Recipe

__all__ = ["ForgetPlan", "plan_forget", "forget"]


@dataclass
class ForgetPlan:
    """What :meth:`execute` deletes from ``store``: ``step`` and its ``descendants`` (``(depth, record)`` in
    tree order); ``str()`` lists them as a tree."""

    store: Store
    step: StepRecord
    descendants: List[Tuple[int, StepRecord]]
    #: steps of the recipe that continue from the step but are not stored: their checkpoints and failure
    #: records are deleted too (a half-trained successor must not resume on top of the deleted weights)
    pending: List[StepRecord] = field(default_factory=list)

    @property
    def records(self) -> List[StepRecord]:
        """The steps to delete, the named step first."""
        return [self.step] + [record for _, record in self.descendants]

    def __str__(self) -> str:
        lines = [_line(0, self.step)] + [_line(depth, record) for depth, record in self.descendants]
        return "\n".join(lines)

    def execute(self) -> List[StepRecord]:
        """Delete the steps, the deepest descendants first (a step never outlives the one it continues);
        returns the records deleted."""
        ordered = [record for _, record in sorted(self.descendants, key=lambda item: -item[0])] + [self.step]
        self.store.delete([record.key for record in self.pending + ordered])
        return self.records


def _line(depth: int, record: StepRecord) -> str:
    who = f"{record.name} (seed {record.seed})" if record.name else f"seed {record.seed}"
    comment = f": {record.comment}" if record.comment else ""
    return f"{'   ' * depth}{'└─ ' if depth else ''}{record.short_id}  step {record.step}  {who}{comment}"


def plan_forget(
    step: Reference,
    workdir: Optional[Union[str, Path]] = None,
    schema: Optional[str] = None,
    recipe: Optional[Union[str, Recipe, Any]] = None,
    experiment: Optional[str] = None,
    store: Optional[Union[str, Store]] = None,
) -> ForgetPlan:
    """What forgetting ``step`` (a step id or prefix, ``NAME:SEED:STEP`` of ``recipe``, or an ``Experiment`` /
    ``TransferExperiment``: its last step) deletes from the store at the address ``store`` (or the work folder
    ``workdir``, or the schema ``schema``); nothing is deleted. ``ValueError`` (one line) when the reference names no stored step."""
    store, recipe = open_context(recipe, experiment, workdir, schema, store, read_only=False)
    if store is None:
        raise ValueError("give the store to delete from: store=/--store ADDRESS (or workdir=, schema=)")
    stored = {entry.id: StepRecord(entry.id, entry.key, entry.configs, name=entry.name, comment=entry.comment)
              for entry in store.stored_steps()}  # damaged ones too: they are deleted with the others
    steps = catalog(store, recipe)
    for digest, record in stored.items():
        steps.setdefault(digest, record)
    target = resolve(step, steps, recipe, where=store.where)[-1]
    if target.id not in stored:
        raise ValueError(f"{target.describe()} is not stored in {store.where}; nothing to forget")
    for record in stored.values():  # names from the recipe, where the store keeps none
        record.name = record.name or steps[record.id].name
    pending = [record for _, record in descendants_of(target, steps) if record.id not in stored]
    return ForgetPlan(store, stored[target.id], descendants_of(stored[target.id], stored), pending)


def forget(
    step: Reference,
    workdir: Optional[Union[str, Path]] = None,
    schema: Optional[str] = None,
    recipe: Optional[Union[str, Recipe, Any]] = None,
    experiment: Optional[str] = None,
    store: Optional[Union[str, Store]] = None,
) -> List[StepRecord]:
    """Delete ``step`` and every step stored after it in any chain (see :func:`plan_forget`), with their
    weights, handed-on data, checkpoints and failure records; returns the records deleted (the named step
    first). The next run of their recipes trains them again."""
    return plan_forget(step, workdir, schema, recipe, experiment, store).execute()
