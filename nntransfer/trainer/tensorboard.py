"""The training log as rows, and optional TensorBoard event files of it.

``nntransfer.training_log.tracker_rows`` turns an ``AdvancedTracker`` state (``output["tracker"]``) into
``(mode, task, objective, epoch, value)`` rows; ``nntransfer.analysis`` reads stored results with it, and
``TensorBoardLog`` writes the same rows as TensorBoard scalars while a step trains (runtime option
``tensorboard_dir``: not hashed), one run per step, named for people (``nntransfer.trainer.run_info``), with
the step's settings as hyper-parameters of TensorBoard's HParams view. TensorBoard is optional:
``pip install "nntransfer[tensorboard]"``.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Tuple

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
    (``write_epoch``), and its final evaluation at the end (``write_final``).

    ``settings`` (flat scalars, ``run_info.flat_settings``) become the run's hyper-parameters: a session
    start of the hparams plugin, without an experiment summary, so that the HParams view lists every step's
    run with the union of their settings as columns and their scalars as metrics. ``first_epoch``: the epoch a
    resumed step restarts from (0: from scratch); what an earlier process wrote to the folder from it on (from
    epoch 1 on) is purged (``purge_step``) and written again, the epochs before it are not written twice."""

    def __init__(self, folder: str, run: str, settings: Optional[Mapping[str, Any]] = None, first_epoch: int = 0) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError(
                "tensorboard_dir is set but TensorBoard is not installed; pip install \"nntransfer[tensorboard]\" "
                "or leave tensorboard_dir empty"
            ) from None
        self.path = Path(folder) / run
        self.writer = SummaryWriter(log_dir=str(self.path), purge_step=max(first_epoch, 1))
        self.written_epochs: set = set(range(1, first_epoch))
        if settings:
            self.write_settings(settings, run)
        logger.info("TensorBoard events of this step go to %s", self.path)

    def write_settings(self, settings: Mapping[str, Any], group: str) -> None:
        """The hparams plugin's session start: the settings that TensorBoard can show (None left out)."""
        from tensorboard.plugins.hparams import summary_v2

        hparams = {name: value for name, value in settings.items() if isinstance(value, (bool, int, float, str))}
        self.writer.file_writer.add_summary(summary_v2.hparams_pb(hparams, trial_id=group))
        self.writer.flush()

    def write_epoch(self, tracker: Mapping[str, Any], epoch: int) -> None:
        """The values of ``epoch`` in the tracker state (written once per epoch)."""
        if epoch in self.written_epochs:
            return
        self.written_epochs.add(epoch)
        for mode, task, objective, row_epoch, value in tracker_rows(tracker):
            if row_epoch == epoch and math.isfinite(value):
                self.writer.add_scalar(scalar_tag(mode, task, objective), value, global_step=epoch)
        self.writer.flush()

    def write_epochs(self, tracker: Mapping[str, Any], last_epoch: int) -> None:
        """The epochs up to ``last_epoch`` not written yet."""
        for epoch in range(1, last_epoch + 1):
            self.write_epoch(tracker, epoch)

    def write_final(self, final: Mapping[str, Any], epoch: int) -> None:
        """Every number of the final evaluation, as ``final/<split>/.../<task>/<objective>`` at ``epoch``."""
        for tag, value in final_values(final):
            self.writer.add_scalar(tag, value, global_step=epoch)
        self.writer.flush()

    def close(self, status: str = "FINISHED") -> None:
        """Close the files; a step that finished (``status``, as MLflow's) ends its HParams session as a success.
        One that stopped (failed, interrupted, pruned) leaves it open: it may resume, and TensorBoard keeps the
        first status it reads."""
        if status == "FINISHED":
            from tensorboard.compat.proto import summary_pb2
            from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

            end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
            summary = summary_pb2.Summary()
            summary.value.add(tag=metadata.SESSION_END_INFO_TAG, tensor=metadata.NULL_TENSOR,
                              metadata=metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(session_end_info=end)))
            self.writer.file_writer.add_summary(summary)
        self.writer.close()


def final_values(final: Mapping[str, Any]) -> Iterator[Tuple[str, float]]:
    """``(final/<split>/.../<task>/<objective>, value)`` for every finite number of a final evaluation."""
    for tag, value in _final_values(final, ("final",)):
        if math.isfinite(value):
            yield tag, value
