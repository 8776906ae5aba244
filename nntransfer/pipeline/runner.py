"""Running recipes: open the store an address names, check the recipe, train what is not done, report the status.

``run_experiments`` is what ``nntransfer run`` and ``nntransfer.run()`` in a notebook call. It knows a store
by its address only (``local:DIR``, ``datajoint:SCHEMA``; :mod:`nntransfer.pipeline.addresses` opens it) and
hands the store what the run records with each step (:class:`~nntransfer.provenance.RunProvenance`).

Logging: the CLI configures the root logger once (:data:`LOG_FORMAT`, through :class:`ProgressAwareHandler`);
in Python, ``run_experiments`` shows nntransfer's INFO lines (one per epoch with the validation objective,
one per step) on stderr while it runs when nothing configured logging (the root logger has no handler and
the ``nntransfer`` logger no level), so a notebook sees how training goes without any setup.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from nntransfer.configs import runtime as runtime_options
from nntransfer.configs.codec import make_hash
from nntransfer.defaults import FAST_DEV_RUN_BATCHES
from nntransfer.pipeline.addresses import backend_of, existing_store, open_store
from nntransfer.pipeline.backends import store_address
from nntransfer.pipeline.drift import DriftReport, code_drift, retrain_keys, reuse_record
from nntransfer.pipeline.fast_dev_run import FastDevRunResult, check_recipe, refuse_fast_dev_run_option
from nntransfer.pipeline.plan import RunPlan, plan_run
from nntransfer.pipeline.step import trained_in_this_process
from nntransfer.pipeline.store import WAITING, RunSummary, StepState, StepStatus, Store, step_status, summarize_run
from nntransfer.pipeline.validation import preflight, validate_recipe
from nntransfer.provenance import RunProvenance
from nntransfer.recipes.loading import Recipe, as_recipe
from nntransfer.recipes.selection import select_chains
from nntransfer.terminal import PrintableFormatter

logger = logging.getLogger(__name__)

#: one format for nntransfer's and DataJoint's log lines
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_DATEFMT = "%H:%M:%S"
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


def effective_runtime(
    overrides: Optional[Mapping[str, Mapping[str, Any]]] = None, progress: bool = True
) -> Dict[str, Dict[str, Any]]:
    """Runtime options that win over the configs': the environment, then ``overrides``; ``progress=False``
    switches the progress bars off."""
    quiet = {} if progress else {"trainer": {"show_progress": False, "show_epoch_progress": False}}
    return runtime_options.merge(runtime_options.from_environment(), quiet, overrides)


def run_experiments(
    experiments: Any,
    store: Optional[str] = None,
    workdir: Optional[Union[str, Path]] = None,
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
    TransferExperiment}``, a ``TransferExperiment``, an ``Experiment`` or a list of those, in the store at the
    address ``store`` (``local:DIR``, ``datajoint:SCHEMA``, or a registered backend's; default
    ``local:./nntransfer_work``), or its shortcuts ``workdir`` (``local:WORKDIR``) or ``schema``
    (``datajoint:SCHEMA``). ``runtime`` (``{role: {option: value}}``,
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
            address = store_address(store, workdir, schema)
            backend_of(address)  # a bad address is an error before anything loads
            recipe = select_chains(as_recipe(experiments), chains, seeds)
            if dry_run and fast_dev_run:
                raise ValueError("pass either --dry-run or --fast-dev-run, not both")
            if fast_dev_run:
                if worker:
                    raise ValueError("a fast dev run stores nothing, so a worker has nothing to share; use run --fast-dev-run")
                batches = FAST_DEV_RUN_BATCHES if fast_dev_run is True else int(fast_dev_run)
                return _fast_dev_run(recipe, address, order, progress, runtime, batches)
            refuse_fast_dev_run_option(recipe, effective_runtime(runtime, progress))
            if rerun_changed and reuse_changed:
                raise ValueError("pass either --rerun-changed or --reuse-changed, not both")
            if dry_run:
                return _dry_run(recipe, address, progress, runtime, retry_failed, rerun_changed, reuse_changed)
            return _run(recipe, address, order, progress, runtime, worker, retry_failed, poll_seconds, rerun_changed, reuse_changed)
        except KeyboardInterrupt:
            if resume_hint:
                logger.warning("interrupted: %s", resume_hint)
            raise


@dataclass
class CheckedRun:
    """A recipe checked as a run checks it before training (:func:`check_run`), with what training it needs:
    the ``store`` (opened, created if new), the effective ``runtime`` options and the ``provenance`` each
    step records."""

    recipe: Recipe
    store: Store
    runtime: Dict[str, Dict[str, Any]]
    provenance: RunProvenance


def check_run(recipe: Recipe, address: str, progress: bool = True, runtime: Optional[Mapping[str, Mapping[str, Any]]] = None,
              rerun_changed: bool = False, reuse_changed: bool = False) -> CheckedRun:
    """Everything a run does before its first step trains, in the order a run does it: names, data and
    models (:func:`~nntransfer.pipeline.validation.validate_recipe`), stored steps whose code changed
    (:mod:`nntransfer.pipeline.drift`: an error unless ``rerun_changed``, which deletes them and the steps
    after them, or ``reuse_changed``, which records that they were kept), and one real batch through every
    step still to train (:func:`~nntransfer.pipeline.validation.preflight`). What ``run``, ``worker`` and
    ``submit`` share; bad input is a one-line ``ValueError`` before anything is trained."""
    options = effective_runtime(runtime, progress)
    validate_recipe(recipe)  # names, then data and models (preflight): before anything is written
    # the recipe and code loaded now, recorded with each step (recipe.path is None for experiments given as objects)
    provenance = RunProvenance.of(recipe.path, recipe.transfer_experiments.values())
    fingerprints = provenance.code
    store = open_store(address)
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
    return CheckedRun(recipe, store, options, provenance)


def _run(recipe: Recipe, address: str, order, progress, runtime, worker, retry_failed, poll_seconds,
         rerun_changed=False, reuse_changed=False) -> RunResult:
    checked = check_run(recipe, address, progress, runtime, rerun_changed, reuse_changed)
    store, options, provenance = checked.store, checked.runtime, checked.provenance
    before = step_status(store, recipe)
    trained_before = len(trained_in_this_process())
    if retry_failed:
        store.clear_failures(recipe)
    if worker:
        store.work(recipe, order=order, runtime=options, progress=progress, poll_seconds=poll_seconds, provenance=provenance)
    else:
        store.run(recipe, order=order, runtime=options, progress=progress, provenance=provenance)
    after = step_status(store, recipe)
    summary = summarize_run(before, after, store.where, trained_in_this_process()[trained_before:])
    logger.info("run finished: %s; results in %s", summary, store.where)
    return RunResult(after, summary)


def _dry_run(recipe: Recipe, address: str, progress, runtime, retry_failed, rerun_changed, reuse_changed) -> RunPlan:
    """What a run would do per step (:mod:`nntransfer.pipeline.plan`); the same checks before training as a
    run (bad input is still an error), then nothing is trained or written, and no store is created."""
    options = effective_runtime(runtime, progress)
    validate_recipe(recipe)
    fingerprints = RunProvenance.of(recipe.path, recipe.transfer_experiments.values()).code
    stored = existing_store(address)
    keys = [chain.step_key(level) for chain in recipe.transfer_experiments.values() for level in range(len(chain))]
    states = stored.states(keys) if stored is not None else [StepState(WAITING) for _ in keys]
    drift = code_drift(stored, recipe, fingerprints, states) if stored is not None else DriftReport([])
    drift.warn()
    where = stored.where if stored is not None else f"{address}, not created yet"
    retries = retry_failed or backend_of(address).retries_failures
    plan = plan_run(recipe, states, drift, where, rerun_changed, reuse_changed, retry_failed=retries)
    preflight(recipe, options, needs_training=lambda key: make_hash(key) in plan.training)
    return plan


def _fast_dev_run(recipe: Recipe, address: str, order, progress, runtime, batches: int) -> FastDevRunResult:
    """Check the recipe's pending steps for ``batches`` batches each (see ``nntransfer.pipeline.fast_dev_run``):
    the same checks before anything runs as a run, then the steps in memory; the store is only read."""
    options = runtime_options.merge(effective_runtime(runtime, progress), {"trainer": {"fast_dev_run": batches}})
    validate_recipe(recipe)
    stored = existing_store(address)
    preflight(recipe, options, needs_training=lambda key: stored is None or not stored.is_done(key))
    return check_recipe(recipe, stored, options, order)
