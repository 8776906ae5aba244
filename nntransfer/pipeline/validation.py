"""Every name a recipe uses, its data and its models are checked before anything is written or trained.

For each config: its ``fn`` must import, and the function may carry a checker, ``fn.check_config(values)``
(``values``: the config's fields and runtime options), defined beside the implementation: the data set
loader checks ``dataset_cls`` against the data set registry, the model builder the model type, the
trainer the optimizer, losses, scheduler, cycler and main-loop modules. A problem is one ``ValueError``
line that names the config class, the field and what exists.

``preflight`` then builds, once per distinct data set and model of the steps still to train, the data
loaders and the model (on the CPU, untrained): a missing data file or a model too large for its input
(``lenet5`` on 8x8 images) is one line naming the experiment and step, before any result or failure
record is written. For a step that receives the previous step's per-example data it compares the two
steps' training examples, and for a step with a teacher it builds the teacher's model for the step's data,
so that a chain which cannot work is refused before its first step trains.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Mapping, Optional, Set

import numpy as np

from nntransfer.configs.base import BaseConfig
from nntransfer.configs.codec import make_hash
from nntransfer.pipeline.step import StepSpec, resolve_function
from nntransfer.recipes.loading import Recipe

logger = logging.getLogger(__name__)


def check_config(config: BaseConfig) -> None:
    """Raise ``ValueError`` (one line) if ``config``'s function or a name it refers to does not exist."""
    name = type(config).__name__
    if not config.fn:
        raise ValueError(f"{name} names no function: set the class attribute fn = 'package.module.function'")
    try:
        function = resolve_function(config.fn, config.config_name)
    except ValueError as err:
        raise ValueError(f"{name}.fn: {err}") from None
    checker = getattr(function, "check_config", None)
    if checker is not None:
        try:
            checker({**config.to_dict(), **config.runtime_options()})
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None


def validate_recipe(recipe: Recipe) -> None:
    """Check every config of every step of ``recipe`` (each distinct config once)."""
    if not recipe.transfer_experiments:
        raise ValueError(f"recipe {recipe.name} defines no experiments")
    seen: Set[str] = set()
    for chain in recipe.transfer_experiments.values():
        for step in chain:
            for config in step.configs.values():
                marker = type(config).__qualname__ + make_hash(config.to_dict())
                if marker not in seen:
                    check_config(config)
                    seen.add(marker)


def preflight(
    recipe: Recipe,
    runtime: Optional[Mapping[str, Mapping[str, Any]]] = None,
    needs_training: Optional[Callable[[Dict[str, Any]], bool]] = None,
) -> None:
    """Build the data and the model of every step still to train (``needs_training(step key)``; all
    steps if None), each distinct data set and model once; compare the examples of steps that hand data
    on and build the teachers; ``ValueError`` (one line) on the first that fails. Nothing is trained and
    nothing is written."""
    loaders: Dict[str, Any] = {}
    built: Set[str] = set()

    def data_of(spec: StepSpec, label: str, exact: bool = False) -> Any:
        # built once per config (any seed shows whether it builds); ``exact``: for this seed (its examples)
        config_hash = make_hash([spec.dataset_fn, spec.config("dataset")])
        found = loaders.get(config_hash) if not exact else loaders.get(make_hash([config_hash, spec.seed]))
        if found is None:
            found = _attempt(label, "data", lambda: resolve_function(spec.dataset_fn)(seed=spec.seed, **spec.config("dataset")))
            loaders.setdefault(config_hash, found)
            loaders[make_hash([config_hash, spec.seed])] = found  # the same build serves an exact lookup
        return found

    def model_of(spec: StepSpec, fn: str, config: Dict[str, Any], data: Any, label: str, what: str = "model") -> None:
        marker = make_hash([fn, config, make_hash([spec.dataset_fn, spec.config("dataset")])])
        if marker not in built:
            _attempt(label, what, lambda: resolve_function(fn)(data, seed=spec.seed, **config))
            built.add(marker)

    pending = 0
    for description, chain in recipe.transfer_experiments.items():
        for level, step in enumerate(chain):
            if needs_training is not None and not needs_training(chain.step_key(level)):
                continue
            pending += 1
            spec = StepSpec.from_experiment(step, runtime)
            label = f"experiment {description.name!r} (seed {description.seed}) step {level}"
            data = data_of(spec, label)
            model_of(spec, spec.model_fn, spec.config("model"), data, label)
            if spec.student_model:
                model_of(spec, *spec.student(), data, label, "student model")
            if level == 0:
                continue
            previous = StepSpec.from_experiment(chain[level - 1], runtime)
            if spec.trainer_config.get("teacher") == "previous":
                model_of(spec, *previous.trained_model(), data, label,
                         "teacher (the previous step's model) for its data")
            if chain.step_key(level).get("data_transfer"):
                _compare_examples(label, getattr(data_of(spec, label, exact=True), "train_ids", None),
                                  getattr(data_of(previous, label, exact=True), "train_ids", None))
    if pending:
        logger.info("checked the data and models of %d step(s) before training", pending)


def _compare_examples(label: str, own: Any, previous: Any) -> None:
    if own is None or previous is None:
        return  # a data set that does not report its examples is checked when the data arrives
    own, previous = np.asarray(own), np.asarray(previous)
    if own.shape != previous.shape or not np.array_equal(own, previous):
        differ = len(set(own.tolist()) - set(previous.tolist()))
        raise ValueError(
            f"{label}: data_transfer refused: it trains on {len(own)} examples, the previous step hands on data for "
            f"{len(previous)}, and {differ} differ; give both steps the same dataset config (split, subset, classes) and seed")


def _attempt(label: str, what: str, build: Callable[[], Any]) -> Any:
    try:
        return build()
    except Exception as err:  # a missing file, a model that does not fit its input, a bad option
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{label}: cannot build its {what}: {message}") from None
