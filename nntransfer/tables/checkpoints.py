"""Checkpoint tables. They live on a second connection so that a checkpoint is stored at once, outside
the transaction of the ``make`` that trains (a killed job keeps its checkpoints for the next worker)."""

from __future__ import annotations

import datajoint as dj

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
