"""`RepresentationMatching`: pull the representations of noisy inputs towards those of the clean inputs."""

from __future__ import annotations

from typing import Any, Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from nntransfer.configs.trainer.mixins import RepresentationMatchingMixin
from nntransfer.trainer.main_loop_modules.base import BatchState, LoopContext, MainLoopModule
from nntransfer.trainer.main_loop_modules.noise_augmentation import NoiseSource
from nntransfer.trainer.main_loop_modules.registry import register


def representation_distance(clean: torch.Tensor, noisy: torch.Tensor, criterion: str) -> torch.Tensor:
    """Mean distance between two batches of representations: ``"cosine"`` (1 - cosine similarity of the
    flattened representations) or ``"mse"``."""
    clean, noisy = clean.flatten(1).float(), noisy.flatten(1).float()
    if criterion == "cosine":
        return (1 - F.cosine_similarity(clean, noisy, dim=1)).mean()
    if criterion == "mse":
        return F.mse_loss(noisy, clean)
    raise ValueError(f"unknown representation-matching criterion {criterion!r}; use 'cosine' or 'mse'")


@register
class RepresentationMatching(MainLoopModule):
    """In training, every batch is doubled: ``[clean; noisy copy]``. After the forward pass the distance of
    the chosen layers' representations (clean vs noisy) is the term ``rep_matching`` (weight
    ``rep_matching_lambda``), with fixed or learned layer weights; the classification loss covers both halves.
    The layers are the model's own extra outputs (a model built to return ``(extra_outputs, logits)``)."""

    config_mixin = RepresentationMatchingMixin

    def __init__(self, context: LoopContext) -> None:
        super().__init__(context)
        c = self.config
        self.layers = list(c.rep_matching_layers)
        self.weights = [float(c.rep_matching_weights.get(layer, 1.0)) for layer in self.layers]
        self.noise = NoiseSource(context, c.rep_matching_noise_std, c.rep_matching_noise_snr)
        self.log_variances = (
            nn.Parameter(torch.zeros(len(self.layers), device=context.device)) if c.rep_matching_learned_weights else None
        )

    def parameters(self) -> List[nn.Parameter]:
        return [self.log_variances] if self.log_variances is not None else []

    def state_dict(self) -> Dict[str, Any]:
        return {"log_variances": self.log_variances.detach().cpu()} if self.log_variances is not None else {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if self.log_variances is not None:
            with torch.no_grad():
                self.log_variances.copy_(state["log_variances"])

    def pre_forward(self, state: BatchState) -> None:
        """Append a noisy copy of the batch."""
        if state.training:
            state.stack_inputs(self.noise(state.inputs))

    def post_forward(self, state: BatchState) -> None:
        """Add the matching term; duplicate the targets for the noisy half."""
        if not state.training:
            return
        n = state.targets.shape[0]
        total = 0.0
        for i, layer in enumerate(self.layers):
            rep = state.output.layer(layer)
            distance = representation_distance(rep[:n], rep[n:], self.config.rep_matching_criterion)
            if self.log_variances is not None:
                total = total + torch.exp(-self.log_variances[i]) * distance + self.log_variances[i]
            else:
                total = total + self.weights[i] * distance
        state.targets = torch.cat([state.targets, state.targets])
        state.add_loss("rep_matching", total, self.config.rep_matching_lambda)
