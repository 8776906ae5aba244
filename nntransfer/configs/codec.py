"""The one codec: hashing of settings and JSON for configs, experiments and every file a store writes.

``make_hash`` is bit-identical to nnfabrik's ``nnfabrik.utility.dj_helpers.make_hash`` (tested over many
values), so keys do not change, without importing nnfabrik, DataJoint or git.

JSON objects have only string keys and no tuples. ``encode`` keeps dicts whose keys are all strings as
plain objects; any other dict becomes ``{"__items__": [[key, value], ...]}`` (tuple, float, int, bool and
None keys round-trip), a tuple ``{"__tuple__": [...]}``; numpy scalars and arrays become numbers and
lists. ``decode`` is the inverse; ``dumps``/``loads`` wrap both.

``plain_numbers`` turns numpy scalars (``np.int64``, ``np.float32``, ``np.bool_``), also nested in lists,
tuples and dicts, into the Python numbers they stand for before a config stores them, so that a value a
recipe computed with numpy names the same experiment as the literal.
"""

from __future__ import annotations

import hashlib
import json
import numbers
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


def _is_numpy_scalar(value: Any) -> bool:
    """A numpy scalar (not an array): checked by type, so that configs need not import numpy."""
    kind = type(value)
    return kind.__module__ == "numpy" and kind.__name__ != "ndarray" and hasattr(value, "dtype")


def plain_number(value: Any) -> Any:
    """``value`` as a Python number if it is a numpy scalar: an integer becomes ``int``, a boolean ``bool``,
    a floating number ``float`` (a float16/float32 through its shortest decimal form, ``np.float32(0.1)`` ->
    ``0.1``, the literal it was computed from, rather than ``0.10000000149011612``); anything else as is."""
    if not _is_numpy_scalar(value):
        return value
    kind = value.dtype.kind
    if kind == "b":
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if kind == "f":
        return float(value) if value.dtype.itemsize >= 8 else float(str(value))
    return value


def plain_numbers(value: Any) -> Any:
    """``value`` with every numpy scalar in it (nested in plain lists, tuples and dicts, keys included) a Python
    number (:func:`plain_number`); other containers and objects are left as they are."""
    kind = type(value)
    if kind is list:
        return [plain_numbers(item) for item in value]
    if kind is tuple:
        return tuple(plain_numbers(item) for item in value)
    if kind is dict:
        return {plain_numbers(key): plain_numbers(item) for key, item in value.items()}
    return plain_number(value)


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
