"""``TransferredTrainedModel``: trains the steps of :class:`~nntransfer.configs.TransferExperiment` chains.

Attributes (nnfabrik's ``TransferredTrainedModelBase``): ``transfer_step``, the model/dataset/trainer keys,
``seed``, ``collapsed_history`` (hash of the previous step's full key, ``""`` at step 0), ``data_transfer``
(the step received the previous step's data); ``comment``, ``score``, ``output``, fabrikant, timestamp.
Parts: ``ModelStorage`` (trained state dict), ``DataStorage`` (data the step hands to the next step),
``CollapsedHistory`` (step key -> the ``collapsed_history`` of its successor), ``Provenance``.

Which rows can be populated comes from nnfabrik's ``key_source``: step 0 for every config combination,
step k for every ``TrainedModelTransferRecipe`` entry whose previous step is done. Restrict ``populate``
with ``TransferExperiment.get_restrictions(k)`` to train exactly one chain's step.

``make`` is ours rather than nnfabrik's because (1) the previous step's weights go to the model builder,
which loads them leniently and reports what it skipped, and (2) a step's ``transfer_data`` is stored
whenever its trainer produces it, and the next step receives it when its trainer sets ``data_transfer``.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import tempfile
from typing import Any, Dict, Optional

import numpy as np
import torch
from nnfabrik.templates.transfer.checkpoint import TransferredTrainedModelChkptBase

from nntransfer.builder import resolve_config_fn, train_step
from nntransfer.configs.base import make_hash
from nntransfer.tables import nnfabrik
from nntransfer.tables.checkpoints import CheckpointRestoreMixin, TransferredCheckpoint
from nntransfer.tables.nnfabrik import TrainedModelTransferRecipe
from nntransfer.tables.provenance import ProvenanceMixin

__all__ = ["TransferredTrainedModel", "TransferredCheckpoint"]
logger = logging.getLogger(__name__)


@nnfabrik.schema
class TransferredTrainedModel(CheckpointRestoreMixin, ProvenanceMixin, TransferredTrainedModelChkptBase):
    table_comment = "Transferred trained models (nntransfer)"
    nnfabrik = nnfabrik
    checkpoint_table = TransferredCheckpoint
    transfer_recipe = [TrainedModelTransferRecipe]

    class ModelStorage(TransferredTrainedModelChkptBase.ModelStorage):
        pass

    class DataStorage(TransferredTrainedModelChkptBase.DataStorage):
        pass

    class CollapsedHistory(TransferredTrainedModelChkptBase.CollapsedHistory):
        pass

    # ------------------------------------------------------------------ reading results back

    def fetch_state_dict(self, key: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The stored weights of the row ``key`` restricts to (None if it has none)."""
        storage = self.ModelStorage & key
        if not storage:
            return None
        with tempfile.TemporaryDirectory() as temp_dir:
            path = storage.fetch1("model_state", download_path=temp_dir)
            return torch.load(path, map_location="cpu", weights_only=False)

    def fetch_transfer_data(self, key: Dict[str, Any]) -> Optional[Dict[str, np.ndarray]]:
        """The data the row ``key`` restricts to handed to its successor (None if it produced none)."""
        storage = self.DataStorage & key
        if not storage:
            return None
        with tempfile.TemporaryDirectory() as temp_dir:
            path = storage.fetch1("transfer_data", download_path=temp_dir)
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}


    # ------------------------------------------------------------------ training

    def make(self, key):
        primary = {k: key[k] for k in self.heading.primary_key}
        seed = int((self.seed_table & key).fetch1("seed"))
        dataset_fn, dataset_config = (self.dataset_table & key).fn_config
        model_fn, model_config = (self.model_table & key).fn_config
        trainer_fn, trainer_config = (self.trainer_table & key).fn_config

        previous = self.get_prev_key(primary)  # nnfabrik's: empty at step 0
        state_dict = self.fetch_state_dict(previous.proj()) if previous else None
        transfer_data = self.fetch_transfer_data(previous.proj()) if (previous and key["data_transfer"]) else None
        if key["data_transfer"] and transfer_data is None:
            raise ValueError(
                f"step {key['transfer_step']} sets data_transfer, but the previous step stored no transfer data; "
                "set compute_transfer_data=True in the previous step's trainer"
            )

        def checkpoint_callback(**kwargs):
            self.connection.ping()
            self.call_back(**kwargs)

        result = train_step(
            dataset_fn, dataset_config, model_fn, model_config, trainer_fn, trainer_config,
            seed=seed, state_dict=state_dict, transfer_data=transfer_data, uid=copy.deepcopy(primary),
            cb=checkpoint_callback,
        )  # fmt: skip

        if not math.isfinite(result.score):  # DataJoint would store NULL and fail with an obscure error
            raise ValueError(f"the trainer returned a score of {result.score}: training diverged; lower the learning rate")
        comments = [
            (self.trainer_table & key).fetch1("trainer_comment"),
            (self.model_table & key).fetch1("model_comment"),
            (self.dataset_table & key).fetch1("dataset_comment"),
        ]
        row = dict(
            primary,
            score=result.score,
            output=result.output,
            fabrikant_name=self.user_table.get_current_user(),
            comment=self.comment_delimitter.join(comments)[:768],
        )
        self.insert1(row)
        self.CollapsedHistory().add_entry(primary)
        self.record_provenance(primary)
        with tempfile.TemporaryDirectory() as temp_dir:
            name = make_hash(primary)
            if result.transfer_data:
                data_path = os.path.join(temp_dir, name + "_transfer_data.npz")
                np.savez(data_path, **{k: np.asarray(v) for k, v in result.transfer_data.items()})
                self.DataStorage.insert1(dict(primary, transfer_data=data_path))
            state_path = os.path.join(temp_dir, name + ".pth.tar")
            torch.save(result.model_state, state_path)
            self.ModelStorage.insert1(dict(primary, model_state=state_path))

        checkpoints = self.checkpoint_table & primary
        if not trainer_config.get("keep_checkpoints") and checkpoints:
            checkpoints.delete(safemode=False)
        logger.info("trained transfer step %s (score %.4f)", key["transfer_step"], result.score)

    # ------------------------------------------------------------------ filling recipe entries

    @staticmethod
    def add_transfer_experiment(transfer_experiment) -> None:
        """Insert a chain's configs, seeds and one recipe entry per step after the first. Every function
        is resolved before anything is written."""
        for step in transfer_experiment:
            for config in step.configs.values():
                resolve_config_fn(config)
        for step in transfer_experiment:
            step.add_to_table()
        for level in range(1, len(transfer_experiment)):
            TrainedModelTransferRecipe().add_entry(
                transfer_from=transfer_experiment.get_restrictions(level - 1),
                transfer_to=transfer_experiment[level].get_key(),
                transfer_step=level,
                data_transfer=transfer_experiment.step_key(level)["data_transfer"],
            )


