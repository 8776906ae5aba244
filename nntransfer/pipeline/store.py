"""The ``Store`` interface: where finished steps, their weights, handed-on data and failures are kept.

A step is addressed by its full table key (``TransferExperiment.step_key(level)``: the three config keys,
``seed``, ``transfer_step``, ``data_transfer``, ``collapsed_history``), so the same settings are the same
step in every store. Two implementations: :class:`nntransfer.pipeline.local.LocalStore` (a work folder,
``local:DIR``) and ``nntransfer.tables.store.DataJointStore`` (the nnfabrik tables of a schema, shared by many
workers, ``datajoint:SCHEMA``). A new backend is one new subclass registered by name
(:func:`nntransfer.pipeline.backends.register_store`): it implements the abstract methods, and ``open`` and
``exists`` when its stores can be missing; running in-process comes with the base class. What a run records
with each step (versions, recipe, code fingerprint) comes with the step, in ``StepMeta.provenance``.

The status walk (:func:`step_status`) is written once here, over any store:

    done     the step's result is stored (and, in a work folder, its files verify)
    running  a worker or another local run holds the step
    failed   the last attempt raised; the chain stops here until it is retried
    waiting  not started yet
    blocked  an earlier step of its chain failed
"""

from __future__ import annotations

import abc
import contextlib
import logging
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, ContextManager, Dict, Iterator, List, Optional, Sequence, Tuple

from nntransfer.configs.base import Description
from nntransfer.configs.codec import make_hash
from nntransfer.configs.transfer_experiment import TransferExperiment
from nntransfer.errors import StepPruned, StorageError
from nntransfer.pipeline.step import StepMeta, StepResult, StepSpec, train_and_store
from nntransfer.provenance import RunProvenance
from nntransfer.recipes.loading import Recipe
from nntransfer.terminal import printable

logger = logging.getLogger(__name__)

DONE, RUNNING, FAILED, WAITING, BLOCKED = "done", "running", "failed", "waiting", "blocked"
#: waiting, with a checkpoint: stopped mid-training (Ctrl-C, SIGTERM, a killed job, a pruned trial); resumes there
INTERRUPTED = "interrupted"
#: the states of a step that a run or worker may train now
TRAINABLE = (WAITING, INTERRUPTED)
#: characters of a step id wherever one is shown (``diff``, ``lineage`` and ``forget`` take any unique prefix)
SHORT_ID = 8
ORDERS = ("original", "random")
Key = Dict[str, Any]
Chain = Tuple[Description, TransferExperiment]


@dataclass
class StepState:
    """What a store knows of one step: ``state`` (done / running / failed / waiting / interrupted), score,
    error, and for an interrupted step the epoch of its last checkpoint (``resumes_after``)."""

    state: str = WAITING
    score: Optional[float] = None
    error: str = ""
    held_by: str = ""  # for a running step: the process (and cluster job) that holds it, where the store knows
    resumes_after: Optional[int] = None


@dataclass
class StoredStep:
    """A finished step read back: score, the trainer's output, and what the store recorded beside it
    (name, seed, step, comment, seconds, finished, provenance)."""

    score: float
    output: Dict[str, Any]
    info: Dict[str, Any]


@dataclass
class StepStatus:
    """The state of one step of one transfer experiment of a recipe, and its ``id`` (the hash of its full
    key: the same in every store, the step's folder in a work folder; what ``diff``, ``lineage`` and
    ``forget`` take, as a unique prefix too)."""

    name: str
    seed: int  # the chain's (its Description's)
    step: int
    comment: str
    state: str
    score: Optional[float] = None
    error: str = ""
    code: str = ""  # how its code compares with the code loaded now, where it differs (``nntransfer.pipeline.drift``)
    held_by: str = ""  # for a running step: the process (and cluster job) that holds it, where the store knows
    resumes_after: Optional[int] = None  # for an interrupted step: the epoch of its last checkpoint
    id: str = ""
    trained_seed: Optional[int] = None  # the seed the step trains with (its Experiment's; None: not known)

    @property
    def short_id(self) -> str:
        return self.id[:SHORT_ID]


