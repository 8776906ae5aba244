"""Every name a recipe uses, its data and its models are checked before anything is written or trained.

For each config: its ``fn`` must import, and the function may carry a checker, ``fn.check_config(values)``
(``values``: the config's fields and runtime options), defined beside the implementation: the data set
loader checks ``dataset_cls`` against the data set registry, the model builder the model type, the
trainer the optimizer, losses, scheduler, cycler and main-loop modules. A problem is one ``ValueError``
line that names the config class, the field and what exists.

``preflight`` then builds, once per distinct data set and model of the steps still to train, the data
loaders and the model (on the CPU, untrained): a missing data file or a model too large for its input
(``lenet5`` on 8x8 images) is one line naming the experiment and step, before any result or failure
record is written.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Mapping, Optional, Set

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
    steps if None), each distinct data set and model once; ``ValueError`` (one line) on the first that
    fails. Nothing is trained and nothing is written."""
    by_data: Dict[str, Dict[str, Any]] = {}  # data hash -> {"spec", "label", "models": {model hash: label}}
    for description, chain in recipe.transfer_experiments.items():
        for level, step in enumerate(chain):
            if needs_training is not None and not needs_training(chain.step_key(level)):
                continue
            spec = StepSpec.from_experiment(step, runtime)
            label = f"experiment {description.name!r} (seed {description.seed}) step {level}"
            data_hash = make_hash([spec.dataset_fn, spec.config("dataset")])
            entry = by_data.setdefault(data_hash, {"spec": spec, "label": label, "models": {}})
            entry["models"].setdefault(make_hash([spec.model_fn, spec.model_config]), (spec, label))
    if by_data:
        logger.info("checking %d data set(s) and their models before training", len(by_data))
    for entry in by_data.values():
        spec = entry["spec"]
        loaders = _attempt(entry["label"], "data", lambda: resolve_function(spec.dataset_fn)(seed=spec.seed, **spec.config("dataset")))
        for model_spec, label in entry["models"].values():
            _attempt(label, "model", lambda: resolve_function(model_spec.model_fn)(loaders, seed=model_spec.seed, **model_spec.config("model")))


def _attempt(label: str, what: str, build: Callable[[], Any]) -> Any:
    try:
        return build()
    except Exception as err:  # a missing file, a model that does not fit its input, a bad option
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{label}: cannot build its {what}: {message}") from None
