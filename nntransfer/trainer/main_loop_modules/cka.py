"""`CKATransfer`: representation matching by linear centered kernel alignment (CKA; Kornblith et al., 2019).

Linear CKA asks whether two representations of the same examples arrange the batch alike, whatever their
widths: with X (B, p) and Y (B, q) centred over the examples,
``CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` for the Gram
matrices K = X X^T, L = Y Y^T. It is 1 for representations equal up to an orthogonal transform and an
isotropic scale, and unlike RDL's correlation RDMs it weights the directions the batch varies most along.
Nix et al. (2022) compare it, as a transfer method, with knowledge distillation, RDL and attention
transfer; their code (orbit_transfer) trains ``(1 - gamma) * CE - gamma * sum of linear CKA`` over the
hidden layers and the logits. Here a term ``1 - CKA`` per pair of layers, averaged (see ``CKATransferMixin``).
"""

from __future__ import annotations

import logging
from typing import Set, Tuple

import torch

from nntransfer.configs.trainer.mixins import CKATransferMixin
from nntransfer.trainer.main_loop_modules.base import BatchState
from nntransfer.trainer.main_loop_modules.layer_matching import TeacherLayerModule, check_pair
from nntransfer.trainer.main_loop_modules.registry import register

logger = logging.getLogger(__name__)

# guards only a representation that does not vary over the batch: after scaling to unit Frobenius norm, the
# centred Gram matrix of one that does has ||K||_F^2 >= 1 / min(B, width)
_EPS = 1e-12


def _flat(features: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, ...) -> (B, values per example) in ``dtype``; a 1-D tensor is one value per example."""
    return features.reshape(features.shape[0], -1).to(dtype)


def centred_gram(features: torch.Tensor) -> torch.Tensor:
    """The B x B Gram matrix of ``features`` (B, ...), each example flattened, centred over the examples
    (H K H with H = I - 1/B) and scaled to unit trace (the centred features to unit Frobenius norm), so
    that CKA needs no small numbers; all zero for a representation constant over the batch."""
    dtype = features.dtype if features.dtype in (torch.float32, torch.float64) else torch.float32
    x = _flat(features, dtype)
    x = x - x.mean(dim=0, keepdim=True)
    x = x / torch.linalg.vector_norm(x).clamp_min(_EPS)
    return x @ x.T


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Linear CKA in [0, 1] between two batches of representations of the same examples, ``x`` (B, ...)
    and ``y`` (B, ...), each example flattened (the widths may differ); differentiable in both.

    Invariant to orthogonal transforms, isotropic scaling and translation of either side, not to other
    invertible linear maps. A side that does not vary over the batch (a constant or dead layer, a batch of
    one example) shares no structure with the other: CKA is then defined as 0, with zero gradient, not NaN,
    so that one degenerate batch does not stop training. Different numbers of examples are a one-line
    ``ValueError``."""
    check_pair(x, y, "linear_cka")
    k, l_ = centred_gram(x), centred_gram(y)
    dtype = torch.promote_types(k.dtype, l_.dtype)
    k, l_ = k.to(dtype), l_.to(dtype)
    hsic = (k * l_).sum()  # trace(K H L H): both centred already
    norms = (k.pow(2).sum() * l_.pow(2).sum()).clamp_min(_EPS).sqrt()
    return hsic / norms


def cka_loss(student_feats: torch.Tensor, teacher_feats: torch.Tensor) -> torch.Tensor:
    """``1 - linear_cka(student, teacher)``, the teacher's side fixed: 0 when the student arranges the batch
    as the teacher does (up to rotation and scale), 1 when it shares nothing of it."""
    return 1.0 - linear_cka(student_feats, teacher_feats.detach())


def _varies(features: torch.Tensor) -> bool:
    """Whether a representation differs between the examples of the batch (otherwise CKA is 0 by definition)."""
    flat = features.detach().reshape(features.shape[0], -1)
    return flat.shape[0] > 1 and bool((flat != flat[:1]).any())


@register
class CKATransfer(TeacherLayerModule):
    """In training adds ``cka_weight * mean over the pairs cka_layers of cka_loss(student, teacher)``
    (1 - linear CKA); needs the step's teacher. The term is ``cka``."""

    config_mixin = CKATransferMixin
    objective = "cka"
    layers_field = "cka_layers"
    weight_field = "cka_weight"

    @classmethod
    def loss(cls, config, pairs):
        return torch.stack([cka_loss(s, t).float() for s, t in pairs]).mean()

    def __init__(self, context) -> None:
        super().__init__(context)
        self._warned: Set[Tuple[str, str]] = set()
        logger.info("CKATransfer: 1 - linear CKA of %s, weight %g", self.pairs(self.config), self.config.cka_weight)

    def post_forward(self, state: BatchState) -> None:
        """Add the term; say once per layer when a training batch's representation did not vary (CKA 0, no
        gradient: a dead or collapsed layer learns nothing from the teacher)."""
        super().post_forward(state)
        if not state.training or state.inputs.shape[0] < 2:
            return
        for role, output, paths in (
            ("student", state.output, self.student_layers(self.config)),
            ("teacher", state.teacher_output, self.teacher_layers(self.config)),
        ):
            for path in paths:
                if (role, path) not in self._warned and not _varies(output.layer(path)):
                    self._warned.add((role, path))
                    logger.warning(
                        "CKATransfer: the %s's layer %r is the same for every example of a training batch; "
                        "its CKA is 0 and gives no gradient there",
                        role,
                        path,
                    )
