"""`RepresentationMonitor`: log statistics of intermediate representations per epoch."""

from __future__ import annotations

from typing import Any, Dict, Tuple

import torch

from nntransfer.configs.trainer.mixins import RepresentationMonitorMixin
from nntransfer.trainer.main_loop_modules.base import MainLoopModule
from nntransfer.trainer.main_loop_modules.registry import register
from nntransfer.trainer.main_loop_modules.representation_matching import model_extra_outputs

STATISTICS = ("mean", "std", "sparsity")


def representation_statistics(rep: torch.Tensor) -> torch.Tensor:
    """Per-batch sums of the per-example mean activation, its std and the fraction of exact zeros."""
    flat = rep.detach().flatten(1).float()
    return torch.stack([flat.mean(1).sum(), flat.std(1, unbiased=False).sum(), (flat == 0).float().mean(1).sum()])


@register
class RepresentationMonitor(MainLoopModule):
    """Logs ``(mode, task, "<layer>_mean" | "<layer>_std" | "<layer>_sparsity")`` for the chosen extra
    outputs in validation (and training with ``rep_monitor_in_training``), normalised per example."""

    config_mixin = RepresentationMonitorMixin

    def __init__(self, trainer: Any) -> None:
        super().__init__(trainer)
        self.sums: Dict[Tuple[str, str], torch.Tensor] = {}
        self.active = False

    def pre_epoch(self, model, mode, **options):
        """Start the epoch's sums."""
        super().pre_epoch(model, mode, **options)
        self.sums = {}
        self.active = mode == "Validation" or (mode == "Training" and self.config.rep_monitor_in_training)

    def post_forward(self, outputs, loss, targets, **shared_memory):
        """Accumulate the statistics of this batch."""
        if self.active:
            layers = list(self.config.rep_monitor_layers)
            extra = model_extra_outputs(outputs, layers)
            for layer in layers or sorted(extra):
                key = (shared_memory["task_key"], layer)
                stats = representation_statistics(extra[layer])
                self.sums[key] = self.sums[key] + stats if key in self.sums else stats
        return outputs, loss, targets

    def post_epoch(self, model):
        """Log the epoch's statistics (they share the task's normalisation, the number of examples)."""
        tracker = self.trainer.tracker
        for (task, layer), sums in self.sums.items():
            names = [f"{layer}_{s}" for s in STATISTICS]
            # add_objectives replaces existing entries, so add only the new ones (first epoch of a layer)
            missing = [name for name in names if name not in tracker.log.get(self.mode, {}).get(task, {})]
            if missing:
                tracker.add_objectives({self.mode: {task: {name: 0.0 for name in missing}}}, init_epoch=True)
            for name, value in zip(names, sums.tolist()):
                tracker.log_objective(value, (self.mode, task, name))
