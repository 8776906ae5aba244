"""Aliases of the compat classes: original bias_transfer / nntransfer field names, accepted with their
original default and refused, in one line, with any other value when nothing here has their meaning."""

from typing import Any, Dict, Optional

from nntransfer.configs.original import Alias


def same_value(value: Any, default: Any) -> bool:
    """``value`` equals the original default (a tuple and a list with the same items are equal)."""
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return list(value) == list(default)
    if isinstance(value, dict) and isinstance(default, dict):
        return {k: v for k, v in value.items() if k != "DEFAULT EMPTY"} == default
    if isinstance(value, bool) != isinstance(default, bool):
        return False
    return value == default


def refused(name: str, default: Any, missing: str) -> Alias:
    """The original field ``name``: its default ``default`` is accepted (and changes nothing); any other value
    is a ``ValueError`` saying ``missing`` (what this library lacks)."""

    def convert(value: Any, config: Any, memory: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        if same_value(value, default):
            return {}
        raise ValueError(f"{type(config).__name__}: {name}={value!r} cannot be kept here: {missing} "
                         f"(only the original default {default!r} is accepted)")

    return Alias(name, convert=convert, original_idiom=True,
                 hint=literal(f"{name!r} (bias_transfer / original nntransfer) has no counterpart here; only its "
                              f"default {default!r} is accepted"))


def translated(name: str, convert, field: str, hint: str) -> Alias:
    """The original field ``name`` translated by ``convert(value, config, memory) -> {field: value}``."""
    return Alias(field, convert=convert, original_idiom=True, hint=literal(hint))


def literal(text: str) -> str:
    """``text`` as an ``Alias`` hint, which is a format string: braces kept as they are."""
    return text.replace("{", "{{").replace("}", "}}")
