"""Main-loop modules by name. A user package adds its own with ``@register`` (or ``register(cls)``) and
lists the name in ``main_loop_modules``; a dotted path ``"my_package.modules.MyModule"`` also works and
imports the package first (as a worker running a table row must)."""

from __future__ import annotations

import importlib
from typing import Dict, List, Optional, Type

from nntransfer.configs.base import closest_name
from nntransfer.trainer.main_loop_modules.base import MainLoopModule

_REGISTRY: Dict[str, Type[MainLoopModule]] = {}


def register(cls: Optional[type] = None, *, name: Optional[str] = None):
    """Register a ``MainLoopModule`` subclass under ``name`` (default: the class name). Usable as
    ``@register``, ``@register(name="X")`` or ``register(MyModule)``; returns the class."""

    def add(module_cls: type) -> type:
        if not (isinstance(module_cls, type) and issubclass(module_cls, MainLoopModule)):
            raise ValueError(f"{module_cls!r} is not a subclass of MainLoopModule")
        key = name or module_cls.__name__
        existing = _REGISTRY.get(key)
        if existing is not None and existing is not module_cls and existing.__qualname__ != module_cls.__qualname__:
            raise ValueError(f"a main-loop module named {key!r} is registered already ({existing!r})")
        _REGISTRY[key] = module_cls
        return module_cls

    return add(cls) if cls is not None else add


def available() -> List[str]:
    """Names of the registered modules."""
    return sorted(_REGISTRY)


def get(name: str) -> Type[MainLoopModule]:
    """The module class registered as ``name`` (or importable as a dotted path)."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if "." in name:
        module_name, _, attr = name.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"cannot import main-loop module {name!r}: {err}") from None
        return register(cls, name=name)
    hint = closest_name(name, _REGISTRY)
    hint = f"; did you mean {hint!r}?" if hint else ""
    raise ValueError(
        f"unknown main-loop module {name!r}{hint} (registered: {', '.join(available())}); register your own "
        "with @register in a module the recipe imports, or give its dotted path 'package.module.Class'"
    )
