"""`RepresentationMonitor`: log statistics of intermediate representations per epoch."""

from __future__ import annotations

import torch

from nntransfer.configs.trainer.mixins import RepresentationMonitorMixin
from nntransfer.trainer.main_loop_modules.base import BatchState, MainLoopModule
from nntransfer.trainer.main_loop_modules.registry import register

STATISTICS = ("mean", "std", "sparsity")


def representation_statistics(rep: torch.Tensor) -> torch.Tensor:
    """Per-batch sums of the per-example mean activation, its std and the fraction of exact zeros."""
    flat = rep.detach().flatten(1).float()
    return torch.stack([flat.mean(1).sum(), flat.std(1, unbiased=False).sum(), (flat == 0).float().mean(1).sum()])


@register
class RepresentationMonitor(MainLoopModule):
    """Tracks ``(mode, task, "<layer>_mean" | "<layer>_std" | "<layer>_sparsity")`` for the chosen extra
    outputs in validation (and training with ``rep_monitor_in_training``), per example (``state.add_metric``)."""

    config_mixin = RepresentationMonitorMixin

    def post_forward(self, state: BatchState) -> None:
        """Add the statistics of this batch."""
        if not (state.mode == "Validation" or (state.training and self.config.rep_monitor_in_training)):
            return
        layers = list(self.config.rep_monitor_layers) or sorted(state.output.layers)
        for layer in layers or ["core"]:  # no extra outputs at all: the error says how to get them
            stats = representation_statistics(state.output.layer(layer))
            for name, value in zip(STATISTICS, stats):
                state.add_metric(f"{layer}_{name}", value)
