"""Code drift: stored steps trained by user code that differs from the code loaded now.

Every stored step records the fingerprint of the user code it ran (:mod:`nntransfer.fingerprint`:
``code_hash`` and ``code_files``, in ``result.json`` or the tables' ``Provenance``). Before a run trains
anything, :func:`code_drift` compares each stored step of the recipe with the code now loaded:

    same        trained by the code now loaded
    changed     trained by other code: ``run`` and ``worker`` train nothing and stop (exit 2) unless told
                ``rerun_changed`` (train it and the steps after it in its chains again) or
                ``reuse_changed`` (keep it, and record in the step that it was kept for this code)
    reused      trained by other code and kept for exactly the code now loaded (an earlier ``reuse_changed``)
    unrecorded  stored before fingerprints were recorded: reused, with one warning per run

A step whose recorded nntransfer or torch version differs from the installed one is reused, with one
warning per run (the code of installed packages is covered by their versions, not fingerprinted).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from nntransfer.configs.codec import make_hash
from nntransfer.errors import CodeChanged
from nntransfer.fingerprint import CodeFingerprint, chain_fingerprints
from nntransfer.pipeline.store import DONE, SHORT_ID, Key, StepState, StepStatus, Store
from nntransfer.provenance import package_versions
from nntransfer.recipes.loading import Recipe

logger = logging.getLogger(__name__)

SAME, CHANGED, REUSED, UNRECORDED = "same", "changed", "reused", "unrecorded"
#: the packages whose version a step records and a run compares (their code is not fingerprinted)
COMPARED_VERSIONS = ("nntransfer_version", "torch_version")
#: the note of a step stored before fingerprints were recorded
UNRECORDED_NOTE = "stored before code fingerprints were recorded: its code is not checked"


@dataclass
class StepDrift:
    """How a stored step's code compares with the code loaded now (see module docstring)."""

    name: str
    seed: int
    step: int
    id: str
    key: Key
    kind: str
    files: List[str] = field(default_factory=list)  # modules whose code differs from what trained the step
    versions: Dict[str, Tuple[str, str]] = field(default_factory=dict)  # package -> (recorded, installed)

    @property
    def trained_by_other_code(self) -> bool:
        return self.kind in (CHANGED, REUSED)

    def where(self) -> str:
        return f"{self.name} (seed {self.seed}) step {self.step} [{self.id[:SHORT_ID]}]"

    def files_text(self) -> str:
        """The changed modules, each with its file where it is loaded."""
        return ", ".join(_with_file(module) for module in self.files) or "the code it used"

    def note(self) -> str:
        """What ``status`` shows below the step ("" for code that is the same)."""
        if self.kind == CHANGED:
            return f"code changed since it was trained: {self.files_text()}"
        if self.kind == REUSED:
            return f"kept (--reuse-changed) although its code changed: {self.files_text()}"
        if self.kind == UNRECORDED:
            return UNRECORDED_NOTE
        return ""


@dataclass
class DriftReport:
    """The drift of every stored step of a recipe (in recipe order; steps not stored are left out)."""

    steps: List[StepDrift]

    def of_kind(self, *kinds: str) -> List[StepDrift]:
        return [step for step in self.steps if step.kind in kinds]

    @property
    def changed(self) -> List[StepDrift]:
        return self.of_kind(CHANGED)

    def by_position(self) -> Dict[Tuple[str, int, int], StepDrift]:
        return {(step.name, step.seed, step.step): step for step in self.steps}

    def error(self) -> CodeChanged:
        """The error a run without ``rerun_changed`` or ``reuse_changed`` stops with: one line per changed step."""
        changed = self.changed
        lines = [f"{len(changed)} stored step(s) were trained with code that has changed since, so nothing was trained; "
                 "pass --rerun-changed to train them (and the steps after them) again, or --reuse-changed to keep them "
                 "(rerun_changed=True / reuse_changed=True in nntransfer.run)"]
        lines += [f"{step.where()}: changed {step.files_text()}" for step in changed]
        return CodeChanged(lines)

    def warn(self) -> None:
        """One warning for the steps stored before fingerprints existed, one for differing package versions."""
        unrecorded = self.of_kind(UNRECORDED)
        if unrecorded:
            logger.warning("%d stored step(s) were stored before code fingerprints were recorded (e.g. %s); they are reused "
                           "without checking their code", len(unrecorded), unrecorded[0].where())
        versions = sorted({(package, recorded, now) for step in self.steps for package, (recorded, now) in step.versions.items()})
        if versions:
            differing = sum(1 for step in self.steps if step.versions)
            described = ", ".join(f"{package.removesuffix('_version')} {recorded} (installed: {now})" for package, recorded, now in versions)
            logger.warning("%d stored step(s) were trained with other package versions: %s; they are reused", differing, described)


