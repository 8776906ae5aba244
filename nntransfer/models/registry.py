"""Registry of model types: ``type`` name in the config -> function that builds the model.

A builder has the signature ``build(config, input_shape, n_classes) -> nn.Module`` where ``config`` is a
``ClassificationModelConfig``, ``input_shape`` is the shape of one input (``(channels, height, width)``
for image models; a type that declares ``input_dims`` is refused other shapes before anything is built, one
registered without it takes inputs of any shape), and the module it returns
has the submodules ``core`` and ``readout`` (see ``nntransfer.models.base.CoreReadoutModel``)::

    @register("my_net")
    def build_my_net(config, input_shape, n_classes):
        ...

A type that builds more than one kind of core or readout declares them, so that a config asking for
one it lacks is rejected before anything runs: ``register("lenet5", core_types=("conv", "fully_connected"))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from torch import nn

from nntransfer.configs.model.classification import ClassificationModelConfig
from nntransfer.registry import Registry, did_you_mean

ModelBuilder = Callable[[ClassificationModelConfig, Tuple[int, int, int], int], nn.Module]


@dataclass(frozen=True)
class ModelVariants:
    """The ``core_type`` and ``readout_type`` values a model type builds (the config's defaults
    ``"conv"``/``"dense"`` name a type's own layers)."""

    core_types: Tuple[str, ...] = ("conv",)
    readout_types: Tuple[str, ...] = ("dense",)
    #: numbers of input dimensions (without the batch) the type takes; None: any
    input_dims: Optional[Tuple[int, ...]] = None


MODELS: Registry[ModelBuilder] = Registry(
    "model type", help="add your own with @nntransfer.models.register('name') on build(config, input_shape, n_classes)"
)
_VARIANTS: Dict[str, ModelVariants] = {}


def register(
    name: str,
    builder: Optional[ModelBuilder] = None,
    *,
    core_types: Sequence[str] = ("conv",),
    readout_types: Sequence[str] = ("dense",),
    input_dims: Optional[Sequence[int]] = None,
):
    """Register ``builder`` under ``name``; without ``builder`` this is a decorator. ``core_types`` and
    ``readout_types``: the ``core_type``/``readout_type`` values it builds; ``input_dims``: the numbers of
    input dimensions it takes (``(3,)``: images ``(C, H, W)``; ``(2,)``: signals ``(C, L)``; None, the
    default: any, as for a type registered before ``input_dims`` existed).

    Registering another builder under a taken name is an error (a silent replacement would change what
    stored configs build)."""
    variants = ModelVariants(tuple(core_types), tuple(readout_types), None if input_dims is None else tuple(input_dims))

    def add(fn: ModelBuilder) -> ModelBuilder:
        MODELS.register(name, fn)
        _VARIANTS[name] = variants
        return fn

    return add if builder is None else add(builder)


def get(name: str) -> ModelBuilder:
    """The builder registered as ``name``; ``ValueError`` naming the closest type and listing all."""
    return MODELS.get(name)


def registered_types() -> List[str]:
    """Names of all registered model types, sorted."""
    return MODELS.available()


def variants(name: str) -> ModelVariants:
    """The ``core_type``/``readout_type`` values model type ``name`` builds."""
    MODELS.get(name)  # an unknown type is the clearer error
    return _VARIANTS.get(name, ModelVariants())


def check_variant(model_type: str, field: str, value: str) -> None:
    """Raise ``ValueError`` (one line) unless model type ``model_type`` builds ``field`` (``"core_type"``
    or ``"readout_type"``) ``value``."""

    def allowed_for(name: str) -> Tuple[str, ...]:
        declared = variants(name)
        return {"core_type": declared.core_types, "readout_type": declared.readout_types}[field]

    allowed = allowed_for(model_type)
    if value not in allowed:
        elsewhere = [t for t in registered_types() if value in allowed_for(t)]
        also = f"; {field} {value!r} exists for {', '.join(elsewhere)}" if elsewhere else ""
        raise ValueError(
            f"{field}: model type {model_type!r} has no {field} {value!r}{did_you_mean(value, allowed)} "
            f"(available: {', '.join(allowed)}){also}"
        )


def check_input_shape(model_type: str, input_shape: Sequence[int]) -> None:
    """Raise ``ValueError`` (one line) unless model type ``model_type`` takes inputs of ``input_shape``."""
    dims = variants(model_type).input_dims
    if dims is not None and len(input_shape) not in dims:
        takes = [t for t in registered_types() if variants(t).input_dims is None or len(input_shape) in variants(t).input_dims]
        wanted = " or ".join("(C, H, W)" if d == 3 else "(C, L)" if d == 2 else f"{d}-D" for d in dims)
        raise ValueError(
            f"model type {model_type!r} takes inputs of shape {wanted}, the data has {tuple(input_shape)}; "
            f"types that take it: {', '.join(takes) or 'none'}; a type of your own takes it when registered with "
            f"input_dims=({len(input_shape)},) or without input_dims"
        )
