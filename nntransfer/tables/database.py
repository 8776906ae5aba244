"""DataJoint set-up for nntransfer's tables: configuration, the connection, schema names and creation.

Nothing here opens a database connection until :func:`connect` (or :func:`nntransfer.tables.activate`)
asks for one.

* :func:`configure` fills ``dj.config`` the way the tables need it: host, user and password from
  ``dj.config`` (where DataJoint put ``DJ_HOST``/``DJ_USER``/``DJ_PASS`` when it was imported; what code
  set there since wins); TLS off unless asked for (``DJ_TLS=1``);
  schemas created with a character set whose keys fit; a file store named ``minio`` as default external
  store (``$NNTRANSFER_STORE``, else ``~/.nntransfer/store``); nnfabrik's core schema from
  ``$NNFABRIK_SCHEMA_NAME`` when set (sites where users may only create schemas with their own prefix).
* :func:`check_schema_name` refuses a name MySQL would need quoting for, before anything is created.
* :func:`create_schema` is ``CREATE DATABASE IF NOT EXISTS``: workers started together on a fresh schema
  do not race each other (DataJoint's own schema creation checks, then creates).
* :func:`connection_lost` tells a lost server (stopped, restarted, connection killed) from other errors;
  :func:`database_lost` turns one into the one-line :class:`~nntransfer.errors.DatabaseLost`.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Optional

import pymysql

from nntransfer.defaults import DEFAULT_SCHEMA, STORE_NAME
from nntransfer.errors import DatabaseError, DatabaseLost
from nntransfer.tables._datajoint import dj

__all__ = [
    "DatabaseError",
    "DatabaseLost",
    "STORE_NAME",
    "configure",
    "connect",
    "schema_name",
    "set_schema_name",
    "core_schema_name",
    "check_schema_name",
    "schema_exists",
    "create_schema",
    "connection_lost",
    "database_lost",
    "lock_conflict",
]

logger = logging.getLogger(__name__)

#: Under utf8mb4 the primary key of TrainedModelTransferRecipe exceeds MariaDB's 3072-byte limit.
SCHEMA_CHARSET = "latin1"
SCHEMA_CHARSET_INIT = f"SET SESSION character_set_server='{SCHEMA_CHARSET}'"
#: nnfabrik's own default for the schema of its shared tables
CORE_SCHEMA_DEFAULT = "nnfabrik_core"
_SCHEMA_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


def default_store_location() -> str:
    return os.environ.get("NNTRANSFER_STORE", str(Path.home() / ".nntransfer" / "store"))


def configure(
    host: Optional[str] = None,
    user: Optional[str] = None,
    password: Optional[str] = None,
    use_tls: Optional[bool] = None,
    store_location: Optional[str] = None,
) -> None:
    """Configure DataJoint for nntransfer. Arguments left ``None`` keep what ``dj.config`` already says,
    with DataJoint's precedence: ``DJ_HOST``/``DJ_USER``/``DJ_PASS`` are read once, when DataJoint is
    imported, and what code sets in ``dj.config`` afterwards (a notebook, ``dj_local_conf.json``) wins over
    them; unset values become ``root`` with an empty password. TLS stays off unless ``use_tls``,
    ``dj.config["database.use_tls"]`` or ``DJ_TLS=1`` asks for it."""
    env = os.environ
    dj.config["database.host"] = host or dj.config.get("database.host") or "127.0.0.1"
    dj.config["database.user"] = user or dj.config.get("database.user") or "root"
    if password is not None:
        dj.config["database.password"] = password
    elif dj.config.get("database.password") is None:
        dj.config["database.password"] = ""
    if use_tls is None:
        configured = dj.config.get("database.use_tls")  # DataJoint reads no variable for it: DJ_TLS is ours
        use_tls = bool(configured) if configured is not None else env.get("DJ_TLS", "").lower() in ("1", "true", "yes")
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
    if env.get("NNFABRIK_SCHEMA_NAME"):
        dj.config["nnfabrik.schema_name"] = env["NNFABRIK_SCHEMA_NAME"]


def connect(reset: bool = False) -> dj.Connection:
    """DataJoint's connection; :class:`DatabaseError` with one clear line if the server cannot be reached."""
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
    return custom.get("nnfabrik.my_schema_name") or DEFAULT_SCHEMA


