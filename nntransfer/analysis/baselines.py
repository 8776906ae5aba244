"""Who a step is compared with: its from-scratch baseline, and whether it continues an earlier step's network.

A step's **from-scratch baseline** is a first step of the recipe with the same data, the same model and
the trainer the step has once its transfer settings are removed (:func:`scratch_trainer`):

- the chain settings of every trainer (``CHAIN_SETTINGS``: what the step takes from the previous step,
  what it hands on, and what it resets or freezes of the weights it received);
- every field that a transfer method's mixin declares (the subclasses of
  :class:`~nntransfer.configs.trainer.mixins.TransferMethodMixin`: knowledge distillation, RDL, attention
  transfer, layer matching, L2-SP/EWC, orbit learning and transfer, and any a recipe defines), read from
  the mixin classes themselves, and the main-loop modules those mixins add.

In the original form (``student_model``) the trained network is the student: its baseline has the
student's model config. A step **continues** the previous step's network when it starts from its weights
(``start_from_previous``) and trains that network, not a student of it (no ``student_model``); a teacher
and its student are different networks.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, FrozenSet, Mapping

from nntransfer.configs.base import BaseConfig
from nntransfer.configs.test_sets import short_hash
from nntransfer.configs.trainer.classification import ClassificationTrainerConfig
from nntransfer.configs.trainer.mixins import TransferMethodMixin, mixin_fields

#: trainer settings that only mean something after a previous step (or for the next one)
CHAIN_SETTINGS = ("start_from_previous", "teacher", "student_model", "data_transfer", "reset", "freeze",
                  "compute_transfer_data", "compute_fisher")


@functools.lru_cache(maxsize=None)  # a class's declarations do not change; a report asks once per step
def declared_fields(mixin: type) -> FrozenSet[str]:
    """The fields ``mixin``'s ``__init__`` declares (by ``set_defaults`` or assignment), minus those every
    classification trainer has (an orbit mixin's own defaults for ``lr`` stay part of the comparison)."""
    return mixin_fields(mixin) - _trainer_fields()


@functools.lru_cache(maxsize=None)
def _trainer_fields() -> FrozenSet[str]:
    return frozenset(ClassificationTrainerConfig().to_dict())


def _mixins(cls: type) -> Any:
    for sub in cls.__subclasses__():
        if not issubclass(sub, BaseConfig):  # composed trainer configs are not mixins
            yield sub
        yield from _mixins(sub)


def transfer_method_fields() -> FrozenSet[str]:
    """Every field a transfer method's mixin declares (the mixins imported so far, a recipe's included)."""
    return frozenset().union(*(declared_fields(mixin) for mixin in set(_mixins(TransferMethodMixin))))


def is_transfer_module(name: str) -> bool:
    """Whether the main-loop module ``name`` belongs to a transfer method (its ``config_mixin`` is one);
    an unknown name is not (the recipe check names it)."""
    from nntransfer.trainer.main_loop_modules.registry import get  # torch only where modules are resolved

    try:
        mixin = get(name).config_mixin
    except (ValueError, ImportError):
        return False
    return isinstance(mixin, type) and issubclass(mixin, TransferMethodMixin)


def scratch_trainer(trainer: Mapping[str, Any]) -> Dict[str, Any]:
    """A trainer config's ``to_dict()`` without its transfer settings (module docstring)."""
    leave_out = set(CHAIN_SETTINGS) | transfer_method_fields()
    plain = {k: v for k, v in trainer.items() if k not in leave_out}
    if "main_loop_modules" in plain:
        plain["main_loop_modules"] = [m for m in plain["main_loop_modules"] if not is_transfer_module(m)]
    return plain


def scratch_id(step) -> str:
    """The identity of a step's from-scratch run: the hash of its data, the model it trains (the student
    in the original form) and :func:`scratch_trainer` of its trainer (the seed left out). A first step
    with a later step's ``scratch_id`` is that step's from-scratch baseline."""
    trainer = step.trainer.to_dict()
    model = step.model.to_dict()
    if trainer.get("student_model"):
        model = {"fn": step.model.fn, **{k: v for k, v in trainer["student_model"].items() if k != "comment"}}
    return short_hash({"dataset": step.dataset.to_dict(), "model": model, "trainer": scratch_trainer(trainer)})


def continues_previous(step, level: int) -> bool:
    """Whether step ``level`` trains the previous step's network further (module docstring)."""
    trainer = step.trainer.to_dict()
    return level > 0 and bool(trainer.get("start_from_previous", True)) and not trainer.get("student_model")
