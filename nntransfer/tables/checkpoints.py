"""Checkpoint tables and restoring from them.

The checkpoint tables are declared on a second connection (see :func:`nntransfer.tables.activate`), so a
checkpoint is stored at once, outside the transaction of the ``make`` that trains: a killed job keeps its
checkpoints for the next worker. Their definitions name nnfabrik's tables as ``nnfabrik.<Table>``.

Deleting a checkpoint row deletes its file in the external store (:class:`~nntransfer.tables.storage.ExternalFilesMixin`),
a checkpoint records its file's SHA-256 and size (:class:`~nntransfer.tables.storage.ChecksummedFileMixin`),
and a checkpoint that cannot be read (a truncated, garbage or altered file, a file missing from the store)
is skipped with a warning and deleted: the job resumes from an earlier checkpoint, or starts over.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any, Dict, Optional

from nntransfer.defaults import STORE_NAME
from nntransfer.tables.compat import VerboseDeleteMixin
from nntransfer.tables.storage import CHECKSUM_DEFINITION, ChecksummedFileMixin, ExternalFilesMixin, file_paths

logger = logging.getLogger(__name__)

_CHECKPOINT_BODY = f"""
epoch:                             int              # epoch of creation
---
score:                             float            # current score at epoch
state:                             attach@{STORE_NAME}   # model, optimizer, scheduler, tracker, ... at that epoch
->[nullable] nnfabrik.Fabrikant
trainedmodel_ts=CURRENT_TIMESTAMP: timestamp
""" + CHECKSUM_DEFINITION


class _CheckpointTableMixin(ChecksummedFileMixin, ExternalFilesMixin, VerboseDeleteMixin):
    """What both checkpoint tables share: files checksummed, and deleted with their rows; nnfabrik's ``delete(verbose=False)``
    (dropping older checkpoints after every epoch) deletes without logging "Deleting N rows" each time
    (checkpoint rows have no dependents, so nothing cascades)."""

    file_attribute = "state"

    def delete(self, *args: Any, verbose: Optional[bool] = None, **kwargs: Any):
        if verbose is False and not args and not kwargs:
            return self.delete_quick(get_count=True)
        return super().delete(*args, **kwargs)


class CheckpointMixin(_CheckpointTableMixin):
    """Training state of a ``TrainedModel`` job per saved epoch.

    Attributes:
        trainer/dataset/model/seed: the job's key (-> ``Trainer``, ``Dataset``, ``Model``, ``Seed``).
        epoch (int): the epoch the checkpoint was saved after.
        score (float): the trainer's score at that epoch.
        state (attach): model, optimizer, scheduler, tracker, ... (a ``torch.save`` file).
        fabrikant (nullable): -> ``Fabrikant``.
        trainedmodel_ts (timestamp): when it was saved.
        file_sha256 (char(64)), file_size (bigint): the state file's checksum, checked when it is read back.
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


class TransferredCheckpointMixin(_CheckpointTableMixin):
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
        file_sha256 (char(64)), file_size (bigint): the state file's checksum, checked when it is read back.
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
    trainer's ``load_state_dict`` calls move it to the model's device). A checkpoint that cannot be read
    is deleted with a warning naming it, and the next one in order is tried; without a readable one the
    job starts over.
    """

    def restore_epoch(self, action, uid, maximize_score, state):
        rows = (self.checkpoint_table & uid).fetch("KEY", "score", "epoch", as_dict=True)
        if action == "last":
            rows.sort(key=lambda row: row["epoch"], reverse=True)
        else:
            rows.sort(key=lambda row: row["score"], reverse=bool(maximize_score))
        for position, chosen in enumerate(rows):
            key = {k: v for k, v in chosen.items() if k != "score"}
            try:
                loaded = self._load_checkpoint(key)
            except Exception as err:  # truncated, garbage, missing from the store: never block the job
                self._skip_damaged_checkpoint(key, err, fallback=len(rows) - position - 1)
                continue
            state["epoch"], state["score"] = int(chosen["epoch"]), float(chosen["score"])
            for name, value in loaded.items():
                if name in state and hasattr(state[name], "load_state_dict"):
                    state[name].load_state_dict(value)
                else:
                    state[name] = value
            return

    def _load_checkpoint(self, key: Dict[str, Any]) -> Dict[str, Any]:
        import torch  # here, not at import: ``status`` reads the tables without loading torch

        with tempfile.TemporaryDirectory() as temp_dir:
            path = (self.checkpoint_table & key).fetch_file(temp_dir)
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(loaded, dict):
            raise ValueError(f"holds a {type(loaded).__name__}, not a training state")
        return loaded

    def _skip_damaged_checkpoint(self, key: Dict[str, Any], error: BaseException, fallback: int) -> None:
        restricted = self.checkpoint_table & key
        try:
            where = ", ".join(file_paths(restricted, "state")) or "no file"
        except Exception:  # naming the file is a courtesy; the warning goes out anyway
            where = "its store file"
        then = "trying an earlier one" if fallback else "the step starts over"
        logger.warning(
            "skipped the damaged checkpoint of epoch %s of %s (%s: %s; %s); deleted it, %s",
            key.get("epoch"), _describe(key), type(error).__name__, str(error).splitlines()[0] if str(error) else "", where, then,
        )  # fmt: skip
        # deleted, so that the job can save that epoch again and no later run trips over it
        restricted.delete_quick()


def _describe(key: Dict[str, Any]) -> str:
    if "transfer_step" in key:
        return f"step {key['transfer_step']} (seed {key.get('seed', '?')})"
    return f"the job of seed {key.get('seed', '?')}"
