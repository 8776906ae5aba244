"""Running recipes: pick a store, check the recipe, train what is not done, report the status.

``run_experiments`` is what ``nntransfer run`` and ``nntransfer.pipeline()`` in a notebook call; ``open_store``
is how the CLI and the analysis find results. Neither knows more of a backend than its name.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from nntransfer.configs import runtime as runtime_options
from nntransfer.defaults import DEFAULT_WORKDIR
from nntransfer.pipeline.local import LocalStore
from nntransfer.pipeline.store import StepStatus, Store, step_status
from nntransfer.pipeline.validation import preflight, validate_recipe
from nntransfer.provenance import RecipeSource
from nntransfer.recipes.loading import as_recipe

logger = logging.getLogger(__name__)

BACKENDS = ("local", "datajoint")


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
) -> List[StepStatus]:
    """Run experiments: a recipe (folder, file, module), a dict ``{Description(name, seed):
    TransferExperiment}``, a ``TransferExperiment``, an ``Experiment`` or a list of those; with the local
    backend (work folder ``workdir``) or the tables (``schema``). ``runtime`` (``{role: {option: value}}``,
    e.g. ``{"trainer": {"device": "cpu"}}``) overrides the configs' runtime options. ``worker=True`` keeps
    populating while other workers train steps this one waits for (checking every ``poll_seconds``). Returns every step's status."""
    recipe = as_recipe(experiments)
    options = effective_runtime(runtime, progress)
    validate_recipe(recipe)  # names, then data and models (preflight): before anything is written
    if recipe.path:
        RecipeSource.path = recipe.path
    store = open_store(backend, workdir=workdir, schema=schema)
    preflight(recipe, options, needs_training=lambda key: not store.is_done(key))
    if retry_failed:
        store.clear_failures(recipe)
    if worker:
        store.work(recipe, order=order, runtime=options, progress=progress, poll_seconds=poll_seconds)
    else:
        store.run(recipe, order=order, runtime=options, progress=progress)
    return step_status(store, recipe)
