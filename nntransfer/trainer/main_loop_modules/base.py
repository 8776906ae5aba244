"""The main-loop contract: `ModelOutput` (what a model returned), `BatchState` (one batch as every hook sees
it), `LoopContext` (what a module may use of the loop), `MainLoopModule` (typed no-op hooks) and `ModuleChain`,
the one dispatcher.

The loop, with its events (``<event>`` calls that hook of every module: before-events in the configured
order, after-events in reverse order, as Composer runs its callbacks)::

    for epoch in epochs:
        <pre_epoch>(mode="Training")
        for task, (inputs, targets, extras) in cycler(train loaders):
            state = BatchState(mode, task, inputs, targets, extras, model=student)
            <pre_forward>(state)        # in order: change state.inputs (noise), stack views, swap state.model
            if a module needs the teacher's outputs (training only):
                state.teacher_output = read_output(teacher(state.inputs))    # frozen, no grad
            state.output = read_output(state.model(state.inputs))          # logits + the layers asked for
            <post_forward>(state)       # reverse: state.add_loss(name, value, weight), state.scale_task_loss(f)
            state.loss = sum(weight * value of every term) + state.task_loss_weight * loss_fn(logits, targets)
            <post_loss>(state)          # reverse; training and evaluation alike
            state.loss.backward()
            <post_backward>(state)      # reverse
            optimizer.step()            # every accumulate_grad_batches batches
            <post_optimizer>(state)     # reverse, after each optimizer step
            if context.request_end_of_epoch() was called: break
        <post_epoch>(mode="Training")   # reverse; the trainer logs every term's epoch mean
        validation epoch: the same loop in mode "Validation" without backward, step and their events
    final evaluation: the evaluation loop in mode "Test" for every test split

The trainer sums the weighted loss terms, tracks the sum with the weighted task loss as ``total_loss`` (an
objective a trainer config may select on) and each term (its value before weighting, per example, so that a
weight of 0 only logs it) as ``(mode, task, name)`` in
Training and Validation, and shows them in the epoch's log line; modules keep no sums of their own. A module
multiplies the task-loss weight (knowledge distillation's ``1 - gamma``), never sets it, so the loss does not
depend on the order of the modules.

Teacher and layers: a module says in ``needs_teacher`` what it needs of the step's teacher (``NONE``;
``OUTPUTS``: the trainer runs the teacher on every training batch, ``state.teacher_output``; ``MODEL``: it
uses ``context.teacher`` itself). It lists the layers it reads with the classmethods ``student_layers(config)``
and ``teacher_layers(config)`` (dotted submodule paths; ``"readout"`` is the readout's input, ``"output"`` the
logits); the trainer wraps the student and the teacher once, before any module is built, so that their
outputs carry those layers: ``state.output.layer(path)``.

Before anything of a recipe trains, the preflight calls every configured module's classmethod
``check_step(step)`` with a :class:`~nntransfer.trainer.main_loop_modules.chain_check.StepCheck`: the step's
trainer config, its untrained student and teacher, one batch of its training data and what the previous
step hands on. A module reports what cannot work with ``step.problem(line)``.

A module's config mixin (``config_mixin``) and the module are checked as a pair when the module class is
defined: every field the module reads as ``config.<field>`` must be declared by the mixin or by the
classification trainer config.
"""

from __future__ import annotations

import ast
import functools
import inspect
import logging
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from nntransfer.dataset.info import DataInfo
    from nntransfer.trainer.main_loop_modules.chain_check import StepCheck

logger = logging.getLogger(__name__)

#: the layer path that means the model's final output (the logits)
OUTPUT = "output"

#: what a module needs of the step's teacher (``MainLoopModule.needs_teacher``)
NONE, OUTPUTS, MODEL = "none", "outputs", "model"
TEACHER_NEEDS = (NONE, OUTPUTS, MODEL)

