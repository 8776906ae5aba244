"""`LayerMatching`: pull the student's layers (or logits) directly towards the teacher's.

Also the common base of the modules that compare pairs of student and teacher layers
(``TeacherLayerModule``: ``LayerMatching``, ``RDL``, ``AttentionTransfer``).
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import TYPE_CHECKING, Any, Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

from nntransfer.configs.trainer.mixins import MATCH_CRITERIA, LayerMatchingMixin
from nntransfer.trainer.main_loop_modules.base import OUTPUTS, BatchState, MainLoopModule
from nntransfer.trainer.main_loop_modules.registry import register

if TYPE_CHECKING:  # pragma: no cover
    from nntransfer.trainer.main_loop_modules.chain_check import StepCheck


def check_pair(student: torch.Tensor, teacher: torch.Tensor, what: str) -> None:
    """One-line ``ValueError`` unless both hold the same number of examples (at least a batch dimension)."""
    if student.dim() < 1 or teacher.dim() < 1 or student.shape[0] != teacher.shape[0]:
        raise ValueError(
            f"{what}: the student's layer {tuple(student.shape)} and the teacher's {tuple(teacher.shape)} must hold "
            "the same examples (equal first dimension); run the teacher on the student's batch"
        )


def layer_matching_loss(student: torch.Tensor, teacher: torch.Tensor, criterion: str = "l2") -> torch.Tensor:
    """Distance between the student's and the teacher's representations of the same examples, compared
    flattened per example: ``"l2"`` (mean squared error over all values) or ``"cosine"`` (mean over the
    examples of 1 - cosine similarity). Both must hold the same number of values per example."""
    if criterion not in MATCH_CRITERIA:
        raise ValueError(f"unknown layer-matching criterion {criterion!r}; use one of {MATCH_CRITERIA}")
    check_pair(student, teacher, "layer_matching_loss")
    s, t = student.flatten(1).float(), teacher.flatten(1).float()
    if s.shape[1] != t.shape[1]:
        raise ValueError(
            f"layer_matching_loss: the student's layer {tuple(student.shape)} has {s.shape[1]} values per example, "
            f"the teacher's {tuple(teacher.shape)} {t.shape[1]}; match layers of equal size (or use RDL)"
        )
    if criterion == "l2":
        return F.mse_loss(s, t)
    return (1 - F.cosine_similarity(s, t, dim=1)).mean()


class TeacherLayerModule(MainLoopModule, metaclass=ABCMeta):
    """Base of the modules that compare pairs ``{student layer path: teacher layer path}`` in training:
    the trainer captures both layers and runs the teacher on the student's batch; ``loss(config, pairs)``
    turns the pairs into the term ``objective``, weighted by the config field ``weight_field``. Before anything trains, ``check_step`` runs the
    same ``loss`` on one batch of the step's untrained student and teacher, so that an unknown layer path
    or a pair of layers the method cannot compare is refused then.

    Subclasses set ``objective``, ``layers_field`` (the config field holding the pairs) and ``weight_field``, and
    implement ``loss``.
    """

    needs_teacher = OUTPUTS
    objective = ""
    layers_field = ""
    weight_field = ""

    @classmethod
    def pairs(cls, config: Any) -> Dict[str, str]:
        return dict(getattr(config, cls.layers_field))

    @classmethod
    def student_layers(cls, config: Any) -> List[str]:
        return list(cls.pairs(config))

    @classmethod
    def teacher_layers(cls, config: Any) -> List[str]:
        return list(dict.fromkeys(cls.pairs(config).values()))

    @classmethod
    @abstractmethod
    def loss(cls, config: Any, pairs: Sequence[Tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """The term (before its weight) for ``[(student layer, teacher layer), ...]`` of one batch."""

    @classmethod
    def check_step(cls, step: "StepCheck") -> None:
        """The layers exist in the student and the teacher, and ``loss`` takes what they return for one batch."""
        super().check_step(step)
        pairs = cls.pairs(step.config)
        what = f"{cls.__name__} ({cls.layers_field})"
        student = step.layer_outputs("student", list(pairs), what)
        teacher = step.layer_outputs("teacher", list(pairs.values()), what)
        if student is None or teacher is None:
            return
        try:
            cls.loss(step.config, [(student.layer(s), teacher.layer(t)) for s, t in pairs.items()])
        except ValueError as err:
            step.problem(f"{what}: {err}")

    def post_forward(self, state: BatchState) -> None:
        """Add the term (training batches, where the trainer ran the teacher)."""
        if not state.training:
            return
        student, teacher = state.output, state.teacher_output
        pairs = [(student.layer(s), teacher.layer(t)) for s, t in self.pairs(self.config).items()]
        state.add_loss(self.objective, self.loss(self.config, pairs), getattr(self.config, self.weight_field))


@register
class LayerMatching(TeacherLayerModule):
    """In training adds ``match_weight * mean over the pairs of layer_matching_loss(student, teacher)``
    for the pairs ``match_layers`` (``{"output": "output"}`` matches the logits), as the term ``layer_matching``."""

    config_mixin = LayerMatchingMixin
    objective = "layer_matching"
    layers_field = "match_layers"
    weight_field = "match_weight"

    @classmethod
    def loss(cls, config, pairs):
        return torch.stack([layer_matching_loss(s, t, config.match_criterion) for s, t in pairs]).mean()

