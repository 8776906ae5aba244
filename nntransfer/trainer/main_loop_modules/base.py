"""`MainLoopModule`: code that plugs into the trainer's batch loop at six events, and `ModuleChain`, the
one place that dispatches those events to the configured modules in order.

The loop, with the events (every name in angle brackets calls that hook of every module, in order)::

    for epoch in epochs:
        <pre_epoch>(model, mode="Training", epoch=epoch)
        for task_key, batch in cycler(train loaders):
            inputs, targets, extras = batch
            shared_memory = {"mode": mode, "task_key": task_key, "extras": extras}
            model, inputs = <pre_forward>(model, inputs, task_key, shared_memory)
            if a module uses_teacher_outputs (training only):
                shared_memory["teacher_outputs"] = teacher(inputs)   # frozen, no grad, the student's batch
            outputs = model(inputs)
            loss = 0
            outputs, loss, targets = <post_forward>(outputs, loss, targets, **shared_memory)
            loss = loss + shared_memory.get("task_loss_weight", 1.0) * criterion[task_key](outputs, targets)
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
A module may set ``shared_memory["task_loss_weight"]`` (e.g. knowledge distillation's ``1 - gamma``).

Teacher and layers: a module that reads the outputs of named layers lists their paths in
``student_layers()`` / ``teacher_layers()`` (dotted submodule paths; ``"readout"`` is the readout's input;
``"output"`` the logits). The trainer then wraps the student (and the teacher) so that they return
``(extra_outputs, logits)`` with ``extra_outputs[path]``; read them with ``layer_output(outputs, path)``.
``trainer.teacher`` is the step's teacher (frozen, in eval mode, on the device) or None; a module with
``needs_teacher = True`` refuses to start without one.

Before anything of a recipe trains, the preflight calls every configured module's classmethod
``check_step(step)`` with a :class:`~nntransfer.trainer.main_loop_modules.chain_check.StepCheck`: the step's
trainer config, its untrained student and teacher, one batch of its training data and what the previous
step hands on. A module reports what cannot work with ``step.problem(line)`` (a missing teacher, an
unknown layer, layers it cannot compare), so that a chain is refused before its first step trains.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from nntransfer.trainer.main_loop_modules.chain_check import StepCheck
    from nntransfer.trainer.trainer import Trainer

logger = logging.getLogger(__name__)

#: the layer path that means the model's final output (the logits)
OUTPUT = "output"

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
    #: the module needs the step's teacher (``trainer.teacher``); the trainer refuses to start without one
    needs_teacher: bool = False
    #: the trainer runs the teacher on every training batch the student sees (after all ``pre_forward``
    #: hooks) and puts ``(extra_outputs, logits)`` into ``shared_memory["teacher_outputs"]``
    uses_teacher_outputs: bool = False

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

    @classmethod
    def check_step(cls, step: "StepCheck") -> None:
        """Before anything trains: report with ``step.problem(line)`` what cannot work in this step (see the
        module docstring). The base class refuses a module that needs a teacher in a step without one."""
        if (cls.needs_teacher or cls.uses_teacher_outputs) and step.teacher is None:
            step.problem(f"{cls.__name__} needs a teacher: set teacher='previous' in this step's trainer config, "
                         "in a chain whose previous step trains the teacher")

    def student_layers(self) -> List[str]:
        """Paths of the student's layers whose outputs this module reads (see the module docstring)."""
        return []

    def teacher_layers(self) -> List[str]:
        """Paths of the teacher's layers whose outputs this module reads."""
        return []

    def parameters(self) -> List[nn.Parameter]:
        """Parameters the trainer optimises besides the model's (e.g. learned loss weights)."""
        return []

    def state_dict(self) -> Dict[str, Any]:
        """State to checkpoint beside the model (tensors and plain values only)."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


def layer_output(outputs: Any, path: str) -> torch.Tensor:
    """The output of layer ``path`` from a model output ``(extra_outputs, logits)``: the logits for
    ``"output"``, else ``extra_outputs[path]`` (``ValueError`` naming what the model provides)."""
    is_pair = isinstance(outputs, (tuple, list)) and len(outputs) == 2 and isinstance(outputs[0], dict)
    if path == OUTPUT:
        logits = outputs[1] if is_pair else outputs
        while isinstance(logits, (tuple, list)):  # a model that itself returns (extra_outputs, logits)
            logits = logits[-1]
        return logits
    if not is_pair:
        raise ValueError(f"layer {path!r} was asked for, but the model returns only its logits; list the path in "
                         "the module's student_layers()/teacher_layers()")
    if path not in outputs[0]:
        raise ValueError(f"the model's extra outputs lack layer {path!r}; it provides {sorted(outputs[0])}")
    return outputs[0][path]


class EpochSums:
    """Per task and name, the epoch's sums of a module's logged terms (each batch's value times its size),
    kept on the device until ``log`` writes them to the tracker as ``(mode, task, name)`` and starts anew."""

    def __init__(self) -> None:
        self.values: Dict[Tuple[str, str], torch.Tensor] = {}

    def add(self, task: str, name: str, value: torch.Tensor, n: int) -> None:
        """Add one batch's ``value`` (a mean over its ``n`` examples)."""
        key = (task, name)
        value = value.detach().float() * n
        self.values[key] = self.values[key] + value if key in self.values else value

    def log(self, tracker: Any, mode: str) -> None:
        """Log the sums (one device synchronisation per value) and reset them."""
        for (task, name), value in self.values.items():
            tracker.log_objective(value.item(), (mode, task, name))
        self.values = {}


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
        #: whether the trainer runs the teacher on every training batch (decided once, not per batch)
        self.uses_teacher_outputs = any(m.uses_teacher_outputs for m in self.modules)

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

    def student_layers(self) -> List[str]:
        """The student layer paths any module reads, each once, in order."""
        return list(dict.fromkeys(path for m in self.modules for path in m.student_layers() if path != OUTPUT))

    def teacher_layers(self) -> List[str]:
        """The teacher layer paths any module reads, each once, in order."""
        return list(dict.fromkeys(path for m in self.modules for path in m.teacher_layers() if path != OUTPUT))

    def needing_teacher(self) -> List[str]:
        """Names of the modules that need a teacher."""
        return [type(m).__name__ for m in self.modules if m.needs_teacher or m.uses_teacher_outputs]



    def state_dict(self) -> Dict[str, Any]:
        return {f"{i}:{type(m).__name__}": m.state_dict() for i, m in enumerate(self.modules)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        expected = self.state_dict().keys()
        if set(state) != set(expected):
            raise ValueError(f"checkpoint holds main-loop modules {sorted(state)}, the trainer runs {sorted(expected)}")
        for (key, module) in zip(expected, self.modules):
            module.load_state_dict(state[key])
