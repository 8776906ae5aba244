"""``TrainedModel``: trains one :class:`~nntransfer.configs.Experiment` per row (no transfer chain).

Attributes (nnfabrik's ``TrainedModelBase``): the model/dataset/trainer keys and ``seed``; ``comment``,
``score``, ``output`` (the trainer's output: tracker state and final evaluation), fabrikant, timestamp.
Parts: ``ModelStorage`` (the trained state dict), ``Provenance``. Checkpoints: :class:`Checkpoint`.
"""

from __future__ import annotations

import copy

from nnfabrik.templates.checkpoint import TrainedModelChkptBase

from nntransfer.tables import nnfabrik
from nntransfer.tables.checkpoints import Checkpoint, CheckpointRestoreMixin
from nntransfer.tables.provenance import ProvenanceMixin

__all__ = ["TrainedModel", "Checkpoint"]


@nnfabrik.schema
class TrainedModel(CheckpointRestoreMixin, ProvenanceMixin, TrainedModelChkptBase):
    table_comment = "Trained models (nntransfer)"
    nnfabrik = nnfabrik
    checkpoint_table = Checkpoint

    class ModelStorage(TrainedModelChkptBase.ModelStorage):
        pass

    def make(self, key):
        primary = copy.deepcopy(key)
        super().make(key)
        self.record_provenance(primary)
