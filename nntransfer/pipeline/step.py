"""One step, built and trained: the single path both stores (work folder and tables) follow.

::

    dataset_fn(seed=seed, [transfer_data=...], **dataset_config, **dataset runtime) -> dataloaders
    model_fn(dataloaders, seed=seed, [state_dict=previous weights, transfer=True], **model_config) -> model
    trainer_fn(model=model, dataloaders=dataloaders, seed=seed, uid=key, cb=checkpoints,
               **trainer_config, **trainer runtime) -> (score, output, model_state)
    output.pop("transfer_data") -> handed on to the next step

``run_step`` does exactly that; ``train_and_store`` adds what every store needs around it: the previous
step's weights and data read from the store, the result saved atomically, the checkpoints cleared only
after the result is safe.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional

from nntransfer.configs.experiment import Experiment
from nntransfer.configs.runtime import RUNTIME_FIELDS
from nntransfer.registry import import_object

logger = logging.getLogger(__name__)

ROLES = ("dataset", "model", "trainer")


def resolve_function(path: str, role: str = "function") -> Callable:
    """The callable a dotted path names (``"package.module.function"``); ``ValueError`` with one line."""
    if callable(path):
        return path
    found = import_object(path, f"{role} function")
    if not callable(found):
        raise ValueError(f"the {role} function {path!r} is a {type(found).__name__}, not a function")
    return found


@dataclass
class StepSpec:
    """What a step is made of: for each role the function's dotted path and its (hashed) config dict,
    the seed, and the runtime options per role (not hashed)."""

    dataset_fn: str
    dataset_config: Dict[str, Any]
    model_fn: str
    model_config: Dict[str, Any]
    trainer_fn: str
    trainer_config: Dict[str, Any]
    seed: int
    runtime: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_experiment(cls, experiment: Experiment, runtime: Optional[Mapping[str, Mapping[str, Any]]] = None) -> "StepSpec":
        """The spec of an experiment; ``runtime`` (``{role: {option: value}}``) wins over its configs' for
        the options each config has (a config class without progress bars gets no ``show_progress``)."""
        options = {role: dict(config.runtime_options()) for role, config in experiment.configs.items()}
        for role, values in (runtime or {}).items():
            known = options.get(role, {})
            known.update({name: value for name, value in values.items() if name in known})
        return cls(
            experiment.dataset.fn, experiment.dataset.to_dict(),
            experiment.model.fn, experiment.model.to_dict(),
            experiment.trainer.fn, experiment.trainer.to_dict(),
            seed=experiment.seed, runtime=options,
        )  # fmt: skip

    def config(self, role: str) -> Dict[str, Any]:
        """The keyword arguments of ``role``'s function: its config and the runtime options it has."""
        values = dict(getattr(self, f"{role}_config"))
        options = {k: v for k, v in self.runtime.get(role, {}).items() if k in RUNTIME_FIELDS[role]}
        values.update(options)
        return values

    @property
    def keep_checkpoints(self) -> bool:
        return bool(self.config("trainer").get("keep_checkpoints", False))


@dataclass
class StepResult:
    """What one step produces. ``transfer_data`` (name -> array) is popped from the trainer's output."""

    score: float
    output: Dict[str, Any]
    model_state: Dict[str, Any]
    transfer_data: Optional[Dict[str, Any]] = None
    seconds: float = 0.0


def _accepts(fn: Callable, name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def run_step(
    spec: StepSpec,
    weights: Optional[Mapping[str, Any]] = None,
    transfer_data: Optional[Mapping[str, Any]] = None,
    uid: Optional[Dict[str, Any]] = None,
    checkpoints: Optional[Callable] = None,
) -> StepResult:
    """Build data and model (from ``weights``, the previous step's, if given), train, collect what the
    step hands on. A non-finite score (a diverged run) is a ``ValueError``."""
    started = time.time()
    dataset_fn = resolve_function(spec.dataset_fn, "dataset")
    model_fn = resolve_function(spec.model_fn, "model")
    trainer_fn = resolve_function(spec.trainer_fn, "trainer")

    data_kwargs = spec.config("dataset")
    if transfer_data is not None:
        data_kwargs["transfer_data"] = dict(transfer_data)
    dataloaders = dataset_fn(seed=spec.seed, **data_kwargs)

    model_kwargs = spec.config("model")
    if weights is not None:
        if not _accepts(model_fn, "state_dict"):
            raise TypeError(f"{spec.model_fn} cannot take the previous step's weights (no 'state_dict' argument)")
        model_kwargs.update(state_dict=weights, transfer=True)
    model = model_fn(dataloaders, seed=spec.seed, **model_kwargs)

    score, output, model_state = trainer_fn(
        model=model, dataloaders=dataloaders, seed=spec.seed, uid=uid, cb=checkpoints, **spec.config("trainer")
    )
    score = float(score)
    if not math.isfinite(score):  # a NULL score would fail the store with an obscure error
        raise ValueError(f"the trainer returned a score of {score}: training diverged; lower the learning rate")
    produced = output.pop("transfer_data", None) if isinstance(output, dict) else None
    return StepResult(score, output, model_state, produced or None, seconds=round(time.time() - started, 3))


@dataclass
class StepMeta:
    """Who a stored step is, for people: recipe name, seed, position in its chain, comment."""

    name: str = ""
    seed: Optional[int] = None
    step: int = 0
    comment: str = ""
    experiment: Optional[Dict[str, Any]] = None  # the step's Experiment.to_dict(), where known


def train_and_store(store, spec: StepSpec, key: Dict[str, Any], previous_key: Optional[Dict[str, Any]], meta: StepMeta) -> StepResult:
    """Train the step ``key`` of ``store`` (see module docstring) and save it. The previous step
    (``previous_key``) must be done; its weights start the model, and its handed-on data reaches the
    data set when ``key["data_transfer"]`` is set."""
    weights = transfer_data = None
    if previous_key is not None:
        weights = store.load_weights(previous_key)
        if key.get("data_transfer"):
            transfer_data = store.load_transfer_data(previous_key)
            if transfer_data is None:
                raise ValueError(
                    f"step {key.get('transfer_step')} sets data_transfer, but the previous step stored no transfer "
                    "data; set compute_transfer_data=True in that step's trainer"
                )
    logger.info("training %s (seed %s) step %d: %s", meta.name, meta.seed, meta.step, meta.comment)
    result = run_step(spec, weights, transfer_data, uid=dict(key), checkpoints=store.checkpoints(key))
    store.save(key, result, meta)
    if not spec.keep_checkpoints:  # only now: a kill before the save resumes from them
        store.clear_checkpoints(key)
    logger.info("finished %s (seed %s) step %d: score %.4f in %.1fs", meta.name, meta.seed, meta.step, result.score, result.seconds)
    return result
