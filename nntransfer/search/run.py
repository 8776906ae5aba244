"""``nntransfer search``: trials of a search space over one chain, run as ordinary chains in a store, with
the study (Optuna) kept beside the steps (``Store.sql_url``: the work folder's SQLite file, or the schema).

    run_search(recipe, space, trials=N, store=...)
      check: the recipe as ``run`` checks it, the space against its chain, the study's name and space
      until the study has N trials:
        under the study's lock: count the trials (n), ask trial n (a sampler seeded with seed and n)
        train the trial's chain (``run_experiments``; steps another trial already stored are reused)
          with a pruner: each validated epoch of the last step is reported; a hopeless one stops (PRUNED)
        tell the study the objective read from the chain's last step (its final evaluation), or FAIL
      then_seeds: the best setting's chain again, on each seed, as ordinary chains

Several processes (``nntransfer search`` started on many machines, on a DataJoint store) share one study:
the lock makes the trial count exact, and two trials with the same setting are the same chain, trained
once. Running the same search again continues the study; it never trains a finished trial again.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import logging
import math
import os
import threading
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from nntransfer.analysis.results import final_rows
from nntransfer.analysis.searches import ABANDONED_ATTR, CHAIN_ATTR, INTERRUPTED_ATTR, STEP_ATTR, short_value
from nntransfer.configs.base import Description
from nntransfer.configs.codec import make_hash
from nntransfer.configs.transfer_experiment import TransferExperiment
from nntransfer.errors import StepPruned
from nntransfer.pipeline.addresses import open_store
from nntransfer.pipeline.backends import store_address
from nntransfer.pipeline.runner import run_experiments
from nntransfer.pipeline.store import DONE, Store
from nntransfer.pipeline.validation import validate_recipe
from nntransfer.recipes.loading import Recipe, import_python, load_recipe
from nntransfer.registry import did_you_mean
from nntransfer.search.space import Choice, IntRange, LogUniform, SearchSpace, Uniform
from nntransfer.trainer.observers import watching_validation

__all__ = ["SearchResult", "run_search", "prepare_search", "load_space", "study_name", "counted_trials", "study_storage"]
logger = logging.getLogger(__name__)



@dataclass
class SearchResult:
    """What a search did: the ``study`` name and where it is, how many trials it ``ran`` now, the study's
    ``finished`` trials and its ``pruned`` ones, the ``best`` trial's number, settings and value (None before one finished), and
    the ``seeds`` rows of ``then_seeds`` (seed -> the best setting's objective on that seed)."""

    study: str
    where: str
    ran: int
    finished: int
    best_number: Optional[int] = None
    best_params: Dict[str, Any] = field(default_factory=dict)
    best_value: Optional[float] = None
    seeds: Dict[int, Optional[float]] = field(default_factory=dict)
    pruned: int = 0

    def __str__(self) -> str:
        pruned = f" and {self.pruned} pruned" if self.pruned else ""
        head = f"study {self.study!r} in {self.where}: {self.finished} finished trial(s){pruned}, {self.ran} run now"
        if self.best_number is None:
            return head + "; none finished with a value"
        settings = ", ".join(f"{k}={short_value(v)}" for k, v in self.best_params.items())
        lines = [head, f"best: trial {self.best_number}, {settings}: {self.best_value:.4f}"]
        values = [v for v in self.seeds.values() if v is not None]
        if self.seeds:
            spread = f"{_mean(values):.4f} ± {_std(values):.4f}" if values else "no value"
            lines.append(f"best setting on seeds {', '.join(map(str, self.seeds))}: {spread} ({len(values)} of {len(self.seeds)})")
        return "\n".join(lines)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _std(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def load_space(reference: Union[str, os.PathLike, SearchSpace]) -> SearchSpace:
    """The ``space`` a Python file (or module) defines; a :class:`SearchSpace` is returned as it is."""
    if isinstance(reference, SearchSpace):
        return reference
    module = import_python(str(reference), what="search space")
    space = getattr(module, "space", None)
    if not isinstance(space, SearchSpace):
        raise ValueError(f"{reference} defines no `space = SearchSpace(...)`")
    space.name = str(reference)
    return space


def study_name(recipe: Recipe, chain: str, seed: int) -> str:
    return f"{recipe.name}:{chain}:seed {seed}"


def _pick_chain(recipe: Recipe, space: SearchSpace, seed: Optional[int]) -> Description:
    names = sorted({d.name for d in recipe.transfer_experiments})
    chain = space.chain or (names[0] if len(names) == 1 else "")
    if not chain:
        raise ValueError(f"the recipe has chains {', '.join(map(repr, names))}: name the one to search (SearchSpace(chain=...) or --chain)")
    found = [d for d in recipe.transfer_experiments if d.name == chain]
    if not found:
        raise ValueError(f"the recipe has no chain {chain!r}{did_you_mean(chain, names)}")
    if seed is not None:
        found = [d for d in found if d.seed == seed]
        if not found:
            raise ValueError(f"chain {chain!r} has no seed {seed}")
    return sorted(found, key=lambda d: d.seed)[0]


def _sampler(space: SearchSpace, trial_number: int):
    """The sampler of trial ``trial_number``: seeded with the space's seed and the trial's number, so that
    a search gives the same trials however many processes share it (TPE: given the same finished trials)."""
    import optuna

    seed = zlib.crc32(f"{space.seed}:{trial_number}".encode())
    if space.sampler in ("random", "grid"):  # grid: the next point is enqueued (_next_grid_point)
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _grid(space: SearchSpace) -> List[Dict[str, Any]]:
    """Every point of a grid space, in an order shuffled by the space's seed (Optuna's GridSampler stops
    the study from inside ``tell``, which an ask-and-tell loop cannot use)."""
    import itertools
    import random

    keys = space.keys()
    points = [dict(zip(keys, values)) for values in itertools.product(*(_grid_values(d) for d in space.params.values()))]
    random.Random(space.seed).shuffle(points)
    return points


def heartbeat_seconds() -> int:
    """Seconds without a beat after which a running trial counts as abandoned (its process was killed):
    ``$NNTRANSFER_HEARTBEAT_TIMEOUT``, else 60, as for workers."""
    value = os.environ.get("NNTRANSFER_HEARTBEAT_TIMEOUT") or "60"
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"NNTRANSFER_HEARTBEAT_TIMEOUT must be a number of seconds, not {value!r}") from None
    if not seconds > 0:
        raise ValueError(f"NNTRANSFER_HEARTBEAT_TIMEOUT must be positive, not {seconds}")
    return max(1, math.ceil(seconds))


def _note_abandoned(study: Any, trial: Any) -> None:
    """Optuna's callback for a running trial whose process stopped beating (failed by
    ``fail_stale_trials``): noted on the study, so that it does not count and its setting is tried again."""
    study.set_user_attr(ABANDONED_ATTR, sorted(set(study.user_attrs.get(ABANDONED_ATTR, [])) | {trial.number}))
    logger.warning("trial %d of study %r was abandoned (its process stopped); its setting is tried again", trial.number, study.study_name)


def study_storage(url: str):
    """Optuna's storage at ``url`` with heartbeats: a running trial beats every few seconds, and one silent
    for :func:`heartbeat_seconds` is failed and tried again by the next process that asks for a trial."""
    import optuna

    grace = heartbeat_seconds()
    with _known_warnings():
        return optuna.storages.RDBStorage(url, heartbeat_interval=max(1, grace // 6), grace_period=grace,
                                          heartbeat_stale_trial_callback=_note_abandoned)  # fmt: skip


@contextlib.contextmanager
def _known_warnings() -> Iterator[None]:
    """Optuna warns that trial heartbeats are experimental and meant for ``optimize``; we use them on
    purpose with ask-and-tell (each trial beats from its own thread), so these warnings say nothing."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        yield


def counted_trials(study: Any) -> List[Any]:
    """The trials that count towards the study's size: all but those stopped from outside (Ctrl-C,
    SIGTERM, a cancelled or timed-out cluster task) and those abandoned by a killed process (failed here
    first), whose settings are tried again. Call it under the study's lock."""
    import optuna

    with _known_warnings():
        optuna.storages.fail_stale_trials(study)
    abandoned = set(study.user_attrs.get(ABANDONED_ATTR, []))
    return [t for t in study.trials if not t.user_attrs.get(INTERRUPTED_ATTR) and t.number not in abandoned]


@contextlib.contextmanager
def _beating(storage: Any, trial_id: int) -> Iterator[None]:
    """While a trial trains: its heartbeat, from a thread."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(storage.get_heartbeat_interval()):
            try:
                storage.record_heartbeat(trial_id)
            except Exception as err:  # the database may be back at the next beat
                logger.debug("trial heartbeat failed: %s", err)

    storage.record_heartbeat(trial_id)
    thread = threading.Thread(target=beat, name="nntransfer-trial-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _pruning(trial: Any, step: Mapping[str, Any], space: SearchSpace):
    """While a trial trains: its searched step reports each validated epoch's objective measure to the trial,
    and stops (:class:`StepPruned`) when the study's pruner finds it hopeless. Earlier steps of the chain
    (shared with other trials) are never pruned. Without a pruner: nothing is watched."""
    if space.pruner is None:
        return contextlib.nullcontext()
    measure = space.split_and_measure()[1]
    wanted = {name: str(value) for name, value in step.items()}

    def watch(uid: Optional[Mapping[str, Any]], epoch: int, results: Mapping[str, Mapping[str, float]]) -> None:
        if uid is None or {name: str(uid.get(name)) for name in wanted} != wanted:
            return
        values = [task[measure] for task in results.values() if measure in task]
        if not values:
            tracked = sorted({name for task in results.values() for name in task})
            raise ValueError(f"the pruner needs validation {measure} every epoch; this trainer tracks {', '.join(tracked)}")
        trial.report(float(values[0]), epoch)
        if trial.should_prune():
            raise StepPruned(f"pruned at epoch {epoch}: validation {measure} {values[0]:.4g} is behind the other trials' there")

    return watching_validation(watch)


def _next_grid_point(space: SearchSpace, counted: Sequence[Any]) -> Dict[str, Any]:
    taken = [t.params for t in counted]
    return next(point for point in _grid(space) if point not in taken)


def _grid_values(distribution) -> List[Any]:
    if isinstance(distribution, Choice):
        return list(distribution.values)
    return list(range(distribution.low, distribution.high + 1, distribution.step))


def _distributions(space: SearchSpace) -> Dict[str, Any]:
    import optuna.distributions as od

    found = {}
    for key, d in zip(space.keys(), space.params.values()):
        if isinstance(d, Uniform):
            found[key] = od.FloatDistribution(float(d.low), float(d.high))
        elif isinstance(d, LogUniform):
            found[key] = od.FloatDistribution(float(d.low), float(d.high), log=True)
        elif isinstance(d, IntRange):
            found[key] = od.IntDistribution(int(d.low), int(d.high), step=int(d.step))
        else:
            found[key] = od.CategoricalDistribution(list(d.values))
    return found


@contextlib.contextmanager
def _study_lock(url: str, name: str) -> Iterator[None]:
    """Held while a process counts the study's trials and asks for the next one: the count is exact with
    many processes. MySQL's named lock for a schema, a file lock beside a SQLite file."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):]).with_suffix(".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    lock = f"nntransfer-search-{make_hash(name)[:32]}"
    with engine.connect() as connection:
        if connection.execute(sqlalchemy.text("SELECT GET_LOCK(:name, 600)"), {"name": lock}).scalar() != 1:
            raise TimeoutError(f"another process held the lock of study {name!r} for 10 minutes")
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:name)"), {"name": lock})
    engine.dispose()


