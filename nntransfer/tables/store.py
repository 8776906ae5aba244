"""``DataJointStore``: finished steps in the nnfabrik tables of one schema, shared by many workers.

    TransferredTrainedModel            one row per finished step (score, output, fabrikant, comment)
        .ModelStorage / .DataStorage   trained weights / data handed to the next step (external store;
                                       each file's SHA-256 and size beside it)
        .CollapsedHistory              step key -> the collapsed_history of its successor
        .Provenance                    package versions, recipe path and commit
    TransferredCheckpoint              checkpoints of steps being trained (a second connection)
    ~jobs                              DataJoint's job reservations: reserved (running), error (failed)
    ~heartbeat                         liveness of the processes populating (``nntransfer.tables.heartbeat``)

A step's key is the full primary key of ``TransferredTrainedModel`` (``TransferExperiment.step_key``).
:meth:`DataJointStore.run` fills the config tables and populates level by level with DataJoint's job
reservation, so any number of workers can share one schema; ``TransferredTrainedModel.make`` trains each
step through :func:`nntransfer.pipeline.step.train_and_store` with this store.

Faults: a reservation whose worker stopped beating (killed, lost its machine) is cleared by the next worker
and its step resumes from its checkpoints; SIGTERM and Ctrl-C stop a worker (``KeyboardInterrupt``: the
command exits 130 with the line that resumes), releasing the step it was training; losing the database
raises the one-line :class:`~nntransfer.errors.DatabaseLost` and leaves the step resumable. Every stored
file has its SHA-256 and size in the tables: before populating, a finished step whose files do not match
is deleted with a warning and trained again (as the work folder does); a damaged file met when a later
step loads it is a one-line error naming the step, the file and the ``nntransfer forget`` line that
deletes the step; the next run retries the later step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import random
import re
import signal
import threading
import time
import traceback
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pymysql

from nntransfer.configs.codec import make_hash
from nntransfer.errors import DatabaseLost, StepPruned
from nntransfer.pipeline.backends import register_store
from nntransfer.pipeline.step import StepMeta, StepResult, StepSpec
from nntransfer.pipeline.store import (
    BLOCKED,
    DONE,
    FAILED,
    INTERRUPTED,
    RUNNING,
    TRAINABLE,
    WAITING,
    Garbage,
    Key,
    StepState,
    Store,
    StoredKey,
    StoredStep,
    Submission,
    interrupt_on_sigterm,
    ordered_chains,
    step_status,
)
from nntransfer.provenance import RunProvenance
from nntransfer.recipes.loading import Recipe
from nntransfer.tables import activate, database, submissions
from nntransfer.tables import heartbeat as liveness
from nntransfer.tables._datajoint import dj
from nntransfer.tables.nnfabrik import add_transfer_experiments
from nntransfer.tables.storage import collect_garbage, file_paths

__all__ = ["DataJointStore", "DamagedStep"]
logger = logging.getLogger(__name__)

DEADLOCK = 1213  # MySQL/MariaDB error code of a deadlock between two transactions
IGNORED_JOB = "job marked 'ignore' in the jobs table"
#: job errors that are no failure of the step: it was interrupted, and runs again
INTERRUPTIONS = ("SystemExit", "KeyboardInterrupt", "DatabaseLost", "StepPruned")
#: what DataJoint's ``populate`` raises (``SystemExit``) when SIGTERM arrives while it runs
DATAJOINT_SIGTERM = "SIGTERM received"
#: DataJoint's line for each new connection ("DataJoint 0.14.10 connected to root@localhost:3306")
CONNECTED = re.compile(r"^DataJoint \S+ connected to ")
#: seconds between two "waiting for ..." lines about the same steps
WAIT_LOG_SECONDS = 30.0
#: times a job the server rolled back in a deadlock is tried again before it counts as failed
LOCK_RETRIES = 3


class DamagedStep(ValueError):
    """A later step found a finished step's stored file damaged. Recorded as the later step's failure, which
    the next ``run`` or ``worker`` retries: by then the damaged step is deleted (``nntransfer forget``) or is
    found damaged before populating, and trained again."""


@register_store("datajoint")
class DataJointStore(Store):
    """The tables of one schema as a :class:`~nntransfer.pipeline.store.Store` (see module docstring), the
    backend of the addresses ``datajoint:SCHEMA`` (found through the ``nntransfer.stores`` entry point).

    Args:
        schema: the schema name (default: the configured one, ``dj.config["custom"]["nnfabrik.my_schema_name"]``).
        create: create the schema if it does not exist; ``False`` (for reading: status, reports) makes a
            missing schema a one-line ``ValueError`` and creates nothing.
        read_only: bind the tables for reading only (``nntransfer.tables.activate``); implies ``create=False``.
        tables: tables already activated (what ``TransferredTrainedModel.make`` passes); no activation then.
        heartbeat_timeout: seconds without a heartbeat after which a reservation counts as left by a stopped
            worker (default ``$NNTRANSFER_HEARTBEAT_TIMEOUT``, else 60; see ``nntransfer.tables.heartbeat``).
    """

    location_help = "SCHEMA"
    retries_failures = False  # failed jobs stay failed until ``retry_failed``

    def __init__(self, schema: Optional[str] = None, create: bool = True, tables=None, heartbeat_timeout: Optional[float] = None,
                 read_only: bool = False) -> None:
        self.tables = tables if tables is not None else activate(schema, create=create and not read_only, read_only=read_only)
        self.read_only = read_only
        self.location = self.tables.schema_name
        self.where = f"schema {self.tables.schema_name}"
        self.heartbeat_timeout = liveness.heartbeat_timeout(heartbeat_timeout)
        self._verified: set = set()  # ids of finished steps whose files matched their checksums
        self._warned: set = set()  # (id, problems) of damaged steps already warned about

    @classmethod
    def open(cls, location: str, create: bool = True) -> "DataJointStore":
        """The tables of the schema ``location``; ``create=False``: a missing schema is a one-line error."""
        return cls(location, create=create)

    @classmethod
    def open_for_reading(cls, location: str) -> "DataJointStore":
        """The tables of the existing schema ``location`` as DataJoint reads them from the server, without
        nnfabrik's classes (which import torch): what ``status``, ``report``, ``diff`` and ``lineage`` use."""
        return cls(location, read_only=True)

    @classmethod
    def exists(cls, location: str) -> bool:
        """Whether the schema exists (a bad name is a ``ValueError``); creates nothing."""
        name = database.check_schema_name(location)
        database.configure()
        return database.schema_exists(database.connect(), name)

    @classmethod
    def configure_logging(cls, quiet: bool, connection_line: bool = True) -> None:
        """DataJoint logs through the command's handler (it brings its own handler and format, installed
        when it is imported: replaced here), without its empty error line for an interrupted job, its
        "connected" line once per process at most (none without ``connection_line``) and, when ``quiet``,
        without its reconnection lines."""
        datajoint_logger = logging.getLogger("datajoint")
        datajoint_logger.handlers = []
        datajoint_logger.propagate = True  # through the root handler: one format, around progress bars
        datajoint_logger.filters = [_DataJointNoise(quiet, connection_line)]
        if quiet:
            datajoint_logger.setLevel(logging.WARNING)

    # ------------------------------------------------------------------ sharing with other machines

    @classmethod
    def check_shared(cls, location: str) -> None:
        """The tables are on a server every node reaches (the connection is checked when the store opens);
        the files beside them (weights, handed-on data) are in the folder ``$NNTRANSFER_STORE`` names, which
        must be an absolute path, on a filesystem the nodes share."""
        database.check_schema_name(location)
        folder = database.default_store_location()
        if not os.path.isabs(folder):
            raise ValueError(f"NNTRANSFER_STORE is the relative path {folder!r}: workers on other machines start "
                             "elsewhere; set it to an absolute path on a filesystem every node shares")

    def worker_environment(self) -> Dict[str, str]:
        """Where the database is and who to log in as (what this process uses, ``dj.config`` included),
        the external store folder and nnfabrik's core schema: a worker on another node reaches the same
        tables and files."""
        env = {
            "DJ_HOST": str(dj.config["database.host"]),
            "DJ_USER": str(dj.config["database.user"]),
            "DJ_PASS": str(dj.config.get("database.password") or ""),
            "DJ_TLS": "1" if dj.config.get("database.use_tls") else "0",
            "NNTRANSFER_STORE": database.default_store_location(),
        }
        if dj.config.get("database.port"):
            env["DJ_PORT"] = str(dj.config["database.port"])
        if os.environ.get("NNFABRIK_SCHEMA_NAME"):
            env["NNFABRIK_SCHEMA_NAME"] = os.environ["NNFABRIK_SCHEMA_NAME"]
        return env

    def sql_url(self) -> str:
        """The schema itself, as this process logs in (``mysql+pymysql://``): searches keep their studies
        beside the steps, where every worker reaches them."""
        from urllib.parse import quote

        host = str(dj.config["database.host"])
        if ":" not in host and dj.config.get("database.port"):
            host = f"{host}:{dj.config['database.port']}"
        user = quote(str(dj.config["database.user"]), safe="")
        password = quote(str(dj.config.get("database.password") or ""), safe="")
        return f"mysql+pymysql://{user}:{password}@{host}/{self.tables.schema_name}"

    def holds_table(self, name: str) -> bool:
        """Whether the schema has a table ``name`` (one query on the open connection)."""
        query = "SELECT 1 FROM information_schema.tables WHERE table_schema=%s AND table_name=%s"
        return self.tables.connection.query(query, args=(self.tables.schema_name, name)).fetchone() is not None

    def _writable(self, doing: str) -> None:
        """Refuse to write through a store opened for reading (its tables are DataJoint's view of the
        server, without nnfabrik's methods): a mistake of the caller, named in one line."""
        if self.read_only:
            raise RuntimeError(f"cannot {doing}: {self.where} was opened for reading (open_store(..., read_only=True))")

    def record_submission(self, submission: Submission) -> None:
        self._writable("record a submission")
        submissions.record(self.tables.connection, self.tables.schema_name, submission)

    def submissions(self) -> List[Submission]:
        return submissions.read(self.tables.connection, self.tables.schema_name)

    @property
    def table(self):
        return self.tables.TransferredTrainedModel

    @property
    def jobs(self):
        return self.tables.schema.jobs

    # ------------------------------------------------------------------ reading

    def states(self, keys: Sequence[Key]) -> List[StepState]:
        keys = [dict(key) for key in keys]
        if not keys:
            return []
        hashes = [dj.hash.key_hash(key) for key in keys]
        rows = (self.table & keys).fetch(*self.table.primary_key, "score", as_dict=True)
        scores = {dj.hash.key_hash({k: row[k] for k in self.table.primary_key}): float(row["score"]) for row in rows}
        jobs = (self.jobs & {"table_name": self.table.table_name} & [{"key_hash": h} for h in set(hashes)]).fetch(
            "key_hash", "status", "error_message", as_dict=True
        )
        by_hash = {job["key_hash"]: job for job in jobs}
        stale, holders = set(), {}
        if any(job["status"] == "reserved" for job in jobs):  # a stopped worker's step waits to be taken over
            for row in self.reservations():
                if row["stale"]:
                    stale.add(row["key_hash"])
                holders[row["key_hash"]] = _holder(row)
        waiting = [key for key, digest in zip(keys, hashes) if digest not in scores and by_hash.get(digest, {}).get("status") != "error"]
        checkpointed = self._last_checkpoints(waiting)

        def waiting_state(digest: str) -> StepState:
            epoch = checkpointed.get(digest)
            return StepState(WAITING) if epoch is None else StepState(INTERRUPTED, resumes_after=epoch)

        found = []
        for digest in hashes:
            job = by_hash.get(digest)
            if digest in scores:
                found.append(StepState(DONE, score=scores[digest]))
            elif job is None:
                found.append(waiting_state(digest))
            elif job["status"] == "reserved":
                found.append(waiting_state(digest) if digest in stale else StepState(RUNNING, held_by=holders.get(digest, "")))
            elif job["status"] == "error":
                found.append(StepState(FAILED, error=job["error_message"] or "failed (no message recorded)"))
            elif job["status"] == "ignore":  # set by hand: never populated
                found.append(StepState(FAILED, error=IGNORED_JOB))
            else:
                found.append(waiting_state(digest))
        return found

    def _last_checkpoints(self, keys: Sequence[Key]) -> Dict[str, int]:
        """key hash -> the epoch of the step's last checkpoint, for those of ``keys`` that have one (one query)."""
        if not keys:
            return {}
        checkpoints = self.table.checkpoint_table
        primary = self.table.primary_key
        rows = (checkpoints & keys).fetch(*primary, "epoch", as_dict=True)
        last: Dict[str, int] = {}
        for row in rows:
            digest = dj.hash.key_hash({k: row[k] for k in primary})
            last[digest] = max(last.get(digest, 0), int(row["epoch"]))
        return last

    def _row(self, key: Key, *attributes: str) -> Dict[str, Any]:
        rows = (self.table & key).fetch(*attributes, as_dict=True)
        if not rows:
            raise ValueError(f"step {key.get('transfer_step', '?')} of seed {key.get('seed', '?')} is not stored in {self.where}")
        return rows[0]

    def load(self, key: Key) -> StoredStep:
        row = self._row(key, "seed", "transfer_step", "comment", "score", "output", "fabrikant_name", "trainedmodel_ts")
        provenance = (self.table.Provenance & key).fetch(as_dict=True)
        info = dict(
            seed=int(row["seed"]),
            step=int(row["transfer_step"]),
            comment=row["comment"],
            score=float(row["score"]),
            fabrikant=row["fabrikant_name"],
            finished=str(row["trainedmodel_ts"]),
        )
        if provenance:
            info.update({k: v for k, v in provenance[0].items() if k not in self.table.primary_key})
        return StoredStep(float(row["score"]), row["output"], info)

    def code_records(self, keys: Sequence[Key]) -> List[Dict[str, Any]]:
        """The ``Provenance`` rows of the steps ``keys`` in one query (``{}`` for a step without one)."""
        keys = [dict(key) for key in keys]
        if not keys:
            return []
        rows = (self.table.Provenance & keys).fetch(as_dict=True)
        by_hash = {dj.hash.key_hash({k: row[k] for k in self.table.primary_key}): row for row in rows}
        return [by_hash.get(dj.hash.key_hash(key), {}) for key in keys]

    def record_code_reuse(self, key: Key, record: Dict[str, Any]) -> None:
        """``record`` becomes the step's ``Provenance.code_reused`` (a schema without that column: a warning,
        and the step is reported as changed again next time)."""
        self._writable("record that changed code is kept")
        provenance = self.table.Provenance
        if "code_reused" not in provenance.heading.names:
            logger.warning("the Provenance table of %s has no column code_reused: that %s is kept cannot be recorded",
                           self.where, _describe(key))
            return
        primary = {k: key[k] for k in self.table.primary_key}
        with _database_guard("recording a kept step"):
            provenance.update1(dict(primary, code_reused=record))

    def stored_steps(self) -> List[StoredKey]:
        """The ``TransferredTrainedModel`` rows, with their configs from ``Dataset``, ``Model`` and
        ``Trainer`` (the hashed fields, as inserted; the config class is not stored)."""
        from nntransfer.tables.trained_model import plain_key  # the table classes bind on activation

        tables = self.tables
        table = tables.TransferredTrainedModel
        configs: Dict[str, Dict[Tuple[str, str], Any]] = {}
        for role, config_table in (("dataset", tables.Dataset), ("model", tables.Model), ("trainer", tables.Trainer)):
            rows = config_table.fetch(f"{role}_fn", f"{role}_hash", f"{role}_config", as_dict=True)
            configs[role] = {(row[f"{role}_fn"], row[f"{role}_hash"]): row[f"{role}_config"] for row in rows}
        entries = []
        for row in table.fetch(*table.primary_key, "comment", as_dict=True):
            key = plain_key(table, row)
            fields = {role: {"class": "", "fields": configs[role].get((key[f"{role}_fn"], key[f"{role}_hash"]), {})}
                      for role in ("dataset", "model", "trainer")}
            entries.append(StoredKey(make_hash(key), key, fields, comment=str(row["comment"])))
        return entries

    def load_weights(self, key: Key) -> Dict[str, Any]:
        try:
            weights = self.table().fetch_weights(key)
        except Exception as err:  # a missing, altered or unreadable file in the external store
            if database.connection_lost(err):
                raise
            raise self._damaged(key, "weights", self.table.ModelStorage, "model_state", err) from None
        if weights is None:
            raise ValueError(f"{self.where} holds no weights for {_describe(key)}")
        return weights

    def load_transfer_data(self, key: Key) -> Optional[Dict[str, np.ndarray]]:
        try:
            return self.table().fetch_transfer_data(key)
        except Exception as err:
            if database.connection_lost(err):
                raise
            raise self._damaged(key, "handed-on data", self.table.DataStorage, "transfer_data", err) from None

    def forget_line(self, key: Key) -> str:
        """The command that deletes the finished step ``key`` and the steps trained from it (with their
        files), so that the next run trains it again."""
        return f"nntransfer forget {make_hash(dict(key))} --schema {self.tables.schema_name}"

    def _damaged(self, key: Key, what: str, part, attribute: str, error: BaseException) -> DamagedStep:
        """The one-line error for a finished step whose ``what`` cannot be read: names the step, the file
        and the command that deletes the step (and its files) so that the next run trains it again."""
        try:
            where = ", ".join(file_paths(part & key, attribute)) or "no file"
        except Exception:  # naming the file is a courtesy; the error goes out anyway
            where = "its store file"
        reason = str(error).splitlines()[0] if str(error) else ""
        return DamagedStep(
            f"the stored {what} of finished {_describe(key)} in {self.where} are damaged ({type(error).__name__}: {reason}; "
            f"file {where}); delete that step to retrain it: {self.forget_line(key)}"
        )

    def damage(self, key: Key) -> List[str]:
        """What is wrong with the stored files of the finished step ``key``: one line per file that is
        missing or does not match the checksum recorded with it (empty: none, or the step is not stored).
        A step found whole is not checked again by this store (loading its files checks them anyway);
        each problem is logged once at WARNING."""
        digest = make_hash(dict(key))
        if digest in self._verified:
            return []
        problems: List[str] = []
        for part in (self.table.ModelStorage, self.table.DataStorage):
            problems += (part & key).damaged_files()
        if not problems:
            self._verified.add(digest)
        elif (digest, tuple(problems)) not in self._warned:
            self._warned.add((digest, tuple(problems)))
            logger.warning("damaged step: %s in %s: %s; it will be trained again", _describe(key), self.where, "; ".join(problems))
        return problems

    def is_done(self, key: Key) -> bool:
        """Stored, and every file matches its checksum (a damaged step is trained again)."""
        return self.states([key])[0].state == DONE and not self.damage(key)

    def retrain_damaged(self, keys: Sequence[Key]) -> int:
        """Delete the finished steps among ``keys`` whose stored files are missing or do not match their
        checksums (with their files; a warning names them), so that populating trains them again. Returns
        how many."""
        self._writable("retrain damaged steps")
        keys = [dict(key) for key in keys]
        finished = (self.table & keys).fetch("KEY") if keys else []
        deleted = 0
        for row in finished:
            key = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
            if self.damage(key):
                (self.table & key).delete(safemode=False)
                self._warned = {item for item in self._warned if item[0] != make_hash(key)}
                deleted += 1
        return deleted

    def retry_damage_failures(self, recipe: Recipe) -> int:
        """Delete the failures of ``recipe``'s steps that a damaged earlier step caused (:class:`DamagedStep`),
        so that they run again: that step is deleted by now, or is found damaged and trained again. Returns
        how many."""
        hashes = [dj.hash.key_hash(chain.step_key(level)) for chain in recipe.transfer_experiments.values() for level in range(len(chain))]
        failed = (
            self.jobs & {"table_name": self.table.table_name, "status": "error"} & [{"key_hash": h} for h in hashes]
            & f'error_message LIKE "{DamagedStep.__name__}:%%"'
        )  # fmt: skip
        count = len(failed)
        if count:
            failed.delete_quick()
            logger.info("%d step(s) failed on a damaged earlier step in %s; they run again", count, self.where)
        return count

    # ------------------------------------------------------------------ writing

    def save(self, key: Key, result: StepResult, meta: StepMeta) -> None:
        """Insert the step's row and parts: inside ``make``'s transaction when populating, else in one of
        its own."""
        self._writable("save a step")
        table = self.table()
        fabrikant = self.tables.Fabrikant.current_user()
        if table.connection.in_transaction:
            table.insert_result(dict(key), result, meta.comment, fabrikant, meta.provenance)
            return
        try:
            with table.connection.transaction:
                table.insert_result(dict(key), result, meta.comment, fabrikant, meta.provenance)
        finally:
            table.clear_rolled_back_uploads()

    def record_failure(self, key: Key, error: BaseException, meta: StepMeta) -> None:
        """Record ``error`` in the jobs table, as ``populate`` does for the jobs it runs."""
        self._writable("record a failure")
        message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.jobs.error(self.table.table_name, dict(key), error_message=message, error_stack=stack)

    def checkpoints(self, key: Key) -> Callable:
        return self.table().checkpoint_callback()

    def clear_checkpoints(self, key: Key) -> None:
        self.table().clear_checkpoints(key)

    def delete(self, keys: Sequence[Key]) -> int:
        """Delete the steps' rows with their parts in one transaction (the table's ``delete`` then removes
        their weights and handed-on data from the external store), then their checkpoints (with their files),
        the checkpoints of steps that continue from them (a half-trained successor must not resume on top of
        weights that are gone) and the error entries of their jobs."""
        self._writable("delete steps")
        keys = [dict(key) for key in keys]
        if not keys:
            return 0
        with _database_guard("deleting steps"):
            rows = self.table & keys
            stored = len(rows)
            if stored:
                rows.delete(safemode=False)
            for key in keys:
                self.clear_checkpoints(key)
            successors = self.tables.TransferredCheckpoint & [{"collapsed_history": make_hash(key)} for key in keys]
            if successors:
                successors.delete_quick()
            failures = self.jobs & {"table_name": self.table.table_name, "status": "error"} & [{"key_hash": dj.hash.key_hash(k)} for k in keys]
            failures.delete_quick()
        logger.info("deleted %d step(s) from %s", stored, self.where)
        return stored

    def clear_failures(self, recipe: Recipe) -> int:
        """Delete the error entries of ``recipe``'s jobs so that they run again; returns how many."""
        self._writable("clear failures")
        hashes = [dj.hash.key_hash(chain.step_key(level)) for chain in recipe.transfer_experiments.values() for level in range(len(chain))]
        failed = self.jobs & {"table_name": self.table.table_name, "status": "error"} & [{"key_hash": h} for h in hashes]
        count = len(failed)
        if count:
            failed.delete_quick()
            logger.info("cleared %d failed job(s) in %s; they run again", count, self.where)
        return count

    def collect_garbage(self, dry_run: bool = False, grace_seconds: float = 3600.0) -> Garbage:
        """The files of the schema's external stores that no row references (``nntransfer.tables.storage.collect_garbage``)."""
        found = collect_garbage(self.tables.schema, dry_run=dry_run, grace_seconds=grace_seconds)
        return Garbage(self.where, found.entries + found.files, found.young, found.removed, found.errors)

    def clear_finished_checkpoints(self, recipe: Recipe, runtime: Optional[Dict[str, Dict[str, Any]]] = None) -> int:
        """Delete the checkpoints (and their files) of ``recipe``'s finished steps that do not keep them: those
        a worker killed between storing a step and clearing its checkpoints left. Returns how many."""
        keys = [
            chain.step_key(level)
            for chain in recipe.transfer_experiments.values()
            for level in range(len(chain))
            if not StepSpec.from_experiment(chain[level], runtime).keep_checkpoints
        ]
        if not keys:
            return 0
        leftover = self.tables.TransferredCheckpoint & keys & self.table.proj()  # of finished steps only
        count = len(leftover)
        if count:
            leftover.delete_quick()
            logger.info("deleted %d checkpoint(s) of finished steps in %s", count, self.where)
        return count

    def _job_tables(self) -> List[str]:
        return [self.table.table_name, self.tables.TrainedModel.table_name]

    def reservations(self) -> List[Dict[str, Any]]:
        """The reservations of this schema's jobs: host, pid, ``reserved_for`` and ``silent_for`` (seconds,
        the server's clock) and whether each is ``stale`` (see ``nntransfer.tables.heartbeat``)."""
        return liveness.reservations(self.tables, self._job_tables(), self.heartbeat_timeout)

    def clear_stale_reservations(self) -> int:
        """Delete the reservations of workers that stopped (no heartbeat for ``heartbeat_timeout``
        seconds, by the server's clock); their steps resume from their checkpoints. Returns how many."""
        stale = [row for row in self.reservations() if row["stale"]]
        if not stale:
            return 0
        cleared = liveness.clear(self.tables, stale, self.heartbeat_timeout)
        if cleared:
            for row in stale:
                silent = "no heartbeat" if row["silent_for"] is None else f"last heartbeat {row['silent_for']:.0f}s ago"
                logger.warning(
                    "cleared the reservation of a stopped worker (%s:%s, %s, reserved %.0fs ago); its step resumes from its checkpoints",
                    row["host"], row["pid"], silent, row["reserved_for"],
                )  # fmt: skip
        return cleared

    # ------------------------------------------------------------------ running

    def prepared(self, key: Key) -> Tuple[str, str, Dict[str, Dict[str, Any]], Dict[str, Any]]:
        """The experiment's name, the step's comment (as the chain names it, the same label the local store
        logs and keeps), runtime options and provenance record :meth:`prepare` remembered for the step
        ``key`` in this process (``("", "", {}, {})`` for a step it did not prepare)."""
        return self.tables.prepared.get(make_hash(dict(key)), ("", "", {}, {}))

    def prepare(self, recipe: Recipe, runtime: Optional[Dict[str, Dict[str, Any]]] = None,
                provenance: Optional[RunProvenance] = None) -> None:
        """Insert every config, seed and recipe entry of ``recipe`` in one transaction (all or nothing;
        retried when concurrent workers deadlock; every config is checked first), and remember each step's
        runtime options and provenance (what ``make`` records with it) for ``make``."""
        self._writable("prepare a run")
        fabrikant = self.tables.Fabrikant.current_user()
        connection = self.table.connection
        for attempt in range(5):
            try:
                with connection.transaction:
                    add_transfer_experiments(self.tables, recipe.transfer_experiments.values(), fabrikant=fabrikant)
                break
            except pymysql.err.OperationalError as err:  # deadlock between workers filling the same rows
                if err.args[0] != DEADLOCK or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
        for description, chain in recipe.transfer_experiments.items():
            for level in range(len(chain)):
                key = chain.step_key(level)
                options = StepSpec.from_experiment(chain[level], runtime).runtime
                record = provenance.for_step(key) if provenance is not None else {}
                self.tables.prepared[make_hash(key)] = (description.name, chain[level].comment, options, record)

    def populate(self, recipe: Recipe, order: str = "original", progress: bool = True) -> int:
        """One pass: populate every step of ``recipe`` whose previous step is done, level by level and one
        step at a time, with DataJoint's job reservation; returns how many steps this pass trained.

        A finished step whose stored files do not match their checksums is deleted first, and trained again.
        A failed job is recorded in the jobs table (its chain stops). SIGTERM and Ctrl-C stop the pass
        after releasing the interrupted step, which resumes from its checkpoints (one step at a time, because
        DataJoint's ``populate`` goes on with its next key after a Ctrl-C). A lost database raises
        :class:`~nntransfer.errors.DatabaseLost`. The process beats in ``~heartbeat`` meanwhile."""
        chains = ordered_chains(recipe, order)
        depth = max((len(chain) for _, chain in chains), default=0)
        made = 0
        with _database_guard("populating the tables"), liveness.heartbeat(self.tables), interrupt_on_sigterm():
            for level in range(depth):
                keys = [chain.step_key(level) for _, chain in chains if len(chain) > level]
                self.retrain_damaged(keys)
                for key in keys:
                    made += self._populate_one(key)
        return made

    def _populate_one(self, key: Key) -> int:
        for attempt in range(LOCK_RETRIES + 1):
            handler = signal.getsignal(signal.SIGTERM)
            try:
                outcome = self.table.populate(key, reserve_jobs=True, suppress_errors=True, return_exception_objects=True)
            except SystemExit as err:
                _restore_sigterm(handler)  # DataJoint leaves its own handler installed when make raises
                self._release_quietly()
                if str(err) == DATAJOINT_SIGTERM:  # stopped like Ctrl-C: exit 130 and the resume line
                    raise KeyboardInterrupt("SIGTERM") from None
                raise
            except BaseException:  # Ctrl-C outside make, a lost database
                _restore_sigterm(handler)
                self._release_quietly()
                raise
            for _, error in outcome["error_list"]:
                if isinstance(error, KeyboardInterrupt):  # Ctrl-C, SIGTERM, a search's pruner (StepPruned)
                    self._release_quietly()
                    raise error
                if isinstance(error, DatabaseLost):
                    self._release_quietly()
                    raise error
            conflicts = [error for _, error in outcome["error_list"] if database.lock_conflict(error)]
            if not conflicts or attempt == LOCK_RETRIES:
                return int(outcome["success_count"])
            # the server rolled the job back to resolve a deadlock with another worker: not the step's failure
            mine = {"table_name": self.table.table_name, "key_hash": dj.hash.key_hash(key), "status": "error", "host": platform.node(), "pid": os.getpid()}
            (self.jobs & mine).delete_quick()
            logger.warning("%s hit a lock conflict with another worker (%s); trying again", _describe(key), conflicts[0])
            time.sleep(random.uniform(0.1, 0.5) * (attempt + 1))
        return 0

    def _release_quietly(self) -> None:
        """Release this process's interrupted job, deaf to a second SIGTERM or Ctrl-C meanwhile: SLURM (srun's
        forced termination, a requeue) can send SIGTERM again while the first one is being handled, and a stop
        in the middle of the release would leave the step recorded as failed instead of resumable."""
        with _signals_deferred():
            try:
                self.release_interrupted()
            except Exception as err:  # e.g. the database is gone: the reservation goes stale instead
                logger.debug("could not release the interrupted job: %s", err)

    def release_interrupted(self) -> int:
        """Release this process's interrupted jobs so that they run again: the error entries DataJoint
        records for SIGTERM, Ctrl-C and a lost database, and reservations this process still holds (it is
        no longer populating). Returns how many."""
        mine = self.jobs & {"host": platform.node(), "pid": os.getpid()} & [{"table_name": name} for name in self._job_tables()]
        rows = (mine & 'status in ("error", "reserved")').fetch("table_name", "key_hash", "status", "error_message", as_dict=True)
        released = [
            {"table_name": r["table_name"], "key_hash": r["key_hash"]}
            for r in rows
            if r["status"] == "reserved" or (r["error_message"] or "").startswith(INTERRUPTIONS)
        ]
        if released:
            (mine & released).delete_quick()
            logger.warning("released %d interrupted job(s); they resume from their checkpoints", len(released))
        return len(released)

    def run(self, recipe: Recipe, order: str = "original", runtime: Optional[Dict[str, Dict[str, Any]]] = None, progress: bool = True,
            provenance: Optional[RunProvenance] = None) -> None:
        """Fill the tables and populate every step once (steps other workers hold are left to them)."""
        with _database_guard("filling the tables"):
            self.prepare(recipe, runtime, provenance)
            _housekeeping(self.clear_finished_checkpoints, recipe, runtime)
            _housekeeping(self.retry_damage_failures, recipe)
        self.populate(recipe, order, progress)

    def work(
        self,
        recipe: Recipe,
        order: str = "original",
        runtime: Optional[Dict[str, Dict[str, Any]]] = None,
        progress: bool = True,
        poll_seconds: float = 2.0,
        provenance: Optional[RunProvenance] = None,
        timeout: Optional[float] = None,
    ) -> None:
        """What a worker does: populate until every step is done, failed or blocked, waiting for steps
        other workers are training and taking over the steps of workers that stopped.

        Waiting is bounded: a step held by a worker that stopped beating is taken over after
        ``heartbeat_timeout`` seconds, and a pass in which no step could be taken while none is held ends
        the work (with a warning). ``timeout`` (seconds, None: no limit) bounds the whole wait with a
        ``TimeoutError``. What it waits for is logged at INFO."""
        with _database_guard("filling the tables"):
            self.prepare(recipe, runtime, provenance)
            _housekeeping(self.clear_finished_checkpoints, recipe, runtime)
            _housekeeping(self.retry_damage_failures, recipe)
        # one heartbeat (and SIGTERM handler: SIGTERM stops the worker like Ctrl-C) for all passes, not one per pass
        with _database_guard("populating the tables"), liveness.heartbeat(self.tables), interrupt_on_sigterm():
            self._work(recipe, order, progress, poll_seconds, timeout)

    def _work(self, recipe: Recipe, order: str, progress: bool, poll_seconds: float, timeout: Optional[float]) -> None:
        started = time.time()
        names = self._step_names(recipe)
        idle_passes = 0
        logged: Tuple[Any, float] = (None, 0.0)
        while True:
            with _database_guard("checking the reservations"):
                cleared = _housekeeping(self.clear_stale_reservations)
            made = self.populate(recipe, order, progress)
            with _database_guard("reading the status"):
                rows = step_status(self, recipe)
                if all(row.state in (DONE, FAILED, BLOCKED) for row in rows):
                    return
                held = [r for r in self.reservations() if r["key_hash"] in names]
            if held or made or cleared:
                idle_passes = 0
            else:
                idle_passes += 1
                if idle_passes >= 2:  # nothing to wait for: never loop forever
                    waiting = [f"{r.name} (seed {r.seed}) step {r.step}" for r in rows if r.state in TRAINABLE]
                    logger.warning("%d step(s) wait but no worker holds or can take them: %s", len(waiting), ", ".join(waiting[:5]))
                    return
            logged = self._log_waiting(names, held, logged)
            if timeout is not None and time.time() - started > timeout:
                raise TimeoutError(f"steps of recipe {recipe.name} still unfinished after {timeout:.0f}s")
            time.sleep(poll_seconds)

    @staticmethod
    def _step_names(recipe: Recipe) -> Dict[str, str]:
        """key hash -> "name (seed s) step l" of every step of ``recipe``."""
        return {
            dj.hash.key_hash(chain.step_key(level)): f"{d.name} (seed {d.seed}) step {level}"
            for d, chain in recipe.transfer_experiments.items()
            for level in range(len(chain))
        }

    @staticmethod
    def _log_waiting(names: Dict[str, str], held: List[Dict[str, Any]], logged: Tuple[Any, float]) -> Tuple[Any, float]:
        """Log at INFO which steps this worker waits for and who holds them, when that changes and at
        most every ``WAIT_LOG_SECONDS`` otherwise; returns what was logged and when."""
        what = tuple(sorted((r["key_hash"], r["host"], r["pid"]) for r in held))
        if what == logged[0] and time.time() - logged[1] < WAIT_LOG_SECONDS:
            return logged
        parts = []
        for row in held:
            beat = "no heartbeat yet" if row["silent_for"] is None else f"last heartbeat {row['silent_for']:.0f}s ago"
            parts.append(f"{names.get(row['key_hash'], row['key_hash'])} held by {row['host']}:{row['pid']} ({beat})")
        if parts:
            logger.info("waiting for %d step(s) other workers train: %s", len(parts), "; ".join(parts))
        else:
            logger.info("waiting for steps whose previous step other workers just finished")
        return what, time.time()


