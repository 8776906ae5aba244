"""orbit_transfer's representation regularizers of the 2-D experiments (orbit_transfer/trainer/main_loop_modules/
representation.py, knowledge_distillation.py, rdl.py, attention_transfer.py), as one main-loop module of this
library's trainer: ``TransferMixin``'s ``regularization={"regularizer": ..., "gamma": ...}`` for
``KnowledgeDistillation``, ``AttentionTransfer`` and ``RDL`` with ``dist_measure="CKA"``.

In training the loss is the task loss times ``1 - gamma`` plus ``gamma`` times the sum, over every named extra
output of the student (its ``get_intermediate_rep`` names, ``out.1``, ...), of the distance between that output and
the teacher's output of the same name on the same batch; evaluation keeps the task loss times ``1 - gamma``
(orbit_transfer/trainer/img_classification_trainer.py ``compute_loss`` weighed the task loss by ``1 - gamma`` of
the first main-loop module with a ``gamma``). The distances
(pure functions below):

- ``KnowledgeDistillation``: ``T² · KL(softmax(teacher / T) ‖ softmax(student / T))``, averaged over the batch;
- ``AttentionTransfer``: both outputs made maps (a flat output of ``h`` values as ``c`` channels of a square,
  ``c`` the smallest that gives one; with ``vit_input`` a ViT's tokens without the class token), the sum of
  squares over the channels, the teacher's map resized to the student's (nearest), each L2-normalised, their MSE;
- ``RDL`` with ``"CKA"``: the linear CKA between the flattened outputs, **added** to the loss as the original
  added it (its sign rewards representations unlike the teacher's; nntransfer's ``CKATransferMixin`` minimises
  ``1 - CKA``).

The term is logged as ``orbit_transfer_<regularizer>``. What the original could not run is refused before training,
by the chain check of the step (``check_step``): RDL's other distances (it flattened the dissimilarity matrix
before taking its upper triangle, which torch refuses); ``decay_gamma`` is refused by the config (not mapped).
"""

from __future__ import annotations

import math
from typing import Dict

import torch
import torch.nn.functional as F

from nntransfer.compat.orbit_transfer.configs.trainer import RepresentationRegularizationMixin
from nntransfer.compat.orbit_transfer.models import flat_as_maps
from nntransfer.trainer.main_loop_modules.base import OUTPUTS, BatchState, MainLoopModule
from nntransfer.trainer.main_loop_modules.cka import linear_cka


