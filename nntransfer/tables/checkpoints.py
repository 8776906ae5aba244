"""Checkpoint tables. They live on a second connection so that a checkpoint is stored at once, outside
the transaction of the ``make`` that trains (a killed job keeps its checkpoints for the next worker)."""

from __future__ import annotations

import tempfile

import datajoint as dj
import torch

from nntransfer import database
from nntransfer.tables import nnfabrik

_checkpoint_schema = dj.Schema(
    nnfabrik.SCHEMA_NAME,
    context={"nnfabrik": nnfabrik},
    connection=database.clone_connection(dj.conn()),
)

_CHECKPOINT_BODY = """
epoch:                             int              # epoch of creation
---
score:                             float            # current score at epoch
state:                             attach@{store}   # model, optimizer, scheduler, tracker, ... at that epoch
->[nullable] nnfabrik.Fabrikant
trainedmodel_ts=CURRENT_TIMESTAMP: timestamp
"""


@_checkpoint_schema
class Checkpoint(database.VerboseDeleteMixin, dj.Manual):
    """Training state of a ``TrainedModel`` job per saved epoch.

    Attributes: the job's trainer/dataset/model/seed key, ``epoch``; ``score``, ``state`` (attached file).
    """

    definition = (
        """
    -> nnfabrik.Trainer
    -> nnfabrik.Dataset
    -> nnfabrik.Model
    -> nnfabrik.Seed
    """
        + _CHECKPOINT_BODY.format(store=database.STORE_NAME)
    )


@_checkpoint_schema
class TransferredCheckpoint(database.VerboseDeleteMixin, dj.Manual):
    """Training state of a ``TransferredTrainedModel`` job per saved epoch.

    Attributes: the job's key (configs, seed, ``collapsed_history``, ``transfer_step``, ``data_transfer``),
    ``epoch``; ``score``, ``state`` (attached file).
    """

    definition = (
        """
    -> nnfabrik.Trainer
    -> nnfabrik.Dataset
    -> nnfabrik.Model
    -> nnfabrik.Seed
    collapsed_history:                 varchar(64)      # hash of all previous steps
    transfer_step:                     int
    data_transfer:                     bool
    """
        + _CHECKPOINT_BODY.format(store=database.STORE_NAME)
    )


class CheckpointRestoreMixin:
    """Restores the last or best checkpoint of a job for nnfabrik's checkpoint callback protocol.

    Replaces nnfabrik's ``restore_epoch``, which downloads every checkpoint of the job and loads the file
    without ``map_location`` (a job checkpointed on a GPU could not resume on a CPU-only worker). This
    one picks the epoch from the scores first, downloads that one file and loads it onto the CPU (the
    trainer's ``load_state_dict`` calls move it to the model's device).
    """

    def restore_epoch(self, action, uid, maximize_score, state):
        rows = (self.checkpoint_table & uid).fetch("KEY", "score", "epoch", as_dict=True)
        if not rows:
            return
        if action == "last":
            chosen = max(rows, key=lambda row: row["epoch"])
        else:
            chosen = (max if maximize_score else min)(rows, key=lambda row: row["score"])
        key = {k: v for k, v in chosen.items() if k not in ("score",)}
        with tempfile.TemporaryDirectory() as temp_dir:
            path = (self.checkpoint_table & key).fetch1("state", download_path=temp_dir)
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        state["epoch"], state["score"] = int(chosen["epoch"]), float(chosen["score"])
        for name, value in loaded.items():
            if name in state and hasattr(state[name], "load_state_dict"):
                state[name].load_state_dict(value)
            else:
                state[name] = value
