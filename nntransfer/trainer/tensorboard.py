"""The training log as rows, and optional TensorBoard event files of it.

``nntransfer.training_log.tracker_rows`` turns an ``AdvancedTracker`` state (``output["tracker"]``) into
``(mode, task, objective, epoch, value)`` rows; ``nntransfer.analysis`` reads stored results with it, and
``TensorBoardLog`` writes the same rows as TensorBoard scalars while a step trains (runtime option
``tensorboard_dir``: not hashed). TensorBoard is optional: ``pip install "nntransfer[tensorboard]"``.
"""

from __future__ import annotations

import logging
import math
import numbers
from pathlib import Path
from typing import Any, Iterator, Mapping, Tuple

import numpy as np

from nntransfer.training_log import tracker_rows

logger = logging.getLogger(__name__)


def scalar_tag(mode: str, task: str, objective: str) -> str:
    """The TensorBoard tag of a tracked curve: ``Training/<task>/accuracy``, ``Validation/patience``, ``lr``."""
    return "/".join(part for part in (mode, task, objective) if part)


def _final_values(node: Any, path: Tuple[str, ...] = ()) -> Iterator[Tuple[str, float]]:
    if isinstance(node, Mapping):
        for key, child in node.items():
            yield from _final_values(child, path + (str(key),))
    elif isinstance(node, (numbers.Number, np.number)) and not isinstance(node, bool):
        yield "/".join(path), float(node)


class TensorBoardLog:
    """Writes a step's tracked curves to ``<folder>/<run>`` as TensorBoard scalars, epoch by epoch
    (``write_epoch``), and its final evaluation at the end (``write_final``)."""

    def __init__(self, folder: str, run: str) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError(
                "tensorboard_dir is set but TensorBoard is not installed; pip install \"nntransfer[tensorboard]\" "
                "or leave tensorboard_dir empty"
            ) from None
        self.path = Path(folder) / run
        self.writer = SummaryWriter(log_dir=str(self.path))
        self.written_epochs: set = set()
        logger.info("TensorBoard events of this step go to %s", self.path)

    def write_epoch(self, tracker: Mapping[str, Any], epoch: int) -> None:
        """The values of ``epoch`` in the tracker state (written once per epoch)."""
        if epoch in self.written_epochs:
            return
        self.written_epochs.add(epoch)
        for mode, task, objective, row_epoch, value in tracker_rows(tracker):
            if row_epoch == epoch and math.isfinite(value):
                self.writer.add_scalar(scalar_tag(mode, task, objective), value, global_step=epoch)
        self.writer.flush()

    def write_final(self, final: Mapping[str, Any], epoch: int) -> None:
        """Every number of the final evaluation, as ``final/<split>/.../<task>/<objective>`` at ``epoch``."""
        for tag, value in _final_values(final, ("final",)):
            if math.isfinite(value):
                self.writer.add_scalar(tag, value, global_step=epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
