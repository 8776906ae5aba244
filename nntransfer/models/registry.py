"""Registry of model types: ``type`` name in the config -> function that builds the model.

A builder has the signature ``build(config, input_shape, n_classes) -> nn.Module`` where ``config`` is a
``ClassificationModelConfig``, ``input_shape`` is the shape of one input (``(channels, height, width)``
for image models; a type that declares ``input_dims`` is refused other shapes before anything is built, one
registered without it takes inputs of any shape), and the module it returns
has the submodules ``core`` and ``readout`` (see ``nntransfer.models.base.CoreReadoutModel``)::

    @register("my_net")
    def build_my_net(config, input_shape, n_classes):
        ...

A type's own hyper-parameters are its *options*, declared with their defaults where it is registered; a
config sets them in ``ClassificationModelConfig.options`` (only what it sets is hashed, so a new type or a
new option changes no other config's key). Options with a fixed set of values declare it in ``choices``::

    @register("my_net", options={"width": 64, "head": "linear"}, choices={"head": ("linear", "mlp")})
    def build_my_net(config, input_shape, n_classes):
        width = config.options["width"]     # every declared option, defaults filled in
        ...

A config's options are checked against its type's (an unknown name or value is one line with the closest
one) by ``check_model_config``, before anything is written, and again when the model is built.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from torch import nn

from nntransfer.configs.model.classification import ClassificationModelConfig
from nntransfer.registry import Registry, did_you_mean

ModelBuilder = Callable[[ClassificationModelConfig, Tuple[int, int, int], int], nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    """What a model type declares besides its builder.

    Attributes:
        name: the ``type`` that selects it.
        options: its own hyper-parameters with their defaults (``config.options`` sets them).
        choices: the allowed values of options that have a fixed set of them.
        input_dims: numbers of input dimensions (without the batch) it takes; None: any.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    choices: Mapping[str, Tuple[Any, ...]] = field(default_factory=dict)
    input_dims: Optional[Tuple[int, ...]] = None

    def resolve_options(self, given: Mapping[str, Any]) -> Dict[str, Any]:
        """The builder's options: the declared defaults updated by ``given``. An option the type does not
        declare, a value of another kind than its default or a value outside its choices is a one-line
        ``ValueError`` naming the closest option or value."""
        for name, value in given.items():
            if name not in self.options:
                accepted = ", ".join(sorted(self.options)) or "none"
                elsewhere = [t for t in registered_types() if name in _TYPES.get(t, ModelSpec(t)).options]
                also = f"; {name!r} is an option of {', '.join(elsewhere)}" if elsewhere else ""
                raise ValueError(f"options: model type {self.name!r} has no option {name!r}"
                                 f"{did_you_mean(name, self.options)} (its options: {accepted}){also}")
            default = self.options[name]
            if not _same_kind(value, default):
                raise ValueError(f"options: {name!r} of model type {self.name!r} expects a {type(default).__name__} "
                                 f"(default {default!r}), got {value!r}")
            allowed = self.choices.get(name)
            if allowed is not None and value not in allowed:
                elsewhere = [t for t in registered_types() if value in _TYPES.get(t, ModelSpec(t)).choices.get(name, ())]
                also = f"; {name} {value!r} exists for {', '.join(elsewhere)}" if elsewhere else ""
                raise ValueError(
                    f"options: model type {self.name!r} has no {name} {value!r}{did_you_mean(str(value), map(str, allowed))} "
                    f"(available: {', '.join(map(str, allowed))}){also}"
                )
        return {**copy.deepcopy(dict(self.options)), **copy.deepcopy(dict(given))}


def _same_kind(value: Any, default: Any) -> bool:
    """``value`` may replace ``default``: an int for a float, a tuple for a list, anything for a default of
    None; None only for a default of None (builders read the option as its default's kind)."""
    if default is None or value is None:
        return default is None
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


MODELS: Registry[ModelBuilder] = Registry(
    "model type", help="add your own with @nntransfer.models.register('name') on build(config, input_shape, n_classes)"
)
_TYPES: Dict[str, ModelSpec] = {}


def register(
    name: str,
    builder: Optional[ModelBuilder] = None,
    *,
    options: Optional[Mapping[str, Any]] = None,
    choices: Optional[Mapping[str, Sequence[Any]]] = None,
    input_dims: Optional[Sequence[int]] = None,
):
    """Register ``builder`` under ``name``; without ``builder`` this is a decorator. ``options``: the type's
    own hyper-parameters and their defaults; ``choices``: the allowed values of some of them; ``input_dims``:
    the numbers of input dimensions it takes (``(3,)``: images ``(C, H, W)``; ``(2,)``: signals ``(C, L)``;
    None, the default: any, as for a type registered before ``input_dims`` existed).

    Registering another builder under a taken name is an error (a silent replacement would change what
    stored configs build)."""
    options = dict(options or {})
    choices = {key: tuple(values) for key, values in (choices or {}).items()}
    for key, values in choices.items():
        if key not in options or options[key] not in values:
            raise ValueError(f"model type {name!r}: choices of {key!r} need an option {key!r} whose default is one of them")
    spec = ModelSpec(name, options, choices, None if input_dims is None else tuple(input_dims))

    def add(fn: ModelBuilder) -> ModelBuilder:
        MODELS.register(name, fn)
        _TYPES[name] = spec
        return fn

    return add if builder is None else add(builder)


def get(name: str) -> ModelBuilder:
    """The builder registered as ``name``; ``ValueError`` naming the closest type and listing all."""
    return MODELS.get(name)


def registered_types() -> List[str]:
    """Names of all registered model types, sorted."""
    return MODELS.available()


def model_spec(name: str) -> ModelSpec:
    """What model type ``name`` declares: its options, their choices and the inputs it takes."""
    MODELS.get(name)  # an unknown type is the clearer error
    return _TYPES.get(name, ModelSpec(name))


def check_input_shape(model_type: str, input_shape: Sequence[int]) -> None:
    """Raise ``ValueError`` (one line) unless model type ``model_type`` takes inputs of ``input_shape``."""
    dims = model_spec(model_type).input_dims
    if dims is not None and len(input_shape) not in dims:
        takes = [t for t in registered_types() if model_spec(t).input_dims is None or len(input_shape) in model_spec(t).input_dims]
        wanted = " or ".join("(C, H, W)" if d == 3 else "(C, L)" if d == 2 else f"{d}-D" for d in dims)
        raise ValueError(
            f"model type {model_type!r} takes inputs of shape {wanted}, the data has {tuple(input_shape)}; "
            f"types that take it: {', '.join(takes) or 'none'}; a type of your own takes it when registered with "
            f"input_dims=({len(input_shape)},) or without input_dims"
        )
