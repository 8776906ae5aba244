"""``run --fast-dev-run``: every pending step of a recipe for a couple of batches, nothing stored.

The check runs each step that is not stored yet exactly as a run would (``Store.run`` and
``train_and_store``: data, student, teacher, handed-on data and Fisher, trainer, final evaluation), with two
differences: the trainer's runtime option ``fast_dev_run`` limits it to one epoch of a few batches of
training and validation and a few batches of each test set (no checkpoints, no TensorBoard); and the store is
a :class:`TrialStore`, which keeps what the steps produce in memory, hands it on along the chain, and
forgets it at the end. A pending step whose predecessor is stored reads the predecessor from the real store,
read-only. A step that raises is reported with its error and blocks the rest of its chain; the other chains
go on. Nothing is written to the work folder or the tables.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from nntransfer.configs.codec import make_hash
from nntransfer.pipeline.step import StepMeta, StepResult, StepSpec
from nntransfer.pipeline.store import (
    BLOCKED,
    DONE,
    FAILED,
    WAITING,
    Key,
    StepState,
    StepStatus,
    Store,
    StoredKey,
    StoredStep,
)
from nntransfer.recipes.loading import Recipe

logger = logging.getLogger(__name__)

#: the states of a fast dev run's table
STORED, PASSED, BROKE = "stored", "passed", "broke"


def _no_checkpoints(**kwargs: Any) -> None:
    """A checkpoint callback that keeps nothing and finds nothing to resume from."""


class TrialStore(Store):
    """Steps kept in memory for one fast dev run, over the steps ``stored`` already holds (read, never
    written). What a step saves is handed on to the next step of its chain and forgotten afterwards."""

    keeps_results = False

    def __init__(self, stored: Optional[Store] = None) -> None:
        self.stored = stored
        self.where = "memory (nothing stored)"
        self.results: Dict[str, StepResult] = {}
        self.failures: Dict[str, str] = {}

    def _stored_states(self, keys: Sequence[Key]) -> List[StepState]:
        return self.stored.states(keys) if self.stored is not None else [StepState(WAITING) for _ in keys]

    def states(self, keys: Sequence[Key]) -> List[StepState]:
        """This run's steps as they went; a step stored before is done, any other state of the real store
        (failed, running elsewhere) is waiting: the check runs it."""
        found = []
        for key, before in zip(keys, self._stored_states(keys)):
            digest = make_hash(dict(key))
            if digest in self.results:
                found.append(StepState(DONE, score=self.results[digest].score))
            elif digest in self.failures:
                found.append(StepState(FAILED, error=self.failures[digest]))
            else:
                found.append(before if before.state == DONE else StepState(WAITING))
        return found

    def load(self, key: Key) -> StoredStep:
        result = self.results.get(make_hash(dict(key)))
        if result is None:
            if self.stored is None:
                raise ValueError("the step is neither stored nor checked in this fast dev run")
            return self.stored.load(key)
        return StoredStep(result.score, result.output, {"seconds": result.seconds})

    def stored_steps(self) -> List[StoredKey]:
        return self.stored.stored_steps() if self.stored is not None else []

    def load_weights(self, key: Key) -> Dict[str, Any]:
        result = self.results.get(make_hash(dict(key)))
        return result.model_state if result is not None else self.stored.load_weights(key)

    def load_transfer_data(self, key: Key) -> Optional[Dict[str, Any]]:
        result = self.results.get(make_hash(dict(key)))
        return result.transfer_data if result is not None else self.stored.load_transfer_data(key)

    def save(self, key: Key, result: StepResult, meta: StepMeta) -> None:
        self.results[make_hash(dict(key))] = result

    def record_failure(self, key: Key, error: BaseException, meta: StepMeta) -> None:
        self.failures[make_hash(dict(key))] = f"{type(error).__name__}: {error}"

    def checkpoints(self, key: Key) -> Callable:
        return _no_checkpoints

    def clear_checkpoints(self, key: Key) -> None:
        """Nothing to clear: a fast dev run keeps no checkpoints."""

    def delete(self, keys: Sequence[Key]) -> int:
        """Forget the steps this run checked (the real store's steps are never touched)."""
        digests = [make_hash(dict(key)) for key in keys]
        for digest in digests:
            self.failures.pop(digest, None)
        return sum(self.results.pop(digest, None) is not None for digest in digests)


@dataclass
class FastDevRunSummary:
    """What a fast dev run did, counting each step once however many chains share it: steps ``checked`` (run for ``batches`` batches per loop), how many of them
    ``broke``, steps ``stored`` before (read, not run) and ``blocked`` (after a step that broke)."""

    checked: int
    broke: int
    stored: int
    blocked: int
    batches: int

    def __str__(self) -> str:
        parts = [f"{self.checked} checked", f"{self.broke} broke", f"{self.stored} stored (not run)"]
        parts += [f"{self.blocked} blocked"] if self.blocked else []
        return f"fast dev run ({self.batches} batches per loop): {', '.join(parts)}; nothing was stored"


class FastDevRunResult(list):
    """Every step's :class:`~nntransfer.pipeline.store.StepStatus` (state ``stored``, ``passed``, ``broke``
    with its error, or ``blocked``), in recipe order, with ``summary`` and ``broken`` (the rows that broke)."""

    def __init__(self, rows: List[StepStatus], summary: FastDevRunSummary) -> None:
        super().__init__(rows)
        self.summary = summary

    @property
    def broken(self) -> List[StepStatus]:
        return [row for row in self if row.state == BROKE]


def refuse_fast_dev_run_option(recipe: Recipe, runtime: Dict[str, Dict[str, Any]]) -> None:
    """Before a run that stores its steps: a one-line ``ValueError`` if a step's trainer would run a fast dev run
    (set in its config or in ``runtime``), whose result must never be kept under the step's key."""
    for description, chain in recipe.transfer_experiments.items():
        for level in range(len(chain)):
            if StepSpec.from_experiment(chain[level], runtime).config("trainer").get("fast_dev_run"):
                raise ValueError(f"{description.name} (seed {description.seed}) step {level}: the trainer option fast_dev_run is "
                                 "set, and a fast dev run's result is never stored; unset it, or check the recipe with "
                                 "'nntransfer run --fast-dev-run', which stores nothing")


def check_recipe(recipe: Recipe, stored: Optional[Store], runtime: Dict[str, Dict[str, Any]], order: str = "original") -> FastDevRunResult:
    """Run every step of ``recipe`` that ``stored`` (None: no store yet) does not hold with the runtime options
    ``runtime`` (whose trainer options set ``fast_dev_run``) in a :class:`TrialStore`; see the module docstring.
    A pending step whose trainer has no ``fast_dev_run`` option is a ``ValueError`` before anything runs."""
    batches = int(runtime.get("trainer", {}).get("fast_dev_run") or 0)
    if batches < 1:
        raise ValueError(f"a fast dev run needs fast_dev_run of at least 1 batch, got {batches}")
    steps = [(d, chain, level) for d, chain in recipe.transfer_experiments.items() for level in range(len(chain))]
    keys = [chain.step_key(level) for _, chain, level in steps]
    store = TrialStore(stored)
    was_stored = [found.state == DONE for found in store.states(keys)]
    for (description, chain, level), done in zip(steps, was_stored):
        trainer = chain[level].trainer
        if not done and "fast_dev_run" not in trainer.runtime_options():
            raise ValueError(f"{description.name} (seed {description.seed}) step {level}: its trainer config "
                             f"{type(trainer).__name__} has no runtime option fast_dev_run, so it cannot be limited to a few "
                             "batches; base it on EpochLoopConfig (ClassificationTrainerConfig is one), or leave the chain out with --chain")
    if all(was_stored):
        logger.info("nothing to check: every step is stored in %s", stored.where if stored is not None else "the store")
    else:
        logger.info("fast dev run: %d pending step(s), %d batch(es) per loop; nothing is stored", was_stored.count(False), batches)
        store.run(recipe, order=order, runtime=runtime)
    rows = []
    for (description, chain, level), key, done, found in zip(steps, keys, was_stored, store.states(keys)):
        row = StepStatus(description.name, description.seed, level, chain[level].comment, BLOCKED, id=make_hash(key),
                         trained_seed=chain[level].seed)
        if done:
            row.state, row.score = STORED, found.score
        elif found.state == DONE:
            row.state = PASSED
        elif found.state == FAILED:
            row.state, row.error = BROKE, found.error
        rows.append(row)
    by_step = {make_hash(key): row.state for key, row in zip(keys, rows)}  # a step several chains share counts once
    states = list(by_step.values())
    summary = FastDevRunSummary(states.count(PASSED) + states.count(BROKE), states.count(BROKE), states.count(STORED),
                                states.count(BLOCKED), batches)
    logger.info("%s", summary)
    return FastDevRunResult(rows, summary)
