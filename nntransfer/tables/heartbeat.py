"""Liveness of workers: a heartbeat every worker can see, so that a reservation of a stopped worker is
cleared and one of a running worker never is.

DataJoint's job reservation (``~jobs``) records the host, pid and connection id of the worker that holds a
job. Whether that worker still runs cannot be read from ``information_schema.processlist``: a user without
the PROCESS privilege sees only its own connections there, and after a server restart a connection id is
handed out again. Instead, a process that populates beats in the schema's ``~heartbeat`` table (from a
thread with a connection of its own, every few seconds) under the same host, pid and connection id its
reservations carry, and removes its row when it stops populating. A reservation is stale when its
worker's heartbeat is older than the timeout, or when there is none and the reservation is older than the
timeout. Both ages are measured by the server's clock.

The timeout is ``$NNTRANSFER_HEARTBEAT_TIMEOUT`` seconds (else ``dj.config["custom"]
["nntransfer.heartbeat_timeout"]``, else 60); workers sharing a schema should use the same value.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from nntransfer.provenance import cluster_job
from nntransfer.tables import compat
from nntransfer.tables._datajoint import dj

if TYPE_CHECKING:
    from nntransfer.tables.activation import Tables

__all__ = [
    "HEARTBEAT_TABLE",
    "DEFAULT_TIMEOUT",
    "Heartbeat",
    "heartbeat",
    "heartbeat_timeout",
    "declare",
    "reservations",
]
logger = logging.getLogger(__name__)

HEARTBEAT_TABLE = "~heartbeat"
DEFAULT_TIMEOUT = 60.0
#: a heartbeat row silent for this many timeouts belongs to a process that died: removed (its reservations
#: count as stale with or without it)
_FORGET_AFTER = 3


class HeartbeatTable:
    """``~heartbeat``: the last sign of life of each process populating the schema's tables.

    Hidden, like DataJoint's ``~jobs`` (declared with SQL by :func:`declare`, not shown in diagrams).

    Attributes:
        host (varchar(255)): the worker's host name, as ``~jobs`` records it (``platform.node()``).
        pid (int unsigned): the worker's process id, as ``~jobs`` records it.
        connection_id (bigint unsigned): the id of the connection its reservations carry.
        beat (timestamp(3)): the server's time of the last beat.
        cluster_job (varchar(64)): the SLURM job the worker runs in (``123_4`` for a task of an array;
            ``nntransfer.provenance.cluster_job``), empty outside SLURM: what ``status`` shows of a running step.
    """

    definition = """
    CREATE TABLE IF NOT EXISTS {table} (
        host varchar(255) NOT NULL COMMENT "the worker's host name, as ~jobs records it",
        pid int unsigned NOT NULL COMMENT "the worker's process id, as ~jobs records it",
        connection_id bigint unsigned NOT NULL COMMENT "connection id its reservations carry",
        beat timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) COMMENT "server time of the last beat",
        cluster_job varchar(64) NOT NULL DEFAULT '' COMMENT "the SLURM job (ARRAY_TASK) the worker runs in",
        PRIMARY KEY (host, pid, connection_id)
    ) ENGINE=InnoDB COMMENT "liveness of the processes populating this schema (nntransfer)"
    """
    #: schemas made before workers ran on clusters lack the column; added when the schema is activated
    add_cluster_job = "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS cluster_job varchar(64) NOT NULL DEFAULT '' COMMENT \"the SLURM job (ARRAY_TASK) the worker runs in\""


def full_name(schema_name: str) -> str:
    return f"`{schema_name}`.`{HEARTBEAT_TABLE}`"


def declare(connection: dj.Connection, schema_name: str) -> None:
    """Create the schema's heartbeat table unless it exists (one statement: workers do not collide). A user
    who may not create tables (reading results only) finds it or goes without."""
    query = "SELECT column_name FROM information_schema.columns WHERE table_schema=%s AND table_name=%s"
    columns = {name for (name,) in connection.query(query, args=(schema_name, HEARTBEAT_TABLE)).fetchall()}
    try:
        if not columns:
            connection.query(HeartbeatTable.definition.format(table=full_name(schema_name)))
        elif "cluster_job" not in columns:
            connection.query(HeartbeatTable.add_cluster_job.format(table=full_name(schema_name)))
    except dj.errors.AccessError as err:
        logger.warning("cannot create the heartbeat table of schema %s (%s); workers need it", schema_name, err)


def heartbeat_timeout(value: Optional[float] = None) -> float:
    """Seconds of silence after which a worker counts as stopped (see module docstring)."""
    if value is None:
        value = os.environ.get("NNTRANSFER_HEARTBEAT_TIMEOUT") or (dj.config.get("custom") or {}).get(
            "nntransfer.heartbeat_timeout", DEFAULT_TIMEOUT
        )
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the heartbeat timeout must be a number of seconds, not {value!r}") from None
    if not seconds > 0:
        raise ValueError(f"the heartbeat timeout must be positive, not {seconds}")
    return seconds


def beat_interval(timeout: float) -> float:
    """How often a worker beats: several times per timeout, at most every 5 s."""
    return max(0.1, min(5.0, timeout / 6))


class Heartbeat:
    """The heartbeat of this process in one schema; a re-entrant context manager.

    Entering it the first time writes a beat at once (before any reservation) and starts a daemon thread
    that beats on a connection of its own; leaving it the last time stops the thread and removes the row.
    The connection id written is the one ``~jobs`` records for this process's reservations: the
    ``connection_id`` DataJoint keeps for the tables' connection (it is not updated after a reconnect, and
    neither are the reservations).
    """

    def __init__(self, tables: "Tables", timeout: Optional[float] = None) -> None:
        self.tables = tables
        self._timeout = timeout
        self.timeout = heartbeat_timeout(timeout)
        self.interval = beat_interval(self.timeout)
        self._depth = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._connection: Optional[dj.Connection] = None
        self._failing = False

    @property
    def identity(self) -> Dict[str, Any]:
        return {"host": platform.node(), "pid": os.getpid(), "connection_id": int(self.tables.connection.connection_id),
                "cluster_job": cluster_job()}

    def __enter__(self) -> "Heartbeat":
        with self._lock:
            if self._depth == 0:
                self._start()
            self._depth += 1
        return self

    def __exit__(self, *exc_info) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                self._stop_beating()

    def _start(self) -> None:
        self.timeout = heartbeat_timeout(self._timeout)  # read when it starts: the setting may have changed
        self.interval = beat_interval(self.timeout)
        self._connection = compat.clone_connection(self.tables.connection)
        self.beat()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"nntransfer-heartbeat-{self.tables.schema_name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as err:  # the server may be back at the next beat; the worker decides what to do
                if not self._failing:
                    logger.warning(
                        "heartbeat in schema %s failed (%s: %s); retrying",
                        self.tables.schema_name,
                        type(err).__name__,
                        err,
                    )
                self._failing = True
            else:
                self._failing = False

    def beat(self) -> None:
        """Write this process's beat now (the server's clock)."""
        me = self.identity
        self._connection.query(
            f"INSERT INTO {full_name(self.tables.schema_name)} (host, pid, connection_id, beat, cluster_job) "
            "VALUES (%s, %s, %s, CURRENT_TIMESTAMP(3), %s) ON DUPLICATE KEY UPDATE beat=CURRENT_TIMESTAMP(3)",
            args=(me["host"], me["pid"], me["connection_id"], me["cluster_job"]),
        )

    def _stop_beating(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 30)
            self._thread = None
        try:  # best effort: without it the row just goes stale
            self._connection.query(
                f"DELETE FROM {full_name(self.tables.schema_name)} WHERE host=%s AND pid=%s",
                args=(platform.node(), os.getpid()),
            )
            self._connection.close()
        except Exception as err:
            logger.debug("could not remove the heartbeat of this process: %s", err)
        self._connection = None


_heartbeats: Dict[str, Heartbeat] = {}
_registry_lock = threading.Lock()


def heartbeat(tables: "Tables") -> Heartbeat:
    """This process's :class:`Heartbeat` in the schema of ``tables`` (one per schema and process)."""
    with _registry_lock:
        found = _heartbeats.get(tables.schema_name)
        if found is None or found.tables is not tables:
            found = _heartbeats[tables.schema_name] = Heartbeat(tables)
        return found


