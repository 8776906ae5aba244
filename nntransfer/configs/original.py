"""The original nntransfer's idiom on top of the config core: ``load_kwargs``, original field names
(aliases) and reads of unset fields as ``None``.

``load_kwargs``
---------------
A subclass that calls ``self.load_kwargs(**kwargs)`` first sets the caller's values, then declares its own
fields, which do not override them (and, as in the original, reads a field that no class has set yet as
``None``)::

    class BaselineModel(ClassificationModelConfig):
        def __init__(self, **kwargs):
            self.load_kwargs(**kwargs)
            self.type = "lenet300-100"
            self.coreset_size = 200      # a new field: hashed, and passed to the model function
            super().__init__(**kwargs)

Original field names
--------------------
The original nntransfer's names of today's fields (``threshold`` for ``tolerance``, ``input_width``...) are
aliases: a class lists them beside its fields in ``ALIASES = {"old name": Alias(...)}`` (or just
``{"old name": "field"}``), merged along the class hierarchy (``{"old name": None}`` switches one off). An
alias is translated wherever a value enters a config (keywords, ``load_kwargs``, assignments, ``update``,
``from_dict``) before anything is hashed, so both spellings name the same experiment, with a
``DeprecationWarning`` that names today's field. An alias whose name is a field itself translates values
in the original's form only (``scheduler="adaptive"``, ``reset="all"``). An alias marked
``original_idiom`` applies only to configs whose class uses ``load_kwargs`` (``get_intermediate_rep``,
whose original form is the reverse mapping of today's).
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple, Union

from nntransfer.configs.codec import plain_numbers
from nntransfer.configs.construction import NOT_FIELDS, STATE, Construction

_CONFIGS_DIR = str(Path(__file__).resolve().parent)

Converter = Callable[[Any, Any, Dict[str, Any]], Optional[Dict[str, Any]]]
Finisher = Callable[[Any, Dict[str, str]], None]
Entries = List[Tuple[str, Any, Optional[str]]]


@dataclass(frozen=True)
class Alias:
    """An original nntransfer name (or form) of a field.

    Args:
        field: today's field, named in the ``DeprecationWarning``.
        convert: ``convert(value, config, memory) -> {field: value}`` to set, or ``None`` when ``value`` is
            already in today's form (it is then set as given, without a warning). Default: ``{field: value}``.
            ``memory`` is a dict shared by the conversions of one construction or one update (for names
            that are combined, such as ``input_width`` and ``input_height``).
        finish: ``finish(config, owned)`` runs once the other values are known (at the end of construction,
            or after an update), with ``owned`` = {field: alias} of the fields that aliases set.
        hint: how to write it today, for the warning (default ``"use <field>=..."``).
        original_idiom: only for configs whose class uses ``load_kwargs`` (and not in ``from_dict``,
            whose values are today's form).
    """

    field: str
    convert: Optional[Converter] = None
    finish: Optional[Finisher] = None
    hint: str = ""
    original_idiom: bool = False

    def describe(self, name: str, value: Any) -> str:
        if self.hint:
            return self.hint.format(name=name, value=value, field=self.field)
        return f"{name!r} is the original nntransfer's name of {self.field!r}; use {self.field}=..."


_ALIAS_CACHE: Dict[type, Dict[str, Alias]] = {}


def aliases_of(cls: type) -> Dict[str, Alias]:
    """The aliases of a config class: ``ALIASES`` of every class in its hierarchy, subclasses winning."""
    found = _ALIAS_CACHE.get(cls)
    if found is None:
        merged: Dict[str, Optional[Union[str, Alias]]] = {}
        for klass in reversed(cls.__mro__):
            merged.update(klass.__dict__.get("ALIASES", {}))
        found = {name: Alias(a) if isinstance(a, str) else a for name, a in merged.items() if a is not None}
        _ALIAS_CACHE[cls] = found
    return found


def input_size_alias(index: int, square: bool) -> Alias:
    """The alias of ``input_height`` (``index`` 0) or ``input_width`` (1) for the field ``input_size``:
    ``[height, width]`` (the other side from what is given with it, else from the current value, else the
    same: a square), or, with ``square``, one side length (then both, where given together, must be equal)."""
    name = ("input_height", "input_width")[index]

    def convert(value: Any, config: Any, memory: Dict[str, Any]) -> Dict[str, Any]:
        given = memory.setdefault("input_size", {})
        given[index] = value
        if square:
            if len(given) == 2 and given[0] != given[1]:
                raise ValueError(
                    f"{type(config).__name__}: input_width ({given.get(1)!r}) and input_height ({given.get(0)!r}) "
                    f"differ, but images are resized to squares of side input_size; give input_size"
                )
            return {"input_size": value}
        current = None if STATE in config.__dict__ else config.__dict__.get("input_size")  # while built: a default
        parts = list(current) if isinstance(current, (list, tuple)) else [current, current]
        for i, side in given.items():
            parts[i] = side
        other = parts[1 - index]
        parts[1 - index] = value if other is None else other
        return {"input_size": parts}

    shape = "one side length" if square else "[height, width]"
    return Alias("input_size", convert=convert,
                 hint=f"{name!r} is the original nntransfer's name; use input_size=... ({shape})")


def _warn(message: str) -> None:
    """A DeprecationWarning attributed to the first caller outside ``nntransfer.configs`` (the recipe)."""
    frame, level = sys._getframe(0), 1
    while frame is not None and frame.f_code.co_filename.startswith(_CONFIGS_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DeprecationWarning, stacklevel=level)


class OriginalIdiom:
    """``load_kwargs``, aliases and None-reads of the original nntransfer, for ``BaseConfig``. It relies on the
    core's ``update`` and ``_store``; the core calls ``_translate``, ``_check_conflicts``, ``_finish_aliases``
    and ``_reads_as_none``."""

    def load_kwargs(self, **kwargs: Any) -> None:
        """The original nntransfer idiom: set the caller's values first, at the start of a subclass's
        ``__init__``; the fields the classes then declare do not override them (module docstring). Outside
        construction it is ``update``."""
        state = self.__dict__.get(STATE)
        if state is None or state.phase != "defaults":
            self.update(kwargs)
            return
        self.__dict__["_original_idiom"] = True
        entries, _ = self._translate(kwargs, state, state.memory, default_mode=False)
        self._check_conflicts(entries)
        for field, value, via in entries:
            if field not in self.__dict__ and field not in NOT_FIELDS and field != "fn":
                state.loaded_only.add(field)
            self._store(field, value, via, state, keyword=True)

    def _reads_as_none(self, name: str) -> bool:
        """The original idiom: while the classes declare their fields, a field an inner class has not set
        yet reads as None."""
        state = self.__dict__.get(STATE)
        return (state is not None and state.phase == "defaults" and bool(self.__dict__.get("_original_idiom"))
                and not name.startswith("_"))

    def _reads_original_forms(self, state: Optional[Construction]) -> bool:
        return bool(self.__dict__.get("_original_idiom")) and not (state is not None and state.canonical)

    def _translate(
        self, values: Mapping[str, Any], state: Optional[Construction], memory: Dict[str, Any], default_mode: bool
    ) -> Tuple[Entries, Set[str]]:
        """``values`` with original names and forms translated: ``[(field, value, original name or None)]``
        and the original names used. Every value that enters a config passes here, so numpy scalars become
        Python numbers here (``codec.plain_numbers``), before they are checked or hashed."""
        aliases = aliases_of(type(self))
        entries: Entries = []
        used: Set[str] = set()
        for name, value in values.items():
            value = plain_numbers(value)
            alias = aliases.get(name)
            if alias is None or (alias.original_idiom and not self._reads_original_forms(state)):
                entries.append((name, value, None))
                continue
            if default_mode and name in state.alias_given:
                continue  # a keyword or an outer class gave it: they win
            converted = alias.convert(value, self, memory) if alias.convert else {alias.field: value}
            if converted is None:  # already today's form
                entries.append((name, value, None))
                continue
            if state is None or name not in state.warned:
                _warn(f"{type(self).__name__}: {alias.describe(name, value)}")
            if state is not None:
                state.warned.add(name)
                state.alias_given.add(name)
            used.add(name)
            entries.extend((field, converted_value, name) for field, converted_value in converted.items())
        return entries, used

    def _check_conflicts(self, entries: Entries) -> None:
        """A field given both by today's name and by an original name, with different values."""
        plain = {field: value for field, value, via in entries if via is None}
        aliases = aliases_of(type(self))
        for field, value, via in entries:
            if via is not None and field in plain and plain[field] != value and via != field:
                raise ValueError(
                    f"{type(self).__name__}: {field!r} is given twice, as {field!r} and by its original name {via!r}; "
                    f"give one ({aliases[via].describe(via, value)})"
                )

    def _finish_aliases(self, used: Set[str], owned: Dict[str, str]) -> None:
        aliases = aliases_of(type(self))
        for name in sorted(used):
            alias = aliases.get(name)
            if alias is not None and alias.finish is not None:
                alias.finish(self, owned)