def code_drift(store: Store, recipe: Recipe, fingerprints: Mapping[str, CodeFingerprint],
               states: Optional[Sequence[StepState]] = None, keys: Optional[Sequence[Key]] = None) -> DriftReport:
    """Compare every stored step of ``recipe`` in ``store`` with ``fingerprints`` (step id -> the code loaded
    now, ``nntransfer.provenance.RunProvenance.code``). ``states`` and ``keys``: the steps' states and keys
    if already read or computed (in recipe order)."""
    positions = [(d, chain, level) for d, chain in recipe.transfer_experiments.items() for level in range(len(chain))]
    keys = list(keys) if keys is not None else [chain.step_key(level) for _, chain, level in positions]
    states = list(states) if states is not None else store.states(keys)
    done = [index for index, state in enumerate(states) if state.state == DONE]
    records = store.code_records([keys[index] for index in done]) if done else []
    installed = package_versions()
    steps = []
    for index, record in zip(done, records):
        description, _, level = positions[index]
        step_id = make_hash(keys[index])
        kind, files = _compare(record or {}, fingerprints.get(step_id))
        versions = {package: (str(record.get(package)), installed[package]) for package in COMPARED_VERSIONS
                    if record and record.get(package) and record.get(package) != installed.get(package)}
        steps.append(StepDrift(description.name, description.seed, level, step_id, keys[index], kind, files, versions))
    return DriftReport(steps)


def _compare(record: Mapping[str, Any], now: Optional[CodeFingerprint]) -> Tuple[str, List[str]]:
    trained = record.get("code_hash") or ""
    if not trained or now is None:
        return UNRECORDED, []
    if trained == now.digest:
        return SAME, []
    files = now.changed_files(record.get("code_files") or {})
    reused = record.get("code_reused") or {}
    return (REUSED if isinstance(reused, Mapping) and reused.get("code_hash") == now.digest else CHANGED), files


def reuse_record(step: StepDrift, now: CodeFingerprint) -> Dict[str, Any]:
    """What a store keeps in a step kept with ``reuse_changed``: the code it is kept for, the modules that
    differ from the code that trained it, and when."""
    return dict(now.record(), changed=list(step.files), when=time.strftime("%Y-%m-%d %H:%M:%S"))


def retrain_keys(report: DriftReport, recipe: Recipe, states: Sequence[StepState]) -> List[Key]:
    """The stored steps ``rerun_changed`` trains again: each step trained by other code and every stored
    step after it in its chains, the later steps first (the order ``Store.delete`` takes)."""
    stale = {step.id for step in report.steps if step.trained_by_other_code}
    found: Dict[str, Tuple[int, Key]] = {}
    index = 0
    for chain in recipe.transfer_experiments.values():
        after_stale = False
        for level in range(len(chain)):
            key = chain.step_key(level)
            after_stale = after_stale or make_hash(key) in stale
            if after_stale and states[index].state == DONE:
                found.setdefault(make_hash(key), (level, key))
            index += 1
    return [key for _, key in sorted(found.values(), key=lambda item: -item[0])]


def current_drift(store: Store, recipe: Recipe, keys: Optional[Sequence[Key]] = None) -> DriftReport:
    """The drift of ``recipe``'s stored steps in ``store`` from the code loaded now (``status``, ``report``).
    ``keys``: the steps' keys in recipe order, if already computed."""
    keys = list(keys) if keys is not None else [chain.step_key(level) for chain in recipe.transfer_experiments.values()
                                                 for level in range(len(chain))]
    return code_drift(store, recipe, chain_fingerprints(recipe.transfer_experiments.values(), keys), keys=keys)


def mark_drift(rows: Sequence[StepStatus], report: DriftReport, changed_state: bool = True) -> List[StepStatus]:
    """``rows`` (from ``step_status``) with each stored step's code noted (``StepStatus.code``);
    ``changed_state``: a step whose code changed is shown as ``changed`` instead of ``done``."""
    drift = report.by_position()
    for row in rows:
        step = drift.get((row.name, row.seed, row.step))
        if step is not None and row.state == DONE:
            row.code = step.note()
            if step.kind == CHANGED and changed_state:
                row.state = CHANGED
    return list(rows)


def _with_file(module: str) -> str:
    file = getattr(sys.modules.get(module), "__file__", None)
    return f"{module} ({file})" if file else module