#: the events, in the order one training batch meets them; ``pre_*`` run in order, the others in reverse
HOOKS = ("pre_epoch", "pre_forward", "post_forward", "post_loss", "post_backward", "post_optimizer", "post_epoch")
BEFORE_EVENTS = ("pre_epoch", "pre_forward")

#: names of the per-task statistics a term may not shadow
RESERVED_TERMS = frozenset({"loss", "accuracy", "normalization", "total_loss"})


# ---------------------------------------------------------------------------------------- model outputs

@dataclass
class ModelOutput:
    """What a model returned: its ``logits`` and the outputs of the named ``layers`` modules asked for."""

    logits: torch.Tensor
    layers: Dict[str, torch.Tensor] = field(default_factory=dict)

    def layer(self, path: str) -> torch.Tensor:
        """The output of layer ``path`` (``"output"``: the logits); a one-line ``ValueError`` naming what exists."""
        if path == OUTPUT:
            return self.logits
        if path in self.layers:
            return self.layers[path]
        if not self.layers:
            raise ValueError(f"layer {path!r} was asked for, but the model returns only its logits; list the path in "
                             "the module's student_layers()/teacher_layers(), or build the model to return "
                             "(extra_outputs, logits)")
        raise ValueError(f"the model's extra outputs lack layer {path!r}; it provides {sorted(self.layers)}")

    def rows(self, start: int, stop: Optional[int] = None) -> "ModelOutput":
        """The output of the examples ``start:stop`` of a batch (e.g. one view of a stacked batch)."""
        return ModelOutput(self.logits[start:stop], {name: value[start:stop] for name, value in self.layers.items()})


def read_output(raw: Any) -> ModelOutput:
    """The one reader of a model's output: logits, ``(extra_outputs, logits)`` (nested wrappers merge their
    layers), another tuple or list (its last element is the logits), or a ``ModelOutput``."""
    if isinstance(raw, ModelOutput):
        return raw
    if isinstance(raw, torch.Tensor):
        return ModelOutput(raw)
    if isinstance(raw, (tuple, list)) and raw:
        if len(raw) == 2 and isinstance(raw[0], Mapping):
            inner = read_output(raw[1])
            return ModelOutput(inner.logits, {**inner.layers, **raw[0]})
        return read_output(raw[-1])
    raise ValueError(f"a model returned {type(raw).__name__}; a model returns its logits (a tensor) or "
                     "(extra_outputs, logits)")


# ---------------------------------------------------------------------------------------- the batch

@dataclass
class LossTerm:
    """One named term of the loss: ``weight * value``."""

    value: torch.Tensor
    weight: float = 1.0

    def weighted(self) -> torch.Tensor:
        return self.value if self.weight == 1.0 else self.weight * self.value