def _objective(store: Store, chain: TransferExperiment, space: SearchSpace) -> Optional[float]:
    """The objective of a trained chain: ``SPLIT MEASURE`` of its last step's final evaluation (plain
    variant); None when the step is not done or the evaluation lacks it."""
    key = chain.step_key(len(chain) - 1)
    if store.states([key])[0].state != DONE:
        return None
    split, measure = space.split_and_measure()
    output = store.load(key).output
    values = [row[-1] for row in final_rows(output.get("final") or {})
              if row[0] == split and row[1] == "plain" and not row[2] and row[5] == measure]  # fmt: skip
    if not values:
        found = sorted({f"{row[0]} {row[5]}" for row in final_rows(output.get("final") or {}) if row[1] == "plain"})
        raise ValueError(f"the objective {space.objective!r} is not in the final evaluation; it has: {', '.join(found) or 'nothing'}")
    return float(values[0])


def _with_seed(chain: TransferExperiment, seed: int) -> TransferExperiment:
    """``chain`` on another seed: every step that trains with the chain's (its last step's) seed; a step with a
    seed of its own (a teacher that the chains of every seed share) stays as it is."""
    moved = copy.deepcopy(chain)
    own = moved[-1].seed
    for step in moved:
        if step.seed == own:
            step.seed = seed
    return moved


