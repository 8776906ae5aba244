"""``check_trainer_config``: the names a trainer config uses, checked before anything runs.

The allowed values are defined where they are implemented: optimizers and losses (the classes of
``torch.optim`` and ``torch.nn``) and schedulers in ``controls``, cyclers in ``cycler``, main-loop
modules in their registry. ``classification_trainer.check_config`` is this function; the run layer
calls it with the config's values before anything is written.
"""

from __future__ import annotations

from typing import Any, Mapping

from nntransfer.registry import Registry
from nntransfer.trainer.controls import LOSSES, OPTIMIZERS, SCHEDULERS
from nntransfer.trainer.cycler import CYCLERS
from nntransfer.trainer.main_loop_modules.registry import MODULES


def _check_name(field: str, registry: Registry, name: Any) -> None:
    try:
        registry.get(name)
    except ValueError as err:
        raise ValueError(f"{field}: {err}") from None


def check_trainer_config(config: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` (one line naming the field, the value, the closest name and what exists) if
    ``config`` (``ClassificationTrainerConfig`` values, mixin fields included) names an unknown optimizer,
    loss function, scheduler, train cycler or main-loop module. Fields that are absent are not checked."""
    if "optimizer" in config:
        _check_name("optimizer", OPTIMIZERS, config["optimizer"])
    for task, loss in dict(config.get("loss_functions") or {}).items():
        _check_name(f"loss_functions[{task!r}]", LOSSES, loss)
    if config.get("scheduler") is not None:
        _check_name("scheduler", SCHEDULERS, config["scheduler"])
    if "train_cycler" in config:
        _check_name("train_cycler", CYCLERS, config["train_cycler"])
    for module in config.get("main_loop_modules") or ():
        _check_name("main_loop_modules", MODULES, module)
