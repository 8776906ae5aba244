"""`BaseConfig`: a named set of settings that hashes to the DataJoint key of its table row.

Subclasses set their defaults as attributes in ``__init__`` and then call ``super().__init__(**kwargs)``;
keyword arguments win over defaults::

    class MyDatasetConfig(DatasetConfig):
        fn = "my_package.datasets.my_loader"

        def __init__(self, **kwargs):
            self.batch_size = 64
            self.noise_levels = {"DEFAULT EMPTY": True, 0.1: 0.5}   # {} unless the caller passes one
            super().__init__(**kwargs)

Every public attribute except ``comment`` is a *field*: it is part of ``to_dict()`` and of the hash.
A keyword that is not a field raises ``ValueError`` naming the closest field; reading an attribute
that does not exist raises ``AttributeError``.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import json
from collections import namedtuple
from pathlib import Path
from typing import Any, ClassVar, Dict, Optional

from nntransfer.database import apply_nnfabrik_fixes

apply_nnfabrik_fixes()
from nnfabrik.utility.dj_helpers import make_hash  # noqa: E402  (needs the fixes above)

Description = namedtuple("Description", "name seed")
Description.__doc__ = "Names one transfer experiment of a recipe: ``Description(name, seed)``."

DEFAULT_EMPTY = "DEFAULT EMPTY"
_NOT_FIELDS = ("comment",)
_NUMBER_TYPES = (int, float)


def closest_name(name: str, candidates) -> Optional[str]:
    """The candidate most similar to ``name`` (or None if nothing is close)."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


def _did_you_mean(name: str, candidates) -> str:
    match = closest_name(name, candidates)
    return f"; did you mean {match!r}?" if match else ""


