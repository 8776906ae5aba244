"""How a compat config class turns the original orbit_transfer fields into this library's fields.

A compat class declares the original fields with the original defaults (``ORIGINAL``), in the original idiom
(``load_kwargs``, then assignments that do not override the caller's values). Once the config is built, in
``conditional_assignment``, ``translate`` maps those fields (and any field a recipe's subclass added) onto the
fields of the library class the compat class derives from, and the original fields are removed: what is stored,
hashed and trained is this library's config, read by this library's own functions. An original meaning that
this library cannot keep raises ``Refused``: one line saying what is missing, never an approximation.
"""

from __future__ import annotations

import copy
import functools
import logging
from typing import Any, Dict, Iterable, Mapping

from nntransfer.configs.declared import library_fields

logger = logging.getLogger(__name__)
#: the warnings already given (a recipe builds its configs many times: each is given once per process)
_warned: set = set()

#: the marker (not a field: it starts with "_") that a config's original fields were translated
TRANSLATED = "_orbit_transfer_translated"


class Refused(ValueError):
    """An original orbit_transfer meaning that this library cannot keep (the message is one line)."""

    def __init__(self, owner: str, message: str):
        super().__init__(f"{owner}: {message} (nntransfer.compat.orbit_transfer refuses it rather than approximate it)")


class OriginalFields:
    """Mixin of the compat config classes (put it before the library class they derive from).

    Class attributes:
        ORIGINAL: the original class's own fields and their original defaults (merged along the hierarchy).
        LIBRARY_CLASS: the library config class whose fields the translation yields (its declared fields
            are left alone when a recipe's class or a keyword sets them).
    """

    ORIGINAL: Dict[str, Any] = {}

    @classmethod
    def original_defaults(cls) -> Dict[str, Any]:
        merged: Dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            merged.update(klass.__dict__.get("ORIGINAL", {}))
        return merged

    def declare_original_defaults(self, klass: type, kwargs: Mapping[str, Any]) -> None:
        """Assign the original defaults of ``klass`` itself (call it in ``klass.__init__``, as the original class
        assigned them there: an outer class's assignment and the caller's keywords win). A keyword that no
        class declares is declared too, as the original accepted any keyword: ``translate`` reads it or
        refuses it."""
        known = set(self.original_defaults()) | set(library_fields(self.library_class()))
        known |= set(self.runtime_field_names()) | {"comment"}
        for name, value in kwargs.items():
            if name not in known:
                setattr(self, name, copy.deepcopy(value))
        for name, value in klass.__dict__.get("ORIGINAL", {}).items():
            setattr(self, name, copy.deepcopy(value))  # declares it; sets it only if unset (the idiom)

    def translate(self, original: Dict[str, Any]) -> Dict[str, Any]:  # pragma: no cover - every class defines it
        raise NotImplementedError

    def conditional_assignment(self) -> None:
        if not self.__dict__.get(TRANSLATED):
            library = library_fields(self.library_class())
            original_names = set(self.original_defaults())
            runtime = set(self.runtime_field_names())  # where and how a step runs: the library's, as they are
            names = [n for n in self.__dict__ if not n.startswith("_") and n != "comment" and n not in runtime
                     and (n in original_names or n not in library)]
            original = {name: self.__dict__.pop(name) for name in names}
            self.__dict__[TRANSLATED] = True
            translated = self.translate(original)
            defaults = library_defaults(self.library_class())
            for name in names:  # a library field the translation did not set keeps the library's default
                if name in defaults and name not in translated:
                    self.__dict__[name] = copy.deepcopy(defaults[name])
            for name, value in translated.items():
                self.__dict__[name] = value
        super().conditional_assignment()

    @classmethod
    def library_class(cls) -> type:
        for klass in cls.__mro__:
            if klass.__module__.startswith("nntransfer.configs"):
                return klass
        raise TypeError(f"{cls.__name__} derives from no library config class")


@functools.lru_cache(maxsize=None)
def _library_defaults(klass: type) -> Dict[str, Any]:
    return klass().to_dict()


def library_defaults(klass: type) -> Dict[str, Any]:
    """The field values of a default instance of the library class ``klass``."""
    return _library_defaults(klass)


def take(original: Dict[str, Any], name: str) -> Any:
    """Remove and return an original field (every field a translation reads is taken, so that none is left)."""
    return original.pop(name)


def check_default(owner: str, original: Dict[str, Any], names: Iterable[str], defaults: Mapping[str, Any],
                  why: str) -> None:
    """Take the fields ``names``; any value but the original default (or None / empty) is refused with ``why``."""
    for name in names:
        value = original.pop(name, defaults[name])
        if value != defaults[name] and value not in (None, (), [], {}):
            raise Refused(owner, f"{name}={value!r} {why}")


def refuse_leftovers(owner: str, original: Dict[str, Any]) -> None:
    """Fields no translation read: a recipe's class added them and nothing would read them here."""
    if original:
        names = ", ".join(sorted(original))
        raise Refused(owner, f"field(s) {names} have no meaning that this compat layer maps "
                             "(the original model or trainer function would have read them)")


def integral(owner: str, name: str, value: Any) -> int:
    """``value`` as an int where it is a whole number (recipes compute shifts with numpy)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
        raise Refused(owner, f"{name}={value!r} is not a whole number")
    return int(value)


def warn_once(owner: str, message: str) -> None:
    """Log ``owner: message`` as a WARNING, once per process (nothing for an empty message)."""
    if message and (owner, message) not in _warned:
        _warned.add((owner, message))
        logger.warning("%s: %s", owner, message)
