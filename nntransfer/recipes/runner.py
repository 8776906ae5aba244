"""The runner: walks every step of every transfer experiment of a recipe, with one of two backends.

* :class:`LocalBackend` (the embedded default, no database): trains in-process with the same functions
  and keys as the tables, keeping each finished step in ``<workdir>/steps/<hash of the step key>/``
  (``key.json``, ``result.json``, ``output.pkl``, ``model_state.pt``, ``transfer_data.npz``) and skipping
  steps already there.
* :class:`DataJointBackend`: fills the nnfabrik tables and populates ``TransferredTrainedModel`` step by
  step with ``reserve_jobs=True``, so any number of workers can share one database.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import random
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from nntransfer.builder import resolve_config_fn, train_step
from nntransfer.configs.base import Description, make_hash
from nntransfer.configs.transfer_experiment import TransferExperiment
from nntransfer.provenance import RecipeSource
from nntransfer.recipes.loading import Recipe, as_recipe
from nntransfer.trainer.checkpointing import LocalCheckpoints

logger = logging.getLogger(__name__)

ORDERS = ("original", "random")
DONE, RUNNING, FAILED, WAITING, BLOCKED = "done", "running", "failed", "waiting", "blocked"


@dataclass
class StepStatus:
    """The state of one step of one transfer experiment."""

    name: str
    seed: int
    step: int
    comment: str
    state: str
    score: Optional[float] = None
    error: str = ""


Chain = Tuple[Description, TransferExperiment]


def validate_recipe(recipe: Recipe) -> None:
    """Resolve every function a recipe names before anything is written."""
    if not recipe.transfer_experiments:
        raise ValueError(f"recipe {recipe.name} defines no experiments")
    for chain in recipe.transfer_experiments.values():
        for step in chain:
            for config in step.configs.values():
                resolve_config_fn(config)


def ordered_chains(recipe: Recipe, order: str = "original", seed: Optional[int] = None) -> List[Chain]:
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; use one of {', '.join(ORDERS)}")
    chains = list(recipe.transfer_experiments.items())
    if order == "random":
        random.Random(seed).shuffle(chains)
    return chains


def step_hash(chain: TransferExperiment, level: int) -> str:
    """Name of a step's folder in the local work folder: the hash of its full table key."""
    return make_hash(chain.step_key(level))


