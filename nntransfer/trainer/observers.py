"""Who watches a step's validated epochs from outside its configuration: a search's pruner.

A step's config says what it trains; whether a search stops it early is not part of that config (nor of
its hash). So the search watches from outside, for as long as a ``with watching_validation(callback):``
block runs in the training process: after each validated epoch, once the epoch is checkpointed, the
trainer calls ``callback(uid, epoch, results)`` with the step's key (``uid``) and the normalised validation
results ``{task: {measure: value}}``. A callback that raises :class:`~nntransfer.errors.StepPruned` stops the
step like an interrupt: nothing is stored or recorded as failed, and the step resumes from that epoch's
checkpoint if it is ever trained again.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Callable, Iterator, Mapping, Optional

EpochCallback = Callable[[Optional[Mapping[str, Any]], int, Mapping[str, Mapping[str, float]]], None]

_watching: contextvars.ContextVar[Optional[EpochCallback]] = contextvars.ContextVar("nntransfer_epoch_watcher", default=None)


@contextlib.contextmanager
def watching_validation(callback: EpochCallback) -> Iterator[None]:
    """Within the block, every step trained in this thread reports its validated epochs to ``callback``."""
    token = _watching.set(callback)
    try:
        yield
    finally:
        _watching.reset(token)


def report_validation(uid: Optional[Mapping[str, Any]], epoch: int, results: Mapping[str, Mapping[str, float]]) -> None:
    """What the trainer calls after a validated epoch."""
    callback = _watching.get()
    if callback is not None:
        callback(uid, epoch, results)
