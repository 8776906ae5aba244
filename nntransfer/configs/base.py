"""`BaseConfig`: a named set of settings that hashes to the DataJoint key of its table row.

Subclasses set their defaults as attributes in ``__init__`` and then call ``super().__init__(**kwargs)``;
keyword arguments win over defaults::

    class MyDatasetConfig(DatasetConfig):
        fn = "my_package.datasets.my_loader"

        def __init__(self, **kwargs):
            self.batch_size = 64
            self.noise_levels = {"DEFAULT EMPTY": True, 0.1: 0.5}   # {} unless the caller passes one
            super().__init__(**kwargs)

Every public attribute except ``comment`` and the role's runtime options (device, data folder, ...;
see ``nntransfer.configs.runtime``) is a *field*: it is part of ``to_dict()`` and of the hash. A keyword
that is not a field raises ``ValueError`` naming the closest field; reading an attribute that does not
exist raises ``AttributeError``.

Construction
------------
While a config is being built (from the start of the outermost ``__init__`` until ``BaseConfig.__init__``
applies the keyword arguments), a plain assignment ``self.x = value`` *declares* the field ``x`` and sets
it only if it is still unset (or ``None``), so that the outer class (the subclass) wins over the classes
it builds on, and keyword arguments win over every class. ``set_defaults(x=...)`` does the same for the
library's own classes (it keeps a ``None`` an outer class set). After ``BaseConfig.__init__`` has applied
the keywords, assignment is plain assignment again (``conditional_assignment`` derives values that way).

The original nntransfer idiom works unchanged: a subclass that calls ``self.load_kwargs(**kwargs)`` first
sets the caller's values, then declares its own fields, which do not override them (and, as in the
original, reads a field that no class has set yet as ``None``)::

    class BaselineModel(ClassificationModelConfig):
        def __init__(self, **kwargs):
            self.load_kwargs(**kwargs)
            self.type = "lenet300-100"
            self.coreset_size = 200      # a new field: hashed, and passed to the model function
            super().__init__(**kwargs)

A keyword that no class declared is a ``ValueError`` (one line, naming the closest field) once the
outermost ``__init__`` returns.

Every number a config holds is finite: a NaN or an infinity in any field (nested in lists, tuples and dicts,
keys included) is a ``ValueError`` naming the field, when the config is made, updated or assigned to, so
that a setting such as ``kd_temperature=float("nan")`` never reaches a trainer. A class names the fields
where an infinity has a meaning in ``INFINITE_FIELDS`` (merged along the class hierarchy, e.g. a
signal-to-noise ratio of inf, a clean level); NaN is refused everywhere. A field a recipe's subclass declares reaches the function the config names;
the library's functions rebuild their config with ``from_dict``, which accepts the fields that subclasses of
the same role have declared by assignment in this process (they carry them and ignore them; the fields of
the library's classes and mixins, declared with ``set_defaults``, are not among them).

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

Configs are plain data: this package imports no other nntransfer package, nor torch, DataJoint or
nnfabrik. Whether the names a config refers to (data set, model type, modules, ...) exist is checked by
the run layer (``nntransfer.run.validation``) before anything is written.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import json
import math
import numbers
import sys
import warnings
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, FrozenSet, List, Mapping, Optional, Set, Tuple, Union

from nntransfer.configs import codec
from nntransfer.configs.codec import make_hash
from nntransfer.configs.runtime import RUNTIME_FIELDS
from nntransfer.registry import did_you_mean, import_object

Description = namedtuple("Description", "name seed")
Description.__doc__ = "Names one transfer experiment of a recipe: ``Description(name, seed)``."

DEFAULT_EMPTY = "DEFAULT EMPTY"
_NOT_FIELDS = ("comment",)
_NUMBER_TYPES = (int, float)
_MISSING = object()
_STATE = "_construction"
_CONFIGS_DIR = str(Path(__file__).resolve().parent)

#: (the values are today's form, names declared by subclasses that are accepted) while ``from_dict`` builds
_FROM_DICT: contextvars.ContextVar[Optional[Tuple[bool, FrozenSet[str]]]] = contextvars.ContextVar("_from_dict", default=None)
#: class -> the fields its own code declared beyond the library's (what a recipe's subclass declared reaches
#: the library functions' from_dict)
_SEEN_FIELDS: Dict[type, Set[str]] = {}


# ---------------------------------------------------------------------------------------------- aliases

Converter = Callable[[Any, "BaseConfig", Dict[str, Any]], Optional[Dict[str, Any]]]
Finisher = Callable[["BaseConfig", Dict[str, str]], None]


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

    def convert(value: Any, config: "BaseConfig", memory: Dict[str, Any]) -> Dict[str, Any]:
        given = memory.setdefault("input_size", {})
        given[index] = value
        if square:
            if len(given) == 2 and given[0] != given[1]:
                raise ValueError(
                    f"{type(config).__name__}: input_width ({given.get(1)!r}) and input_height ({given.get(0)!r}) "
                    f"differ, but images are resized to squares of side input_size; give input_size"
                )
            return {"input_size": value}
        current = None if _STATE in config.__dict__ else config.__dict__.get("input_size")  # while built: a default
        parts = list(current) if isinstance(current, (list, tuple)) else [current, current]
        for i, side in given.items():
            parts[i] = side
        other = parts[1 - index]
        parts[1 - index] = value if other is None else other
        return {"input_size": parts}

    shape = "one side length" if square else "[height, width]"
    return Alias("input_size", convert=convert,
                 hint=f"{name!r} is the original nntransfer's name; use input_size=... ({shape})")


_INFINITE_CACHE: Dict[type, FrozenSet[str]] = {}


def infinite_fields_of(cls: type) -> FrozenSet[str]:
    """The fields of a config class that may hold an infinity: ``INFINITE_FIELDS`` of every class in its hierarchy."""
    found = _INFINITE_CACHE.get(cls)
    if found is None:
        found = frozenset(name for klass in cls.__mro__ for name in klass.__dict__.get("INFINITE_FIELDS", ()))
        _INFINITE_CACHE[cls] = found
    return found


def _first_non_finite(value: Any, infinite_ok: bool) -> Any:
    """The first number in ``value`` (itself, or nested in dict keys and values, lists, tuples and sets) that is
    NaN, or infinite unless ``infinite_ok``; ``_MISSING`` if there is none. A nested config checked itself."""
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        if math.isnan(value) or (math.isinf(value) and not infinite_ok):
            return value
        return _MISSING
    if isinstance(value, Mapping):
        parts: Any = (part for item in value.items() for part in item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        parts = value
    else:
        return _MISSING
    for part in parts:
        found = _first_non_finite(part, infinite_ok)
        if found is not _MISSING:
            return found
    return _MISSING


def _warn(message: str) -> None:
    """A DeprecationWarning attributed to the first caller outside ``nntransfer.configs`` (the recipe)."""
    frame, level = sys._getframe(0), 1
    while frame is not None and frame.f_code.co_filename.startswith(_CONFIGS_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DeprecationWarning, stacklevel=level)


# ---------------------------------------------------------------------------------------------- construction


class _Construction:
    """What one config remembers while it is being built (removed when the outermost ``__init__`` returns)."""

    def __init__(self, canonical: bool, extras: FrozenSet[str]):
        self.phase = "defaults"  # -> "base" (BaseConfig.__init__ runs) -> "after" (code after super().__init__)
        self.canonical = canonical  # from_dict: values are today's form
        self.extras = extras  # names from_dict accepts beyond the class's own fields
        self.from_kwargs: Set[str] = set()  # fields a keyword set: no class overrides them
        self.loaded_only: Set[str] = set()  # names load_kwargs set that no class has declared (yet)
        self.defaults: Dict[str, Any] = {}  # a class's default of a field a keyword set first (type check)
        self.alias_given: Set[str] = set()  # original names given (by a keyword or an outer class)
        self.alias_owned: Dict[str, str] = {}  # field -> the original name that set it
        self.memory: Dict[str, Any] = {}  # converters' memory
        self.warned: Set[str] = set()
        self.pending: Dict[str, Any] = {}  # keywords no class had declared when BaseConfig.__init__ ran
        self.library: Set[str] = set()  # fields set_defaults declared (the library's classes and mixins)
        self.extras_used: Set[str] = set()  # fields from_dict accepted because a subclass declared them


def _constructing(init: Callable) -> Callable:
    """Wrap a config class's ``__init__``: the outermost call creates the construction state and, when it
    returns, checks the keywords and records the fields."""

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if _STATE in self.__dict__:  # an inner class's __init__ (super().__init__ chain)
            init(self, *args, **kwargs)
            return
        spec = _FROM_DICT.get()
        if spec is not None:
            _FROM_DICT.set(None)  # configs built inside this one are built normally
        state = _Construction(*(spec or (False, frozenset())))
        self.__dict__[_STATE] = state
        try:
            init(self, *args, **kwargs)
            self._end_construction(state)
        finally:
            self.__dict__.pop(_STATE, None)

    __init__._nntransfer_constructing = True
    return __init__


class BaseConfig:
    """Base of dataset, model and trainer configs.

    Class attributes:
        config_name: prefix of the table columns (``dataset``/``model``/``trainer``).
        table: name of the nnfabrik table in ``nntransfer.tables.nnfabrik`` the config is stored in.
        fn: dotted path of the function the table calls with this config.
        ALIASES: original nntransfer names of this class's fields (module docstring).
        INFINITE_FIELDS: the fields where an infinity is a meaningful value (every other number must be finite).
    """

    config_name: ClassVar[str] = "config"
    table: ClassVar[Optional[str]] = None
    fn: Optional[str] = None
    ALIASES: ClassVar[Dict[str, Any]] = {}
    INFINITE_FIELDS: ClassVar[Tuple[str, ...]] = ()

    _registry: ClassVar[Dict[str, type]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        BaseConfig._registry[f"{cls.__module__}.{cls.__qualname__}"] = cls
        init = cls.__init__  # the effective one: a mixin's __init__ is reached through the class
        if not getattr(init, "_nntransfer_constructing", False):
            cls.__init__ = _constructing(init)

    def __init__(self, **kwargs):
        state = self.__dict__.get(_STATE)
        if state is not None:
            state.phase = "base"
        if "comment" not in self.__dict__:
            self.__dict__["comment"] = ""
        for name, value in list(self.__dict__.items()):
            if not name.startswith("_") and isinstance(value, dict) and value.get(DEFAULT_EMPTY):
                self.__dict__[name] = {}
        entries, used = self._translate(kwargs, state, state.memory if state else {}, default_mode=False)
        self._check_conflicts(entries)
        known = self._known_names(state)
        extras = state.extras if state is not None else frozenset()
        unknown: Dict[str, Any] = {}
        for field, value, via in entries:
            if field not in known and field not in extras:
                unknown[field] = value
                continue
            if field in known:
                default = state.defaults.get(field, _MISSING) if state is not None else _MISSING
                self._check_type(field, value, default)
            else:
                state.extras_used.add(field)
            self._store(field, value, via, state, keyword=True)
        owned = {field: via for field, _, via in entries if via}
        if state is not None:
            for name in sorted(state.loaded_only):  # load_kwargs set it, no class declared it
                if name in extras:
                    state.loaded_only.discard(name)
                    state.extras_used.add(name)
                else:
                    unknown.setdefault(name, self.__dict__.pop(name))
            used, owned = state.alias_given, dict(state.alias_owned)
        self._finish_aliases(used, owned)
        if unknown:
            if state is None:
                raise self._no_field(next(iter(unknown)))
            state.pending = unknown  # declared after super().__init__, or an error (_end_construction)
        else:
            self.conditional_assignment()
        if state is not None:
            state.phase = "after"

    def _end_construction(self, state: _Construction) -> None:
        """The outermost ``__init__`` returned: keywords no class declared are an error."""
        if state.phase == "defaults":  # BaseConfig.__init__ never ran (no super().__init__ call)
            return
        if state.pending:
            known = self._known_names(state)
            for name, value in state.pending.items():
                if name not in known and name not in state.extras:
                    raise self._no_field(name)
            for name, value in state.pending.items():
                self.__dict__[name] = copy.deepcopy(value)
                if name not in known:
                    state.extras_used.add(name)
            self.conditional_assignment()
        # what this class's own code declared beyond the library's fields (set_defaults: classes and mixins,
        # whose fields the library functions add themselves); from_dict of the same role accepts these
        declared = set(self.field_names()) - state.library - state.extras_used - {"fn"}
        _SEEN_FIELDS.setdefault(type(self), set()).update(declared)
        for name, value in self.__dict__.items():
            if not name.startswith("_") and name not in _NOT_FIELDS:
                self._check_finite(name, value)

    # ------------------------------------------------------------------ fields and values

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        state = self.__dict__.get(_STATE)
        if state is not None and state.phase == "defaults":
            entries, _ = self._translate({name: value}, state, state.memory, default_mode=True)
            for field, converted, via in entries:
                self._declare(field, converted, via, state)
            return
        entries, used = self._translate({name: value}, state, {}, default_mode=False)
        for field, converted, via in entries:
            if state is None:  # while built, the whole config is checked when construction ends
                self._check_finite(field, converted)
            object.__setattr__(self, field, converted)
            if state is not None:
                state.loaded_only.discard(field)
        if used:
            self._finish_aliases(used, {field: via for field, _, via in entries if via})

    def load_kwargs(self, **kwargs: Any) -> None:
        """The original nntransfer idiom: set the caller's values first, at the start of a subclass's
        ``__init__``; the fields the classes then declare do not override them (module docstring). Outside
        construction it is :meth:`update`."""
        state = self.__dict__.get(_STATE)
        if state is None or state.phase != "defaults":
            self.update(kwargs)
            return
        self.__dict__["_original_idiom"] = True
        entries, _ = self._translate(kwargs, state, state.memory, default_mode=False)
        self._check_conflicts(entries)
        for field, value, via in entries:
            if field not in self.__dict__ and field not in _NOT_FIELDS and field != "fn":
                state.loaded_only.add(field)
            self._store(field, value, via, state, keyword=True)

    def set_defaults(self, **defaults: Any) -> None:
        """Set field defaults unless already set. Library classes use this, so that a subclass which
        assigns its own defaults before calling ``super().__init__`` keeps them."""
        state = self.__dict__.get(_STATE)
        for name, value in defaults.items():
            if state is not None:
                state.library.add(name)
                state.loaded_only.discard(name)
                if name in state.from_kwargs:
                    state.defaults.setdefault(name, value)
            self.__dict__.setdefault(name, value)

    def _declare(self, field: str, value: Any, via: Optional[str], state: _Construction) -> None:
        """A construction-time assignment: declares ``field``; sets it if unset or None (keywords and
        outer classes win; an alias may refine what an alias set, e.g. input_height after input_width)."""
        state.loaded_only.discard(field)
        if field in state.from_kwargs:
            state.defaults.setdefault(field, value)
            return
        current = self.__dict__.get(field, _MISSING)
        if current is _MISSING or current is None or (via is not None and field in state.alias_owned):
            self.__dict__[field] = value
            if via is not None:
                state.alias_owned[field] = via
            else:
                state.alias_owned.pop(field, None)

    def _store(self, field: str, value: Any, via: Optional[str], state: Optional[_Construction], keyword: bool) -> None:
        self.__dict__[field] = copy.deepcopy(value)
        if state is not None:
            if keyword:
                state.from_kwargs.add(field)
            if via is not None:
                state.alias_owned[field] = via
            else:
                state.alias_owned.pop(field, None)

    def _reads_original_forms(self, state: Optional[_Construction]) -> bool:
        return bool(self.__dict__.get("_original_idiom")) and not (state is not None and state.canonical)

    def _translate(
        self, values: Mapping[str, Any], state: Optional[_Construction], memory: Dict[str, Any], default_mode: bool
    ) -> Tuple[List[Tuple[str, Any, Optional[str]]], Set[str]]:
        """``values`` with original names and forms translated: ``[(field, value, original name or None)]``
        and the original names used."""
        aliases = aliases_of(type(self))
        entries: List[Tuple[str, Any, Optional[str]]] = []
        used: Set[str] = set()
        for name, value in values.items():
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

    def _check_conflicts(self, entries: List[Tuple[str, Any, Optional[str]]]) -> None:
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

    @classmethod
    def runtime_field_names(cls) -> Tuple[str, ...]:
        """Names of this role's runtime options: set like fields, never hashed."""
        return RUNTIME_FIELDS.get(cls.config_name, ())

    def field_names(self):
        """Names of all fields (the keys of ``to_dict()``), ``fn`` included."""
        skip = set(_NOT_FIELDS) | set(self.runtime_field_names())
        names = [k for k in self.__dict__ if not k.startswith("_") and k not in skip]
        return ["fn"] + [n for n in names if n != "fn"]

    def runtime_options(self) -> Dict[str, Any]:
        """This config's runtime options (those it has) and their values; not part of the hash."""
        return {n: copy.deepcopy(self.__dict__[n]) for n in self.runtime_field_names() if n in self.__dict__}

    def _known_names(self, state: Optional[_Construction] = None) -> Set[str]:
        known = set(self.field_names()) | set(_NOT_FIELDS) | {n for n in self.runtime_field_names() if n in self.__dict__}
        if state is not None:
            known -= state.loaded_only
        return known

    def _no_field(self, name: str) -> ValueError:
        known = self._known_names(self.__dict__.get(_STATE))
        return ValueError(f"{type(self).__name__} has no field {name!r}{did_you_mean(name, known)}")

    def _apply(self, values: Dict[str, Any]) -> None:
        state = self.__dict__.get(_STATE)
        entries, used = self._translate(values, state, {}, default_mode=False)
        self._check_conflicts(entries)
        known = self._known_names(state)
        for field, value, via in entries:
            if field not in known:
                raise self._no_field(field)
        for field, value, via in entries:
            self._check_type(field, value)
            self._check_finite(field, value)
        for field, value, via in entries:
            self._store(field, value, via, state, keyword=False)
        self._finish_aliases(used, {field: via for field, _, via in entries if via})

    def _check_type(self, name: str, value: Any, default: Any = _MISSING) -> None:
        """Reject a value whose kind contradicts the field's default (None always allowed)."""
        if default is _MISSING:
            default = getattr(self, name, None)
        if value is None or default is None:
            return
        ok = True
        if isinstance(default, bool):
            ok = isinstance(value, (bool, int))
        elif isinstance(default, int):
            ok = isinstance(value, int)
        elif isinstance(default, float):
            ok = isinstance(value, _NUMBER_TYPES)
        elif isinstance(default, str):
            ok = isinstance(value, str)
        elif isinstance(default, (list, tuple)):
            ok = isinstance(value, (list, tuple))
        elif isinstance(default, dict):
            ok = isinstance(value, dict)
        if not ok:
            raise ValueError(
                f"{type(self).__name__}.{name} expects a {type(default).__name__} "
                f"(default {default!r}), got {value!r}"
            )

    def _check_finite(self, name: str, value: Any) -> None:
        """Refuse a NaN or an infinity in a field's value, nested ones too (module docstring)."""
        infinite_ok = name in infinite_fields_of(type(self))
        bad = _first_non_finite(value, infinite_ok)
        if bad is _MISSING:
            return
        rule = "may be inf but never NaN" if infinite_ok else "must be a finite number"
        if bad is value:
            raise ValueError(f"{type(self).__name__}.{name} {rule}, got {bad!r}")
        raise ValueError(f"{type(self).__name__}.{name} holds {bad!r} (in {value!r}); every number in it {rule}")

    def __getattr__(self, name: str):
        # Only called when normal lookup fails: name the closest field instead of returning None.
        if name.startswith("__") or name == "_registry":
            raise AttributeError(name)
        state = self.__dict__.get(_STATE)
        if state is not None and state.phase == "defaults" and self.__dict__.get("_original_idiom") and not name.startswith("_"):
            return None  # the original idiom: a class reads a field an inner class has not set yet as None
        fields = [k for k in self.__dict__ if not k.startswith("_")]
        raise AttributeError(f"{type(self).__name__} has no field {name!r}{did_you_mean(name, fields)}")

    def update(self, values: Optional[Dict[str, Any]] = None, **kwargs) -> "BaseConfig":
        """Change field values after creation (same checks as the constructor); returns self."""
        values = dict(values or {}, **kwargs)
        self._apply(values)
        self.conditional_assignment()
        return self

    def conditional_assignment(self) -> None:
        """Derive values from others (e.g. a mixin appends its main-loop module). Must be idempotent:
        it runs after construction and after every ``update``."""

    # ------------------------------------------------------------------ keys and tables

    def to_dict(self) -> Dict[str, Any]:
        """All fields, ``fn`` included, ``comment`` excluded (a description does not rename a row)."""
        return {name: copy.deepcopy(getattr(self, name)) for name in self.field_names()}

    @classmethod
    def from_dict(
        cls, values: Dict[str, Any], comment: Optional[str] = None, runtime: Optional[Dict[str, Any]] = None
    ) -> "BaseConfig":
        """Inverse of ``to_dict`` (plus ``runtime_options()``); extra keys raise ``ValueError`` like
        misspelt keywords, except the fields that subclasses of the same role declared in this process by
        assignment (a recipe's subclass hands its fields to the library function, which rebuilds its own
        config); a mixin's fields (declared with ``set_defaults``) are not among them."""
        values = dict(values, **(runtime or {}))
        if comment is not None:
            values["comment"] = comment
        token = _FROM_DICT.set((True, _declared_by_subclasses(cls)))
        try:
            return cls(**values)
        finally:
            _FROM_DICT.reset(token)

    def get_key(self) -> Dict[str, str]:
        """The primary key of this config's row: ``{<name>_hash, <name>_fn}``."""
        return {
            f"{self.config_name}_hash": make_hash(self.to_dict()),
            f"{self.config_name}_fn": self.fn,
        }

    def add_to_table(self, skip_duplicates: bool = True) -> Dict[str, str]:
        """Insert this config into its nnfabrik table (connects to the database); returns the key."""
        # The tables layer sits above configs and loads DataJoint; only this call needs it.
        from nntransfer.tables.nnfabrik import add_config_to_table

        return add_config_to_table(self, skip_duplicates=skip_duplicates)

    # ------------------------------------------------------------------ JSON

    def to_json_dict(self) -> Dict[str, Any]:
        """The config as a JSON-ready dict: class, comment, fields and runtime options."""
        return {
            "config_class": class_path(type(self)),
            "comment": self.comment,
            "fields": codec.encode(self.to_dict()),
            "runtime": codec.encode(self.runtime_options()),
        }

    @classmethod
    def from_json_dict(cls, payload: Dict[str, Any]) -> "BaseConfig":
        """Inverse of :meth:`to_json_dict`; on ``BaseConfig`` the class is read from the payload (it must
        be a config class; nothing else is imported or called). A flat dict of fields (what the original
        nntransfer wrote) is read by the class it is called on."""
        if "fields" not in payload and cls is not BaseConfig:
            values = dict(payload)
            return cls.from_dict(values, comment=values.pop("comment", None))
        target = resolve_config_class(payload.get("config_class")) if cls is BaseConfig else cls
        return target.from_dict(
            codec.decode(payload["fields"]),
            comment=payload.get("comment", ""),
            runtime=codec.decode(payload.get("runtime") or {}),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "BaseConfig":
        return cls.from_json_dict(json.loads(text))

    def to_json_string(self) -> str:
        """The original nntransfer's name: :meth:`to_json` with a final newline."""
        return self.to_json() + "\n"

    def to_json_file(self, path) -> None:
        """Write :meth:`to_json_string` to the file ``path``."""
        Path(path).write_text(self.to_json_string())

    @classmethod
    def from_json_file(cls, path) -> "BaseConfig":
        """The original nntransfer's name of :meth:`load`: read a file written by ``save``/``to_json_file``."""
        return cls.load(path)

    def save(self, path) -> Path:
        """Write the config as JSON to the file ``path``, or, when ``path`` is a folder (as in the original
        nntransfer), to ``<folder>/<config_name>`` (``dataset``, ``model`` or ``trainer``); returns the file."""
        target = Path(path)
        if target.is_dir():
            target = target / self.config_name
        target.write_text(self.to_json())
        return target

    @classmethod
    def load(cls, path) -> "BaseConfig":
        return cls.from_json(Path(path).read_text())

    # ------------------------------------------------------------------ niceties

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __hash__(self):
        return hash(make_hash(self.to_dict()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "fn")
        return f"{type(self).__name__}({fields})"


def _declared_by_subclasses(cls: type) -> FrozenSet[str]:
    """Fields that configs of ``cls``'s role had in this process (what recipes' subclasses declared)."""
    names: Set[str] = set()
    for seen, fields in _SEEN_FIELDS.items():
        if seen is not cls and getattr(seen, "config_name", None) == getattr(cls, "config_name", None):
            names |= fields
    return frozenset(names)


def class_path(cls: type) -> str:
    """``module.QualName`` of a class, as ``to_json`` writes it."""
    return f"{cls.__module__}.{cls.__qualname__}"


def resolve_config_class(path: Optional[str]) -> type:
    """The config class for a dotted path (as written by ``to_json``). Only subclasses of ``BaseConfig``
    are accepted, so a crafted file cannot name another callable."""
    if not path:
        raise ValueError("the JSON has no 'config_class'; load it with the config class, e.g. ImageDatasetConfig.load(path)")
    if path in BaseConfig._registry:
        return BaseConfig._registry[path]
    if path.split(".")[0] != "nntransfer":  # never import a module a file names
        raise ValueError(f"unknown config class {path!r}; import the module that defines it first")
    try:
        found = import_object(path, "config class")
    except ValueError:
        raise ValueError(f"unknown config class {path!r}") from None
    if not (isinstance(found, type) and issubclass(found, BaseConfig)):
        raise ValueError(f"{path!r} is not a config class")
    return found
