"""`AttentionTransfer`: activation-based attention transfer (Zagoruyko & Komodakis, 2017).

The attention map of a layer tells where in the input the layer is active: for a conv map A (B, C, H, W)
``Q = vec(mean_c |A_c|^p)``, L2-normalised per example. The student is trained to attend where the teacher
does. A student of another architecture with a flat layer (B, D) is read as D / L channels of the L
positions of the teacher's map (channel-major, the layout ``nn.Flatten`` gives a conv map).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F

from nntransfer.configs.trainer.mixins import AttentionTransferMixin
from nntransfer.trainer.main_loop_modules.layer_matching import TeacherLayerModule, check_pair
from nntransfer.trainer.main_loop_modules.registry import register


def _positions(features: torch.Tensor) -> Optional[int]:
    """The number of spatial positions of a map (B, C, ...); None for a flat representation (B, D)."""
    return math.prod(features.shape[2:]) if features.dim() > 2 else None


def attention_map(features: torch.Tensor, p: float = 2.0, length: Optional[int] = None) -> torch.Tensor:
    """The attention map (B, L) of ``features``: the mean over channels of ``|a|^p`` per position,
    flattened and L2-normalised per example.

    ``features``: a map (B, C, ...) with L = the number of positions, or a flat representation (B, D),
    viewed as (B, D / length, length) (``length`` None: D positions of one channel)."""
    if features.dim() < 2:
        raise ValueError(f"attention_map needs a batch of representations (B, ...), got shape {tuple(features.shape)}")
    if features.dim() > 2:
        maps = features.flatten(2)
        if length is not None and maps.shape[2] != length:
            raise ValueError(f"attention_map: the map {tuple(features.shape)} has {maps.shape[2]} positions, not {length}")
    else:
        size = features.shape[1]
        length = size if length is None else int(length)
        if length < 1 or size % length:
            raise ValueError(
                f"a flat representation of {size} values cannot be read as channels x {length} positions of the "
                f"teacher's attention map; pick a student layer whose size is a multiple of {length}"
            )
        maps = features.reshape(features.shape[0], size // length, length)
    return F.normalize(maps.float().abs().pow(p).mean(dim=1), dim=1)


def attention_distance(student_feats: torch.Tensor, teacher_feats: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Mean over the batch of ``||Q_s - Q_t||_2`` divided by the number L of positions (the paper's scaling
    of beta), between the attention maps of the student's and the teacher's layer. A flat layer on one
    side is read with the other side's number of positions; maps of different sizes are an error."""
    check_pair(student_feats, teacher_feats, "attention_distance")
    s_len, t_len = _positions(student_feats), _positions(teacher_feats)
    if s_len is not None and t_len is not None and s_len != t_len:
        raise ValueError(
            f"attention transfer: the student's map {tuple(student_feats.shape)} has {s_len} positions, the teacher's "
            f"{tuple(teacher_feats.shape)} {t_len}; pair layers of the same spatial size"
        )
    length = t_len if t_len is not None else s_len
    q_s = attention_map(student_feats, p, length)
    q_t = attention_map(teacher_feats, p, length).detach()
    if q_s.shape != q_t.shape:
        raise ValueError(
            f"attention transfer: the attention maps of the student's layer {tuple(student_feats.shape)} and the "
            f"teacher's {tuple(teacher_feats.shape)} differ in size; pair a conv layer with a layer of its size"
        )
    return torch.linalg.vector_norm(q_s - q_t, dim=1).mean() / q_s.shape[1]



def attention_transfer_loss(
    student_feats: Union[torch.Tensor, Sequence[torch.Tensor]],
    teacher_feats: Union[torch.Tensor, Sequence[torch.Tensor]],
    p: float = 2.0,
    beta: float = 1000.0,
) -> torch.Tensor:
    """``beta / 2 * mean over the layer pairs of attention_distance(student, teacher, p)``; the paper's
    ``beta/2 * sum_j || Q_s^j / ||Q_s^j|| - Q_t^j / ||Q_t^j|| ||_p`` with p = 2 and beta = 1000 divided by
    the number of elements of the attention map and the batch size. One tensor each or matching sequences."""
    if isinstance(student_feats, torch.Tensor):
        student_feats, teacher_feats = [student_feats], [teacher_feats]
    if len(student_feats) != len(teacher_feats) or not student_feats:
        raise ValueError("attention_transfer_loss needs one teacher layer for every student layer (at least one pair)")
    distances = [attention_distance(s, t, p) for s, t in zip(student_feats, teacher_feats)]
    return beta / 2 * torch.stack(distances).mean()


@register
class AttentionTransfer(TeacherLayerModule):
    """In training adds ``attention_transfer_loss`` over the pairs ``at_layers`` (beta = ``at_weight``,
    p = ``at_p``); needs the step's teacher. The term is ``attention_transfer``."""

    config_mixin = AttentionTransferMixin
    objective = "attention_transfer"
    layers_field = "at_layers"
    weight_field = "at_weight"  # beta: the term below is attention_transfer_loss with beta = 1

    @classmethod
    def loss(cls, config, pairs):
        return attention_transfer_loss([s for s, _ in pairs], [t for _, t in pairs], p=config.at_p, beta=1.0)
