"""What nntransfer's own config functions resolve by name, found without importing them.

The fingerprint of a step's user code (:mod:`nntransfer.fingerprint`) follows each config's function into what
it resolves through the registries: the data set and test transforms of a dataset config, the model type of a
model config, the main-loop modules of a trainer config. nntransfer's own functions are covered by its
version and importing them costs seconds (torch), which ``status`` on a stored recipe would pay for nothing.
So their lookups live here, on the registries alone: a name resolves to user code only where user code
registered it, and registering imports the registry first; a registry no module imported holds nntransfer's
own entries only, which the fingerprint leaves out anyway. A user's own function is imported and asked
through its ``code_used(values)`` attribute, if it has one.

Only the standard library and :mod:`nntransfer.registry` are imported here.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict, List, Mapping

from nntransfer.registry import import_object

__all__ = ["BUILTIN_FUNCTIONS", "builtin_code_used"]


def _registered(module_name: str, registry_name: str, name: Any) -> List[Any]:
    """``[the entry of name]`` in the registry ``module_name.registry_name`` if that module is imported and
    holds it, else ``[]`` (nothing but nntransfer registered there; an unknown name the recipe check reports)."""
    module = sys.modules.get(module_name)
    registry = getattr(module, registry_name, None) if module is not None else None
    if registry is None or not isinstance(name, str) or name not in registry:
        return []
    return [registry.get(name)]


def dataset_code_used(config: Mapping[str, Any]) -> List[Any]:
    """A dataset config's data set and its test transforms."""
    used = _registered("nntransfer.dataset.registry", "DATASETS", config.get("dataset_cls"))
    for spec in (config.get("test_transforms") or {}).values():
        if isinstance(spec, Mapping) and "transform" in spec:
            used += _registered("nntransfer.dataset.test_transforms", "TEST_TRANSFORMS", spec["transform"])
    return used


def model_code_used(config: Mapping[str, Any]) -> List[Any]:
    """A model config's model type."""
    return _registered("nntransfer.models.registry", "MODELS", config.get("type"))


def trainer_code_used(config: Mapping[str, Any]) -> List[Any]:
    """A trainer config's main-loop modules: registered names, or dotted paths to a user's class."""
    used: List[Any] = []
    for name in config.get("main_loop_modules") or []:
        if isinstance(name, str) and "." in name:
            try:
                used.append(import_object(name, "main-loop module"))
            except ValueError:  # the recipe's check reports it before anything runs
                pass
        else:
            used += _registered("nntransfer.trainer.main_loop_modules.registry", "MODULES", name)
    return used


#: nntransfer's config functions by dotted path (as configs name them, and where they are defined) -> lookup
BUILTIN_FUNCTIONS: Dict[str, Callable[[Mapping[str, Any]], List[Any]]] = {
    "nntransfer.dataset.img_dataset_loader": dataset_code_used,
    "nntransfer.dataset.loader.img_dataset_loader": dataset_code_used,
    "nntransfer.models.classification_model_builder": model_code_used,
    "nntransfer.models.builder.classification_model_builder": model_code_used,
    "nntransfer.models.orbit.learned_orbit_builder": lambda config: [],
    "nntransfer.trainer.classification_trainer": trainer_code_used,
    "nntransfer.trainer.img_classification.classification_trainer": trainer_code_used,
}


def builtin_code_used(fn: Any, values: Mapping[str, Any]):
    """What nntransfer's function ``fn`` (a dotted path or the function) resolves for the config ``values``,
    or None where ``fn`` is not one of :data:`BUILTIN_FUNCTIONS`."""
    path = fn if isinstance(fn, str) else f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}"
    lookup = BUILTIN_FUNCTIONS.get(path)
    return None if lookup is None else lookup(values)
