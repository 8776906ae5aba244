"""``TrainedModel``: trains one :class:`~nntransfer.configs.Experiment` per row (no transfer chain).

The class is declared by :func:`nntransfer.tables.activate`; ``from nntransfer.tables.trained_model import
TrainedModel`` activates the configured schema on first use (importing this module connects to nothing).
:class:`TrainedModelMixin` holds what the table does: train through
:func:`nntransfer.pipeline.step.run_step` (the one place a step is trained) and store the result.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch

from nntransfer.configs.codec import make_hash
from nntransfer.pipeline.step import StepResult, run_step
from nntransfer.tables import active
from nntransfer.tables.checkpoints import CheckpointRestoreMixin
from nntransfer.tables.provenance import ProvenanceMixin

#: names this module hands out from the active tables (PEP 562 ``__getattr__``)
TABLE_NAMES = ("TrainedModel", "Checkpoint")
__all__ = list(TABLE_NAMES) + ["TrainedModelMixin", "plain_key"]


def __getattr__(name: str) -> Any:
    if name in TABLE_NAMES:
        return getattr(active(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def plain_key(table, key: Dict[str, Any]) -> Dict[str, Any]:
    """``table``'s primary key out of ``key``, with numpy scalars as Python ints/floats (so that hashes
    of it equal those of the keys the configs compute)."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in ((k, key[k]) for k in table.primary_key)}


class TrainedModelMixin(CheckpointRestoreMixin, ProvenanceMixin):
    """A trained model per (dataset, model, trainer, seed).

    Attributes (nnfabrik's ``TrainedModelBase``):
        model/dataset/trainer/seed: the experiment's key (-> ``Model``, ``Dataset``, ``Trainer``, ``Seed``).
        comment (varchar(768)): the trainer, model and dataset comments.
        score (float): the trainer's score.
        output (longblob): the trainer's output (tracker state and final evaluation).
        fabrikant_name (nullable): who trained it (-> ``Fabrikant``, the schema's own row).
        trainedmodel_ts (timestamp): when it was stored.

    Parts: ``ModelStorage`` (the trained state dict), ``Provenance``. Checkpoints: ``checkpoint_table``.
    """

    table_comment = "Trained models (nntransfer)"

    # ------------------------------------------------------------------ training

    def make(self, key: Dict[str, Any]) -> None:
        primary = plain_key(self, key)
        spec = self.nnfabrik.step_spec(primary)
        result = run_step(spec, uid=dict(primary), checkpoints=self.checkpoint_callback())
        self.insert_result(primary, result, comment=self.nnfabrik.comment(primary), fabrikant=self.nnfabrik.Fabrikant.current_user())
        if not spec.keep_checkpoints:
            self.clear_checkpoints(primary)

    # ------------------------------------------------------------------ storing and reading results

    def insert_result(self, primary: Dict[str, Any], result: StepResult, comment: str, fabrikant: Optional[str]) -> None:
        """Insert the row of ``primary`` and its parts (``Provenance``, ``ModelStorage``, and for transfer
        steps ``DataStorage``). Run it in a transaction (``make`` does) to store all or nothing."""
        self.insert1(
            dict(primary, score=result.score, output=result.output, fabrikant_name=fabrikant, comment=comment[:768]),
            allow_direct_insert=True,
        )
        self.record_provenance(primary)
        with tempfile.TemporaryDirectory() as temp_dir:
            name = make_hash(primary)
            if result.transfer_data and hasattr(self, "DataStorage"):
                data_path = os.path.join(temp_dir, name + "_transfer_data.npz")
                np.savez(data_path, **{k: np.asarray(v) for k, v in result.transfer_data.items()})
                self.DataStorage.insert1(dict(primary, transfer_data=data_path))
            state_path = os.path.join(temp_dir, name + ".pth.tar")
            torch.save(result.model_state, state_path)
            self.ModelStorage.insert1(dict(primary, model_state=state_path))

    def fetch_weights(self, key: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The stored weights of the row ``key`` restricts to (on the CPU), or None if it has none."""
        storage = self.ModelStorage & key
        if not storage:
            return None
        with tempfile.TemporaryDirectory() as temp_dir:
            path = storage.fetch1("model_state", download_path=temp_dir)
            return torch.load(path, map_location="cpu", weights_only=True)

    fetch_state_dict = fetch_weights  # the name used before

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_callback(self) -> Callable:
        """nnfabrik's checkpoint callback into ``checkpoint_table``; it keeps this table's connection alive
        while a long step trains (its transaction waits for the result)."""

        def callback(**kwargs):
            self.connection.ping()
            self.call_back(**kwargs)

        return callback

    def clear_checkpoints(self, key: Dict[str, Any]) -> None:
        """Delete the checkpoints of the job ``key``."""
        checkpoints = self.checkpoint_table & {k: key[k] for k in self.primary_key}
        if checkpoints:
            checkpoints.delete_quick()
