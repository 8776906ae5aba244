"""Training controls by name: optimizers, loss functions and learning-rate schedulers.

The names a trainer config may use are the registries below (defined once, here): every optimizer
class of ``torch.optim``, every loss class of ``torch.nn``, and the schedulers this trainer knows how to
drive. ``nntransfer.trainer.checks`` checks a config against them before anything runs.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterable, Mapping, Optional

import torch
from torch import nn

from nntransfer.registry import Registry

#: ``optimizer`` name -> optimizer class: the classes of ``torch.optim``
OPTIMIZERS: Registry[type] = Registry("optimizer", help="optimizers are the classes of torch.optim")
#: ``loss_functions`` value -> loss class: the loss classes of ``torch.nn``
LOSSES: Registry[type] = Registry("loss function", help="loss functions are the loss classes of torch.nn")

# Listed up front (not looked up in torch on demand) so that an unknown name can be told the closest one.
for _name, _cls in sorted(vars(torch.optim).items()):
    if isinstance(_cls, type) and issubclass(_cls, torch.optim.Optimizer) and _cls is not torch.optim.Optimizer:
        OPTIMIZERS.register(_name, _cls)
for _name, _cls in sorted(vars(nn).items()):
    if isinstance(_cls, type) and issubclass(_cls, nn.modules.loss._Loss) and not _name.startswith("_"):
        LOSSES.register(_name, _cls)


def build_optimizer(name: str, params: Iterable[nn.Parameter], lr: float, options: Mapping[str, Any]) -> torch.optim.Optimizer:
    """``torch.optim.<name>(params, lr=lr, **options)``."""
    cls = OPTIMIZERS.get(name)
    try:
        return cls(params, lr=lr, **options)
    except TypeError as err:
        raise ValueError(f"optimizer_options {dict(options)} do not fit torch.optim.{name}: {err}") from None


def build_loss(name: str, options: Mapping[str, Any]) -> nn.Module:
    """``torch.nn.<name>(**options)``, e.g. ``CrossEntropyLoss``."""
    cls = LOSSES.get(name)
    try:
        return cls(**options)
    except TypeError as err:
        raise ValueError(f"loss_options {dict(options)} do not fit torch.nn.{name}: {err}") from None


SchedulerFactory = Callable[[torch.optim.Optimizer, int, bool, Dict[str, Any]], Any]
#: ``scheduler`` name -> ``factory(optimizer, epochs, maximize, options)``; None means no scheduler
SCHEDULERS: Registry[SchedulerFactory] = Registry("scheduler", help="or None for a constant learning rate")


@SCHEDULERS.register("multistep")
def multistep_scheduler(optimizer: torch.optim.Optimizer, epochs: int, maximize: bool, options: Dict[str, Any]) -> Any:
    """Multiply the lr by ``gamma`` at the epochs ``milestones``."""
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, **options)


@SCHEDULERS.register("plateau")
def plateau_scheduler(optimizer: torch.optim.Optimizer, epochs: int, maximize: bool, options: Dict[str, Any]) -> Any:
    """Decay the lr when the validation objective stops improving (stepped with the score)."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max" if maximize else "min", **options)


@SCHEDULERS.register("cosine")
def cosine_scheduler(optimizer: torch.optim.Optimizer, epochs: int, maximize: bool, options: Dict[str, Any]) -> Any:
    """Cosine annealing over the epochs after the warm-up (``T_max`` may be overridden)."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, **{"T_max": max(1, epochs), **options})


def build_scheduler(
    name: Optional[str], optimizer: torch.optim.Optimizer, epochs: int, maximize: bool, options: Mapping[str, Any]
) -> Optional[Any]:
    """The learning-rate scheduler ``name`` (None: no scheduler); ``epochs`` is the length of the schedule."""
    if name is None:
        return None
    factory = SCHEDULERS.get(name)
    try:
        return factory(optimizer, epochs, maximize, dict(options))
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
