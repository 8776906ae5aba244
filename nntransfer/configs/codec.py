"""The one codec: hashing of settings and JSON for configs, experiments and every file a store writes.

``make_hash`` is bit-identical to nnfabrik's ``nnfabrik.utility.dj_helpers.make_hash`` (tested over many
values), so keys do not change, without importing nnfabrik, DataJoint or git.

JSON objects have only string keys and no tuples. ``encode`` keeps dicts whose keys are all strings as
plain objects; any other dict becomes ``{"__items__": [[key, value], ...]}`` (tuple, float, int, bool and
None keys round-trip), a tuple ``{"__tuple__": [...]}``; numpy scalars and arrays become numbers and
lists. ``decode`` is the inverse; ``dumps``/``loads`` wrap both.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

_MARKERS = ("__items__", "__tuple__")


def make_hash(obj: Any) -> str:
    """32-character MD5 hex digest of a (nested) value. Dict key order is ignored (keys sorted by their
    ``str``), except for ``OrderedDict``; every other iterable hashes its items in order."""
    hashed = hashlib.md5()
    if isinstance(obj, str):
        hashed.update(obj.encode())
    elif isinstance(obj, OrderedDict):
        for key, value in obj.items():
            hashed.update(str(key).encode())
            hashed.update(make_hash(value).encode())
    elif isinstance(obj, Mapping):
        for key in sorted(obj, key=str):
            hashed.update(str(key).encode())
            hashed.update(make_hash(obj[key]).encode())
    elif isinstance(obj, Iterable):
        for value in obj:
            hashed.update(make_hash(value).encode())
    else:
        hashed.update(str(obj).encode())
    return hashed.hexdigest()


def encode(value: Any) -> Any:
    """A JSON-ready form of ``value`` (see the module docstring)."""
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value) and not any(k in _MARKERS for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"__items__": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays, tensors
        return encode(value.tolist())
    return value


def decode(value: Any) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(value, dict):
        if set(value) == {"__items__"}:
            return {_hashable(decode(k)): decode(v) for k, v in value["__items__"]}
        if set(value) == {"__tuple__"}:
            return tuple(decode(v) for v in value["__tuple__"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def dumps(value: Any, **options: Any) -> str:
    """JSON text of ``value`` through :func:`encode` (``allow_nan`` stays on: scores may be NaN)."""
    return json.dumps(encode(value), **options)


def loads(text: str) -> Any:
    """Inverse of :func:`dumps`."""
    return decode(json.loads(text))
