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

Configs are plain data: this package imports no other nntransfer package, nor torch, DataJoint or
nnfabrik. Whether the names a config refers to (data set, model type, modules, ...) exist is checked by
the run layer (``nntransfer.run.validation``) before anything is written.
"""

from __future__ import annotations

import copy
import json
from collections import namedtuple
from pathlib import Path
from typing import Any, ClassVar, Dict, Optional, Tuple

from nntransfer.configs import codec
from nntransfer.configs.codec import make_hash
from nntransfer.configs.runtime import RUNTIME_FIELDS
from nntransfer.registry import did_you_mean, import_object

Description = namedtuple("Description", "name seed")
Description.__doc__ = "Names one transfer experiment of a recipe: ``Description(name, seed)``."

DEFAULT_EMPTY = "DEFAULT EMPTY"
_NOT_FIELDS = ("comment",)
_NUMBER_TYPES = (int, float)


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

    def _apply(self, values: Dict[str, Any]) -> None:
        known = set(self.field_names()) | set(_NOT_FIELDS) | set(self.runtime_options())
        for name, value in values.items():
            if name not in known:
                raise ValueError(
                    f"{type(self).__name__} has no field {name!r}{did_you_mean(name, known)}"
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
        misspelt keywords."""
        values = dict(values, **(runtime or {}))
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
        be a config class; nothing else is imported or called)."""
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
