"""The fixes nnfabrik 0.2.1 needs on Python 3.11 and DataJoint 0.14, all of them, in one place.

:func:`apply` applies them once (calling it again is cheap and harmless); :func:`nntransfer.tables.activate`
calls it before it imports nnfabrik's tables. Each fix has a test in ``tests/test_database.py`` that fails
without it. Nothing here opens a database connection.

1. ``collections.Iterable``/``Mapping``/``Sequence``/``MutableMapping`` were removed in Python 3.10;
   nnfabrik imports them from ``collections``: the aliases are restored.
2. ``nnfabrik.utility.dj_helpers.clone_conn`` reads ``conn_info['ssl']``, which DataJoint only sets when
   TLS is on (``KeyError: 'ssl'``): :func:`clone_connection` replaces it there and in the template modules
   that imported it by name.
3. nnfabrik's checkpoint templates call ``Table.delete(verbose=False)``, an argument DataJoint 0.14
   dropped: checkpoint tables mix in :class:`VerboseDeleteMixin`.
"""

from __future__ import annotations

import collections
import collections.abc
import importlib
import sys
from typing import Optional

from nntransfer.tables._datajoint import dj

__all__ = ["apply", "clone_connection", "restore_collections_aliases", "VerboseDeleteMixin"]

_COLLECTIONS_ALIASES = ("Iterable", "Mapping", "Sequence", "MutableMapping")
# modules of nnfabrik that hold a ``clone_conn`` name (the templates import it with ``from ... import``)
_CLONE_CONN_MODULES = ("nnfabrik.utility.dj_helpers", "nnfabrik.templates.checkpoint", "nnfabrik.templates.transfer.checkpoint")
_applied = False


def restore_collections_aliases() -> None:
    """Fix 1: ``collections.Iterable`` and friends, as nnfabrik imports them."""
    for name in _COLLECTIONS_ALIASES:
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))


def clone_connection(conn: dj.Connection) -> dj.Connection:
    """Fix 2: a second connection like ``conn`` (nnfabrik's ``clone_conn`` without the ``KeyError``)."""
    info = conn.conn_info
    return dj.Connection(
        host=f"{info['host']}:{info['port']}",
        user=info["user"],
        password=info["passwd"],
        init_fun=conn.init_fun,
        use_tls=info.get("ssl_input"),
    )


class VerboseDeleteMixin:
    """Fix 3: accepts (and ignores) the ``verbose`` argument nnfabrik's checkpoint templates pass to
    ``delete``. Mix it into a table class before ``dj.Manual``."""

    def delete(self, verbose: Optional[bool] = None, **kwargs):  # noqa: ARG002 - nnfabrik passes it
        return super().delete(**kwargs)


def _patch_clone_conn() -> None:
    """Point every ``clone_conn`` name nnfabrik holds at :func:`clone_connection`. The helper module is
    imported (it connects to nothing); template modules are patched if already imported, and modules
    imported later take the patched function from the helper module."""
    importlib.import_module("nnfabrik.utility.dj_helpers")
    for name in _CLONE_CONN_MODULES:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "clone_conn", None) is not clone_connection:
            module.clone_conn = clone_connection


def apply() -> None:
    """Apply every fix, once per process. Opens no connection; imports only nnfabrik's helper module."""
    global _applied
    if _applied:
        return
    restore_collections_aliases()
    _patch_clone_conn()
    _applied = True
