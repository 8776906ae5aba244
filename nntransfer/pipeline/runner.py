"""Running recipes: pick a store, check the recipe, train what is not done, report the status.

``run_experiments`` is what ``nntransfer run`` and ``nntransfer.run()`` in a notebook call; ``open_store``
is how the CLI and the analysis find results. Neither knows more of a backend than its name.

Logging: the CLI configures the root logger once (:data:`LOG_FORMAT`, through :class:`ProgressAwareHandler`);
in Python, ``run_experiments`` shows nntransfer's INFO lines (one per epoch with the validation objective,
one per step) on stderr while it runs when nothing configured logging (the root logger has no handler and
the ``nntransfer`` logger no level), so a notebook sees how training goes without any setup.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from nntransfer.configs import runtime as runtime_options
from nntransfer.configs.codec import make_hash
from nntransfer.defaults import DEFAULT_WORKDIR, FAST_DEV_RUN_BATCHES
from nntransfer.fingerprint import LoadedCode
from nntransfer.pipeline.drift import DriftReport, code_drift, retrain_keys, reuse_record
from nntransfer.pipeline.fast_dev_run import FastDevRunResult, check_recipe, refuse_fast_dev_run_option
from nntransfer.pipeline.local import LocalStore
from nntransfer.pipeline.plan import RunPlan, plan_run
from nntransfer.pipeline.step import trained_in_this_process
from nntransfer.pipeline.store import WAITING, RunSummary, StepState, StepStatus, Store, step_status, summarize_run
from nntransfer.pipeline.validation import preflight, validate_recipe
from nntransfer.provenance import RecipeSource
from nntransfer.recipes.loading import Recipe, as_recipe
from nntransfer.recipes.selection import select_chains
from nntransfer.terminal import PrintableFormatter

logger = logging.getLogger(__name__)

BACKENDS = ("local", "datajoint")
#: one format for nntransfer's and DataJoint's log lines
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_DATEFMT = "%H:%M:%S"
#: characters of a step id shown in tables (``diff`` and ``lineage`` take any unique prefix)
SHORT_ID = 8
#: what ``run_experiments`` logs when it is interrupted (Python callers; the CLI prints its own line)
PYTHON_RESUME_HINT = ("finished steps are kept; call the same run again to resume "
                      "(the interrupted step continues from its last checkpoint)")  # fmt: skip


class ProgressAwareHandler(logging.StreamHandler):
    """A stream handler that writes through ``tqdm.write``: a progress bar on the same terminal is cleared
    first and redrawn below the line, so that bars and log lines do not mix."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def log_handler(stream=None) -> logging.Handler:
    """A :class:`ProgressAwareHandler` with :data:`LOG_FORMAT`."""
    handler = ProgressAwareHandler(stream)
    handler.setFormatter(PrintableFormatter(LOG_FORMAT, LOG_DATEFMT))  # recipe names and errors without escape codes
    return handler


@contextlib.contextmanager
def show_progress_logs() -> Iterator[None]:
    """While the block runs, show nntransfer's INFO lines on stderr if nothing configured logging (the root
    logger has no handler and the ``nntransfer`` logger neither a handler nor a level): what a notebook
    or a plain script sees of a run. Configured logging is left alone."""
    package = logging.getLogger("nntransfer")
    configured = logging.getLogger().handlers or any(not isinstance(h, logging.NullHandler) for h in package.handlers)
    if configured or package.level != logging.NOTSET:
        yield
        return
    handler = log_handler()
    package.addHandler(handler)
    package.setLevel(logging.INFO)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(logging.NOTSET)


class RunResult(list):
    """What :func:`run_experiments` returns: every step's :class:`~nntransfer.pipeline.store.StepStatus` (a
    list, in recipe order), with ``summary`` (a :class:`~nntransfer.pipeline.store.RunSummary`: reused,
    trained, failed, where the results are)."""

    def __init__(self, rows: List[StepStatus], summary: RunSummary) -> None:
        super().__init__(rows)
        self.summary = summary


def step_ids(recipe: Recipe) -> List[str]:
    """The id of every step of ``recipe``, in the order of :func:`~nntransfer.pipeline.store.step_status`:
    the hash of the step's full key, the same in every store (the step's folder name in a work folder)."""
    return [make_hash(chain.step_key(level)) for chain in recipe.transfer_experiments.values() for level in range(len(chain))]


