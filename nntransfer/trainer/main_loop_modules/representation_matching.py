"""`RepresentationMatching`: pull the representations of noisy inputs towards those of the clean inputs."""

from __future__ import annotations

from typing import Any, Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from nntransfer.configs.trainer.mixins import RepresentationMatchingMixin
from nntransfer.trainer.main_loop_modules.base import EpochSums, MainLoopModule
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


def model_extra_outputs(outputs: Any, needed: List[str]) -> Dict[str, torch.Tensor]:
    """The dict of extra outputs of a model that returns ``(extra_outputs, logits)``."""
    if not (isinstance(outputs, (tuple, list)) and len(outputs) == 2 and isinstance(outputs[0], dict)):
        raise ValueError(
            f"the model must return (extra_outputs, logits) to provide the representations {needed}; "
            "build it with intermediate representations configured"
        )
    missing = [name for name in needed if name not in outputs[0]]
    if missing:
        raise ValueError(f"the model's extra outputs lack {missing}; it provides {sorted(outputs[0])}")
    return outputs[0]


@register
class RepresentationMatching(MainLoopModule):
    """In training, every batch is doubled: ``[clean; noisy copy]``. After the forward pass the distance of
    the chosen layers' representations (clean vs noisy) is added to the loss with ``rep_matching_lambda``
    and fixed or learned layer weights; the classification loss covers both halves. Logged as
    ``("Training", task, "rep_matching")``."""

    config_mixin = RepresentationMatchingMixin

    def __init__(self, trainer: Any) -> None:
        super().__init__(trainer)
        c = self.config
        self.layers = list(c.rep_matching_layers)
        self.weights = [float(c.rep_matching_weights.get(layer, 1.0)) for layer in self.layers]
        self.noise = NoiseSource(trainer, c.rep_matching_noise_std, c.rep_matching_noise_snr)
        self.log_variances = (
            nn.Parameter(torch.zeros(len(self.layers), device=trainer.device)) if c.rep_matching_learned_weights else None
        )
        self.sums = EpochSums()
        trainer.tracker.add_objectives({"Training": {task: {"rep_matching": 0.0} for task in trainer.train_loaders}})

    def parameters(self) -> List[nn.Parameter]:
        return [self.log_variances] if self.log_variances is not None else []

    def state_dict(self) -> Dict[str, Any]:
        return {"log_variances": self.log_variances.detach().cpu()} if self.log_variances is not None else {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if self.log_variances is not None:
            with torch.no_grad():
                self.log_variances.copy_(state["log_variances"])

    def pre_forward(self, model, inputs, task_key, shared_memory):
        """Append a noisy copy of the batch."""
        if not self.train_mode:
            return model, inputs
        shared_memory["rep_matching_clean_size"] = inputs.shape[0]
        return model, torch.cat([inputs, self.noise(inputs)])

    def post_forward(self, outputs, loss, targets, **shared_memory):
        """Add the matching loss; duplicate the targets for the noisy half."""
        n = shared_memory.get("rep_matching_clean_size")
        if n is None:
            return outputs, loss, targets
        extra = model_extra_outputs(outputs, self.layers)
        total = 0.0
        for i, layer in enumerate(self.layers):
            distance = representation_distance(extra[layer][:n], extra[layer][n:], self.config.rep_matching_criterion)
            if self.log_variances is not None:
                total = total + torch.exp(-self.log_variances[i]) * distance + self.log_variances[i]
            else:
                total = total + self.weights[i] * distance
        matching = self.config.rep_matching_lambda * total
        targets = torch.cat([targets, targets])
        self.sums.add(shared_memory["task_key"], "rep_matching", matching, targets.shape[0])
        return outputs, loss + matching, targets

    def post_epoch(self, model):
        """Log the epoch's matching loss."""
        self.sums.log(self.trainer.tracker, "Training")