def distillation_distance(output: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T² · KL(softmax(target / T) ‖ softmax(output / T))`` summed over the classes, averaged over the batch."""
    kl = F.kl_div(F.log_softmax(output / temperature, dim=1), F.softmax(target.squeeze() / temperature, dim=1),
                  reduction="sum")
    return kl / output.shape[0] * temperature ** 2


def as_maps(features: torch.Tensor, vit_input: bool = False) -> torch.Tensor:
    """``features`` as ``[B, C, H, W]``: a ViT's tokens ``[B, 1 + H·W, C]`` without the last (class) token; a flat
    ``[B, h]`` as ``c`` channels of a square (``c`` the smallest with ``h // c`` a square); ``[B, ., ., W, H]``
    with its middle axes as channels."""
    shape = features.shape
    if vit_input and len(shape) < 4:
        tokens = features[:, :-1]
        side = int(math.sqrt(tokens.shape[1]))
        return tokens.transpose(1, 2).reshape(shape[0], -1, side, side)
    if len(shape) < 4:
        return flat_as_maps(features)
    if len(shape) > 4:
        return features.reshape(shape[0], -1, shape[-2], shape[-1])
    return features


def attention_distance(output: torch.Tensor, target: torch.Tensor, vit_input: bool = False) -> torch.Tensor:
    """The MSE between the L2-normalised attention maps (squares summed over the channels) of the two outputs,
    the teacher's map resized to the student's."""
    student = as_maps(output, vit_input).abs().pow(2).sum(dim=1, keepdim=True)
    teacher = as_maps(target, vit_input).abs().pow(2).sum(dim=1, keepdim=True)
    if student.shape[-1] != teacher.shape[-1]:
        teacher = F.interpolate(teacher, student.shape[-2:], mode="nearest")
    student, teacher = F.normalize(student.flatten(1), dim=1, eps=0.0), F.normalize(teacher.flatten(1), dim=1, eps=0.0)
    return F.mse_loss(student, teacher)


def cka_similarity(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The linear CKA between the flattened outputs (the original's ``RDL.linear_CKA``)."""
    return linear_cka(output.flatten(1), target.flatten(1))


class RepresentationRegularization(MainLoopModule):
    """The original's representation regularizers (module docstring): ``gamma`` times the summed distance over
    the student's named outputs, added in training to the task loss times ``1 - gamma``."""

    config_mixin = RepresentationRegularizationMixin
    needs_teacher = OUTPUTS

    @staticmethod
    def unrunnable(settings) -> str:
        """Why the original could not train ``settings`` ("" when it could)."""
        if settings.get("regularizer") == "RDL" and settings.get("dist_measure") != "CKA":
            return (f"regularization RDL with dist_measure={settings.get('dist_measure')!r}: the original flattened the "
                    "dissimilarity matrix before taking its upper triangle, which torch refuses (it trained only "
                    "dist_measure='CKA')")
        return ""

    def distance(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        settings = self.config.regularization
        name = settings["regularizer"]
        if name == "KnowledgeDistillation":
            return distillation_distance(output, target, float(settings.get("softmax_temp", 1.0)))
        if name == "AttentionTransfer":
            return attention_distance(output, target, bool(settings.get("vit_input")))
        return cka_similarity(output, target)

    def post_forward(self, state: BatchState) -> None:
        gamma = float(self.config.regularization.get("gamma", 0.5))
        state.scale_task_loss(1.0 - gamma)  # every mode, as the original's compute_loss
        if not state.training:
            return
        why = self.unrunnable(self.config.regularization)
        if why:
            raise ValueError(why)
        student: Dict[str, torch.Tensor] = state.output.layers
        teacher = state.teacher_output.layers
        total = torch.zeros((), device=state.inputs.device)
        for key, output in student.items():
            if key == "class" or "var" in key or "cov" in key:  # the original's outputs that are no representation
                continue
            if key not in teacher:
                raise ValueError(f"{self.config.regularization['regularizer']}: the student's output {key!r} has no "
                                 f"teacher output of that name (the teacher's: {sorted(teacher)})")
            total = total + self.distance(output, teacher[key])
        state.add_loss(f"orbit_transfer_{self.config.regularization['regularizer']}", total, gamma)

    @classmethod
    def check_step(cls, step) -> None:
        """A setting the original could train, and every named output of the student has a teacher output of that
        name (the original's pairing)."""
        why = cls.unrunnable(step.config.regularization)
        if why:
            step.problem(why)
            return
        if step.teacher is None:
            step.problem("orbit_transfer's regularization needs a teacher: set student_model (the step's model is "
                         "then the teacher), as the recipes do")
            return
        student = step.layer_outputs("student", [], "orbit_transfer regularization")
        teacher = step.layer_outputs("teacher", [], "orbit_transfer regularization")
        if student is None or teacher is None:
            return
        missing = sorted(set(student.layers) - set(teacher.layers))
        if not student.layers:
            step.problem("orbit_transfer's regularization: the student names no outputs (get_intermediate_rep), so "
                         "nothing would be regularized")
        elif missing:
            step.problem(f"orbit_transfer's regularization: the student's outputs {missing} have no teacher output of "
                         f"that name (the teacher's: {sorted(teacher.layers)})")


#: the name recipes' configs list in ``main_loop_modules`` (a dotted path: a worker imports it from a table row)
MODULE_PATH = f"{__name__}.RepresentationRegularization"

__all__ = ["RepresentationRegularization", "distillation_distance", "attention_distance", "cka_similarity", "as_maps"]
