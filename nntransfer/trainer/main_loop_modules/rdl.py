"""`RDL`: representational distance learning (McClure & Kriegeskorte, 2016).

The student is trained to arrange the examples of a batch like the teacher does: per pair of layers the
representational dissimilarity matrices (RDMs, one dissimilarity per pair of examples) are compared, so
the two layers may differ in size and kind (an MLP layer against a conv map).
"""

from __future__ import annotations

import torch

from nntransfer.configs.trainer.mixins import RDL_DISTANCES, RDLMixin
from nntransfer.trainer.main_loop_modules.layer_matching import TeacherLayerModule, check_pair
from nntransfer.trainer.main_loop_modules.registry import register

_EPS = 1e-8


def representational_dissimilarity(features: torch.Tensor, distance: str = "correlation") -> torch.Tensor:
    """The B x B RDM of a batch of representations ``features`` (B, ...), each example flattened.

    ``"correlation"``: 1 - the Pearson correlation between two examples' representations (0 on the
    diagonal, invariant to scaling and shifting a representation). ``"euclidean"``: the Euclidean
    distance between them divided by the mean distance over the batch's pairs (invariant to scaling the
    whole layer, so that layers of different size and scale compare). Differentiable everywhere, also
    for identical or constant representations."""
    if distance not in RDL_DISTANCES:
        raise ValueError(f"unknown RDM distance {distance!r}; use one of {RDL_DISTANCES}")
    if features.dim() < 2:
        raise ValueError(f"representational_dissimilarity needs a batch of representations (B, ...), got shape {tuple(features.shape)}")
    x = features.flatten(1).float()
    n = x.shape[0]
    off_diagonal = 1.0 - torch.eye(n, device=x.device, dtype=x.dtype)
    if distance == "correlation":
        centred = x - x.mean(dim=1, keepdim=True)
        unit = centred / centred.norm(dim=1, keepdim=True).clamp_min(_EPS)
        return (1.0 - unit @ unit.T) * off_diagonal
    squared = x.pow(2).sum(dim=1)
    # sqrt of clamped values: no infinite gradient where two examples coincide (the diagonal)
    dist = (squared[:, None] + squared[None, :] - 2.0 * x @ x.T).clamp_min(_EPS).sqrt() * off_diagonal
    pairs = max(n * (n - 1), 1)
    return dist / (dist.sum() / pairs).clamp_min(_EPS)


def rdl_loss(student_feats: torch.Tensor, teacher_feats: torch.Tensor, distance: str = "correlation") -> torch.Tensor:
    """Mean squared difference between the upper triangles (pairs of distinct examples) of the student's
    and the teacher's RDMs of the same batch; 0 for a batch of fewer than two examples."""
    check_pair(student_feats, teacher_feats, "rdl_loss")
    n = student_feats.shape[0]
    student = representational_dissimilarity(student_feats, distance)
    if n < 2:
        return student.sum() * 0.0
    teacher = representational_dissimilarity(teacher_feats, distance).detach()
    rows, cols = torch.triu_indices(n, n, offset=1, device=student.device)
    return (student[rows, cols] - teacher[rows, cols]).pow(2).mean()


@register
class RDL(TeacherLayerModule):
    """In training adds ``rdl_weight * mean over the pairs rdl_layers of rdl_loss(student, teacher)``;
    needs the step's teacher. The term is ``rdl``."""

    config_mixin = RDLMixin
    objective = "rdl"
    layers_field = "rdl_layers"
    weight_field = "rdl_weight"

    @classmethod
    def loss(cls, config, pairs):
        return torch.stack([rdl_loss(s, t, config.rdl_distance) for s, t in pairs]).mean()