@dataclass
class Submission:
    """Workers submitted to a cluster as one job array (``nntransfer submit``), as the store records it so
    that ``status`` and ``cancel`` on any machine find it: the array's ``job_id``, its number of ``tasks``,
    the ``recipe`` they run, the ``log_dir`` their logs go to, when (``submitted``, the server's clock) and
    from where (``host``, ``user``)."""

    job_id: str
    tasks: int
    recipe: str
    log_dir: str
    submitted: str = ""
    host: str = ""
    user: str = ""


@dataclass
class StoredKey:
    """One finished step as a store lists it: ``id`` (the hash of its key), the full ``key``, ``configs``
    (role -> ``{"class": dotted config class or "", "fields": the hashed fields}``), ``name`` and ``comment``."""

    id: str
    key: Dict[str, Any]
    configs: Dict[str, Dict[str, Any]]
    name: str = ""
    comment: str = ""


@dataclass
class Garbage:
    """What :meth:`Store.collect_garbage` found: ``paths`` nothing stored references (what killed runs leave),
    ``young`` such paths left alone for being younger than the grace period, whether they were ``removed``
    (False for a dry run) and the ``errors`` of those that could not be removed."""

    where: str
    paths: List[str] = field(default_factory=list)
    young: int = 0
    removed: bool = False
    errors: List[str] = field(default_factory=list)

    def __str__(self) -> str:
        done = "removed" if self.removed else "would remove (dry run)"
        line = f"{self.where}: {done} {len(self.paths)} file(s) nothing stored references"
        if self.young:
            line += f"; left {self.young} younger than the grace period (a live run may be storing them)"
        if self.errors:
            line += f"; {len(self.errors)} could not be removed"
        return line