def reservations(tables: "Tables", table_names: Sequence[str], timeout: float) -> List[Dict[str, Any]]:
    """The reservations of ``table_names`` in ``~jobs``, each with ``reserved_for`` (seconds since it was
    made), ``silent_for`` (seconds since its worker's last beat; None without one), ``stale`` (see
    module docstring), all by the server's clock, and the worker's ``cluster_job`` (empty if none)."""
    if not table_names:
        return []
    jobs = tables.schema.jobs.full_table_name
    marks = ", ".join(["%s"] * len(table_names))
    rows = tables.connection.query(
        f"""
        SELECT j.table_name, j.key_hash, j.host, j.pid, j.connection_id, j.user,
               TIMESTAMPDIFF(MICROSECOND, j.timestamp, CURRENT_TIMESTAMP(3)) / 1e6 AS reserved_for,
               TIMESTAMPDIFF(MICROSECOND, h.beat, CURRENT_TIMESTAMP(3)) / 1e6 AS silent_for,
               COALESCE(h.cluster_job, '') AS cluster_job
        FROM {jobs} AS j LEFT JOIN {full_name(tables.schema_name)} AS h
             ON h.host = j.host AND h.pid = j.pid AND h.connection_id = j.connection_id
        WHERE j.status = 'reserved' AND j.table_name IN ({marks})
        """,
        args=tuple(table_names),
        as_dict=True,
    ).fetchall()
    for row in rows:
        row["reserved_for"] = float(row["reserved_for"])
        row["silent_for"] = None if row["silent_for"] is None else float(row["silent_for"])
        age = row["reserved_for"] if row["silent_for"] is None else row["silent_for"]
        row["stale"] = age > timeout
    return rows


