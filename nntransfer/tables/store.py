"""``DataJointStore``: finished steps in the nnfabrik tables of one schema, shared by many workers.

    TransferredTrainedModel            one row per finished step (score, output, fabrikant, comment)
        .ModelStorage / .DataStorage   trained weights / data handed to the next step (external store)
        .CollapsedHistory              step key -> the collapsed_history of its successor
        .Provenance                    package versions, recipe path and commit
    TransferredCheckpoint              checkpoints of steps being trained (a second connection)
    ~jobs                              DataJoint's job reservations: reserved (running), error (failed)

A step's key is the full primary key of ``TransferredTrainedModel`` (``TransferExperiment.step_key``).
:meth:`DataJointStore.run` fills the config tables and populates level by level with DataJoint's job
reservation, so any number of workers can share one schema; ``TransferredTrainedModel.make`` trains each
step through :func:`nntransfer.pipeline.step.train_and_store` with this store.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pymysql
from datajoint.hash import key_hash

from nntransfer.configs.codec import make_hash
from nntransfer.pipeline.step import StepMeta, StepResult, StepSpec
from nntransfer.pipeline.store import (
    BLOCKED,
    DONE,
    FAILED,
    RUNNING,
    WAITING,
    Key,
    StepState,
    Store,
    StoredStep,
    ordered_chains,
    step_status,
)
from nntransfer.recipes.loading import Recipe
from nntransfer.tables import activate
from nntransfer.tables.nnfabrik import add_transfer_experiments

__all__ = ["DataJointStore"]
logger = logging.getLogger(__name__)

DEADLOCK = 1213  # MySQL/MariaDB error code of a deadlock between two transactions
IGNORED_JOB = "job marked 'ignore' in the jobs table"
INTERRUPTIONS = ("SystemExit", "KeyboardInterrupt")


class DataJointStore(Store):
    """The tables of one schema as a :class:`~nntransfer.pipeline.store.Store` (see module docstring).

    Args:
        schema: the schema name (default: the configured one, ``dj.config["custom"]["nnfabrik.my_schema_name"]``).
        create: create the schema if it does not exist; ``False`` (for reading: status, reports) makes a
            missing schema a one-line ``ValueError`` and creates nothing.
        tables: tables already activated (what ``TransferredTrainedModel.make`` passes); no activation then.
    """

    name = "datajoint"

    def __init__(self, schema: Optional[str] = None, create: bool = True, tables=None) -> None:
        self.tables = tables if tables is not None else activate(schema, create=create)
        self.where = f"schema {self.tables.schema_name}"

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
        hashes = [key_hash(key) for key in keys]
        rows = (self.table & keys).fetch(*self.table.primary_key, "score", as_dict=True)
        scores = {key_hash({k: row[k] for k in self.table.primary_key}): float(row["score"]) for row in rows}
        jobs = (self.jobs & {"table_name": self.table.table_name} & [{"key_hash": h} for h in set(hashes)]).fetch(
            "key_hash", "status", "error_message", as_dict=True
        )
        by_hash = {job["key_hash"]: job for job in jobs}
        found = []
        for digest in hashes:
            job = by_hash.get(digest)
            if digest in scores:
                found.append(StepState(DONE, score=scores[digest]))
            elif job is None:
                found.append(StepState(WAITING))
            elif job["status"] == "reserved":
                found.append(StepState(RUNNING))
            elif job["status"] == "error":
                found.append(StepState(FAILED, error=job["error_message"] or "failed (no message recorded)"))
            elif job["status"] == "ignore":  # set by hand: never populated
                found.append(StepState(FAILED, error=IGNORED_JOB))
            else:
                found.append(StepState(WAITING))
        return found

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

    def load_weights(self, key: Key) -> Dict[str, Any]:
        try:
            weights = self.table().fetch_weights(key)
        except Exception as err:  # a missing or damaged file in the external store
            raise ValueError(f"cannot read the weights of {_describe(key)} from {self.where} ({type(err).__name__}: {err})") from None
        if weights is None:
            raise ValueError(f"{self.where} holds no weights for {_describe(key)}")
        return weights

    def load_transfer_data(self, key: Key) -> Optional[Dict[str, np.ndarray]]:
        return self.table().fetch_transfer_data(key)

    # ------------------------------------------------------------------ writing

    def save(self, key: Key, result: StepResult, meta: StepMeta) -> None:
        """Insert the step's row and parts: inside ``make``'s transaction when populating, else in one of
        its own."""
        table = self.table()
        fabrikant = self.tables.Fabrikant.current_user()
        if table.connection.in_transaction:
            table.insert_result(dict(key), result, meta.comment, fabrikant)
        else:
            with table.connection.transaction:
                table.insert_result(dict(key), result, meta.comment, fabrikant)

    def record_failure(self, key: Key, error: BaseException, meta: StepMeta) -> None:
        """Record ``error`` in the jobs table, as ``populate`` does for the jobs it runs."""
        message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.jobs.error(self.table.table_name, dict(key), error_message=message, error_stack=stack)

    def checkpoints(self, key: Key) -> Callable:
        return self.table().checkpoint_callback()

    def clear_checkpoints(self, key: Key) -> None:
        self.table().clear_checkpoints(key)

    def clear_failures(self, recipe: Recipe) -> int:
        """Delete the error entries of ``recipe``'s jobs so that they run again; returns how many."""
        hashes = [key_hash(chain.step_key(level)) for chain in recipe.transfer_experiments.values() for level in range(len(chain))]
        failed = self.jobs & {"table_name": self.table.table_name, "status": "error"} & [{"key_hash": h} for h in hashes]
        count = len(failed)
        if count:
            failed.delete_quick()
            logger.info("cleared %d failed job(s) in %s; they run again", count, self.where)
        return count

    def clear_stale_reservations(self) -> int:
        """Delete reservations whose database connection is gone (a killed worker); returns how many."""
        connection = self.table.connection
        alive = {row[0] for row in connection.query("SELECT id FROM information_schema.processlist").fetchall()}
        reserved = (self.jobs & 'status="reserved"').fetch("table_name", "key_hash", "connection_id", as_dict=True)
        stale = [{"table_name": r["table_name"], "key_hash": r["key_hash"]} for r in reserved if r["connection_id"] not in alive]
        if stale:
            (self.jobs & stale).delete_quick()
            logger.warning("cleared %d reservation(s) left by workers that stopped", len(stale))
        return len(stale)

    # ------------------------------------------------------------------ running

    def prepared(self, key: Key) -> Tuple[str, Dict[str, Dict[str, Any]]]:
        """The recipe name and runtime options :meth:`prepare` remembered for the step ``key`` in this
        process (``("", {})`` for a step it did not prepare)."""
        return self.tables.prepared.get(make_hash(dict(key)), ("", {}))

    def prepare(self, recipe: Recipe, runtime: Optional[Dict[str, Dict[str, Any]]] = None) -> None:
        """Insert every config, seed and recipe entry of ``recipe`` in one transaction (all or nothing;
        retried when concurrent workers deadlock; every config is checked first), and remember each step's runtime options for ``make``."""
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
                options = StepSpec.from_experiment(chain[level], runtime).runtime
                self.tables.prepared[make_hash(chain.step_key(level))] = (description.name, options)

    def populate(self, recipe: Recipe, order: str = "original", progress: bool = True) -> None:
        """One pass: populate every step of ``recipe`` whose previous step is done, level by level, with
        DataJoint's job reservation. A failed job is recorded in the jobs table (its chain stops); an
        interrupted one (SIGTERM, Ctrl-C) is released so that it resumes from its checkpoints."""
        chains = ordered_chains(recipe, order)
        depth = max((len(chain) for _, chain in chains), default=0)
        for level in range(depth):
            keys = [chain.step_key(level) for _, chain in chains if len(chain) > level]
            try:
                outcome = self.table.populate(
                    keys, reserve_jobs=True, suppress_errors=True, return_exception_objects=True,
                    order=order, display_progress=progress,
                )  # fmt: skip
            except (KeyboardInterrupt, SystemExit):
                self.release_interrupted()
                raise
            if any(isinstance(error, KeyboardInterrupt) for _, error in outcome["error_list"]):
                self.release_interrupted()
                raise KeyboardInterrupt

    def release_interrupted(self) -> int:
        """Delete the error entries this process's interrupted jobs left (DataJoint records SIGTERM and
        Ctrl-C as errors), so that they run again; returns how many."""
        errors = self.jobs & {"table_name": self.table.table_name, "status": "error", "pid": os.getpid()}
        rows = errors.fetch("key_hash", "error_message", as_dict=True)
        interrupted = [{"key_hash": r["key_hash"]} for r in rows if (r["error_message"] or "").startswith(INTERRUPTIONS)]
        if interrupted:
            (errors & interrupted).delete_quick()
            logger.warning("released %d interrupted job(s); they resume from their checkpoints", len(interrupted))
        return len(interrupted)

    def run(self, recipe: Recipe, order: str = "original", runtime: Optional[Dict[str, Dict[str, Any]]] = None, progress: bool = True) -> None:
        """Fill the tables and populate every step once (steps other workers hold are left to them)."""
        self.prepare(recipe, runtime)
        self.populate(recipe, order, progress)

    def work(
        self,
        recipe: Recipe,
        order: str = "original",
        runtime: Optional[Dict[str, Dict[str, Any]]] = None,
        progress: bool = True,
        poll_seconds: float = 2.0,
        timeout: Optional[float] = None,
    ) -> None:
        """What a worker does: populate until every step is done, failed or blocked, waiting for steps
        other workers are training and taking over the steps of workers that stopped."""
        self.prepare(recipe, runtime)
        started = time.time()
        while True:
            self.clear_stale_reservations()
            self.populate(recipe, order, progress)
            if all(row.state in (DONE, FAILED, BLOCKED) for row in step_status(self, recipe)):
                return
            if timeout is not None and time.time() - started > timeout:
                raise TimeoutError(f"steps of recipe {recipe.name} still unfinished after {timeout:.0f}s")
            time.sleep(poll_seconds)


def _describe(key: Key) -> str:
    return f"step {key.get('transfer_step', '?')} (seed {key.get('seed', '?')})"