class _DataJointNoise(logging.Filter):
    """Drops DataJoint's empty error line for an interrupted job (``populate`` logs ``str(KeyboardInterrupt())``),
    its "connected to ..." line after the first (it logs one per connection, and a run opens several) or
    all of them (``connection_line=False``) and, with ``quiet``, its automatic reconnections."""

    def __init__(self, quiet: bool, connection_line: bool = True) -> None:
        super().__init__()
        self.quiet = quiet
        self.connection_lines_left = 1 if connection_line else 0

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, StepPruned):  # populate logs the exception it caught: the search says it better
            return False
        message = record.getMessage().strip()
        if CONNECTED.search(message):
            self.connection_lines_left -= 1
            return self.connection_lines_left >= 0
        return bool(message) and not (self.quiet and message.startswith("Reconnecting"))


def _restore_sigterm(handler: Any) -> None:
    """Put ``handler`` back as the SIGTERM handler (from the main thread; elsewhere nothing to restore)."""
    if handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGTERM and SIGINT ignored inside the block (the process is stopping already: the block finishes its
    few queries first), the handlers restored after it. Outside the main thread nothing changes (Python
    lets only the main thread set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _housekeeping(task: Callable[..., int], *args: Any) -> int:
    """Run a cleaning ``task``; a lock conflict with another worker (the server rolled the statement back)
    skips it this time: the next pass, or the next worker, does it."""
    try:
        return task(*args)
    except Exception as err:
        if not database.lock_conflict(err):
            raise
        logger.debug("%s skipped this time: %s", task.__name__, err)
        return 0


@contextlib.contextmanager
def _database_guard(doing: str) -> Iterator[None]:
    """Turn a lost database into the one-line :class:`~nntransfer.errors.DatabaseLost`."""
    try:
        yield
    except DatabaseLost:
        raise
    except Exception as err:
        if database.connection_lost(err):
            raise database.database_lost(err, doing) from err
        raise


def _holder(reservation: Dict[str, Any]) -> str:
    """Who holds a reserved step, for ``status``: ``host pid N`` and the SLURM job the worker runs in."""
    who = f"{reservation['host']} pid {reservation['pid']}"
    return f"{who}, SLURM job {reservation['cluster_job']}" if reservation.get("cluster_job") else who


def _describe(key: Key) -> str:
    return f"step {key.get('transfer_step', '?')} (seed {key.get('seed', '?')})"