class LocalBackend:
    """Runs steps in-process and keeps results in a folder (see module docstring)."""

    name = "local"

    def __init__(self, workdir: str = "./nntransfer_work", progress: bool = True):
        self.workdir = Path(workdir)
        self.progress = progress

    def step_dir(self, chain: TransferExperiment, level: int) -> Path:
        return self.workdir / "steps" / step_hash(chain, level)

    def is_done(self, chain: TransferExperiment, level: int) -> bool:
        return (self.step_dir(chain, level) / "result.json").exists()

    def load_result(self, chain: TransferExperiment, level: int) -> Dict:
        folder = self.step_dir(chain, level)
        result = json.loads((folder / "result.json").read_text())
        with open(folder / "output.pkl", "rb") as handle:
            result["output"] = pickle.load(handle)
        return result

    def load_state_dict(self, chain: TransferExperiment, level: int):
        return torch.load(self.step_dir(chain, level) / "model_state.pt", map_location="cpu", weights_only=False)

    def load_transfer_data(self, chain: TransferExperiment, level: int) -> Optional[Dict[str, np.ndarray]]:
        path = self.step_dir(chain, level) / "transfer_data.npz"
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}

    def failure_file(self, chain: TransferExperiment, level: int) -> Path:
        return self.workdir / "failed" / f"{step_hash(chain, level)}.txt"

    def run(self, recipe: Recipe, order: str = "original") -> None:
        """Train every step not done yet. A step that raises is recorded in ``<workdir>/failed/`` (with its
        traceback) and its chain stops there; the other chains go on. Running again retries it."""
        chains = ordered_chains(recipe, order)
        total = sum(len(chain) for _, chain in chains)
        with tqdm(total=total, desc="steps", disable=not self.progress, unit="step") as bar:
            for description, chain in chains:
                for level in range(len(chain)):
                    if not self.is_done(chain, level) and not self._run_recorded(description, chain, level):
                        bar.update(len(chain) - level)
                        break
                    bar.update(1)

    def _run_recorded(self, description: Description, chain: TransferExperiment, level: int) -> bool:
        failure = self.failure_file(chain, level)
        try:
            self.run_step(description, chain, level)
        except Exception as err:  # recorded like a failed job of the tables; KeyboardInterrupt stops the run
            failure.parent.mkdir(parents=True, exist_ok=True)
            failure.write_text(f"{type(err).__name__}: {err}\n\n{traceback.format_exc()}")
            logger.error("%s (seed %s) step %d failed: %s: %s", description.name, description.seed, level, type(err).__name__, err)
            return False
        failure.unlink(missing_ok=True)
        return True

    def run_step(self, description: Description, chain: TransferExperiment, level: int) -> None:
        step = chain[level]
        key = chain.step_key(level)
        state_dict = transfer_data = None
        if level > 0:
            if not self.is_done(chain, level - 1):
                raise RuntimeError(f"{description.name} step {level - 1} is not done; run the steps in order")
            state_dict = self.load_state_dict(chain, level - 1)
            if key["data_transfer"]:
                transfer_data = self.load_transfer_data(chain, level - 1)
                if transfer_data is None:
                    raise ValueError(
                        f"{description.name} step {level} sets data_transfer, but step {level - 1} stored no "
                        "transfer data; set compute_transfer_data=True in that step's trainer"
                    )
        logger.info("training %s (seed %s) step %d: %s", description.name, description.seed, level, step.comment)
        started = time.time()
        # checkpoints outside the step folder: a run killed mid-step resumes from them next time
        checkpoints = LocalCheckpoints(self.workdir / "checkpoints")
        result = train_step(
            step.dataset.fn, step.dataset.to_dict(), step.model.fn, step.model.to_dict(),
            step.trainer.fn, step.trainer.to_dict(), seed=step.seed,
            state_dict=state_dict, transfer_data=transfer_data, uid=dict(key), cb=checkpoints,
        )  # fmt: skip
        self._store(chain, level, description, key, result, started)
        if not getattr(step.trainer, "keep_checkpoints", False):
            checkpoints.clear(dict(key))

    def _store(self, chain, level, description, key, result, started) -> None:
        """Write the step's files to a temporary folder, then rename: a step is there whole or not at all."""
        final = self.step_dir(chain, level)
        temporary = final.parent / f".{final.name}.{os.getpid()}.tmp"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        (temporary / "key.json").write_text(json.dumps({"key": key, "experiment": chain[level].to_dict()}, indent=2, default=str))
        with open(temporary / "output.pkl", "wb") as handle:
            pickle.dump(result.output, handle)
        torch.save(result.model_state, temporary / "model_state.pt")
        if result.transfer_data:
            np.savez(temporary / "transfer_data.npz", **{k: np.asarray(v) for k, v in result.transfer_data.items()})
        summary = dict(
            name=description.name,
            seed=description.seed,
            step=level,
            comment=chain[level].comment,
            score=result.score,
            seconds=round(time.time() - started, 3),
            finished=time.strftime("%Y-%m-%d %H:%M:%S"),
            **RecipeSource.record(),
        )
        (temporary / "result.json").write_text(json.dumps(summary, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(temporary, final)

    def status(self, recipe: Recipe) -> List[StepStatus]:
        rows = []
        for description, chain in recipe.transfer_experiments.items():
            blocked = False
            for level in range(len(chain)):
                entry = StepStatus(description.name, description.seed, level, chain[level].comment, WAITING)
                failure = self.failure_file(chain, level)
                if self.is_done(chain, level):
                    entry.state = DONE
                    entry.score = json.loads((self.step_dir(chain, level) / "result.json").read_text())["score"]
                elif blocked:
                    entry.state = BLOCKED
                elif failure.exists():
                    entry.state, entry.error, blocked = FAILED, failure.read_text().splitlines()[0], True
                rows.append(entry)
        return rows


class DataJointBackend:
    """Fills the nnfabrik tables and populates them with DataJoint's job reservation."""

    name = "datajoint"

    def __init__(self, schema: Optional[str] = None, progress: bool = True, create: bool = True):
        """``create=False`` (for reading: status, reports) refuses a schema that does not exist instead
        of creating an empty one."""
        import sys

        from nntransfer import database

        # the tables bind to their schema when first imported; another schema needs a new process
        loaded = sys.modules.get("nntransfer.tables.nnfabrik")
        if schema and loaded is not None and loaded.SCHEMA_NAME != schema:
            raise ValueError(
                f"the tables of this process are bound to schema {loaded.SCHEMA_NAME!r}; "
                f"use schema {schema!r} in a new Python process"
            )
        if schema:
            database.set_schema_name(schema)
        database.configure()
        connection = database.connect()
        name = database.schema_name()
        if not create and not connection.query(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name=%s", args=(name,)
        ).fetchone():
            raise ValueError(f"schema {name!r} does not exist on the database server; check --schema")
        from nntransfer.tables import nnfabrik, transfer

        self.nnfabrik = nnfabrik
        self.table = transfer.TransferredTrainedModel
        self.progress = progress

    def prepare(self, recipe: Recipe) -> None:
        """Insert every config, seed and recipe entry (in one transaction: all or nothing)."""
        import pymysql

        self.nnfabrik.current_fabrikant()
        connection = self.table.connection
        for attempt in range(5):
            try:
                with connection.transaction:
                    for _, chain in recipe.transfer_experiments.items():
                        self.table.add_transfer_experiment(chain)
                return
            except pymysql.err.OperationalError as err:  # deadlock between workers filling the same rows
                if err.args[0] != 1213 or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def _restrictions(self, chains: Iterable[Chain], level: int) -> List[Dict]:
        return [chain.get_restrictions(level) for _, chain in chains if len(chain) > level]

    def populate_once(self, recipe: Recipe, order: str = "original") -> None:
        chains = ordered_chains(recipe, order)
        depth = max(len(chain) for _, chain in chains)
        for level in range(depth):
            restrictions = self._restrictions(chains, level)
            if restrictions:
                self.table.populate(
                    restrictions, reserve_jobs=True, suppress_errors=True, order=order, display_progress=self.progress
                )

    def run(self, recipe: Recipe, order: str = "original") -> None:
        self.prepare(recipe)
        self.populate_once(recipe, order)

    def work(self, recipe: Recipe, order: str = "original", poll_seconds: float = 2.0, timeout: Optional[float] = None) -> None:
        """Populate until every step is done or failed, waiting for steps other workers are training."""
        self.prepare(recipe)
        started = time.time()
        while True:
            self.clear_stale_reservations()
            self.populate_once(recipe, order)
            states = [row.state for row in self.status(recipe)]
            if all(state in (DONE, FAILED, BLOCKED) for state in states):
                return
            if timeout is not None and time.time() - started > timeout:
                raise TimeoutError(f"steps still unfinished after {timeout:.0f}s")
            time.sleep(poll_seconds)

    def clear_errors(self, recipe: Recipe) -> int:
        """Delete the error entries of this recipe's jobs so that they run again; returns how many."""
        from datajoint.hash import key_hash

        jobs = self.nnfabrik.schema.jobs
        hashes = [key_hash(chain.step_key(level)) for chain in recipe.transfer_experiments.values() for level in range(len(chain))]
        failed = jobs & {"table_name": self.table.table_name, "status": "error"} & [{"key_hash": h} for h in hashes]
        count = len(failed)
        if count:
            failed.delete_quick()
            logger.info("cleared %d failed job(s); they run again", count)
        return count

    def clear_stale_reservations(self) -> int:
        """Delete reservations whose database connection is gone (a killed worker); returns how many."""
        jobs = self.nnfabrik.schema.jobs
        alive = {row[0] for row in self.table.connection.query("SELECT id FROM information_schema.processlist").fetchall()}
        reserved = (jobs & 'status="reserved"').fetch("table_name", "key_hash", "connection_id", as_dict=True)
        stale = [{"table_name": r["table_name"], "key_hash": r["key_hash"]} for r in reserved if r["connection_id"] not in alive]
        if stale:
            (jobs & stale).delete_quick()
            logger.warning("cleared %d reservation(s) left by workers that stopped", len(stale))
        return len(stale)

    def status(self, recipe: Recipe) -> List[StepStatus]:
        from datajoint.hash import key_hash

        jobs = self.nnfabrik.schema.jobs & {"table_name": self.table.table_name}
        job_rows = {row["key_hash"]: row for row in jobs.fetch("key_hash", "status", "error_message", as_dict=True)}
        rows = []
        for description, chain in recipe.transfer_experiments.items():
            blocked = False
            for level in range(len(chain)):
                key = chain.step_key(level)
                entry = StepStatus(description.name, description.seed, level, chain[level].comment, WAITING)
                done = self.table & chain.get_restrictions(level)
                if done:
                    entry.state, entry.score = DONE, float(done.fetch("score")[0])
                elif blocked:
                    entry.state = BLOCKED
                else:
                    job = job_rows.get(key_hash(key))
                    if job is not None and job["status"] == "error":
                        entry.state, entry.error = FAILED, job["error_message"]
                        blocked = True
                    elif job is not None and job["status"] == "reserved":
                        entry.state = RUNNING
                    elif job is not None and job["status"] == "ignore":  # set by hand: never populated
                        entry.state, entry.error = FAILED, "job marked 'ignore' in the jobs table"
                        blocked = True
                rows.append(entry)
        return rows


def run_experiments(
    experiments: Any,
    backend: str = "local",
    workdir: Optional[str] = None,
    schema: Optional[str] = None,
    order: str = "original",
    progress: bool = True,
) -> List[StepStatus]:
    """Run experiments from a notebook: a recipe (folder, file, module), a dict
    ``{Description(name, seed): TransferExperiment}``, a ``TransferExperiment``, an ``Experiment`` or a list
    of those; with the local backend (work folder ``workdir``) or the tables (``schema``). Returns the
    status of every step (score included), as ``nntransfer run`` prints it."""
    recipe = as_recipe(experiments)
    validate_recipe(recipe)
    if recipe.path:
        RecipeSource.path = recipe.path
    runner = make_backend(backend, workdir=workdir, schema=schema, progress=progress)
    runner.run(recipe, order=order)
    return runner.status(recipe)


def make_backend(
    backend: str = "local",
    workdir: Optional[str] = None,
    schema: Optional[str] = None,
    progress: bool = True,
    create: bool = True,
):
    """The backend by name. ``create=False`` is for reading results: a missing work folder or schema is
    then an error instead of an empty place to write to."""
    if backend == "local":
        folder = workdir or "./nntransfer_work"
        if not create and not Path(folder).is_dir():
            raise FileNotFoundError(f"work folder {folder} does not exist; pass the --workdir the recipe ran with")
        return LocalBackend(folder, progress=progress)
    if backend == "datajoint":
        return DataJointBackend(schema, progress=progress, create=create)
    raise ValueError(f"unknown backend {backend!r}; use 'local' or 'datajoint'")


def status_table(rows: List[StepStatus]) -> str:
    """A plain-text table of name, seed, step, state, score (and the error of failed steps)."""
    header = ("name", "seed", "step", "state", "score", "comment")
    lines = [[r.name, str(r.seed), str(r.step), r.state, "" if r.score is None else f"{r.score:.4f}", r.comment] for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    for row, line in zip(rows, lines):
        out.append("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip())
        if row.error:
            out.append(f"    error: {row.error.splitlines()[0] if row.error else ''}")
    return "\n".join(out)
