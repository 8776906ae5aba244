"""Main-loop modules by name. A user package adds its own with ``@register`` (or ``register(cls)``) and
lists the name in ``main_loop_modules``; a dotted path ``"my_package.modules.MyModule"`` also works and
imports the package first (as a worker running a table row must)."""

from __future__ import annotations

from typing import List, Optional, Type

from nntransfer.registry import Registry, import_object
from nntransfer.trainer.main_loop_modules.base import MainLoopModule


def _require_module_class(obj: object) -> Type[MainLoopModule]:
    if not (isinstance(obj, type) and issubclass(obj, MainLoopModule)):
        raise ValueError(f"{obj!r} is not a subclass of MainLoopModule")
    return obj


def _import_dotted(name: str) -> Optional[Type[MainLoopModule]]:
    """The class a dotted path ``package.module.Class`` names (None for a plain name: unknown)."""
    if "." not in name:
        return None
    found = import_object(name, "main-loop module")
    try:
        return _require_module_class(found)
    except ValueError as err:
        raise ValueError(f"main-loop module {name!r}: {err}") from None


MODULES: Registry[Type[MainLoopModule]] = Registry(
    "main-loop module",
    fallback=_import_dotted,
    help="register your own with @register in a module the recipe imports, or give its dotted path 'package.module.Class'",
)


def register(cls: Optional[type] = None, *, name: Optional[str] = None):
    """Register a ``MainLoopModule`` subclass under ``name`` (default: the class name). Usable as
    ``@register``, ``@register(name="X")`` or ``register(MyModule)``; returns the class."""

    def add(module_cls: type) -> type:
        _require_module_class(module_cls)
        return MODULES.register(name or module_cls.__name__, module_cls)

    return add(cls) if cls is not None else add


def available() -> List[str]:
    """Names of the registered modules."""
    return MODULES.available()


def get(name: str) -> Type[MainLoopModule]:
    """The module class registered as ``name`` (or importable as a dotted path)."""
    return MODULES.get(name)
