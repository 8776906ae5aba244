"""`KnowledgeDistillation`: match the softened predictions of a teacher (Hinton et al., 2015)."""

from __future__ import annotations

import copy
from typing import Optional

import torch
import torch.nn.functional as F

from nntransfer.configs.trainer.mixins import KnowledgeDistillationMixin
from nntransfer.models.orbit import LearnedOrbit
from nntransfer.trainer.main_loop_modules.base import NONE, OUTPUTS, BatchState, MainLoopModule, read_output
from nntransfer.trainer.main_loop_modules.registry import register


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over the batch."""
    t = temperature
    log_student = F.log_softmax(student_logits.float() / t, dim=1)
    teacher = F.softmax(teacher_logits.float() / t, dim=1)
    return F.kl_div(log_student, teacher, reduction="batchmean") * (t * t)


def _classes(logits: torch.Tensor) -> str:
    """The number of classes of a batch of logits ``[B, classes]`` (the shape after the batch otherwise)."""
    return str(logits.shape[1]) if logits.dim() == 2 else str(tuple(logits.shape[1:]))


@register
class KnowledgeDistillation(MainLoopModule):
    """In training the loss becomes ``(1 - gamma) * task loss + gamma * distillation_loss`` with
    ``gamma = kd_weight`` (the module scales the task loss by ``1 - gamma``); evaluation keeps the task loss
    alone. The teacher's logits come from (``kd_teacher``):

    - ``"teacher"``: the step's teacher, which the trainer runs on exactly the batch the student sees
      (``needs_teacher == OUTPUTS``); the teacher may have another architecture.
    - ``"initial"``: a frozen copy of the model as the trainer received it (the previous transfer step's
      weights, copied before any reset), run on the student's batch.
    - ``"transfer_data"``: the logits the previous step handed over as batch extras ``"logits"``.

    The term is ``distillation`` (weight ``gamma``).
    """

    config_mixin = KnowledgeDistillationMixin
    needs_teacher = OUTPUTS

    @classmethod
    def teacher_need(cls, config):
        """Only the online teacher (``kd_teacher="teacher"``) needs the step's teacher."""
        return OUTPUTS if config.kd_teacher == "teacher" else NONE

    def __init__(self, context) -> None:
        super().__init__(context)
        self.gamma = float(self.config.kd_weight)
        self.initial: Optional[torch.nn.Module] = None
        if self.config.kd_teacher == "initial":
            self.initial = copy.deepcopy(context.model).eval()
            for p in self.initial.parameters():
                p.requires_grad_(False)

    @classmethod
    def check_step(cls, step):
        """The logits exist where ``kd_teacher`` takes them from: the step's teacher, a network with the
        student's number of classes (not an orbit), or the previous step's handed-on logits."""
        source = step.config.kd_teacher
        if source == "transfer_data":
            if step.previous is None or not step.previous.hands_on_logits:
                step.problem("KnowledgeDistillation with kd_teacher='transfer_data' needs the logits the previous step "
                             "hands on: set compute_transfer_data=True in the previous step's trainer config")
            return
        if source != "teacher":
            return
        if step.teacher is None:
            step.problem("KnowledgeDistillation (kd_teacher='teacher') needs a teacher: set teacher='previous' in this "
                         "step's trainer config, in a chain whose previous step trains the teacher")
            return
        if isinstance(step.teacher, LearnedOrbit):
            step.problem("KnowledgeDistillation: the teacher is the learned orbit of an orbit-learning step, not a network "
                         "with logits; distil from the network's step, or train on the orbit with OrbitTransfer")
            return
        student = step.layer_outputs("student", [], "KnowledgeDistillation")
        teacher = step.layer_outputs("teacher", [], "KnowledgeDistillation")
        if student is not None and teacher is not None:
            s, t = student.logits, teacher.logits
            if s.shape[1:] != t.shape[1:]:
                step.problem(f"KnowledgeDistillation: the teacher has {t.shape[1]} classes, the student {s.shape[1]}; "
                             "distillation compares their predictions class by class, so both need the same classes")

    def teacher_logits(self, state: BatchState) -> torch.Tensor:
        """The teacher's logits for every row of the student's batch."""
        source = self.config.kd_teacher
        if source == "teacher":
            return state.teacher_output.logits
        if source == "initial":
            with torch.no_grad():
                return read_output(self.initial(state.inputs)).logits
        if "logits" not in state.extras:
            raise ValueError(
                "KnowledgeDistillation with kd_teacher='transfer_data' needs batch extras 'logits': "
                "run the previous step with compute_transfer_data=True and this one with data_transfer=True"
            )
        return state.per_row(state.extras["logits"])

    def post_forward(self, state: BatchState) -> None:
        """Weight the task loss by ``1 - gamma`` and add the distillation term (training only)."""
        if not state.training:
            return
        state.scale_task_loss(1.0 - self.gamma)
        teacher, student = self.teacher_logits(state), state.output.logits
        if student.shape[1:] != teacher.shape[1:]:  # torch's own error would name neither side
            sources = {"transfer_data": "the logits the previous step handed on", "initial": "the initial model's logits"}
            source = sources.get(self.config.kd_teacher, "the teacher's logits")
            raise ValueError(f"KnowledgeDistillation: {source} have "
                             f"{_classes(teacher)} classes, the student {_classes(student)}; distillation compares "
                             "predictions class by class, so both need the same classes")
        state.add_loss("distillation", distillation_loss(student, teacher, self.config.kd_temperature), self.gamma)
