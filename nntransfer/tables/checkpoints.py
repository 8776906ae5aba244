"""Checkpoint tables and restoring from them.

The checkpoint tables are declared on a second connection (see :func:`nntransfer.tables.activate`), so a
checkpoint is stored at once, outside the transaction of the ``make`` that trains: a killed job keeps its
checkpoints for the next worker. Their definitions name nnfabrik's tables as ``nnfabrik.<Table>``.
"""

from __future__ import annotations

import tempfile

import torch

from nntransfer.defaults import STORE_NAME
from nntransfer.tables.compat import VerboseDeleteMixin

_CHECKPOINT_BODY = f"""
epoch:                             int              # epoch of creation
---
score:                             float            # current score at epoch
state:                             attach@{STORE_NAME}   # model, optimizer, scheduler, tracker, ... at that epoch
->[nullable] nnfabrik.Fabrikant
trainedmodel_ts=CURRENT_TIMESTAMP: timestamp
"""


class CheckpointMixin(VerboseDeleteMixin):
    """Training state of a ``TrainedModel`` job per saved epoch.

    Attributes:
        trainer/dataset/model/seed: the job's key (-> ``Trainer``, ``Dataset``, ``Model``, ``Seed``).
        epoch (int): the epoch the checkpoint was saved after.
        score (float): the trainer's score at that epoch.
        state (attach): model, optimizer, scheduler, tracker, ... (a ``torch.save`` file).
        fabrikant (nullable): -> ``Fabrikant``.
        trainedmodel_ts (timestamp): when it was saved.
    """

    definition = (
        """
    -> nnfabrik.Trainer
    -> nnfabrik.Dataset
    -> nnfabrik.Model
    -> nnfabrik.Seed
    """
        + _CHECKPOINT_BODY
    )


class TransferredCheckpointMixin(VerboseDeleteMixin):
    """Training state of a ``TransferredTrainedModel`` job per saved epoch.

    Attributes:
        trainer/dataset/model/seed: the step's configs (-> ``Trainer``, ``Dataset``, ``Model``, ``Seed``).
        collapsed_history (varchar(64)): hash of all previous steps.
        transfer_step (int): position of the step in its chain.
        data_transfer (bool): the step receives the previous step's data.
        epoch (int): the epoch the checkpoint was saved after.
        score (float): the trainer's score at that epoch.
        state (attach): model, optimizer, scheduler, tracker, ... (a ``torch.save`` file).
        fabrikant (nullable): -> ``Fabrikant``.
        trainedmodel_ts (timestamp): when it was saved.
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
        + _CHECKPOINT_BODY
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
        key = {k: v for k, v in chosen.items() if k != "score"}
        with tempfile.TemporaryDirectory() as temp_dir:
            path = (self.checkpoint_table & key).fetch1("state", download_path=temp_dir)
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        state["epoch"], state["score"] = int(chosen["epoch"]), float(chosen["score"])
        for name, value in loaded.items():
            if name in state and hasattr(state[name], "load_state_dict"):
                state[name].load_state_dict(value)
            else:
                state[name] = value
