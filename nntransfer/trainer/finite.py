"""Non-finite training stops the step: a loss term, the weights or a Fisher information that is NaN or infinite
is a :class:`TrainingDiverged` (one line naming the epoch and what is not finite), so that nothing of the step
is stored, the step is recorded as failed and its chain stops.

The checks cost one device synchronisation per epoch: the trainer sums each training batch's total loss on the
device and checks the sum (a NaN or an infinity in any batch leaves it non-finite) and the weights after the
epoch; the terms the epoch logged (the task loss and every module's term) then name the culprit.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, List, Mapping, Optional, Tuple

import torch

#: the advice every message ends with
ADVICE = "nothing of this step is stored; lower the learning rate or the weights of the loss terms, or clip gradients"


class TrainingDiverged(ValueError):
    """A loss term, the weights or the Fisher information of a step became NaN or infinite."""


def first_non_finite(tensors: Iterable[Tuple[str, torch.Tensor]]) -> Optional[str]:
    """The name of the first floating-point tensor of ``(name, tensor)`` pairs that holds a NaN or an infinity,
    else None; one device synchronisation when all are finite."""
    named = [(name, tensor) for name, tensor in tensors if torch.is_floating_point(tensor) and tensor.numel()]
    if not named:
        return None
    finite = torch.stack([torch.isfinite(tensor).all() for _, tensor in named])
    if bool(finite.all()):
        return None
    return next(name for (name, _), ok in zip(named, finite.tolist()) if not ok)


def non_finite_terms(training_log: Mapping[str, Any], tasks: int) -> List[str]:
    """The logged training terms whose value of the current epoch (the last of each series) is not finite, as
    ``'name' (value)``, with the task where the step has several; ``training_log`` is the tracker's
    ``log["Training"]``: ``{task: {name: [value per epoch]}}``."""
    found = []
    for task, series in training_log.items():
        if not isinstance(series, Mapping):
            continue
        for name, values in series.items():
            if name == "normalization" or not values:
                continue
            value = float(values[-1])
            if not math.isfinite(value):
                found.append(f"{name!r} of task {task!r} ({value})" if tasks > 1 else f"{name!r} ({value})")
    return found


def loss_diverged(epoch: int, total: float, terms: List[str]) -> TrainingDiverged:
    """The error of an epoch whose summed training loss ``total`` is not finite; ``terms``: ``non_finite_terms``."""
    if not terms:
        named = f"the training loss ({total}) is not finite (a term no module logs)"
    elif len(terms) == 1:
        named = f"the loss term {terms[0]} is not finite"
    else:
        named = f"the loss terms {', '.join(terms)} are not finite"
    return TrainingDiverged(f"training diverged in epoch {epoch}: {named}; {ADVICE}")


def weights_diverged(epoch: int, name: str) -> TrainingDiverged:
    """The error of an epoch after which the model's ``name`` (a parameter or buffer) is not finite."""
    return TrainingDiverged(f"training diverged in epoch {epoch}: the weights {name!r} are not finite; {ADVICE}")


def check_fisher(fisher: Mapping[str, torch.Tensor], whose: str, advice: str) -> None:
    """Refuse a Fisher information with a NaN or an infinity (``whose``: "the previous step's", "this step's"):
    EWC would weight its penalty by it."""
    bad = first_non_finite(fisher.items())
    if bad is not None:
        raise TrainingDiverged(f"{whose} Fisher information of {bad!r} is not finite, so EWC cannot weight its penalty "
                               f"by it; {advice}")