def open_store(
    backend: str = "local",
    workdir: Optional[str] = None,
    schema: Optional[str] = None,
    create: bool = True,
) -> Store:
    """The store by backend name. ``create=False`` is for reading results: a missing work folder or
    schema is then an error instead of an empty place to write to."""
    if backend == "local":
        folder = workdir or DEFAULT_WORKDIR
        if not create and not Path(folder).is_dir():
            raise FileNotFoundError(f"work folder {folder} does not exist; pass the --workdir the recipe ran with")
        return LocalStore(folder)
    if backend == "datajoint":
        # DataJoint is loaded only for this backend: a local run never imports it.
        from nntransfer.tables.store import DataJointStore

        return DataJointStore(schema, create=create)
    raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")


def effective_runtime(
    overrides: Optional[Mapping[str, Mapping[str, Any]]] = None, progress: bool = True
) -> Dict[str, Dict[str, Any]]:
    """Runtime options that win over the configs': the environment, then ``overrides``; ``progress=False``
    switches the progress bars off."""
    quiet = {} if progress else {"trainer": {"show_progress": False, "show_epoch_progress": False}}
    return runtime_options.merge(runtime_options.from_environment(), quiet, overrides)


def run_experiments(
    experiments: Any,
    backend: str = "local",
    workdir: Optional[str] = None,
    schema: Optional[str] = None,
    order: str = "original",
    progress: bool = True,
    runtime: Optional[Mapping[str, Mapping[str, Any]]] = None,
    worker: bool = False,
    retry_failed: bool = False,
    poll_seconds: float = 2.0,
    resume_hint: Optional[str] = PYTHON_RESUME_HINT,
    chains: Optional[Sequence[str]] = None,
    seeds: Optional[Sequence[int]] = None,
    fast_dev_run: Union[bool, int] = False,
    rerun_changed: bool = False,
    reuse_changed: bool = False,
    dry_run: bool = False,
) -> Union[RunResult, FastDevRunResult, RunPlan]:
    """Run experiments: a recipe (folder, file, module), a dict ``{Description(name, seed):
    TransferExperiment}``, a ``TransferExperiment``, an ``Experiment`` or a list of those; with the local
    backend (work folder ``workdir``) or the tables (``schema``). ``runtime`` (``{role: {option: value}}``,
    e.g. ``{"trainer": {"device": "cpu"}}``) overrides the configs' runtime options. ``worker=True`` keeps
    populating while other workers train steps this one waits for (checking every ``poll_seconds``).
    ``chains`` (names) and ``seeds`` run part of the recipe (an unknown one is a one-line ``ValueError``).
    ``fast_dev_run`` (True: 2 batches, or a number of batches) checks the pending steps instead of training
    them and stores nothing (:mod:`nntransfer.pipeline.fast_dev_run`); it returns a ``FastDevRunResult``.
    A stored step trained by user code that has changed since (:mod:`nntransfer.pipeline.drift`) stops the
    run before anything trains (:class:`~nntransfer.errors.CodeChanged`, a ``ValueError``) unless
    ``rerun_changed`` (train it and the steps after it in its chains again) or ``reuse_changed`` (keep it,
    and record that in the step). ``dry_run`` trains and writes nothing and returns what a run would do
    (a :class:`~nntransfer.pipeline.plan.RunPlan`).

    Returns every step's status (a :class:`RunResult`, whose ``summary`` counts the steps reused, trained
    and failed). Ctrl-C (``KeyboardInterrupt``) propagates after ``resume_hint`` is logged at WARNING
    (None: nothing logged); finished steps are kept and running the same experiments again resumes."""
    with show_progress_logs():
        try:
            recipe = select_chains(as_recipe(experiments), chains, seeds)
            if dry_run and fast_dev_run:
                raise ValueError("pass either --dry-run or --fast-dev-run, not both")
            if fast_dev_run:
                if worker:
                    raise ValueError("a fast dev run stores nothing, so a worker has nothing to share; use run --fast-dev-run")
                batches = FAST_DEV_RUN_BATCHES if fast_dev_run is True else int(fast_dev_run)
                return _fast_dev_run(recipe, backend, workdir, schema, order, progress, runtime, batches)
            refuse_fast_dev_run_option(recipe, effective_runtime(runtime, progress))
            if rerun_changed and reuse_changed:
                raise ValueError("pass either --rerun-changed or --reuse-changed, not both")
            if dry_run:
                return _dry_run(recipe, backend, workdir, schema, progress, runtime, retry_failed, rerun_changed, reuse_changed)
            return _run(recipe, backend, workdir, schema, order, progress, runtime, worker, retry_failed, poll_seconds,
                        rerun_changed, reuse_changed)
        except KeyboardInterrupt:
            if resume_hint:
                logger.warning("interrupted: %s", resume_hint)
            raise