@dataclass
class BatchState:
    """One batch as every hook sees it.

    Attributes:
        mode: ``"Training"``, ``"Validation"`` or ``"Test"``.
        task: the task key of the batch.
        inputs: the inputs the model sees (after the ``pre_forward`` hooks so far).
        targets: the targets the task loss compares with.
        extras: the batch extras (e.g. the logits the previous step handed on), ``{}`` without.
        model: the model of this forward pass (the student, unless a ``pre_forward`` hook swapped it).
        output: the model's output, from the forward pass on.
        teacher_output: the teacher's output on ``inputs`` (training, when a module ``needs_teacher == OUTPUTS``).
        losses: the named loss terms added so far (``add_loss``).
        metrics: named sums over the batch's examples that are tracked but not trained on (``add_metric``).
        copies: how many views of the batch ``inputs`` holds, stacked (``stack_inputs``).
        task_loss, loss: the task loss and the total loss, from ``post_loss`` on.
    """

    mode: str
    task: str
    inputs: torch.Tensor
    targets: torch.Tensor
    extras: Dict[str, torch.Tensor]
    model: nn.Module
    output: Optional[ModelOutput] = None
    teacher_output: Optional[ModelOutput] = None
    losses: Dict[str, LossTerm] = field(default_factory=dict)
    metrics: Dict[str, torch.Tensor] = field(default_factory=dict)
    copies: int = 1
    task_loss: Optional[torch.Tensor] = None
    loss: Optional[torch.Tensor] = None
    _task_loss_weight: float = 1.0

    @property
    def training(self) -> bool:
        """Whether this batch trains."""
        return self.mode == "Training"

    @property
    def task_loss_weight(self) -> float:
        """The weight of the task loss in the total loss (1 unless a module scaled it)."""
        return self._task_loss_weight

    def scale_task_loss(self, factor: float) -> None:
        """Multiply the task loss's weight by ``factor`` (modules multiply, so their order does not matter)."""
        self._task_loss_weight *= float(factor)

    def add_loss(self, name: str, value: torch.Tensor, weight: float = 1.0) -> None:
        """Add ``weight * value`` to the loss as the term ``name`` (a scalar tensor); the trainer sums it and
        logs and tracks ``value``. A name is one term per batch."""
        if name in RESERVED_TERMS:
            raise ValueError(f"loss term {name!r} would shadow a statistic of the trainer; name it otherwise")
        if name in self.losses:
            raise ValueError(f"loss term {name!r} was added twice in one batch; give each term its own name")
        self.losses[name] = LossTerm(value, float(weight))

    def add_metric(self, name: str, total: torch.Tensor) -> None:
        """Track ``total``, a statistic summed over the batch's examples, as ``name`` (its epoch mean per example),
        without training on it (e.g. representation statistics)."""
        if name in RESERVED_TERMS or name in self.losses:
            raise ValueError(f"metric {name!r} would shadow a statistic or a loss term; name it otherwise")
        self.metrics[name] = self.metrics[name] + total if name in self.metrics else total

    def stack_inputs(self, view: torch.Tensor) -> None:
        """Append another view of the batch (a noisy or transformed copy) to ``inputs``: the model sees both."""
        self.inputs = torch.cat([self.inputs, view])
        self.copies += 1

    def per_row(self, values: torch.Tensor) -> torch.Tensor:
        """Per-example ``values`` of the batch as it came (e.g. handed-on logits) repeated for every stacked view."""
        if self.copies == 1:
            return values
        return values.repeat(self.copies, *([1] * (values.dim() - 1)))


# ---------------------------------------------------------------------------------------- the context

@dataclass
class LoopContext:
    """What a main-loop module may use of the loop (not the trainer).

    Attributes:
        config: the step's trainer config (mixin fields included).
        device: where the model and the batches are.
        seed: the step's seed (e.g. to seed an evaluation generator).
        model: the student, wrapped to return the layers the modules asked for (before ``reset``/``freeze``
            while the modules are built).
        teacher: the step's teacher (frozen, in eval mode, wrapped likewise) or None.
        data_info: the data set's ``DataInfo`` (classes, input shape, normalisation), None for plain loaders.
        fisher: the diagonal Fisher information the previous step handed on ({parameter name: tensor}) or None.
        train_tasks, validation_tasks: the task keys of the training and validation loaders.
        task_loss: the trainer's task loss, ``task_loss(logits, targets, task)``.
        learning_rates: the current learning rate of each of the optimizer's parameter groups, ``learning_rates()``.
        epoch: the current epoch (0 before the first).
    """

    config: Any
    device: torch.device
    seed: int
    model: nn.Module
    teacher: Optional[nn.Module] = None
    data_info: Optional["DataInfo"] = None
    fisher: Optional[Dict[str, torch.Tensor]] = None
    train_tasks: Tuple[str, ...] = ()
    validation_tasks: Tuple[str, ...] = ()
    task_loss: Optional[Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor]] = None
    learning_rates: Optional[Callable[[], List[float]]] = None
    epoch: int = 0
    end_of_epoch_requested: bool = False

    def request_end_of_epoch(self) -> None:
        """Finish the current batch, then end the epoch."""
        self.end_of_epoch_requested = True


