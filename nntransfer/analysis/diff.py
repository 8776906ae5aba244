"""Which settings make two experiments, steps or chains differ: the fields behind two hashes.

A step's id hashes its dataset, model and trainer configs (every hashed field, ``fn`` included), its seed,
its position in the chain, whether it receives handed-on data, and the id of the step before it. So two
steps differ in their own settings or in their history; :func:`diff` reports both:

* the two steps compared (column ``step``: their position, ``"0 vs 1"`` when they differ): every field of
  each role (``dataset``, ``model``, ``trainer``; ``class`` when both classes are known), ``seed``, and
  ``chain`` (``transfer_step``, ``data_transfer``);
* when their histories differ, the steps before them, position by position (``step`` 0, 1, ...), and the
  number of steps before each (``step`` ``history``).

References are those of :mod:`nntransfer.analysis.lineage`: step ids (or unique prefixes) in a work folder or
schema, ``NAME:SEED[:STEP]`` of a recipe (without a step: the whole chain, compared at its last step), or,
in Python, ``Experiment`` and ``TransferExperiment`` objects (no store needed)::

    from nntransfer.analysis import diff
    d = diff("digits 0-4 -> 5-9:1:0", "digits 0-4 -> 5-9:1:1", recipe="nntransfer.recipes.digits_transfer")
    print(d); d.frame()      # columns step, role, field, a, b

From the shell: ``nntransfer diff A B [--recipe RECIPE] [--store ADDRESS | --workdir DIR | --schema NAME]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from nntransfer.analysis.lineage import ROLES, Reference, StepRecord, catalog, open_context, resolve
from nntransfer.pipeline.store import Store
from nntransfer.recipes.loading import Recipe
from nntransfer.terminal import printable

__all__ = ["Diff", "DiffRow", "diff", "ABSENT"]

#: the value shown for a field one side does not have (e.g. a mixin's field)
ABSENT = "(absent)"
#: characters of a value shown in the text table (the frame keeps the whole value)
WIDTH = 60


@dataclass
class DiffRow:
    """One difference: at ``step`` (a position, ``"0 vs 1"``, or ``"history"``), the ``field`` of ``role``
    (``dataset``, ``model``, ``trainer``, ``seed``, ``chain``) is ``a`` in A and ``b`` in B."""

    step: str
    role: str
    field: str
    a: Any
    b: Any


@dataclass
class Diff:
    """The differences between the chains ``a`` and ``b`` (each step 0 to the step compared; a history not
    stored in full starts later)."""

    a: List[StepRecord]
    b: List[StepRecord]
    rows: List[DiffRow]

    @property
    def same(self) -> bool:
        """No hashed setting differs: A and B are the same step (the same id)."""
        return not self.rows

    def frame(self):
        """The rows as a pandas DataFrame: step, role, field, a, b."""
        import pandas as pd

        return pd.DataFrame([vars(row) for row in self.rows], columns=["step", "role", "field", "a", "b"])

    def __str__(self) -> str:
        lines = [f"A: {self.a[-1].describe()}", f"B: {self.b[-1].describe()}"]
        if self.same:
            lines.append("no setting differs: A and B are the same step")
            return "\n".join(lines)
        table = [["step", "role", "field", "A", "B"]]
        table += [[row.step, row.role, printable(row.field), _shown(row.a), _shown(row.b)] for row in self.rows]
        widths = [max(len(line[i]) for line in table) for i in range(5)]
        lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in table]
        return "\n".join(lines)


def _python(value: Any) -> Any:
    """numpy scalars and arrays as Python numbers and lists (tuples stay tuples)."""
    if isinstance(value, dict):
        return {k: _python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_python(v) for v in value)
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    return value


def _comparable(value: Any) -> Any:
    """The form two values are compared in: tuples as lists (a blob or JSON may turn one into the other)."""
    if isinstance(value, dict):
        return {str(k): _comparable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    return value


def _shown(value: Any) -> str:
    text = value if value is ABSENT else printable(repr(value))
    return text if len(text) <= WIDTH else text[: WIDTH - 1] + "…"


def compare_steps(x: StepRecord, y: StepRecord, label: str) -> List[DiffRow]:
    """The settings of the steps ``x`` and ``y`` themselves that differ (configs, seed, chain flags)."""
    rows: List[DiffRow] = []
    for role in ROLES:
        cx, cy = x.configs.get(role, {}), y.configs.get(role, {})
        if cx.get("class") and cy.get("class") and cx["class"] != cy["class"]:
            rows.append(DiffRow(label, role, "class", cx["class"], cy["class"]))
        fx, fy = _python(cx.get("fields", {})), _python(cy.get("fields", {}))
        for name in list(fx) + [n for n in fy if n not in fx]:
            vx, vy = fx.get(name, ABSENT), fy.get(name, ABSENT)
            if (vx is ABSENT) != (vy is ABSENT) or _comparable(vx) != _comparable(vy):
                rows.append(DiffRow(label, role, name, vx, vy))
    if x.seed != y.seed:
        rows.append(DiffRow(label, "seed", "seed", x.seed, y.seed))
    if x.step != y.step:
        rows.append(DiffRow(label, "chain", "transfer_step", x.step, y.step))
    if bool(x.key.get("data_transfer")) != bool(y.key.get("data_transfer")):
        rows.append(DiffRow(label, "chain", "data_transfer", bool(x.key.get("data_transfer")), bool(y.key.get("data_transfer"))))
    return rows


def diff_chains(a: List[StepRecord], b: List[StepRecord]) -> List[DiffRow]:
    """The differences between the last steps of ``a`` and ``b`` and, when their histories differ, between
    the steps before them, position by position."""
    x, y = a[-1], b[-1]
    rows: List[DiffRow] = []
    if x.parent != y.parent:
        if x.step != y.step:
            rows.append(DiffRow("history", "chain", "steps before", x.step, y.step))
        before_a, before_b = {r.step: r for r in a[:-1]}, {r.step: r for r in b[:-1]}
        for position in range(min(x.step, y.step)):
            if position in before_a and position in before_b:
                rows += compare_steps(before_a[position], before_b[position], str(position))
            else:
                stored = lambda steps: "stored" if position in steps else "not stored"  # noqa: E731
                rows.append(DiffRow(str(position), "chain", "step (cannot compare)", stored(before_a), stored(before_b)))
    label = str(x.step) if x.step == y.step else f"{x.step} vs {y.step}"
    rows += compare_steps(x, y, label)
    return rows


def diff(
    a: Reference,
    b: Reference,
    workdir: Optional[Union[str, Path]] = None,
    schema: Optional[str] = None,
    recipe: Optional[Union[str, Recipe, Any]] = None,
    experiment: Optional[str] = None,
    store: Optional[Union[str, Store]] = None,
) -> Diff:
    """Which settings make ``a`` and ``b`` differ (see the module docstring). Step ids are looked up in the
    store at the address ``store`` (or the work folder ``workdir``, or the schema ``schema``) and in ``recipe``; ``NAME:SEED[:STEP]``
    in ``recipe`` (``experiment``: one module of a recipe folder). Objects need neither."""
    store, recipe = open_context(recipe, experiment, workdir, schema, store)
    if store is None and recipe is None and (isinstance(a, str) or isinstance(b, str)):
        raise ValueError("give where the steps are: a store (store=/--store, or workdir=, schema=) or a recipe")
    steps: Dict[str, StepRecord] = catalog(store, recipe) if store is not None or recipe is not None else {}
    where = store.where if store is not None else ""
    chain_a, chain_b = resolve(a, steps, recipe, where), resolve(b, steps, recipe, where)
    return Diff(chain_a, chain_b, diff_chains(chain_a, chain_b))