class Store(abc.ABC):
    """Keeps steps. Subclasses implement the reading and writing; :meth:`run` trains in-process."""

    #: the scheme of the backend's addresses (``local``, ``datajoint``), set by ``register_store``
    scheme: str = ""
    #: what follows ``scheme:`` in an address, for messages (``DIR``, ``SCHEMA``)
    location_help: str = "LOCATION"
    #: the location of this store (what follows ``scheme:`` in its address)
    location: str = ""
    #: where the results live, for messages (``work folder ./w``, ``schema lab``)
    where: str = ""
    #: whether what is saved is kept (False for the fast dev run's store, which forgets everything)
    keeps_results: bool = True
    #: whether a run retries the failures recorded before it started (else only when asked: ``retry_failed``)
    retries_failures: bool = True

    @property
    def address(self) -> str:
        """``scheme:location``, what ``--store`` takes (empty for a store without an address)."""
        return f"{self.scheme}:{self.location}" if self.scheme else ""

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, location: str, create: bool = True) -> "Store":
        """The store at ``location``. ``create=False`` (reading: status, reports) makes a store that does not
        exist (:meth:`exists`) a one-line ``FileNotFoundError``. Override it when the constructor does not
        take the location alone."""
        if not create and not cls.exists(location):
            raise FileNotFoundError(f"nothing is stored at {cls.scheme}:{location}; pass the --store the recipe ran with")
        return cls(location)

    @classmethod
    def open_for_reading(cls, location: str) -> "Store":
        """The store at ``location`` for commands that only read it (``status``, ``report``, ``diff``,
        ``lineage``): :meth:`open` with ``create=False`` by default. A backend overrides it where reading
        needs less than writing (the DataJoint store reads its tables without nnfabrik's classes)."""
        return cls.open(location, create=False)

    @classmethod
    def exists(cls, location: str) -> bool:
        """Whether a store is at ``location`` (read-only commands never create one). Stores that always
        exist keep the default."""
        return True

    @classmethod
    def configure_logging(cls, quiet: bool, connection_line: bool = True) -> None:
        """Make the libraries the backend uses log through the command's handler (called by the CLI before
        the store is opened; ``quiet``: warnings only; ``connection_line``: say once where the store is
        reached, as a run does; never for commands that only read). Nothing to do by default."""

    # ------------------------------------------------------------------ sharing with other machines

    @classmethod
    def check_shared(cls, location: str) -> None:
        """Refuse (one-line ``ValueError``) a store at ``location`` that workers on other machines cannot
        reach: what ``nntransfer submit`` checks before it submits anything. By default a store lives on
        this machine only; a backend whose stores every node reaches overrides this (and
        :meth:`worker_environment`, :meth:`record_submission`, :meth:`submissions`)."""
        raise ValueError(f"a {cls.scheme}: store is reachable from this machine only, so workers on other machines "
                         "cannot share it; submit with a store every node reaches, e.g. --store datajoint:SCHEMA")

    def worker_environment(self) -> Dict[str, str]:
        """The environment variables a worker on another machine needs to reach this store as this process
        does (where the database is, who to log in as, where the files are)."""
        return {}

    def record_submission(self, submission: "Submission") -> None:
        """Record workers submitted to a cluster (``nntransfer submit``), for ``status`` and ``cancel``."""
        raise ValueError(f"{self.where} cannot record cluster jobs: it is reachable from this machine only")

    def submissions(self) -> List["Submission"]:
        """The job arrays submitted to work on this store, oldest first (none for a store of one machine)."""
        return []

    def sql_url(self) -> str:
        """An SQLAlchemy URL of a database beside this store's steps, where other libraries keep their
        tables (Optuna's studies, ``nntransfer search``): shared wherever the store is shared. A backend
        without one refuses with one line."""
        raise ValueError(f"{self.where} keeps no database for searches; use a local: or datajoint: store")

    def holds_table(self, name: str) -> bool:
        """Whether the database of :meth:`sql_url` has a table ``name`` (Optuna's ``studies``: whether the
        store holds searches); asking creates nothing. False for a store without that database. Backends
        override it with a cheaper question than SQLAlchemy's (whose import alone takes a third of a second)."""
        import sqlalchemy

        try:
            url = self.sql_url()
        except ValueError:
            return False
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        try:
            return sqlalchemy.inspect(engine).has_table(name)
        finally:
            engine.dispose()

    # ------------------------------------------------------------------ reading

    @abc.abstractmethod
    def states(self, keys: Sequence[Key]) -> List[StepState]:
        """The state of each step (done / running / failed / waiting; never blocked)."""

    @abc.abstractmethod
    def load(self, key: Key) -> StoredStep:
        """A finished step's score, output and record; ``ValueError`` naming what is missing or damaged."""

    @abc.abstractmethod
    def stored_steps(self) -> List[StoredKey]:
        """Every step stored here, with its key and configs (damaged entries skipped with a WARNING)."""

    @abc.abstractmethod
    def load_weights(self, key: Key) -> Dict[str, Any]:
        """A finished step's trained weights (a state dict on the CPU)."""

    @abc.abstractmethod
    def load_transfer_data(self, key: Key) -> Optional[Dict[str, Any]]:
        """The data a finished step handed on (name -> array), or None if it produced none."""

    def is_done(self, key: Key) -> bool:
        return self.states([key])[0].state == DONE

    def code_records(self, keys: Sequence[Key]) -> List[Dict[str, Any]]:
        """What each finished step recorded of the code and packages that trained it (``code_hash``,
        ``code_files``, ``code_reused``, ``nntransfer_version``, ``torch_version``; a key it lacks was not
        recorded). Stores override this with a cheaper read than :meth:`load`."""
        return [self.load(key).info for key in keys]

    def record_code_reuse(self, key: Key, record: Dict[str, Any]) -> None:
        """Record in the finished step ``key`` that it is kept for the code ``record`` describes although the
        code that trained it differs (``reuse_changed``; ``nntransfer.pipeline.drift``). A store that keeps
        nothing (``keeps_results`` False) has nothing to record this in."""

    # ------------------------------------------------------------------ writing

    @abc.abstractmethod
    def save(self, key: Key, result: StepResult, meta: StepMeta) -> None:
        """Store a finished step atomically: afterwards it is there whole, or not at all."""

    @abc.abstractmethod
    def record_failure(self, key: Key, error: BaseException, meta: StepMeta) -> None:
        """Remember that the step raised ``error`` (its chain stops there until it is retried)."""

    @abc.abstractmethod
    def checkpoints(self, key: Key) -> Callable:
        """The checkpoint callback (nnfabrik's protocol) the trainer saves and resumes the step with."""

    @abc.abstractmethod
    def clear_checkpoints(self, key: Key) -> None:
        """Delete the step's checkpoints (called after its result is stored)."""

    @abc.abstractmethod
    def delete(self, keys: Sequence[Key]) -> int:
        """Delete the stored steps ``keys`` in this order, each with everything kept for it (result, weights,
        handed-on data, checkpoints, failure record), so that the next run trains them again; returns how
        many were stored. The caller (``nntransfer.forget``) passes a step's descendants before the step."""

    def clear_failures(self, recipe: Recipe) -> int:
        """Forget the failures of ``recipe``'s steps so that they run again; returns how many."""
        return 0

    def collect_garbage(self, dry_run: bool = False, grace_seconds: float = 3600.0) -> Garbage:
        """Find, and unless ``dry_run`` remove, what no stored step references and killed runs left behind,
        once older than ``grace_seconds`` (``nntransfer gc``). A store that leaves nothing behind keeps the
        default: nothing found."""
        return Garbage(self.where, removed=not dry_run)

    # ------------------------------------------------------------------ running

    def prepare(self, recipe: Recipe, runtime: Optional[Dict[str, Dict[str, Any]]] = None,
                provenance: Optional[RunProvenance] = None) -> None:
        """Make the store ready for ``recipe`` (e.g. fill config tables), remembering the ``runtime`` options
        and ``provenance`` each step is to be trained with where the store needs them. Nothing to do by
        default."""

    def claim(self, key: Key) -> ContextManager[bool]:
        """Hold the step ``key`` for this process while the ``with`` block trains it: yields False if another
        live run holds it (then leave it to that run). By default every step is this process's."""
        return contextlib.nullcontext(True)

    #: seconds :meth:`run` sleeps when every step it could train is held by other runs
    wait_seconds: float = 0.5

    def run(self, recipe: Recipe, order: str = "original", runtime: Optional[Dict[str, Dict[str, Any]]] = None, progress: bool = True,
            provenance: Optional[RunProvenance] = None) -> None:
        """Train every step not done yet, in this process, chain by chain. ``provenance``: what the run
        records with each step (without it, each step's versions and code fingerprint, taken when it trains).

        * A step that raises is recorded as failed and its chain stops there; the other chains go on. A run
          retries the failures recorded before it started, not those another run records meanwhile.
        * Steps another live run holds (:meth:`claim`) are left to it: this run trains the other chains and
          comes back, waiting when nothing else is left, so that two runs share the work step by step.
        * ``KeyboardInterrupt`` (Ctrl-C, and SIGTERM while the run is on) stops the run: what was finished
          is kept, nothing is recorded as failed, and the interrupted step resumes from its checkpoints.
        * :class:`~nntransfer.errors.StorageError` (disk full, unwritable folder) stops the run too; it is
          not the step's failure.
        """
        self.prepare(recipe)
        chains = ordered_chains(recipe, order)
        steps = [(index, level) for index, (_, chain) in enumerate(chains) for level in range(len(chain))]
        states = self.states([chains[index][1].step_key(level) for index, level in steps])
        failed_before = {step for step, found in zip(steps, states) if found.state == FAILED}
        pending = {index: 0 for index in range(len(chains))}  # chain -> its first step not known to be done
        waited: set = set()
        with interrupt_on_sigterm():
            while pending:
                advanced = False
                for index in list(pending):
                    description, chain = chains[index]
                    retry = {level for i, level in failed_before if i == index}
                    level, moved = self._advance(description, chain, pending[index], retry, waited, runtime, provenance)
                    advanced |= moved
                    if level is None:
                        del pending[index]
                    else:
                        pending[index] = level
                if pending and not advanced:  # every step left is another run's: wait for them
                    time.sleep(self.wait_seconds)

    def _advance(self, description: Description, chain: TransferExperiment, level: int, retry: set, waited: set, runtime,
                 provenance: Optional[RunProvenance]) -> Tuple[Optional[int], bool]:
        """Train ``chain`` from step ``level`` on as far as this run may. Returns the step to come back to
        (None: the chain is finished, or stopped at a failed step) and whether anything moved. ``retry``: the
        levels whose failures were recorded before this run started (failures recorded since, by another
        run, stop the chain)."""
        moved = False
        while level < len(chain):
            key = chain.step_key(level)
            if self.is_done(key):
                level, moved = level + 1, True
                continue
            with self.claim(key) as mine:
                if not mine:
                    if (description, level) not in waited:
                        waited.add((description, level))
                        logger.info("%s (seed %s) step %d is being trained by another run; training other steps meanwhile",
                                    description.name, description.seed, level)
                    return level, moved
                if self.is_done(key):  # another run finished it meanwhile
                    level, moved = level + 1, True
                    continue
                if level not in retry and self.states([key])[0].state == FAILED:
                    logger.error("%s (seed %s) step %d failed in another run; its chain stops here", description.name, description.seed, level)
                    return None, True
                if not self._train_or_record(description, chain, level, runtime, provenance):
                    return None, True
                level, moved = level + 1, True
        return None, True

    def _train_or_record(self, description: Description, chain: TransferExperiment, level: int, runtime,
                         provenance: Optional[RunProvenance]) -> bool:
        """Train one step; False if it failed (recorded). Interrupts and storage errors propagate."""
        try:
            self.train(description, chain, level, runtime, provenance)
        except StepPruned as err:
            logger.info("%s (seed %s) step %d: %s", description.name, description.seed, level, err)
            raise
        except KeyboardInterrupt as err:
            logger.warning("interrupted (%s) while training %s (seed %s) step %d; it resumes from its checkpoints next time",
                           str(err) or "Ctrl-C", description.name, description.seed, level)
            raise
        except StorageError:
            raise
        except Exception as err:
            logger.error("%s (seed %s) step %d failed: %s: %s", description.name, description.seed, level, type(err).__name__, err)
            self.record_failure(chain.step_key(level), err, step_meta(description, chain, level))
            return False
        return True

    def train(self, description: Description, chain: TransferExperiment, level: int, runtime: Optional[Dict[str, Dict[str, Any]]] = None,
              provenance: Optional[RunProvenance] = None) -> StepResult:
        """Train step ``level`` of ``chain`` in this process and store it, with what ``provenance`` records of
        it; the step before must be done."""
        previous = chain.step_key(level - 1) if level else None
        if previous is not None and not self.is_done(previous):
            raise RuntimeError(f"{description.name} step {level - 1} is not done; run the steps in order")
        spec = StepSpec.from_experiment(chain[level], runtime)
        earlier = [StepSpec.from_experiment(chain[k], runtime) for k in range(level)]
        return train_and_store(self, spec, chain.step_key(level), previous, step_meta(description, chain, level, provenance), earlier)

    def work(self, recipe: Recipe, order: str = "original", runtime: Optional[Dict[str, Dict[str, Any]]] = None, progress: bool = True,
             poll_seconds: float = 2.0, provenance: Optional[RunProvenance] = None) -> None:
        """What a worker does: here the same as :meth:`run` (stores shared by many workers override it)."""
        self.run(recipe, order, runtime, progress, provenance)


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """While the block runs, SIGTERM (``docker compose stop``, a cluster pre-empting the job, ``kill``) raises
    ``KeyboardInterrupt`` like Ctrl-C, so that a run stops the same way for both; the previous handler is
    restored afterwards. Signal handlers belong to the main thread: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def step_meta(description: Description, chain: TransferExperiment, level: int, provenance: Optional[RunProvenance] = None) -> StepMeta:
    """Who step ``level`` of ``chain`` is, and what ``provenance`` records of it."""
    key = chain.step_key(level)
    return StepMeta(description.name, chain[level].seed, level, chain[level].comment, chain[level].to_dict(),
                    provenance.for_step(key) if provenance is not None else {})


def ordered_chains(recipe: Recipe, order: str = "original", seed: Optional[int] = None) -> List[Chain]:
    """The recipe's chains in ``order`` (``original``, or ``random`` so that workers spread out)."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; use one of {', '.join(ORDERS)}")
    chains = list(recipe.transfer_experiments.items())
    if order == "random":
        random.Random(seed).shuffle(chains)
    return chains


