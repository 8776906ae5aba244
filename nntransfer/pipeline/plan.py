"""What a run would do, step by step, without doing it (``nntransfer run --dry-run``, ``nntransfer.run(dry_run=True)``).

    reuse     stored and trained by the code loaded now (or kept for it): the run keeps it
    train     not stored yet, failed before and retried, or trained again (``rerun_changed``)
    changed   stored, but trained by code that has changed since: the run would stop (exit 2) without
              ``rerun_changed`` or ``reuse_changed``
    blocked   after a step that failed (and is not retried) or changed, in its chain: it cannot train yet
    running   another run or worker holds it
    failed    failed before and not retried (the tables without ``retry_failed``)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Set

from nntransfer.configs.codec import make_hash
from nntransfer.pipeline.drift import CHANGED, REUSED, UNRECORDED, UNRECORDED_NOTE, DriftReport
from nntransfer.pipeline.store import DONE, FAILED, INTERRUPTED, RUNNING, SHORT_ID, StepState
from nntransfer.recipes.loading import Recipe

REUSE, TRAIN, BLOCKED, FAILED_NOT_RETRIED = "reuse", "train", "blocked", "failed"
ACTIONS = (REUSE, TRAIN, CHANGED, BLOCKED, RUNNING, FAILED_NOT_RETRIED)


@dataclass
class PlannedStep:
    """What a run would do with one step: ``action`` (see module docstring) and why (``note``)."""

    name: str
    seed: int
    step: int
    id: str
    comment: str
    action: str
    note: str = ""


class RunPlan(list):
    """What a run would do: a :class:`PlannedStep` per step of the recipe, in recipe order; ``str()`` is the
    table ``run --dry-run`` prints."""

    def __init__(self, steps: List[PlannedStep], where: str) -> None:
        super().__init__(steps)
        self.where = where

    @property
    def training(self) -> Set[str]:
        """The ids of the steps the run would train."""
        return {step.id for step in self if step.action == TRAIN}

    def counts(self) -> Dict[str, int]:
        return {action: sum(1 for step in self if step.action == action) for action in ACTIONS}

    def would_stop(self) -> bool:
        """Whether the run would stop before training because stored steps' code changed."""
        return any(step.action == CHANGED for step in self)

    def __str__(self) -> str:
        header = ["name", "seed", "step", "action", "step id", "comment"]
        rows = [[s.name, str(s.seed), str(s.step), s.action, s.id[:SHORT_ID], s.comment] for s in self]
        widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(header)]
        out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
        for step, row in zip(self, rows):
            out.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
            if step.note:
                out.append(f"    {step.note}")
        counts = ", ".join(f"{count} {action}" for action, count in self.counts().items() if count)
        out.append(f"\ndry run, nothing trained or written ({self.where}): {counts or 'no steps'}")
        if self.would_stop():
            out.append("a run would stop before training: pass --rerun-changed to train the changed steps again "
                       "or --reuse-changed to keep them")
        return "\n".join(out)


def plan_run(recipe: Recipe, states: Sequence[StepState], drift: DriftReport, where: str, rerun_changed: bool = False,
             reuse_changed: bool = False, retry_failed: bool = True) -> RunPlan:
    """What a run of ``recipe`` would do, from the steps' ``states`` (recipe order) and their code ``drift``."""
    by_position = drift.by_position()
    steps: List[PlannedStep] = []
    index = 0
    for description, chain in recipe.transfer_experiments.items():
        retraining, blocked = False, ""
        for level in range(len(chain)):
            state = states[index]
            index += 1
            planned = PlannedStep(description.name, description.seed, level, make_hash(chain.step_key(level)),
                                  chain[level].comment, TRAIN)
            steps.append(planned)
            code = by_position.get((description.name, description.seed, level))
            if state.state == DONE:
                other_code = code is not None and code.kind in (CHANGED, REUSED)
                if retraining or (rerun_changed and other_code):
                    retraining = True
                    planned.note = (f"trained again: code changed ({code.files_text()})" if other_code
                                    else "trained again: an earlier step of its chain is")
                elif code is not None and code.kind == CHANGED and not reuse_changed:
                    planned.action, planned.note = CHANGED, f"code changed: {code.files_text()}"
                    blocked = blocked or "after a step whose code changed"
                else:
                    planned.action = REUSE
                    if other_code:
                        planned.note = f"kept although its code changed: {code.files_text()}"
                    elif code is not None and code.kind == UNRECORDED:
                        planned.note = UNRECORDED_NOTE
            elif blocked:
                planned.action, planned.note = BLOCKED, blocked
            elif state.state == RUNNING:
                planned.action, planned.note = RUNNING, "another run or worker holds it"
            elif state.state == INTERRUPTED and state.resumes_after is not None:
                planned.note = f"resumes from its checkpoint of epoch {state.resumes_after}"
            elif state.state == FAILED:
                error = state.error.splitlines()[0] if state.error else ""
                if retry_failed:
                    planned.note = f"failed before, tried again: {error}"
                else:
                    planned.action, planned.note = FAILED_NOT_RETRIED, f"{error} (--retry-failed runs it again)"
                    blocked = "after a failed step"
    return RunPlan(steps, where)
