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
from typing import Any, Dict, Iterator, List, Mapping, Optional

from nntransfer.configs import runtime as runtime_options
from nntransfer.configs.codec import make_hash
from nntransfer.defaults import DEFAULT_WORKDIR
from nntransfer.pipeline.local import LocalStore
from nntransfer.pipeline.store import RunSummary, StepStatus, Store, step_status, summarize_run
from nntransfer.pipeline.validation import preflight, validate_recipe
from nntransfer.provenance import RecipeSource
from nntransfer.recipes.loading import Recipe, as_recipe

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
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATEFMT))
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
) -> RunResult:
    """Run experiments: a recipe (folder, file, module), a dict ``{Description(name, seed):
    TransferExperiment}``, a ``TransferExperiment``, an ``Experiment`` or a list of those; with the local
    backend (work folder ``workdir``) or the tables (``schema``). ``runtime`` (``{role: {option: value}}``,
    e.g. ``{"trainer": {"device": "cpu"}}``) overrides the configs' runtime options. ``worker=True`` keeps
    populating while other workers train steps this one waits for (checking every ``poll_seconds``).

    Returns every step's status (a :class:`RunResult`, whose ``summary`` counts the steps reused, trained
    and failed). Ctrl-C (``KeyboardInterrupt``) propagates after ``resume_hint`` is logged at WARNING
    (None: nothing logged); finished steps are kept and running the same experiments again resumes."""
    with show_progress_logs():
        try:
            return _run(experiments, backend, workdir, schema, order, progress, runtime, worker, retry_failed, poll_seconds)
        except KeyboardInterrupt:
            if resume_hint:
                logger.warning("interrupted: %s", resume_hint)
            raise


def _run(experiments, backend, workdir, schema, order, progress, runtime, worker, retry_failed, poll_seconds) -> RunResult:
    recipe = as_recipe(experiments)
    options = effective_runtime(runtime, progress)
    validate_recipe(recipe)  # names, then data and models (preflight): before anything is written
    RecipeSource.use(recipe.path)  # None for experiments given as objects: no recipe file to record
    store = open_store(backend, workdir=workdir, schema=schema)
    preflight(recipe, options, needs_training=lambda key: not store.is_done(key))
    before = step_status(store, recipe)
    if retry_failed:
        store.clear_failures(recipe)
    if worker:
        store.work(recipe, order=order, runtime=options, progress=progress, poll_seconds=poll_seconds)
    else:
        store.run(recipe, order=order, runtime=options, progress=progress)
    after = step_status(store, recipe)
    summary = summarize_run(before, after, store.where)
    logger.info("run finished: %s; results in %s", summary, store.where)
    return RunResult(after, summary)
