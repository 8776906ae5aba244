"""`KnowledgeDistillation`: match the softened predictions of a teacher (Hinton et al., 2015)."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

from nntransfer.configs.trainer.mixins import KnowledgeDistillationMixin
from nntransfer.models.orbit import LearnedOrbit
from nntransfer.trainer.main_loop_modules.base import EpochSums, MainLoopModule
from nntransfer.trainer.main_loop_modules.layer_matching import model_logits
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
    ``gamma = kd_weight`` (the module sets ``shared_memory["task_loss_weight"]``); evaluation keeps the
    task loss alone. The teacher's logits come from (``kd_teacher``):

    - ``"teacher"``: the step's teacher (``trainer.teacher``), which the trainer runs on exactly the batch
      the student sees (``uses_teacher_outputs``); the teacher may have another architecture.
    - ``"initial"``: a frozen copy of the model as the trainer received it (the previous transfer step's
      weights, copied before any reset).
    - ``"transfer_data"``: the logits the previous step handed over as batch extras ``"logits"``.

    The term added to the loss (``gamma * distillation_loss``) is logged as ``("Training", task, "distillation")``.
    """

    config_mixin = KnowledgeDistillationMixin

    def __init__(self, trainer: Any) -> None:
        super().__init__(trainer)
        # instance attributes: only the online teacher needs the trainer's teacher and its outputs
        self.needs_teacher = self.uses_teacher_outputs = self.config.kd_teacher == "teacher"
        self.gamma = float(self.config.kd_weight)
        self.teacher = None
        if self.config.kd_teacher == "initial":
            self.teacher = copy.deepcopy(trainer.model).eval()
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        self.sums = EpochSums()
        trainer.tracker.add_objectives({"Training": {task: {"distillation": 0.0} for task in trainer.train_loaders}})

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
            s, t = model_logits(student), model_logits(teacher)
            if s.shape[1:] != t.shape[1:]:
                step.problem(f"KnowledgeDistillation: the teacher has {t.shape[1]} classes, the student {s.shape[1]}; "
                             "distillation compares their predictions class by class, so both need the same classes")

    def pre_forward(self, model, inputs, task_key, shared_memory):
        """In training: weight the task loss by ``1 - gamma``; compute (or fetch) the teacher's logits
        unless the trainer runs the step's teacher itself."""
        if not self.train_mode:
            return model, inputs
        shared_memory["task_loss_weight"] = shared_memory.get("task_loss_weight", 1.0) * (1.0 - self.gamma)
        if self.uses_teacher_outputs:
            return model, inputs  # the trainer puts the teacher's outputs into shared_memory["teacher_outputs"]
        if self.teacher is not None:
            with torch.no_grad():
                shared_memory["teacher_logits"] = model_logits(self.teacher(inputs))
        else:
            extras = shared_memory.get("extras") or {}
            if "logits" not in extras:
                raise ValueError(
                    "KnowledgeDistillation with kd_teacher='transfer_data' needs batch extras 'logits': "
                    "run the previous step with compute_transfer_data=True and this one with data_transfer=True"
                )
            shared_memory["teacher_logits"] = extras["logits"]
        return model, inputs

    def post_forward(self, outputs, loss, targets, **shared_memory):
        """Add ``gamma * distillation_loss`` (training only)."""
        if not self.train_mode:
            return outputs, loss, targets
        if self.uses_teacher_outputs:
            if shared_memory.get("teacher_outputs") is None:
                return outputs, loss, targets
            teacher = model_logits(shared_memory["teacher_outputs"])
        else:
            teacher = shared_memory.get("teacher_logits")
            if teacher is None:
                return outputs, loss, targets
        student = model_logits(outputs)
        if student.shape[0] != teacher.shape[0] and student.shape[0] % teacher.shape[0] == 0:
            # an earlier module (e.g. representation matching) stacked copies of the batch
            teacher = teacher.repeat(student.shape[0] // teacher.shape[0], 1)
        if student.shape[1:] != teacher.shape[1:]:  # torch's own error would name neither side
            sources = {"transfer_data": "the logits the previous step handed on", "initial": "the initial model's logits"}
            source = sources.get(self.config.kd_teacher, "the teacher's logits")
            raise ValueError(f"KnowledgeDistillation: {source} have "
                             f"{_classes(teacher)} classes, the student {_classes(student)}; distillation compares "
                             "predictions class by class, so both need the same classes")
        kd = self.gamma * distillation_loss(student, teacher, self.config.kd_temperature)
        self.sums.add(shared_memory["task_key"], "distillation", kd, targets.shape[0])
        return outputs, loss + kd, targets

    def post_epoch(self, model):
        """Log the epoch's distillation term."""
        self.sums.log(self.trainer.tracker, "Training")
