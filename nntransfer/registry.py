"""One registry class for everything a config names by string: data sets, model types, main-loop modules.

    DATASETS = Registry("data set")
    DATASETS.register("Digits", spec)          # or @DATASETS.register("Digits") on a function
    DATASETS.get("digits")                      # ValueError: unknown data set 'digts'; did you mean 'Digits'? ...
    DATASETS.available()                        # sorted names

It imports nothing but the standard library, so every layer (configs included) may use its hint formatter.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Dict, Generic, Iterable, List, Optional, TypeVar

T = TypeVar("T")


def closest_name(name: str, candidates: Iterable[str]) -> Optional[str]:
    """The candidate most similar to ``name`` (or None if nothing is close)."""
    matches = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest candidate, or ``""``: the one hint formatter."""
    match = closest_name(name, candidates)
    return f"; did you mean {match!r}?" if match else ""


def import_object(path: str, kind: str = "object") -> Any:
    """The object a dotted path ``package.module.name`` names, importing the module: the one place a
    name in a config (a function, a main-loop module class) becomes code. ``ValueError`` with one line."""
    module_name, _, attr = str(path).rpartition(".")
    try:
        if not module_name:
            raise ImportError("not a dotted path")
        return getattr(importlib.import_module(module_name), attr)
    except Exception as err:  # ImportError, AttributeError, anything the imported module raised
        raise ValueError(
            f"the {kind} {path!r} cannot be imported ({type(err).__name__}: {err}); "
            "use a dotted path like 'my_package.module.name'"
        ) from None


class Registry(Generic[T]):
    """Names -> objects of one kind.

    Args:
        kind: what is registered, for messages ("model type", "data set", ...).
        case_sensitive: names match exactly; otherwise ``get("cifar10")`` finds ``"CIFAR10"``.
        fallback: called with a name that is not registered; may return an object (which is then
            registered under that name) or None. Main-loop modules use it for dotted import paths.
        help: appended to the error of an unknown name (how to add one).
    """

    def __init__(
        self,
        kind: str,
        case_sensitive: bool = True,
        fallback: Optional[Callable[[str], Optional[T]]] = None,
        help: str = "",
    ) -> None:
        self.kind = kind
        self.case_sensitive = case_sensitive
        self.fallback = fallback
        self.help = help
        self._items: Dict[str, T] = {}
        self._names: Dict[str, str] = {}  # lookup key -> name as registered

    def _key(self, name: str) -> str:
        return str(name) if self.case_sensitive else str(name).lower()

    def register(self, name: str, obj: Optional[T] = None, overwrite: bool = False) -> Any:
        """Register ``obj`` under ``name``; without ``obj`` this is a decorator. Registering another
        object under a taken name is an error unless ``overwrite`` (a silent replacement would change what
        stored configs mean)."""

        def add(item: T) -> T:
            key = self._key(name)
            existing = self._items.get(key)
            if existing is not None and existing is not item and not overwrite and not _same_definition(existing, item):
                raise ValueError(f"a {self.kind} named {name!r} is already registered; pass overwrite=True to replace it")
            self._items[key] = item
            self._names[key] = name
            return item

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        """The object registered as ``name``; ``ValueError`` naming the closest name and listing all."""
        key = self._key(name)
        if key in self._items:
            return self._items[key]
        if self.fallback is not None:
            found = self.fallback(str(name))
            if found is not None:
                return self.register(str(name), found)
        names = self.available()
        lookup = {self._key(n): n for n in names}
        match = closest_name(key, lookup)
        hint = f"; did you mean {lookup[match]!r}?" if match else ""
        more = f"; {self.help}" if self.help else ""
        raise ValueError(f"unknown {self.kind} {name!r}{hint} (available: {', '.join(names) or 'none'}){more}")

    def available(self) -> List[str]:
        """Registered names, sorted."""
        return sorted(self._names.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._items

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.available()})"


def _same_definition(a: Any, b: Any) -> bool:
    # A module re-executed (e.g. a recipe imported twice) defines a new object with the same name.
    return getattr(a, "__qualname__", None) is not None and (
        getattr(a, "__module__", None), getattr(a, "__qualname__", None)
    ) == (getattr(b, "__module__", None), getattr(b, "__qualname__", None))