def step_status(store: Store, recipe: Recipe, keys: Optional[Sequence[Key]] = None) -> List[StepStatus]:
    """The state of every step of ``recipe`` in ``store``, chain by chain (see module docstring). ``keys``: the
    steps' keys in recipe order, if already computed (hashing every config again is most of the work)."""
    steps = [(d, chain, level) for d, chain in recipe.transfer_experiments.items() for level in range(len(chain))]
    keys = list(keys) if keys is not None else [chain.step_key(level) for _, chain, level in steps]
    states = store.states(keys)
    rows: List[StepStatus] = []
    blocked_chain = None
    for (description, chain, level), key, found in zip(steps, keys, states):
        if level == 0:
            blocked_chain = None
        row = StepStatus(description.name, description.seed, level, chain[level].comment, found.state, found.score, found.error,
                         held_by=found.held_by if found.state == RUNNING else "", resumes_after=found.resumes_after, id=make_hash(key),
                         trained_seed=chain[level].seed)
        if found.state != DONE and blocked_chain is chain:
            row.state, row.error = BLOCKED, ""
        elif found.state == FAILED:
            blocked_chain = chain
        rows.append(row)
    return rows


def status_table(rows: List[StepStatus], score_label: str = "score", show_ids: bool = True) -> str:
    """A plain-text table of name, seed, step, state, score (headed ``score_label``, e.g. ``val accuracy``),
    the short step ids (``show_ids``), comment, and the first line of each error."""
    header = ["name", "seed", "step", "state", score_label] + (["step id"] if show_ids else []) + ["comment"]
    lines = []
    for r in rows:
        seed = str(r.seed) if r.trained_seed in (None, r.seed) else f"{r.seed} (trained {r.trained_seed})"
        line = [printable(r.name), seed, str(r.step), r.state, "" if r.score is None else f"{r.score:.4f}"]
        lines.append(line + ([r.short_id] if show_ids else []) + [printable(r.comment)])
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    for row, line in zip(rows, lines):
        out.append("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip())
        if row.error:
            out.append(f"    error: {printable(row.error.splitlines()[0])}")
        if row.code:
            out.append(f"    code: {row.code}")
        if row.held_by:
            out.append(f"    held by: {printable(row.held_by)}")
        if row.state == INTERRUPTED and row.resumes_after is not None:
            out.append(f"    resumes from its checkpoint of epoch {row.resumes_after}")
    return "\n".join(out)


@dataclass
class RunSummary:
    """What one run did, counted over the recipe's steps (a step that several chains share once):
    ``reused`` (done before it started), ``trained`` (trained and stored by this run), ``failed`` (failed
    now), ``other`` (state -> count of the steps neither done nor failed: running elsewhere, waiting,
    blocked), ``where`` the results are (``work folder ./w``, ``schema lab``) and ``elsewhere`` (done
    since it started, trained by other runs or workers sharing the store)."""

    reused: int
    trained: int
    failed: int
    other: Dict[str, int]
    where: str
    elsewhere: int = 0

    def __str__(self) -> str:
        parts = [f"{self.reused} reused", f"{self.trained} trained"]
        parts += [f"{self.elsewhere} trained by other runs"] if self.elsewhere else []
        parts += [f"{self.failed} failed"]
        parts += [f"{count} {state}" for state, count in self.other.items() if count]
        return ", ".join(parts)


def summarize_run(before: Sequence[StepStatus], after: Sequence[StepStatus], where: str, trained_here: Collection[str] = ()) -> RunSummary:
    """Compare the status of the same steps before and after a run (both from :func:`step_status`; a step
    several chains share counts once, by its id). ``trained_here``: the ids of
    the steps this run trained and stored (``nntransfer.pipeline.step.trained_in_this_process``); a step
    done since the run started that it did not train was trained elsewhere."""
    steps: Dict[str, Tuple[StepStatus, StepStatus]] = {}
    for old, new in zip(before, after):
        steps.setdefault(new.id, (old, new))
    mine = set(trained_here)
    counts = {"reused": 0, "trained": 0, "elsewhere": 0, "failed": 0}
    other: Dict[str, int] = {}
    for step_id, (old, new) in steps.items():
        if new.state == DONE:
            counts["trained" if step_id in mine else "reused" if old.state == DONE else "elsewhere"] += 1
        elif new.state == FAILED:
            counts["failed"] += 1
        else:
            other[new.state] = other.get(new.state, 0) + 1
    return RunSummary(counts["reused"], counts["trained"], counts["failed"], other, where, counts["elsewhere"])
