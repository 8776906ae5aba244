"""Configs as JSON files: ``save``/``load``, ``to_json``/``from_json`` and the original nntransfer's names
of them, for ``BaseConfig``.

A file records the config's class (``module.QualName``), its comment, its fields and its runtime options,
in the one codec (``nntransfer.configs.codec``). Reading a file never runs code: the class it names must be
a config class already imported, or one of nntransfer's own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

from nntransfer.configs import codec
from nntransfer.registry import import_object

#: ``module.QualName`` -> every config class defined so far (what a file may name)
CONFIG_CLASSES: Dict[str, type] = {}


def class_path(cls: type) -> str:
    """``module.QualName`` of a class, as ``to_json`` writes it."""
    return f"{cls.__module__}.{cls.__qualname__}"


class ConfigJSON:
    """JSON I/O of a config. It relies on the core's ``to_dict``, ``runtime_options``, ``from_dict``,
    ``comment`` and ``config_name``. The class built directly on it (``BaseConfig``) reads the class from
    the file; every other class reads the fields with itself."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        CONFIG_CLASSES[class_path(cls)] = cls

    def to_json_dict(self) -> Dict[str, Any]:
        """The config as a JSON-ready dict: class, comment, fields and runtime options."""
        return {
            "config_class": class_path(type(self)),
            "comment": self.comment,
            "fields": codec.encode(self.to_dict()),
            "runtime": codec.encode(self.runtime_options()),
        }

    @classmethod
    def from_json_dict(cls, payload: Dict[str, Any]):
        """Inverse of :meth:`to_json_dict`; on ``BaseConfig`` the class is read from the payload (it must
        be a config class; nothing else is imported or called). A flat dict of fields (what the original
        nntransfer wrote) is read by the class it is called on."""
        reads_class = ConfigJSON in cls.__bases__
        if "fields" not in payload and not reads_class:
            values = dict(payload)
            return cls.from_dict(values, comment=values.pop("comment", None))
        target = resolve_config_class(payload.get("config_class")) if reads_class else cls
        return target.from_dict(
            codec.decode(payload["fields"]),
            comment=payload.get("comment", ""),
            runtime=codec.decode(payload.get("runtime") or {}),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_json_dict(json.loads(text))

    def to_json_string(self) -> str:
        """The original nntransfer's name: :meth:`to_json` with a final newline."""
        return self.to_json() + "\n"

    def to_json_file(self, path) -> None:
        """Write :meth:`to_json_string` to the file ``path``."""
        Path(path).write_text(self.to_json_string())

    @classmethod
    def from_json_file(cls, path):
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
    def load(cls, path):
        return cls.from_json(Path(path).read_text())


def resolve_config_class(path: Optional[str]) -> type:
    """The config class for a dotted path (as written by ``to_json``). Only config classes are accepted,
    so a crafted file cannot name another callable."""
    if not path:
        raise ValueError("the JSON has no 'config_class'; load it with the config class, e.g. ImageDatasetConfig.load(path)")
    if path in CONFIG_CLASSES:
        return CONFIG_CLASSES[path]
    if path.split(".")[0] != "nntransfer":  # never import a module a file names
        raise ValueError(f"unknown config class {path!r}; import the module that defines it first")
    try:
        found = import_object(path, "config class")
    except ValueError:
        raise ValueError(f"unknown config class {path!r}") from None
    if not (isinstance(found, type) and issubclass(found, ConfigJSON)):
        raise ValueError(f"{path!r} is not a config class")
    return found
