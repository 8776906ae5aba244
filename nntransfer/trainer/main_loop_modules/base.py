"""`MainLoopModule`: code that plugs into the trainer's batch loop at six events, and `ModuleChain`, the
one place that dispatches those events to the configured modules in order.

The loop, with the events (every name in angle brackets calls that hook of every module, in order)::

    for epoch in epochs:
        <pre_epoch>(model, mode="Training", epoch=epoch)
        for task_key, batch in cycler(train loaders):
            inputs, targets, extras = batch
            shared_memory = {"mode": mode, "task_key": task_key, "extras": extras}
            model, inputs = <pre_forward>(model, inputs, task_key, shared_memory)
            outputs = model(inputs)
            loss = 0
            outputs, loss, targets = <post_forward>(outputs, loss, targets, **shared_memory)
            loss = loss + criterion[task_key](outputs, targets)
            loss.backward()
            <post_backward>(model)
            optimizer.step()            # every accumulate_grad_batches batches
            <post_optimizer>(model)     # after each optimizer step
            if a module asked to end the epoch: break
        <post_epoch>(model)
        if validation epoch:            # the same loop without backward, step and their events
            <pre_epoch>(model, mode="Validation", epoch=epoch)
            for task_key, batch in validation loaders: <pre_forward>, forward, <post_forward>, loss
            <post_epoch>(model)
    final evaluation: the evaluation loop above with mode="Test" for every test split

``pre_forward`` may replace the model for this forward pass (e.g. a wrapper) and the inputs (e.g. add
noise); entries it adds to ``shared_memory`` reach ``post_forward`` as keyword arguments.
``post_forward`` may change outputs and targets and adds its own terms to ``loss`` (the task loss is
added after all modules ran, on the outputs they return). The output unwrapper always runs last.
A module ends the current epoch early with ``self.trainer.request_end_of_epoch()``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from nntransfer.trainer.trainer import Trainer

logger = logging.getLogger(__name__)

HOOKS = ("pre_epoch", "pre_forward", "post_forward", "post_backward", "post_optimizer", "post_epoch")


class MainLoopModule:
    """Base of main-loop modules: every hook is a no-op; override the ones you need.

    Class attributes:
        config_mixin: the trainer-config mixin that adds this module's fields (None if it has none); the
            trainer uses it to rebuild the typed config from a table row.
    Attributes:
        trainer: the trainer running the loop (``trainer.config``, ``.device``, ``.seed``, ``.tracker``...).
        mode: the mode of the current epoch (``"Training"``, ``"Validation"`` or ``"Test"``).
    """

    config_mixin: Optional[type] = None

    def __init__(self, trainer: "Trainer") -> None:
        self.trainer = trainer
        self.config = trainer.config
        self.mode = "Training"
        self.options: Dict[str, Any] = {}

    @property
    def train_mode(self) -> bool:
        """Whether the current epoch trains."""
        return self.mode == "Training"

    def pre_epoch(self, model: nn.Module, mode: str, **options: Any) -> None:
        """Called before every epoch; remembers the mode (``super().pre_epoch(...)`` when overriding)."""
        self.mode = mode
        self.options = options

    def pre_forward(
        self, model: nn.Module, inputs: torch.Tensor, task_key: str, shared_memory: Dict[str, Any]
    ) -> Tuple[nn.Module, torch.Tensor]:
        """Called before the forward pass; returns the model and inputs to use."""
        return model, inputs

    def post_forward(
        self, outputs: Any, loss: torch.Tensor, targets: torch.Tensor, **shared_memory: Any
    ) -> Tuple[Any, torch.Tensor, torch.Tensor]:
        """Called after the forward pass; returns outputs, the extra loss so far and targets."""
        return outputs, loss, targets

    def post_backward(self, model: nn.Module) -> None:
        """Called after ``loss.backward()`` (training only)."""

    def post_optimizer(self, model: nn.Module) -> None:
        """Called after each optimizer step (training only)."""

    def post_epoch(self, model: nn.Module) -> None:
        """Called after every epoch."""

    def parameters(self) -> List[nn.Parameter]:
        """Parameters the trainer optimises besides the model's (e.g. learned loss weights)."""
        return []

    def state_dict(self) -> Dict[str, Any]:
        """State to checkpoint beside the model (tensors and plain values only)."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


def _overrides(module: MainLoopModule, hook: str) -> bool:
    return getattr(type(module), hook) is not getattr(MainLoopModule, hook)


class ModuleChain:
    """The configured modules in order; dispatches each event to the modules that implement it."""

    def __init__(self, modules: Sequence[MainLoopModule]) -> None:
        self.modules = list(modules)
        # Only modules that override a hook are called: the empty hooks cost nothing per batch.
        self._calls = {hook: [getattr(m, hook) for m in self.modules if _overrides(m, hook)] for hook in HOOKS}
        # pre_epoch of the base class records the mode, so every module gets it.
        self._calls["pre_epoch"] = [m.pre_epoch for m in self.modules]

    def __iter__(self):
        return iter(self.modules)

    def __len__(self) -> int:
        return len(self.modules)

    def names(self) -> List[str]:
        return [type(m).__name__ for m in self.modules]

    def pre_epoch(self, model: nn.Module, mode: str, **options: Any) -> None:
        for call in self._calls["pre_epoch"]:
            call(model, mode, **options)

    def pre_forward(self, model, inputs, task_key, shared_memory):
        for call in self._calls["pre_forward"]:
            model, inputs = call(model, inputs, task_key, shared_memory)
        return model, inputs

    def post_forward(self, outputs, loss, targets, shared_memory):
        for call in self._calls["post_forward"]:
            outputs, loss, targets = call(outputs, loss, targets, **shared_memory)
        return outputs, loss, targets

    def post_backward(self, model: nn.Module) -> None:
        for call in self._calls["post_backward"]:
            call(model)

    def post_optimizer(self, model: nn.Module) -> None:
        for call in self._calls["post_optimizer"]:
            call(model)

    def post_epoch(self, model: nn.Module) -> None:
        for call in self._calls["post_epoch"]:
            call(model)

    def parameters(self) -> List[nn.Parameter]:
        return [p for m in self.modules for p in m.parameters()]

    def state_dict(self) -> Dict[str, Any]:
        return {f"{i}:{type(m).__name__}": m.state_dict() for i, m in enumerate(self.modules)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        expected = self.state_dict().keys()
        if set(state) != set(expected):
            raise ValueError(f"checkpoint holds main-loop modules {sorted(state)}, the trainer runs {sorted(expected)}")
        for (key, module) in zip(expected, self.modules):
            module.load_state_dict(state[key])