@dataclass
class PreparedSearch:
    """A search checked and its study created (:func:`prepare_search`): what :func:`run_search` trains."""

    recipe: Recipe
    description: Description
    base: TransferExperiment
    space: SearchSpace
    study: str
    address: str
    store: Store
    url: str


def prepare_search(
    recipe: Union[str, os.PathLike, Recipe],
    space: Union[str, os.PathLike, SearchSpace],
    trials: int,
    store: Optional[str] = None,
    experiment: Optional[str] = None,
    chain: Optional[str] = None,
    seed: Optional[int] = None,
    study: Optional[str] = None,
) -> PreparedSearch:
    """Check a search before anything trains (the trial count, the space against its chain, the recipe's
    names) and create its study in the store, or find it: a study of that name with another space is a
    one-line ``ValueError``. What ``search`` and ``submit --space`` do first."""
    import optuna

    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"--trials takes a number of at least 1, got {trials!r}")
    loaded = recipe if isinstance(recipe, Recipe) else load_recipe(str(recipe), experiment)
    space = load_space(space)
    if chain:
        space.chain = chain
    description = _pick_chain(loaded, space, seed)
    base = loaded.transfer_experiments[description]
    space.check(base)
    if space.sampler == "grid" and trials > len(_grid(space)):
        raise ValueError(f"the grid has {len(_grid(space))} settings; --trials {trials} asks for more")
    name = study or study_name(loaded, description.name, description.seed)
    address = store_address(store)
    searched = Recipe(loaded.name, loaded.path, {description: base})
    validate_recipe(searched)
    target = open_store(address)
    target.prepare(searched)  # the work folder or the tables exist before the study's database does
    url = target.sql_url()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its INFO lines repeat what nntransfer logs
    described = space.describe()
    with _study_lock(url, name):
        handle = optuna.create_study(study_name=name, storage=url, direction=space.direction, load_if_exists=True)
        stored = handle.user_attrs.get("space")
        if stored is None:
            handle.set_user_attr("space", described)
            handle.set_user_attr("recipe", loaded.name)
            handle.set_user_attr("chain", description.name)
            handle.set_user_attr("seed", description.seed)
        elif stored != described:
            raise ValueError(f"study {name!r} exists in {target.where} with another search space; "
                             "name this search's study with --study NAME")  # fmt: skip
    return PreparedSearch(loaded, description, base, space, name, address, target, url)


