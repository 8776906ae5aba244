"""`TransferExperiment`: experiments chained so that each step starts from the previous step's model
(and, where the step's trainer sets ``data_transfer``, receives the data the previous step produced)."""

from __future__ import annotations

import copy
from typing import Any, Dict, Iterator, List, Optional, Sequence

from nntransfer.configs.codec import make_hash
from nntransfer.configs.experiment import Experiment

STEP_COMMENT_SEPARATOR = " -> "


class TransferExperiment:
    """A chain of :class:`Experiment` steps.

    Args:
        configs: the steps, in training order.
        update: optional per-step changes, ``update[i] = {"dataset": {...}, "model": {...}, "trainer": {...}}``,
            applied to copies of step ``i``'s configs (so recipes can reuse one base config per role).

    Step ``i`` has the comment ``"c0 -> c1 -> ... -> ci"`` built from the steps' own comments; ``comment`` is
    the last step's. ``update(settings)`` changes steps later, ``get_restrictions(level)`` restricts the
    table to a step (``{}`` past the last), as in the original nntransfer.
    """

    def __init__(self, configs: Sequence[Experiment], update: Optional[Sequence[Dict[str, Dict[str, Any]]]] = None):
        configs = list(configs)
        if not configs:
            raise ValueError("TransferExperiment needs at least one Experiment")
        for i, step in enumerate(configs):
            if not isinstance(step, Experiment):
                raise ValueError(f"TransferExperiment step {i} must be an Experiment, got {type(step).__name__}")
        update = self._checked_update(update, len(configs))
        self.configs: List[Experiment] = []
        for i, step in enumerate(configs):
            changes = update[i] if i < len(update) else {}
            self.configs.append(self._updated(step, changes, i))
        self._check_chain()
        self._own_comments = [step.comment for step in self.configs]
        for i, step in enumerate(self.configs):
            step.comment = STEP_COMMENT_SEPARATOR.join(c for c in self._own_comments[: i + 1] if c)

    @staticmethod
    def _checked_update(update: Optional[Sequence[Dict[str, Dict[str, Any]]]], steps: int) -> List[Dict[str, Dict[str, Any]]]:
        update = list(update or [])
        if len(update) > steps:
            raise ValueError(f"update has {len(update)} entries but the experiment has only {steps} steps")
        return update

    def _check_chain(self) -> None:
        """What a chain's steps take from each other must be there."""
        if getattr(self.configs[0].trainer, "data_transfer", False):
            raise ValueError("the first step's trainer sets data_transfer, but there is no previous step to receive data from")
        if getattr(self.configs[0].trainer, "teacher", None) is not None:
            raise ValueError("the first step's trainer sets teacher='previous', but there is no previous step to be the teacher")
        if getattr(self.configs[0].trainer, "student_model", None) is not None:
            raise ValueError("the first step's trainer sets student_model, whose teacher (the step's model) needs a previous "
                             "step's weights; put a step that trains the teacher first")
        for i in range(1, len(self.configs)):
            previous = self.configs[i - 1].trainer
            if getattr(self.configs[i].trainer, "data_transfer", False) and getattr(previous, "compute_transfer_data", True) is False:
                raise ValueError(
                    f"step {i}'s trainer sets data_transfer, but step {i - 1}'s trainer does not produce data; "
                    f"set compute_transfer_data=True in step {i - 1}'s trainer"
                )

    def check_seed(self, seed: Any) -> None:
        """Refuse (one-line ``ValueError``) to be named with ``seed`` (its ``Description``'s) when its last step
        trains with another seed: the chain's result would be recorded under a seed it was not trained with.
        Earlier steps may train with seeds of their own (one teacher, trained once, that the chains of several
        seeds share, as the paper's rotation recipe does); every step is recorded with the seed it trained with
        (``trained_seed`` in ``nntransfer.analysis.results``)."""
        last = self.configs[-1].seed
        if last != seed:
            raise ValueError(f"its last step trains with seed {last!r}, but the chain is named with seed {seed!r}; "
                             f"a chain is named with its last step's seed: give that Experiment seed={seed!r}, "
                             f"or the Description seed={last!r}")

    def update(self, settings: Sequence[Dict[str, Dict[str, Any]]]) -> "TransferExperiment":
        """Change steps in place, as in the original nntransfer: ``settings[i] = {"dataset": {...}, "model":
        {...}, "trainer": {...}}`` is applied to step ``i`` (the chain's own copies: the recipe's objects,
        possibly shared with other chains, are untouched); returns self."""
        settings = self._checked_update(settings, len(self.configs))
        updated = [copy.deepcopy(step) for step in self.configs]  # all or nothing
        for i, setting in enumerate(settings):
            unknown = set(setting) - {"dataset", "model", "trainer"}
            if unknown:
                raise ValueError(f"update[{i}] has unknown part(s) {sorted(unknown)}; use 'dataset', 'model' or 'trainer'")
            updated[i].update(setting)
        before, self.configs = self.configs, updated
        try:
            self._check_chain()
        except ValueError:
            self.configs = before
            raise
        return self

    @staticmethod
    def _updated(step: Experiment, changes: Dict[str, Dict[str, Any]], index: int) -> Experiment:
        unknown = set(changes) - {"dataset", "model", "trainer"}
        if unknown:
            raise ValueError(f"update[{index}] has unknown part(s) {sorted(unknown)}; use 'dataset', 'model' or 'trainer'")
        step = copy.deepcopy(step)
        for role, values in changes.items():
            getattr(step, role).update(values)
        return step

    # ------------------------------------------------------------------ sequence behaviour

    def __len__(self) -> int:
        return len(self.configs)

    def __iter__(self) -> Iterator[Experiment]:
        return iter(self.configs)

    def __getitem__(self, index: int) -> Experiment:
        return self.configs[index]

    @property
    def comments(self) -> List[str]:
        return [step.comment for step in self.configs]

    @property
    def comment(self) -> str:
        """The chain's comment, ``"c0 -> c1 -> ..."``: the last step's (as in the original nntransfer)."""
        return self.configs[-1].comment

    # ------------------------------------------------------------------ keys

    def step_key(self, level: int) -> Dict[str, Any]:
        """The full primary key of step ``level``'s row in ``TransferredTrainedModel``."""
        if not 0 <= level < len(self.configs):
            raise ValueError(f"transfer step {level} does not exist; this experiment has steps 0..{len(self.configs) - 1}")
        collapsed_history = ""
        key: Dict[str, Any] = {}
        for i, step in enumerate(self.configs[: level + 1]):
            key = dict(step.get_key(), collapsed_history=collapsed_history, transfer_step=i)
            key["data_transfer"] = int(bool(getattr(step.trainer, "data_transfer", False))) if i else 0
            collapsed_history = make_hash(key)  # what the table's CollapsedHistory computes
        return key

    def get_restrictions(self, level: int = 0) -> Dict[str, Any]:
        """Restriction of ``TransferredTrainedModel`` to the row of step ``level``: the step's experiment
        key plus the ``collapsed_history`` of the steps before it. Past the last step it is ``{}`` (as in the
        original nntransfer, whose runner and analysis loop over levels until then)."""
        if isinstance(level, int) and level >= len(self.configs):
            return {}
        key = self.step_key(level)
        key.pop("transfer_step")
        key.pop("data_transfer")
        return key

    def get_key(self) -> Dict[str, Any]:
        """Key of the last step (its row identifies the whole chain)."""
        return self.step_key(len(self.configs) - 1)

    def add_to_table(self) -> List[Dict[str, Any]]:
        """Insert every step's configs and seed into the nnfabrik tables; returns their keys."""
        return [step.add_to_table() for step in self.configs]

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> Dict[str, Any]:
        steps = []
        for step, own_comment in zip(self.configs, self._own_comments):
            entry = step.to_dict()
            entry["comment"] = own_comment
            steps.append(entry)
        return {"configs": steps}

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "TransferExperiment":
        return cls([Experiment.from_dict(entry) for entry in values["configs"]])

    def __eq__(self, other) -> bool:
        return isinstance(other, TransferExperiment) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"TransferExperiment({self.comments})"
