"""`EarlyStopping`: decides after each validation whether training improves, waits, decays or stops."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Dict, Optional

from torch import nn


def copy_state(model: nn.Module) -> "OrderedDict[str, Any]":
    """A CPU copy of the model's state dict."""
    return OrderedDict((k, v.detach().to("cpu", copy=True)) for k, v in model.state_dict().items())


class EarlyStopping:
    """Tracks the best validation score and the model state that reached it.

    ``step`` returns ``"improved"``, ``"wait"``, ``"decay"`` (patience ran out, a learning-rate decay is
    left: the caller restores the best state and decays) or ``"stop"``. With ``enabled=False`` it only
    remembers the best state. Its whole state, best model included, checkpoints with ``state_dict``.
    """

    def __init__(self, maximize: bool = True, patience: int = 10, tolerance: float = 1e-4, lr_decay_steps: int = 0, enabled: bool = True):
        self.maximize, self.patience, self.tolerance = maximize, patience, tolerance
        self.lr_decay_steps, self.enabled = lr_decay_steps, enabled
        self.best_score: Optional[float] = None
        self.best_epoch = 0
        self.best_state: Optional[Dict[str, Any]] = None
        self.counter = 0
        self.decays = 0
        self.stopped = False

    def is_improvement(self, score: float) -> bool:
        if not math.isfinite(score):
            return False
        if self.best_score is None:
            return True
        if self.maximize:
            return score > self.best_score + self.tolerance
        return score < self.best_score - self.tolerance

    def step(self, score: float, epoch: int, model: nn.Module) -> str:
        if self.is_improvement(score):
            self.best_score, self.best_epoch, self.best_state = float(score), epoch, copy_state(model)
            self.counter = 0
            return "improved"
        self.counter += 1
        if not self.enabled or self.counter < max(self.patience, 1):
            return "wait"
        self.counter = 0
        if self.decays < self.lr_decay_steps:
            self.decays += 1
            return "decay"
        self.stopped = True
        return "stop"

    def state_dict(self) -> Dict[str, Any]:
        keys = ("best_score", "best_epoch", "best_state", "counter", "decays", "stopped")
        return {k: getattr(self, k) for k in keys}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
