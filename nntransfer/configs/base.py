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

This module is the core: fields, construction, checks, ``update``, ``to_dict``/``from_dict`` and the key.
The original nntransfer's idiom (``load_kwargs``, original field names, None-reads) is
``nntransfer.configs.original``, JSON files are ``nntransfer.configs.json_io``; ``BaseConfig`` combines them.

Construction
------------
While a config is being built (from the start of the outermost ``__init__`` until ``BaseConfig.__init__``
applies the keyword arguments), a plain assignment ``self.x = value`` *declares* the field ``x`` and sets
it only if it is still unset (or ``None``), so that the outer class (the subclass) wins over the classes
it builds on, and keyword arguments win over every class. ``set_defaults(x=...)``, which the library's own
classes and mixins use, only supplies a default: it sets nothing that is set (it keeps a ``None`` an outer
class set), and any class's assignment replaces it, wherever that class sits in the MRO. So in
``class X(OrbitLearningMixin, Base)``, where the recipe's ``Base(ClassificationTrainerConfig)`` assigns
``self.lr = 0.001``, ``X`` trains at 0.001: the mixin's ``lr=0.01`` is a default, like the library's own,
and the recipe's classes are outer to the library's. (The original nntransfer let the first assignment in
the MRO win, but its mixins set only their own fields, so a recipe's ``Base`` kept its ``lr`` there too.)
Among a recipe's own classes the first assignment in the MRO still wins, as in the original; a keyword
wins over all. After ``BaseConfig.__init__`` has applied the keywords, assignment is plain assignment
again (``conditional_assignment`` derives values that way). A keyword that no class declared is a
``ValueError`` (one line, naming the closest field) once the outermost ``__init__`` returns.

Values
------
A numpy scalar, as recipes compute them (``np.int64``, ``np.float32``, ``np.bool_``, also nested in lists,
tuples and dicts), is stored as the Python number it stands for (``codec.plain_numbers``) before it is
checked or hashed, so ``max_iter=np.int64(5)`` names the same experiment as ``max_iter=5``. A value whose
kind contradicts the field's default is still an error: a float (``1.5``, also ``2.0``) or a bool for an
int field, a bool for a float field, a string for a number.

``from_dict`` accepts exactly the fields of the class it is called on: what it accepts depends on the
class and the call, never on which configs the process built before. A library function that receives
the fields of a recipe's subclass (``coreset_size``) and rebuilds its own class passes
``carry_unknown=True``: keys that are no field of the class are then kept as fields, unchecked and unused.

Every number a config holds is finite: a NaN or an infinity in any field (nested in lists, tuples and dicts,
keys included) is a ``ValueError`` naming the field, when the config is made, updated or assigned to, so
that a setting such as ``kd_temperature=float("nan")`` never reaches a trainer. A class names the fields
where an infinity has a meaning in ``INFINITE_FIELDS`` (merged along the class hierarchy, e.g. a
signal-to-noise ratio of inf, a clean level); NaN is refused everywhere.

Configs are plain data: this package imports no other nntransfer package, nor torch, DataJoint or
nnfabrik. Whether the names a config refers to (data set, model type, modules, ...) exist is checked by
the run layer (``nntransfer.run.validation``) before anything is written; ``add_to_table`` writes through
the writer the tables install (``nntransfer.configs.table_writer``).
"""

from __future__ import annotations

import copy
import logging
import math
import numbers
from collections import namedtuple
from typing import Any, ClassVar, Dict, FrozenSet, Mapping, Optional, Set, Tuple

from nntransfer.configs.codec import make_hash
from nntransfer.configs.construction import FROM_DICT, MISSING, NOT_FIELDS, STATE, Construction, constructing
from nntransfer.configs.json_io import ConfigJSON
from nntransfer.configs.original import OriginalIdiom, aliases_of
from nntransfer.configs.runtime import RUNTIME_FIELDS
from nntransfer.configs.table_writer import table_writer
from nntransfer.registry import did_you_mean

logger = logging.getLogger(__name__)

Description = namedtuple("Description", "name seed")
Description.__doc__ = "Names one transfer experiment of a recipe: ``Description(name, seed)``."

DEFAULT_EMPTY = "DEFAULT EMPTY"
_NUMBER_TYPES = (int, float)

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
    NaN, or infinite unless ``infinite_ok``; ``MISSING`` if there is none. A nested config checked itself."""
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        if math.isnan(value) or (math.isinf(value) and not infinite_ok):
            return value
        return MISSING
    if isinstance(value, Mapping):
        parts: Any = (part for item in value.items() for part in item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        parts = value
    else:
        return MISSING
    for part in parts:
        found = _first_non_finite(part, infinite_ok)
        if found is not MISSING:
            return found
    return MISSING


class BaseConfig(OriginalIdiom, ConfigJSON):
    """Base of dataset, model and trainer configs.

    Which fields are read: a config's function (``fn``) receives every field. nntransfer's own functions
    (the data set loader, the model builders, the classification trainer: any function defined in the
    ``nntransfer`` package) rebuild nntransfer's config class from them, so they read the fields that
    nntransfer's own classes declare (``nntransfer.configs.declared``): the config classes and mixins of
    ``nntransfer.configs`` in the config's hierarchy, the library config classes whose ``fn`` is the same
    function, and, for a trainer, the ``config_mixin`` of every main-loop module it lists (a user's own
    transfer-method mixin included: its module reads its fields). Any other field on a config whose ``fn``
    is nntransfer's would be hashed and ignored, so the recipe check of ``nntransfer run`` (and
    ``--dry-run``, ``--fast-dev-run``) refuses it before anything trains, with one line naming the
    experiment, the class, the field and the closest field (``learning_rate``: did you mean ``'lr'``?). A
    config whose ``fn`` is the user's own function may carry any field: that function reads what it reads.

    Class attributes:
        config_name: prefix of the table columns (``dataset``/``model``/``trainer``).
        table: name of the nnfabrik table in ``nntransfer.tables.nnfabrik`` the config is stored in.
        fn: dotted path of the function the table calls with this config.
        ALIASES: original nntransfer names of this class's fields (``nntransfer.configs.original``).
        INFINITE_FIELDS: the fields where an infinity is a meaningful value (every other number must be finite).
    """

    config_name: ClassVar[str] = "config"
    table: ClassVar[Optional[str]] = None
    fn: Optional[str] = None
    ALIASES: ClassVar[Dict[str, Any]] = {}
    INFINITE_FIELDS: ClassVar[Tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__init__  # the effective one: a mixin's __init__ is reached through the class
        if not getattr(init, "_nntransfer_constructing", False):
            cls.__init__ = constructing(init)

    def __init__(self, **kwargs):
        state = self.__dict__.get(STATE)
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
        carry = state is not None and state.carry_unknown
        unknown: Dict[str, Any] = {}
        for field, value, via in entries:
            if field in known:
                default = state.defaults.get(field, MISSING) if state is not None else MISSING
                self._check_type(field, value, default)
            elif not carry:
                unknown[field] = value
                continue
            self._store(field, value, via, state, keyword=True)
        owned = {field: via for field, _, via in entries if via}
        if state is not None:
            for name in sorted(state.loaded_only):  # load_kwargs set it, no class declared it
                if carry:
                    state.loaded_only.discard(name)
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

    def _end_construction(self, state: Construction) -> None:
        """The outermost ``__init__`` returned: keywords no class declared are an error."""
        if state.phase == "defaults":  # BaseConfig.__init__ never ran (no super().__init__ call)
            return
        if state.pending:
            known = self._known_names(state)
            for name in state.pending:
                if name not in known:
                    raise self._no_field(name)
            for name, value in state.pending.items():
                self.__dict__[name] = copy.deepcopy(value)
            self.conditional_assignment()
        for name, value in self.__dict__.items():
            if not name.startswith("_") and name not in NOT_FIELDS:
                self._check_finite(name, value)

    # ------------------------------------------------------------------ fields and values

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        state = self.__dict__.get(STATE)
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

    def set_defaults(self, **defaults: Any) -> None:
        """Set field defaults unless already set. Library classes (and their mixins) use this: a default
        never overrides a value, and an assignment by any class, before or after it in the MRO, overrides
        the default (module docstring, "Construction"), so that ``class X(OrbitLearningMixin, Base)`` keeps
        the ``lr`` that the recipe's ``Base`` assigns."""
        state = self.__dict__.get(STATE)
        for name, value in defaults.items():
            if state is not None:
                state.loaded_only.discard(name)
                if name in state.from_kwargs:
                    state.defaults.setdefault(name, value)
                elif name not in self.__dict__:
                    state.class_defaults.add(name)
            self.__dict__.setdefault(name, value)

    def _declare(self, field: str, value: Any, via: Optional[str], state: Construction) -> None:
        """A construction-time assignment: declares ``field``; sets it if unset or None (keywords and
        outer classes win; an alias may refine what an alias set, e.g. input_height after input_width) or
        if its value is a ``set_defaults`` default (an assignment wins over every ``set_defaults``)."""
        state.loaded_only.discard(field)
        if field in state.from_kwargs:
            state.defaults.setdefault(field, value)
            return
        current = self.__dict__.get(field, MISSING)
        if field in state.class_defaults:
            state.class_defaults.discard(field)
            logger.debug("%s.%s: an assignment (%r) replaces the default %r that a class set with set_defaults",
                         type(self).__name__, field, value, current)
            current = MISSING
        if current is MISSING or current is None or (via is not None and field in state.alias_owned):
            self.__dict__[field] = value
            if via is not None:
                state.alias_owned[field] = via
            else:
                state.alias_owned.pop(field, None)

    def _store(self, field: str, value: Any, via: Optional[str], state: Optional[Construction], keyword: bool) -> None:
        self.__dict__[field] = copy.deepcopy(value)
        if state is not None:
            if keyword:
                state.from_kwargs.add(field)
            if via is not None:
                state.alias_owned[field] = via
            else:
                state.alias_owned.pop(field, None)

    @classmethod
    def runtime_field_names(cls) -> Tuple[str, ...]:
        """Names of this role's runtime options: set like fields, never hashed."""
        return RUNTIME_FIELDS.get(cls.config_name, ())

    def field_names(self):
        """Names of all fields (the keys of ``to_dict()``), ``fn`` included."""
        skip = set(NOT_FIELDS) | set(self.runtime_field_names())
        names = [k for k in self.__dict__ if not k.startswith("_") and k not in skip]
        return ["fn"] + [n for n in names if n != "fn"]

    def runtime_options(self) -> Dict[str, Any]:
        """This config's runtime options (those it has) and their values; not part of the hash."""
        return {n: copy.deepcopy(self.__dict__[n]) for n in self.runtime_field_names() if n in self.__dict__}

    def _known_names(self, state: Optional[Construction] = None) -> Set[str]:
        known = set(self.field_names()) | set(NOT_FIELDS) | {n for n in self.runtime_field_names() if n in self.__dict__}
        if state is not None:
            known -= state.loaded_only
        return known

    def _no_field(self, name: str) -> ValueError:
        known = self._known_names(self.__dict__.get(STATE))
        hint = did_you_mean(name, known) or did_you_mean(name, aliases_of(type(self)))  # a field before an old name
        return ValueError(f"{type(self).__name__} has no field {name!r}{hint}")

    def _apply(self, values: Dict[str, Any]) -> None:
        state = self.__dict__.get(STATE)
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

    def _check_type(self, name: str, value: Any, default: Any = MISSING) -> None:
        """Reject a value whose kind contradicts the field's default (None always allowed). Numpy scalars
        arrive here as Python numbers (``codec.plain_numbers``); a bool is no number for an int or float
        field (``max_iter=True`` is a mistake, not 1), a float no int (``max_iter=1.5``, also ``2.0``)."""
        if default is MISSING:
            default = getattr(self, name, None)
        if value is None or default is None:
            return
        ok = True
        if isinstance(default, bool):
            ok = isinstance(value, (bool, int))
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, _NUMBER_TYPES) and not isinstance(value, bool)
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
        if bad is MISSING:
            return
        rule = "may be inf but never NaN" if infinite_ok else "must be a finite number"
        if bad is value:
            raise ValueError(f"{type(self).__name__}.{name} {rule}, got {bad!r}")
        raise ValueError(f"{type(self).__name__}.{name} holds {bad!r} (in {value!r}); every number in it {rule}")

    def __getattr__(self, name: str):
        # Only called when normal lookup fails: name the closest field instead of returning None.
        if name.startswith("__"):
            raise AttributeError(name)
        if self._reads_as_none(name):
            return None
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
        cls,
        values: Dict[str, Any],
        comment: Optional[str] = None,
        runtime: Optional[Dict[str, Any]] = None,
        carry_unknown: bool = False,
    ) -> "BaseConfig":
        """Inverse of ``to_dict`` (plus ``runtime_options()``); a key that is no field of ``cls`` raises
        ``ValueError`` like a misspelt keyword. With ``carry_unknown`` such keys are kept as fields instead
        (unchecked, so the key is the one they were stored under): for a library function that rebuilds its
        own class from the fields of a recipe's subclass, which it does not use."""
        values = dict(values, **(runtime or {}))
        if comment is not None:
            values["comment"] = comment
        token = FROM_DICT.set((True, carry_unknown))
        try:
            return cls(**values)
        finally:
            FROM_DICT.reset(token)

    def get_key(self) -> Dict[str, str]:
        """The primary key of this config's row: ``{<name>_hash, <name>_fn}``."""
        return {
            f"{self.config_name}_hash": make_hash(self.to_dict()),
            f"{self.config_name}_fn": self.fn,
        }

    def add_to_table(self, skip_duplicates: bool = True) -> Dict[str, str]:
        """Insert this config into its nnfabrik table (connects to the database) through the writer
        ``nntransfer.tables`` installs (``nntransfer.configs.table_writer``); returns the key."""
        return table_writer().add_config(self, skip_duplicates=skip_duplicates)

    # ------------------------------------------------------------------ niceties

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __hash__(self):
        return hash(make_hash(self.to_dict()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "fn")
        return f"{type(self).__name__}({fields})"