def run_search(
    recipe: Union[str, os.PathLike, Recipe],
    space: Union[str, os.PathLike, SearchSpace],
    trials: int,
    store: Optional[str] = None,
    experiment: Optional[str] = None,
    chain: Optional[str] = None,
    seed: Optional[int] = None,
    study: Optional[str] = None,
    then_seeds: Sequence[int] = (),
    runtime: Optional[Mapping[str, Mapping[str, Any]]] = None,
    progress: bool = True,
) -> SearchResult:
    """Run the search (see the module docstring) until the study has ``trials`` trials; returns a
    :class:`SearchResult`. Bad input (a field no step has, a range of the wrong type, fewer than 1 trial,
    a study of that name with another space) is a one-line ``ValueError`` before anything trains
    (:func:`prepare_search`)."""
    import optuna

    prepared = prepare_search(recipe, space, trials, store, experiment, chain, seed, study)
    space, name, url, target, address = prepared.space, prepared.study, prepared.url, prepared.store, prepared.address
    description, base = prepared.description, prepared.base
    distributions = _distributions(space)
    storage = study_storage(url)
    pruner = space.build_pruner() or optuna.pruners.NopPruner()
    ran = 0
    while True:
        with _study_lock(url, name):
            counted = counted_trials(optuna.load_study(study_name=name, storage=storage))
            if len(counted) >= trials:
                break
            handle = optuna.load_study(study_name=name, storage=storage, sampler=_sampler(space, len(counted)), pruner=pruner)
            if space.sampler == "grid":
                handle.enqueue_trial(_next_grid_point(space, counted))
            with _known_warnings():
                trial = handle.ask(distributions)
        values = {key: trial.params[key] for key in space.keys()}
        trial_chain = space.trial_chain(base, values)
        label = f"{description.name} [trial {trial.number}]"
        trial.set_user_attr(CHAIN_ATTR, label)
        searched_step = trial_chain.step_key(len(trial_chain) - 1)
        trial.set_user_attr(STEP_ATTR, make_hash(searched_step))
        logger.info("trial %d of study %r: %s", trial.number, name, ", ".join(f"{k}={short_value(v)}" for k, v in values.items()))
        try:
            with _beating(storage, trial._trial_id), _pruning(trial, searched_step, space):
                run_experiments({Description(label, description.seed): trial_chain}, store=address, progress=progress,
                                runtime=runtime, worker=True, resume_hint=None)  # fmt: skip
            value = _objective(target, trial_chain, space)
        except StepPruned as pruned:
            logger.info("trial %d %s", trial.number, pruned)
            handle.tell(trial, state=optuna.trial.TrialState.PRUNED)
            ran += 1
            continue
        except KeyboardInterrupt:  # not the setting's fault: it is tried again by the next run of the search
            trial.set_user_attr(INTERRUPTED_ATTR, True)
            handle.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        except ValueError:  # the objective is not there: a recipe problem, not the trial's
            handle.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        if value is None or not math.isfinite(value):
            logger.warning("trial %d failed (its chain did not finish); the search goes on", trial.number)
            handle.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            handle.tell(trial, value)
        ran += 1
    final = optuna.load_study(study_name=name, storage=storage)
    finished = [t for t in final.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in final.trials)
    result = SearchResult(name, target.where, ran, len(finished), pruned=pruned)
    if finished:
        best = final.best_trial
        result.best_number, result.best_params, result.best_value = best.number, dict(best.params), float(best.value)
        if then_seeds:
            best_chain = space.trial_chain(base, best.params)
            chains = {Description(f"{description.name} [best of {name}]", int(s)): _with_seed(best_chain, int(s)) for s in then_seeds}
            run_experiments(chains, store=address, progress=progress, runtime=runtime, worker=True, resume_hint=None)
            result.seeds = {d.seed: _objective(target, c, space) for d, c in chains.items()}
    return result