def clear(tables: "Tables", stale: Sequence[Dict[str, Any]], timeout: float) -> int:
    """Delete the ``stale`` reservations (rows of :func:`reservations`) that are still the same reservation
    and still stale when deleted (another worker may have replaced one meanwhile); returns how many.
    Heartbeats of processes silent for long are removed too."""
    jobs = tables.schema.jobs.full_table_name
    heartbeats = full_name(tables.schema_name)
    cleared = 0
    for row in stale:
        cleared += tables.connection.query(
            f"""
            DELETE FROM {jobs} WHERE table_name=%s AND key_hash=%s AND status='reserved'
                AND host=%s AND pid=%s AND connection_id=%s
                AND NOT EXISTS (SELECT 1 FROM {heartbeats} AS h WHERE h.host=%s AND h.pid=%s AND h.connection_id=%s
                                AND h.beat > CURRENT_TIMESTAMP(3) - INTERVAL %s SECOND)
                AND (timestamp < CURRENT_TIMESTAMP(3) - INTERVAL %s SECOND
                     OR EXISTS (SELECT 1 FROM {heartbeats} AS h WHERE h.host=%s AND h.pid=%s AND h.connection_id=%s))
            """,
            args=(
                row["table_name"], row["key_hash"], row["host"], row["pid"], row["connection_id"],
                row["host"], row["pid"], row["connection_id"], timeout,
                timeout, row["host"], row["pid"], row["connection_id"],
            ),
        ).rowcount  # fmt: skip
    tables.connection.query(
        f"DELETE FROM {heartbeats} WHERE beat < CURRENT_TIMESTAMP(3) - INTERVAL %s SECOND",
        args=(_FORGET_AFTER * timeout,),
    )
    return cleared