def set_schema_name(name: str) -> None:
    """Make ``name`` the configured schema (what activation without a name binds to)."""
    custom = dict(dj.config.get("custom") or {})
    custom["nnfabrik.my_schema_name"] = name
    dj.config["custom"] = custom


def core_schema_name() -> str:
    """The schema nnfabrik declares its shared tables in when ``nnfabrik.main`` is imported."""
    return dj.config.get("nnfabrik.schema_name") or CORE_SCHEMA_DEFAULT


def check_schema_name(name: str) -> str:
    """``name`` if it is a valid schema name (letters, digits, underscores; at most 64 characters),
    else a one-line ``ValueError``. Runs before anything is created or even connected."""
    if not isinstance(name, str) or not _SCHEMA_NAME.fullmatch(name):
        shown = name if not isinstance(name, str) or len(name) <= 80 else name[:77] + "..."
        length = f" ({len(name)} characters)" if isinstance(name, str) and len(name) > 64 else ""
        raise ValueError(
            f"invalid schema name {shown!r}{length}: use letters, digits and underscores, at most 64 characters"
        )
    return name


def schema_exists(connection: dj.Connection, name: str) -> bool:
    """Whether the schema ``name`` exists on the server."""
    query = "SELECT 1 FROM information_schema.schemata WHERE schema_name=%s"
    return connection.query(query, args=(name,)).fetchone() is not None


def create_schema(connection: dj.Connection, name: str) -> None:
    """Create the schema ``name`` unless it exists, in one statement (concurrent workers do not collide),
    with the character set the tables' keys need."""
    check_schema_name(name)
    connection.query(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET {SCHEMA_CHARSET}")


#: client error codes of a server that went away: can't connect (2002, 2003), gone away (2006), lost during
#: a query (2013, 2055), shutdown in progress (1053), connection killed (1927, MariaDB)
_LOST_CODES = {1053, 1927, 2002, 2003, 2006, 2013, 2055}


def connection_lost(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) says the database server went away."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (DatabaseLost, dj.errors.LostConnectionError, pymysql.err.InterfaceError)):
            return True
        if isinstance(error, pymysql.err.OperationalError) and error.args and error.args[0] in _LOST_CODES:
            return True
        error = error.__cause__ or error.__context__
    return False


#: error codes of a transaction the server rolled back to resolve a lock conflict: deadlock, lock wait timeout
_LOCK_CODES = {1205, 1213}


def lock_conflict(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) is a deadlock or lock wait timeout: the statement
    or transaction was rolled back and can simply be run again."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, pymysql.err.MySQLError) and error.args and error.args[0] in _LOCK_CODES:
            return True
        error = error.__cause__ or error.__context__
    return False


def database_lost(error: BaseException, doing: str) -> DatabaseLost:
    """The one-line :class:`~nntransfer.errors.DatabaseLost` for ``error`` raised while ``doing``."""
    if isinstance(error, DatabaseLost):
        return error
    reason = _first_reason(error)
    return DatabaseLost(
        f"lost the database at {dj.config['database.host']} while {doing} ({reason}); finished steps are kept: "
        "run the same command again when the server is back, and interrupted steps resume from their checkpoints"
    )


def _first_reason(error: BaseException) -> str:
    """The message of the first database error behind ``error``, on one line."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (dj.errors.DataJointError, pymysql.err.Error, ConnectionError)):
            args = [str(a) for a in getattr(error, "args", ()) if str(a)]
            return (args[-1] if args else type(error).__name__).splitlines()[0]
        error = error.__cause__ or error.__context__
    return "connection lost"
