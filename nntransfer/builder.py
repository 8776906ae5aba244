"""One training step from config dicts: the path both backends (tables and local) follow.

``dataset_fn(seed, [transfer_data], **dataset_config) -> dataloaders``
``model_fn(dataloaders, seed, [state_dict], **model_config) -> model``
``trainer_fn(model, dataloaders, seed, uid, cb, **trainer_config) -> (score, output, model_state)``
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Union

from nntransfer.database import apply_nnfabrik_fixes

apply_nnfabrik_fixes()
from nnfabrik.builder import resolve_data, resolve_model, resolve_trainer  # noqa: E402

logger = logging.getLogger(__name__)
FnOrName = Union[str, Callable]


@dataclass
class StepResult:
    """What one step produces. ``transfer_data`` (name -> array) is popped from the trainer's output."""

    score: float
    output: Dict[str, Any]
    model_state: Dict[str, Any]
    transfer_data: Optional[Dict[str, Any]] = None


_RESOLVERS = {"dataset": resolve_data, "model": resolve_model, "trainer": resolve_trainer}


def resolve_config_fn(config) -> Callable:
    """The callable a config's ``fn`` names, after checking the names the config refers to
    (``config.check_names()``); ``ValueError`` with one line if either fails."""
    try:
        fn = _RESOLVERS[config.config_name](config.fn)
    except Exception as err:  # ImportError, NameError, AttributeError, TypeError
        raise ValueError(
            f"{type(config).__name__}.fn = {config.fn!r} does not name a function ({type(err).__name__}: {err}); "
            "use a dotted path like 'my_package.module.function'"
        ) from None
    try:
        config.check_names()
    except ValueError as err:
        raise ValueError(f"{type(config).__name__}: {err}") from None
    return fn


def _accepts(fn: Callable, name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _resolve(fn: FnOrName, resolver) -> Callable:
    return resolver(fn) if isinstance(fn, str) else fn


def train_step(
    dataset_fn: FnOrName,
    dataset_config: Mapping[str, Any],
    model_fn: FnOrName,
    model_config: Mapping[str, Any],
    trainer_fn: FnOrName,
    trainer_config: Mapping[str, Any],
    seed: int,
    state_dict: Optional[Mapping[str, Any]] = None,
    transfer_data: Optional[Mapping[str, Any]] = None,
    uid: Optional[Dict[str, Any]] = None,
    cb: Optional[Callable] = None,
) -> StepResult:
    """Build data and model (from the previous step's ``state_dict`` if given) and train."""
    dataset_fn = _resolve(dataset_fn, resolve_data)
    model_fn = _resolve(model_fn, resolve_model)
    trainer_fn = _resolve(trainer_fn, resolve_trainer)

    data_kwargs = dict(dataset_config)
    if transfer_data is not None:
        data_kwargs["transfer_data"] = dict(transfer_data)
    dataloaders = dataset_fn(seed=seed, **data_kwargs)

    model_kwargs = dict(model_config)
    if state_dict is not None:
        if not _accepts(model_fn, "state_dict"):
            raise TypeError(f"{model_fn.__name__} cannot take the previous step's weights (no 'state_dict' argument)")
        model_kwargs.update(state_dict=state_dict, transfer=True)
    model = model_fn(dataloaders, seed=seed, **model_kwargs)

    score, output, model_state = trainer_fn(
        model=model, dataloaders=dataloaders, seed=seed, uid=uid, cb=cb, **dict(trainer_config)
    )
    produced = output.pop("transfer_data", None) if isinstance(output, dict) else None
    return StepResult(float(score), output, model_state, produced or None)
