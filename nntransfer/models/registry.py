"""Registry of model types: ``type`` name in the config -> function that builds the model.

A builder has the signature ``build(config, input_shape, n_classes) -> nn.Module`` where ``config`` is a
``ClassificationModelConfig``, ``input_shape`` is ``(channels, height, width)``, and the module it returns
has the submodules ``core`` and ``readout`` (see ``nntransfer.models.base.CoreReadoutModel``)::

    @register("my_net")
    def build_my_net(config, input_shape, n_classes):
        ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple

from torch import nn

if TYPE_CHECKING:
    from nntransfer.configs.model.classification import ClassificationModelConfig

ModelBuilder = Callable[["ClassificationModelConfig", Tuple[int, int, int], int], nn.Module]

_BUILDERS: Dict[str, ModelBuilder] = {}


def register(name: str, builder: Optional[ModelBuilder] = None):
    """Register ``builder`` under ``name``; without ``builder`` this is a decorator.

    Registering a name twice is an error (a silent replacement would change what old configs build)."""

    def add(fn: ModelBuilder) -> ModelBuilder:
        if name in _BUILDERS and _BUILDERS[name] is not fn:
            raise ValueError(f"model type {name!r} is already registered")
        _BUILDERS[name] = fn
        return fn

    return add if builder is None else add(builder)


def get(name: str) -> ModelBuilder:
    """The builder registered as ``name``; ``ValueError`` listing the registered types otherwise."""
    try:
        return _BUILDERS[name]
    except KeyError:
        from nntransfer.configs.base import closest_name

        hint = closest_name(str(name), registered_types())
        hint = f"did you mean {hint!r}? " if hint else ""
        raise ValueError(f"unknown model type {name!r}; {hint}registered types: {', '.join(registered_types())}") from None


def registered_types() -> List[str]:
    """Names of all registered model types, sorted."""
    return sorted(_BUILDERS)
