"""``TransferredTrainedModel``: trains the steps of :class:`~nntransfer.configs.TransferExperiment` chains.

The class is declared by :func:`nntransfer.tables.activate`; ``from nntransfer.tables.transfer import
TransferredTrainedModel`` activates the configured schema on first use (importing this module connects to
nothing). :class:`TransferredTrainedModelMixin` holds what the table does.

Which rows can be populated comes from nnfabrik's ``key_source``: step 0 for every config combination,
step k for every ``TrainedModelTransferRecipe`` entry whose previous step is done. Restrict ``populate``
with ``TransferExperiment.step_key(k)`` (or ``get_restrictions(k)``) to train exactly one chain's step.
"""

from __future__ import annotations

import tempfile
from typing import Any, Dict, Optional

import numpy as np

from nntransfer.configs.transfer_experiment import TransferExperiment
from nntransfer.pipeline.step import StepMeta, train_and_store
from nntransfer.tables import active
from nntransfer.tables.nnfabrik import add_transfer_experiments
from nntransfer.tables.store import DataJointStore
from nntransfer.tables.trained_model import TrainedModelMixin, plain_key

#: names this module hands out from the active tables (PEP 562 ``__getattr__``)
TABLE_NAMES = ("TransferredTrainedModel", "TransferredCheckpoint")
__all__ = list(TABLE_NAMES) + ["TransferredTrainedModelMixin"]


def __getattr__(name: str) -> Any:
    if name in TABLE_NAMES:
        return getattr(active(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class TransferredTrainedModelMixin(TrainedModelMixin):
    """One trained step of a transfer chain.

    Attributes (nnfabrik's ``TransferredTrainedModelBase``):
        transfer_step (int): position of the step in its chain (0 for the first).
        model/dataset/trainer/seed: the step's configs (-> ``Model``, ``Dataset``, ``Trainer``, ``Seed``).
        collapsed_history (varchar(64)): hash of the previous step's full key (``""`` at step 0).
        data_transfer (bool): the step received the data the previous step handed on.
        comment (varchar(768)): the trainer, model and dataset comments.
        score (float): the trainer's score.
        output (longblob): the trainer's output (tracker state and final evaluation).
        fabrikant_name (nullable): who trained it (-> ``Fabrikant``, the schema's own row).
        trainedmodel_ts (timestamp): when it was stored.

    Parts: ``ModelStorage`` (trained state dict), ``DataStorage`` (data the step hands to the next step),
    ``CollapsedHistory`` (step key -> the ``collapsed_history`` of its successor), ``Provenance``.
    Checkpoints: ``checkpoint_table``.
    """

    table_comment = "Transferred trained models (nntransfer)"

    def make(self, key: Dict[str, Any]) -> None:
        """Train the step ``key`` through :func:`~nntransfer.pipeline.step.train_and_store` (the one
        place a step is trained) with the tables' store: the configs from the rows, the runtime options
        the store's ``prepare`` remembered, the previous step from ``CollapsedHistory``. A lost database
        is :class:`~nntransfer.errors.DatabaseLost` (the step stays resumable)."""
        store = DataJointStore(tables=self.nnfabrik)
        primary = plain_key(self, key)
        with self.database_lost_is_one_line(primary):
            name, runtime = store.prepared(primary)
            spec = self.nnfabrik.step_spec(primary, runtime)
            meta = StepMeta(name=name, seed=spec.seed, step=int(primary["transfer_step"]), comment=self.nnfabrik.comment(primary))
            previous = self.previous_key(primary)
            previous_spec = self.nnfabrik.step_spec(previous, runtime) if previous is not None else None
            train_and_store(store, spec, primary, previous, meta, previous_spec)

    def insert_result(self, primary, result, comment, fabrikant) -> None:
        super().insert_result(primary, result, comment, fabrikant)
        self.CollapsedHistory().add_entry(primary)

    def previous_key(self, key: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The full key of the step before ``key`` (nnfabrik's ``get_prev_key``), None at step 0."""
        previous = self.get_prev_key(key)
        if not previous:
            return None
        return plain_key(self, previous.fetch1())

    def fetch_transfer_data(self, key: Dict[str, Any]) -> Optional[Dict[str, np.ndarray]]:
        """The data the row ``key`` restricts to handed to its successor (None if it produced none)."""
        storage = self.DataStorage & key
        if not storage:
            return None
        with tempfile.TemporaryDirectory() as temp_dir:
            path = storage.fetch1("transfer_data", download_path=temp_dir)
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}

    @classmethod
    def add_transfer_experiment(cls, transfer_experiment: TransferExperiment) -> None:
        """Insert a chain's configs, seeds and one recipe entry per step after the first. Every config is
        checked before anything is written; all is written in one transaction (the caller's, if in one)."""
        if cls.connection.in_transaction:
            add_transfer_experiments(cls.nnfabrik, [transfer_experiment])
        else:
            with cls.connection.transaction:
                add_transfer_experiments(cls.nnfabrik, [transfer_experiment])