class BaseConfig:
    """Base of dataset, model and trainer configs.

    Class attributes:
        config_name: prefix of the table columns (``dataset``/``model``/``trainer``).
        table: name of the nnfabrik table in ``nntransfer.tables.nnfabrik`` the config is stored in.
        fn: dotted path of the function the table calls with this config.
    """

    config_name: ClassVar[str] = "config"
    table: ClassVar[Optional[str]] = None
    fn: Optional[str] = None

    _registry: ClassVar[Dict[str, type]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        BaseConfig._registry[f"{cls.__module__}.{cls.__qualname__}"] = cls

    def __init__(self, **kwargs):
        if "comment" not in self.__dict__:
            self.comment = ""
        for name, value in list(self.__dict__.items()):
            if isinstance(value, dict) and value.get(DEFAULT_EMPTY):
                self.__dict__[name] = {}
        self._apply(kwargs)
        self.conditional_assignment()

    # ------------------------------------------------------------------ fields and values

    def set_defaults(self, **defaults: Any) -> None:
        """Set field defaults unless already set. Library classes use this, so that a subclass which
        assigns its own defaults before calling ``super().__init__`` keeps them."""
        for name, value in defaults.items():
            self.__dict__.setdefault(name, value)

    def field_names(self):
        """Names of all fields (the keys of ``to_dict()``), ``fn`` included."""
        names = [k for k in self.__dict__ if not k.startswith("_") and k not in _NOT_FIELDS]
        return ["fn"] + [n for n in names if n != "fn"]

    def _apply(self, values: Dict[str, Any]) -> None:
        known = set(self.field_names()) | set(_NOT_FIELDS)
        for name, value in values.items():
            if name not in known:
                raise ValueError(
                    f"{type(self).__name__} has no field {name!r}{_did_you_mean(name, known)}"
                )
        for name, value in values.items():
            self._check_type(name, value)
            setattr(self, name, copy.deepcopy(value))

    def _check_type(self, name: str, value: Any) -> None:
        """Reject a value whose kind contradicts the field's default (None always allowed)."""
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

    def __getattr__(self, name: str):
        # Only called when normal lookup fails: name the closest field instead of returning None.
        if name.startswith("__") or name == "_registry":
            raise AttributeError(name)
        fields = [k for k in self.__dict__ if not k.startswith("_")]
        raise AttributeError(f"{type(self).__name__} has no field {name!r}{_did_you_mean(name, fields)}")

    def update(self, values: Optional[Dict[str, Any]] = None, **kwargs) -> "BaseConfig":
        """Change field values after creation (same checks as the constructor); returns self."""
        values = dict(values or {}, **kwargs)
        self._apply(values)
        self.conditional_assignment()
        return self

    def check_names(self) -> None:
        """Raise ``ValueError`` if a name this config refers to (a data set, model type, main-loop module,
        ...) is not registered. Runs before anything is written (``nntransfer run``, ``add_to_table``), not
        at construction, so that a recipe may register its own names after building its configs."""

    def conditional_assignment(self) -> None:
        """Derive values from others (e.g. a mixin appends its main-loop module). Must be idempotent:
        it runs after construction and after every ``update``."""

    # ------------------------------------------------------------------ keys and tables

    def to_dict(self) -> Dict[str, Any]:
        """All fields, ``fn`` included, ``comment`` excluded (a description does not rename a row)."""
        return {name: copy.deepcopy(getattr(self, name)) for name in self.field_names()}

    @classmethod
    def from_dict(cls, values: Dict[str, Any], comment: Optional[str] = None) -> "BaseConfig":
        """Inverse of ``to_dict``; extra keys raise ``ValueError`` like misspelt keywords."""
        values = dict(values)
        if comment is not None:
            values["comment"] = comment
        return cls(**values)

    def get_key(self) -> Dict[str, str]:
        """The primary key of this config's row: ``{<name>_hash, <name>_fn}``."""
        return {
            f"{self.config_name}_hash": make_hash(self.to_dict()),
            f"{self.config_name}_fn": self.fn,
        }

    def add_to_table(self, skip_duplicates: bool = True) -> Dict[str, str]:
        """Insert this config into its nnfabrik table (connects to the database); returns the key."""
        from nntransfer.tables.nnfabrik import add_config_to_table

        return add_config_to_table(self, skip_duplicates=skip_duplicates)

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> str:
        payload = {
            "config_class": f"{type(self).__module__}.{type(self).__qualname__}",
            "comment": self.comment,
            "fields": encode_json(self.to_dict()),
        }
        return json.dumps(payload, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "BaseConfig":
        payload = json.loads(text)
        target = resolve_config_class(payload.get("config_class")) if cls is BaseConfig else cls
        return target.from_dict(decode_json(payload["fields"]), comment=payload.get("comment", ""))

    def save(self, path) -> None:
        Path(path).write_text(self.to_json())

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


def resolve_config_class(path: Optional[str]) -> type:
    """The config class for a dotted path (as written by ``to_json``)."""
    if not path:
        raise ValueError("the JSON has no 'config_class'; load it with the config class, e.g. ImageDatasetConfig.load(path)")
    if path in BaseConfig._registry:
        return BaseConfig._registry[path]
    module_name, _, class_name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise ValueError(f"unknown config class {path!r}") from None


# ---------------------------------------------------------------------- JSON with non-string keys
# JSON objects only have string keys and no tuples. Dicts whose keys are all strings stay plain
# objects; any other dict becomes {"__items__": [[key, value], ...]} and a tuple {"__tuple__": [...]}.


def encode_json(value: Any) -> Any:
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not any(k in ("__items__", "__tuple__") for k in value):
            return {k: encode_json(v) for k, v in value.items()}
        return {"__items__": [[encode_json(k), encode_json(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [encode_json(v) for v in value]}
    if isinstance(value, list):
        return [encode_json(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def decode_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__items__"}:
            return {_hashable(decode_json(k)): decode_json(v) for k, v in value["__items__"]}
        if set(value) == {"__tuple__"}:
            return tuple(decode_json(v) for v in value["__tuple__"])
        return {k: decode_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_json(v) for v in value]
    return value


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key