# ---------------------------------------------------------------------------------------- modules

@functools.lru_cache(maxsize=None)
def _trainer_config_fields() -> FrozenSet[str]:
    from nntransfer.configs.trainer.classification import ClassificationTrainerConfig

    return frozenset(ClassificationTrainerConfig().to_dict())


def _config_reads(cls: type) -> Optional[FrozenSet[str]]:
    """The names a class's own code reads as ``<...>.config.<name>`` or ``config.<name>`` (None: no source)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return None
    reads = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner = node.value
            if (isinstance(owner, ast.Name) and owner.id in ("config", "c")) or (
                    isinstance(owner, ast.Attribute) and owner.attr == "config"):
                reads.add(node.attr)
    return frozenset(reads)


def check_module_pair(cls: type) -> None:
    """A module and its config mixin belong together: every field the module reads from the config is
    declared by the mixin or by every classification trainer config (``ValueError`` naming the field)."""
    from nntransfer.configs.trainer.mixins import mixin_fields

    mixin = cls.__dict__.get("config_mixin")
    if mixin is None:
        return
    if not isinstance(mixin, type):
        raise ValueError(f"{cls.__name__}.config_mixin must be a mixin class, got {mixin!r}")
    reads = set()
    for klass in cls.__mro__:
        if klass is MainLoopModule or not issubclass(klass, MainLoopModule):
            continue
        found = _config_reads(klass)
        if found is None:
            logger.debug("no source for %s: its config reads are checked when it runs", klass.__name__)
            continue
        reads |= found
    reads |= {getattr(cls, name) for name in ("layers_field", "weight_field") if getattr(cls, name, "")}
    unknown = sorted(reads - mixin_fields(mixin) - _trainer_config_fields() - {"get"})
    if unknown:
        raise ValueError(f"{cls.__name__} reads config field(s) {unknown} that its config_mixin {mixin.__name__} does "
                         f"not declare (it declares {sorted(mixin_fields(mixin))}); declare them in the mixin's "
                         "set_defaults")


class MainLoopModule:
    """Base of main-loop modules: every hook is a typed no-op; override the ones you need.

    Class attributes:
        config_mixin: the trainer-config mixin that declares this module's fields and lists the module in
            ``main_loop_modules`` (None if it has none); checked against what the module reads when the
            class is defined, and used to rebuild the typed config from a table row.
        needs_teacher: ``NONE``, ``OUTPUTS`` or ``MODEL`` (see the module docstring); ``teacher_need(config)``
            answers it for a config, for a module whose need depends on its settings.
    Attributes:
        context: the loop's ``LoopContext``; ``config`` is ``context.config``.
        mode: the mode of the current epoch (``"Training"``, ``"Validation"`` or ``"Test"``).
    """

    config_mixin: ClassVar[Optional[type]] = None
    needs_teacher: ClassVar[str] = NONE

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.needs_teacher not in TEACHER_NEEDS:
            raise ValueError(f"{cls.__name__}.needs_teacher must be one of {TEACHER_NEEDS}, got {cls.needs_teacher!r}")
        check_module_pair(cls)

    def __init__(self, context: LoopContext) -> None:
        self.context = context
        self.config = context.config
        self.mode = "Training"

    @property
    def train_mode(self) -> bool:
        """Whether the current epoch trains."""
        return self.mode == "Training"

    # ---- what the module needs (classmethods: the trainer and the preflight ask before building it)

    @classmethod
    def teacher_need(cls, config: Any) -> str:
        """What this module needs of the teacher under ``config`` (default: ``needs_teacher``)."""
        return cls.needs_teacher

    @classmethod
    def student_layers(cls, config: Any) -> List[str]:
        """Paths of the student's layers whose outputs this module reads."""
        return []

    @classmethod
    def teacher_layers(cls, config: Any) -> List[str]:
        """Paths of the teacher's layers whose outputs this module reads."""
        return []

    @classmethod
    def check_step(cls, step: "StepCheck") -> None:
        """Before anything trains: report with ``step.problem(line)`` what cannot work in this step. The base
        class refuses a module that needs a teacher in a step without one."""
        if cls.teacher_need(step.config) != NONE and step.teacher is None:
            step.problem(f"{cls.__name__} needs a teacher: set teacher='previous' in this step's trainer config, "
                         "in a chain whose previous step trains the teacher")

    # ---- the hooks

    def pre_epoch(self, mode: str) -> None:
        """Before every epoch (``self.mode`` is already ``mode``)."""

    def pre_forward(self, state: BatchState) -> None:
        """Before the forward pass: may change ``state.inputs``, stack views or swap ``state.model``."""

    def post_forward(self, state: BatchState) -> None:
        """After the forward pass: may add loss terms, scale the task loss, change ``state.output``/``targets``."""

    def post_loss(self, state: BatchState) -> None:
        """After the loss (``state.loss``, ``state.task_loss``), before the backward pass."""

    def post_backward(self, state: BatchState) -> None:
        """After ``loss.backward()`` (training only)."""

    def post_optimizer(self, state: BatchState) -> None:
        """After each optimizer step (training only)."""

    def post_epoch(self, mode: str) -> None:
        """After every epoch."""

    # ---- state

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
    """The configured modules; the one dispatcher of the events (before-events in order, after-events in
    reverse order, each to the modules that implement it)."""

    def __init__(self, modules: Sequence[MainLoopModule]) -> None:
        self.modules = list(modules)
        self._calls: Dict[str, List[Callable[..., None]]] = {}
        for hook in HOOKS:
            calls = [getattr(m, hook) for m in self.modules if _overrides(m, hook)]
            self._calls[hook] = calls if hook in BEFORE_EVENTS else calls[::-1]
        #: whether the trainer runs the teacher on every training batch (decided once, not per batch)
        self.runs_teacher = any(m.teacher_need(m.config) == OUTPUTS for m in self.modules)

    def __iter__(self):
        return iter(self.modules)

    def __len__(self) -> int:
        return len(self.modules)

    def names(self) -> List[str]:
        return [type(m).__name__ for m in self.modules]

    def dispatch(self, hook: str, argument: Any) -> None:
        """Call ``hook(argument)`` of every module that implements it, in the event's order."""
        if hook == "pre_epoch":
            for module in self.modules:
                module.mode = argument
        for call in self._calls[hook]:
            call(argument)

    def parameters(self) -> List[nn.Parameter]:
        return [p for m in self.modules for p in m.parameters()]

    def state_dict(self) -> Dict[str, Any]:
        return {f"{i}:{type(m).__name__}": m.state_dict() for i, m in enumerate(self.modules)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore the modules that keep state, in order (a module without state has nothing to restore, so a
        checkpoint's stateless entries need not match, e.g. those of 0.4's output unwrapper)."""
        saved = [(key.split(":", 1)[-1], entry) for key, entry in state.items() if entry]
        own = [m for m in self.modules if m.state_dict()]
        if [name for name, _ in saved] != [type(m).__name__ for m in own]:
            raise ValueError(f"checkpoint holds the state of main-loop modules {[name for name, _ in saved]}, the "
                             f"trainer runs {[type(m).__name__ for m in own]} with state")
        for (_, entry), module in zip(saved, own):
            module.load_state_dict(entry)


def requested_layers(classes: Sequence[type], config: Any, role: str) -> List[str]:
    """The layer paths of ``role`` (``"student"``/``"teacher"``) the module ``classes`` read, each once, in order."""
    method = "student_layers" if role == "student" else "teacher_layers"
    return list(dict.fromkeys(p for cls in classes for p in getattr(cls, method)(config) if p != OUTPUT))


def teacher_needers(classes: Sequence[type], config: Any) -> List[str]:
    """Names of the module ``classes`` that need a teacher under ``config``."""
    return [cls.__name__ for cls in classes if cls.teacher_need(config) != NONE]
