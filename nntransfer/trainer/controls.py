"""Training controls by name: optimizers, loss functions and learning-rate schedulers."""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, Mapping, Optional

import torch
from torch import nn

from nntransfer.configs.base import closest_name


def _hint(name: str, names: Iterable[str]) -> str:
    match = closest_name(name, names)
    return f"; did you mean {match!r}?" if match else ""


def optimizer_names() -> list:
    return sorted(n for n, c in vars(torch.optim).items() if isinstance(c, type) and issubclass(c, torch.optim.Optimizer) and c is not torch.optim.Optimizer)


def build_optimizer(name: str, params: Iterable[nn.Parameter], lr: float, options: Mapping[str, Any]) -> torch.optim.Optimizer:
    """``torch.optim.<name>(params, lr=lr, **options)``."""
    cls = getattr(torch.optim, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ValueError(f"unknown optimizer {name!r}{_hint(name, optimizer_names())} (a class of torch.optim)")
    try:
        return cls(params, lr=lr, **options)
    except TypeError as err:
        raise ValueError(f"optimizer_options {dict(options)} do not fit torch.optim.{name}: {err}") from None


def loss_names() -> list:
    return sorted(n for n, c in vars(nn).items() if isinstance(c, type) and issubclass(c, nn.modules.loss._Loss) and not n.startswith("_"))


def build_loss(name: str, options: Mapping[str, Any]) -> nn.Module:
    """``torch.nn.<name>(**options)``, e.g. ``CrossEntropyLoss``."""
    cls = getattr(nn, name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.modules.loss._Loss)):
        raise ValueError(f"unknown loss function {name!r}{_hint(name, loss_names())} (a loss class of torch.nn)")
    try:
        return cls(**options)
    except TypeError as err:
        raise ValueError(f"loss_options {dict(options)} do not fit torch.nn.{name}: {err}") from None


SCHEDULERS = {
    "multistep": lambda opt, epochs, maximize, o: torch.optim.lr_scheduler.MultiStepLR(opt, **o),
    "plateau": lambda opt, epochs, maximize, o: torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="max" if maximize else "min", **o
    ),
    "cosine": lambda opt, epochs, maximize, o: torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, **{"T_max": max(1, epochs), **o}
    ),
}


def build_scheduler(
    name: Optional[str], optimizer: torch.optim.Optimizer, epochs: int, maximize: bool, options: Mapping[str, Any]
) -> Optional[Any]:
    """The learning-rate scheduler ``name`` (None: no scheduler); ``epochs`` is the length of the schedule."""
    if name is None:
        return None
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}{_hint(name, SCHEDULERS)}; known: {sorted(SCHEDULERS)}")
    try:
        return SCHEDULERS[name](optimizer, epochs, maximize, dict(options))
    except TypeError as err:
        raise ValueError(f"scheduler_options {dict(options)} do not fit scheduler {name!r}: {err}") from None


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up: the learning-rate factor of optimizer step ``step`` (0-based); 1 after the warm-up."""
    if step >= warmup_steps:
        return 1.0
    return (step + 1) / warmup_steps


def is_plateau(scheduler: Any) -> bool:
    return isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)


def steps_per_epoch(n_batches: int, accumulate: int) -> int:
    return max(1, math.ceil(n_batches / accumulate))


def scheduler_state(scheduler: Any) -> Optional[Dict[str, Any]]:
    return scheduler.state_dict() if scheduler is not None else None