def _run(experiments, backend, workdir, schema, order, progress, runtime, worker, retry_failed, poll_seconds,
         rerun_changed=False, reuse_changed=False) -> RunResult:
    recipe = as_recipe(experiments)
    options = effective_runtime(runtime, progress)
    validate_recipe(recipe)  # names, then data and models (preflight): before anything is written
    RecipeSource.use(recipe.path)  # None for experiments given as objects: no recipe file to record
    fingerprints = LoadedCode.use(recipe.transfer_experiments.values())  # the code loaded now, recorded with each step
    store = open_store(backend, workdir=workdir, schema=schema)
    states = store.states([chain.step_key(level) for chain in recipe.transfer_experiments.values() for level in range(len(chain))])
    drift = code_drift(store, recipe, fingerprints, states)
    drift.warn()
    if drift.changed and not (rerun_changed or reuse_changed):
        raise drift.error()
    retrain = retrain_keys(drift, recipe, states) if rerun_changed else []
    again = {make_hash(key) for key in retrain}
    preflight(recipe, options, needs_training=lambda key: make_hash(key) in again or not store.is_done(key))
    if reuse_changed:
        for step in drift.changed:
            store.record_code_reuse(step.key, reuse_record(step, fingerprints[step.id]))
            logger.warning("kept %s although its code changed (%s)", step.where(), step.files_text())
    if retrain:
        logger.warning("training %d stored step(s) again: their code changed, or an earlier step of their chain's did", len(retrain))
        store.delete(retrain)
    before = step_status(store, recipe)
    trained_before = len(trained_in_this_process())
    if retry_failed:
        store.clear_failures(recipe)
    if worker:
        store.work(recipe, order=order, runtime=options, progress=progress, poll_seconds=poll_seconds)
    else:
        store.run(recipe, order=order, runtime=options, progress=progress)
    after = step_status(store, recipe)
    summary = summarize_run(before, after, store.where, step_ids(recipe), trained_in_this_process()[trained_before:])
    logger.info("run finished: %s; results in %s", summary, store.where)
    return RunResult(after, summary)


def _dry_run(recipe: Recipe, backend, workdir, schema, progress, runtime, retry_failed, rerun_changed, reuse_changed) -> RunPlan:
    """What a run would do per step (:mod:`nntransfer.pipeline.plan`); the same checks before training as a
    run (bad input is still an error), then nothing is trained or written, and no store is created."""
    options = effective_runtime(runtime, progress)
    validate_recipe(recipe)
    fingerprints = LoadedCode.use(recipe.transfer_experiments.values())
    stored = _existing_store(backend, workdir, schema)
    keys = [chain.step_key(level) for chain in recipe.transfer_experiments.values() for level in range(len(chain))]
    states = stored.states(keys) if stored is not None else [StepState(WAITING) for _ in keys]
    drift = code_drift(stored, recipe, fingerprints, states) if stored is not None else DriftReport([])
    drift.warn()
    where = stored.where if stored is not None else (
        f"schema {schema}, not created yet" if backend == "datajoint" else f"work folder {workdir or DEFAULT_WORKDIR}, not created yet")
    plan = plan_run(recipe, states, drift, where, rerun_changed, reuse_changed, retry_failed=retry_failed or backend == "local")
    preflight(recipe, options, needs_training=lambda key: make_hash(key) in plan.training)
    return plan


def _fast_dev_run(recipe: Recipe, backend, workdir, schema, order, progress, runtime, batches: int) -> FastDevRunResult:
    """Check the recipe's pending steps for ``batches`` batches each (see ``nntransfer.pipeline.fast_dev_run``):
    the same checks before anything runs as a run, then the steps in memory; the store is only read."""
    options = runtime_options.merge(effective_runtime(runtime, progress), {"trainer": {"fast_dev_run": batches}})
    validate_recipe(recipe)
    stored = _existing_store(backend, workdir, schema)
    preflight(recipe, options, needs_training=lambda key: stored is None or not stored.is_done(key))
    return check_recipe(recipe, stored, options, order)


def _existing_store(backend: str, workdir: Optional[str], schema: Optional[str]) -> Optional[Store]:
    """The store to read finished steps from, or None where nothing was run yet: nothing is created."""
    if backend == "datajoint":
        from nntransfer.tables import database  # DataJoint only for this backend

        name = database.check_schema_name(schema or database.schema_name())
        database.configure()
        if not database.schema_exists(database.connect(), name):
            return None
    elif not Path(workdir or DEFAULT_WORKDIR).is_dir():
        return None
    return open_store(backend, workdir=workdir, schema=schema, create=False)
