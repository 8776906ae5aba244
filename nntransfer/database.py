"""DataJoint set-up for nntransfer, and the fixes nnfabrik 0.2.1 needs on Python 3.11 / DataJoint 0.14.

Nothing here opens a database connection until :func:`connect` (or a table module) asks for one.

* :func:`configure` fills ``dj.config`` the way nntransfer's tables need it: host, user and password
  from DataJoint's own config or ``DJ_HOST``/``DJ_USER``/``DJ_PASS``; TLS off unless asked for; schemas
  created with a character set whose keys fit; a file store named ``minio`` as default external store.
* :func:`apply_nnfabrik_fixes` makes nnfabrik 0.2.1 importable and working. Each fix is small and has
  a test in ``tests/test_database.py`` that fails without it.
"""

from __future__ import annotations

import collections
import collections.abc
import logging
import os
from pathlib import Path

import datajoint as dj

logger = logging.getLogger(__name__)

STORE_NAME = "minio"  # the name nnfabrik's checkpoint and model-storage tables attach to
# Under utf8mb4 the primary key of TrainedModelTransferRecipe exceeds MariaDB's 3072-byte limit.
SCHEMA_CHARSET_INIT = "SET SESSION character_set_server='latin1'"


class DatabaseError(RuntimeError):
    """The database cannot be used: unreachable, wrong credentials, or not configured."""


def default_store_location() -> str:
    return os.environ.get("NNTRANSFER_STORE", str(Path.home() / ".nntransfer" / "store"))


def configure(
    host: str | None = None,
    user: str | None = None,
    password: str | None = None,
    use_tls: bool | None = None,
    store_location: str | None = None,
) -> None:
    """Configure DataJoint for nntransfer. Arguments left ``None`` keep what ``dj.config`` (and the
    ``DJ_*`` environment variables it reads) already says; TLS stays off unless requested."""
    env = os.environ
    dj.config["database.host"] = host or env.get("DJ_HOST") or dj.config.get("database.host") or "127.0.0.1"
    dj.config["database.user"] = user or env.get("DJ_USER") or dj.config.get("database.user") or "root"
    if password is not None or "DJ_PASS" in env:
        dj.config["database.password"] = password if password is not None else env["DJ_PASS"]
    elif dj.config.get("database.password") is None:
        dj.config["database.password"] = ""
    if use_tls is None:
        use_tls = env.get("DJ_TLS", "").lower() in ("1", "true", "yes") or bool(dj.config.get("database.use_tls"))
    dj.config["database.use_tls"] = bool(use_tls)
    dj.config["connection.init_function"] = SCHEMA_CHARSET_INIT
    stores = dict(dj.config.get("stores") or {})
    if store_location is not None or STORE_NAME not in stores:
        location = store_location or default_store_location()
        Path(location).mkdir(parents=True, exist_ok=True)
        stores[STORE_NAME] = {"protocol": "file", "location": location}
    dj.config["stores"] = stores
    dj.config["enable_python_native_blobs"] = True
    dj.config["display.limit"] = dj.config.get("display.limit") or 12


def connect(reset: bool = False) -> dj.Connection:
    """Return DataJoint's connection, raising :class:`DatabaseError` with one clear line if the
    server cannot be reached."""
    try:
        return dj.conn(reset=reset)
    except Exception as err:  # pymysql raises several types; the user needs one message
        reason = str(err.args[-1]) if getattr(err, "args", None) else str(err)
        raise DatabaseError(
            f"cannot reach the database at {dj.config['database.host']} as "
            f"{dj.config['database.user']!r} ({reason}); start the server or set DJ_HOST/DJ_USER/DJ_PASS"
        ) from None


def schema_name() -> str:
    """The schema nntransfer's tables live in (``dj.config['custom']['nnfabrik.my_schema_name']``)."""
    custom = dj.config.get("custom") or {}
    return custom.get("nnfabrik.my_schema_name") or "nntransfer"


def set_schema_name(name: str) -> None:
    custom = dict(dj.config.get("custom") or {})
    custom["nnfabrik.my_schema_name"] = name
    dj.config["custom"] = custom


# ----------------------------------------------------------------------------- nnfabrik 0.2.1 fixes


def _restore_collections_aliases() -> None:
    """Fix 1: nnfabrik imports ``collections.Iterable``/``Mapping``/``Sequence`` (removed in 3.10)."""
    for name in ("Iterable", "Mapping", "Sequence", "MutableMapping"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))


def clone_connection(conn: dj.Connection) -> dj.Connection:
    """Fix 2: a second connection like ``conn``. nnfabrik's ``clone_conn`` reads ``conn_info['ssl']``,
    which DataJoint only sets when TLS is on (``KeyError: 'ssl'``)."""
    info = conn.conn_info
    return dj.Connection(
        host=f"{info['host']}:{info['port']}",
        user=info["user"],
        password=info["passwd"],
        init_fun=conn.init_fun,
        use_tls=info.get("ssl_input"),
    )


class VerboseDeleteMixin:
    """Fix 3: nnfabrik's checkpoint templates call ``delete(verbose=False)``, an argument DataJoint 0.14
    dropped. Mix this into a table class to accept (and ignore) it."""

    def delete(self, verbose: bool | None = None, **kwargs):  # noqa: ARG002 - kept for nnfabrik
        return super().delete(**kwargs)


_fixes_applied = False


def apply_nnfabrik_fixes() -> None:
    """Make nnfabrik 0.2.1 importable and patch the helpers it calls. Opens no connection."""
    global _fixes_applied
    _restore_collections_aliases()
    if _fixes_applied:
        return
    import nnfabrik.utility.dj_helpers as dj_helpers

    dj_helpers.clone_conn = clone_connection
    _fixes_applied = True


def patch_template_modules() -> None:
    """Point the ``clone_conn`` names that nnfabrik's template modules imported at the fixed version.
    Importing those modules connects to the database (``nnfabrik.main`` declares its core schema)."""
    apply_nnfabrik_fixes()
    import nnfabrik.templates.checkpoint as checkpoint
    import nnfabrik.templates.transfer.checkpoint as transfer_checkpoint

    checkpoint.clone_conn = clone_connection
    transfer_checkpoint.clone_conn = clone_connection
