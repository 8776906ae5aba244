"""``TrainedModel``: trains one :class:`~nntransfer.configs.Experiment` per row (no transfer chain).

The class is declared by :func:`nntransfer.tables.activate`; ``from nntransfer.tables.trained_model import
TrainedModel`` activates the configured schema on first use (importing this module connects to nothing).
:class:`TrainedModelMixin` holds what the table does: train through
:func:`nntransfer.pipeline.step.run_step` (the one place a step is trained) and store the result.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from typing import Any, Callable, Dict, Iterator, Mapping, Optional

import numpy as np

from nntransfer.configs.codec import make_hash
from nntransfer.pipeline.step import StepResult, check_storable, run_step
from nntransfer.provenance import step_provenance
from nntransfer.tables import active, database
from nntransfer.tables.checkpoints import CheckpointRestoreMixin
from nntransfer.tables.heartbeat import heartbeat
from nntransfer.tables.provenance import ProvenanceMixin
from nntransfer.tables.storage import (
    StoredFilePart,
    delete_unused_store_files,
    remove_rolled_back_uploads,
    stored_files,
    upload_of,
)

#: names this module hands out from the active tables (PEP 562 ``__getattr__``)
TABLE_NAMES = ("TrainedModel", "Checkpoint")
__all__ = list(TABLE_NAMES) + ["TrainedModelMixin", "plain_key"]
logger = logging.getLogger(__name__)


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
        score (double): the trainer's score (nnfabrik declares a single-precision float).
        output (longblob): the trainer's output (tracker state and final evaluation).
        fabrikant_name (nullable): who trained it (-> ``Fabrikant``, the schema's own row).
        trainedmodel_ts (timestamp): when it was stored.

    Parts: ``ModelStorage`` (the trained state dict, with its SHA-256 and size, checked when read back),
    ``Provenance``. Checkpoints: ``checkpoint_table``.

    ``populate`` beats in the schema's ``~heartbeat`` while it runs (other workers see that its
    reservations are alive); deleting rows deletes their files in the external store.
    """

    table_comment = "Trained models (nntransfer)"

    @property
    def definition(self) -> str:
        """nnfabrik's definition with ``score`` as a double: its ``float`` column is single precision and would
        round the score (98.64865 of 73/74 read back as 98.64865112...), so that the tables and a work folder
        showed different numbers for one step. A schema declared before keeps its column."""
        definition, found = re.subn(r"(\n\s*score\s*:\s*)float\b", r"\1double", super().definition)
        if found != 1:  # nnfabrik changed its definition: say so rather than store rounded scores silently
            raise RuntimeError("nnfabrik's TrainedModel definition has no 'score: float' line to declare as double")
        return definition

    class ModelStorage(StoredFilePart):
        """The trained state dict of the master's row (nnfabrik's part, with the file's checksum)."""

        file_attribute = "model_state"
        file_description = "the trained state dict, stored externally"

    # ------------------------------------------------------------------ training

    def populate(self, *restrictions, **kwargs):
        """DataJoint's ``populate``, with this process's heartbeat (``nntransfer.tables.heartbeat``) while
        it runs: reservations it makes are never taken for those of a stopped worker."""
        with heartbeat(self.nnfabrik):
            try:
                return super().populate(*restrictions, **kwargs)
            finally:
                self.clear_pending_checkpoints()
                self.clear_rolled_back_uploads()

    def make(self, key: Dict[str, Any]) -> None:
        primary = plain_key(self, key)
        with self.database_lost_is_one_line(primary):
            spec = self.nnfabrik.step_spec(primary)
            check_storable(spec)
            result = run_step(spec, uid=dict(primary), checkpoints=self.checkpoint_callback())
            self.insert_result(primary, result, comment=self.nnfabrik.comment(primary), fabrikant=self.nnfabrik.Fabrikant.current_user(),
                               provenance=step_provenance(spec))
        if not spec.keep_checkpoints:
            self.clear_checkpoints(primary)

    @contextlib.contextmanager
    def database_lost_is_one_line(self, key: Dict[str, Any]) -> Iterator[None]:
        """A lost database while ``key`` trains becomes :class:`~nntransfer.errors.DatabaseLost`: one line,
        recorded by ``populate`` as an interruption (released, not failed); the checkpoints are kept."""
        try:
            yield
        except Exception as err:
            if database.connection_lost(err):
                where = f"step {key['transfer_step']}" if "transfer_step" in key else "the job"
                raise database.database_lost(err, f"training {where} (seed {key.get('seed', '?')}) in schema {self.database}") from err
            raise

    # ------------------------------------------------------------------ storing and reading results

    def insert_result(self, primary: Dict[str, Any], result: StepResult, comment: str, fabrikant: Optional[str],
                      provenance: Dict[str, Any]) -> None:
        """Insert the row of ``primary`` and its parts (``Provenance``: ``provenance``, ``ModelStorage``, and for
        transfer steps ``DataStorage``). Run it in a transaction (``make`` does) to store all or nothing."""
        self.insert1(
            dict(primary, score=result.score, output=result.output, fabrikant_name=fabrikant, comment=comment[:768]),
            allow_direct_insert=True,
        )
        self.record_provenance(primary, provenance)
        with tempfile.TemporaryDirectory() as temp_dir:
            name = make_hash(primary)
            if result.transfer_data and hasattr(self, "DataStorage"):
                data_path = os.path.join(temp_dir, name + "_transfer_data.npz")
                np.savez(data_path, **{k: np.asarray(v) for k, v in result.transfer_data.items()})
                self._upload(self.DataStorage, dict(primary, transfer_data=data_path))
            state_path = os.path.join(temp_dir, name + ".pth.tar")
            import torch  # here, not at import: ``status`` reads the tables without loading torch

            torch.save(result.model_state, state_path)
            self._upload(self.ModelStorage, dict(primary, model_state=state_path))

    def _upload(self, part, row: Dict[str, Any]) -> None:
        """Insert ``row`` (with its file) into ``part``; inside a transaction the file is remembered, so that
        :meth:`clear_rolled_back_uploads` removes it from the store if the transaction rolls back."""
        if self.connection.in_transaction:
            self.nnfabrik.pending_uploads.append(upload_of(part, row[part.file_attribute]))
        part.insert1(row)

    def clear_rolled_back_uploads(self) -> None:
        """Remove the files that results inserted in a transaction copied to the store, where the transaction
        rolled back (a failed or interrupted job): no entry registers them, and nothing else would."""
        if not self.nnfabrik.pending_uploads or self.connection.in_transaction:
            return
        uploads, self.nnfabrik.pending_uploads[:] = list(self.nnfabrik.pending_uploads), []
        try:
            removed = remove_rolled_back_uploads(self.connection, uploads)
        except Exception as err:  # e.g. the database is gone: the caller reports that; `nntransfer gc` removes them
            logger.warning("could not remove the store files of a job that was rolled back: %s", err)
        else:
            if removed:
                logger.debug("removed %d store file(s) of a job that was rolled back", removed)

    def fetch_weights(self, key: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The stored weights of the row ``key`` restricts to (on the CPU), or None if it has none; a file
        that does not match its checksum (:class:`~nntransfer.tables.storage.DamagedFile`) or is not a state
        dict of tensors is a ``ValueError``."""
        import torch

        storage = self.ModelStorage & key
        if not storage:
            return None
        with tempfile.TemporaryDirectory() as temp_dir:
            path = storage.fetch_file(temp_dir)
            weights = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(weights, Mapping) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
            raise ValueError(f"holds a {type(weights).__name__}, not a state dict of tensors")
        return weights

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
        """Delete the checkpoints of the job ``key``, with their files in the external store. Inside a
        ``make`` (a transaction) they are deleted only once the result is committed (see
        :meth:`clear_pending_checkpoints`): a job killed before that resumes from them."""
        primary = {k: key[k] for k in self.primary_key}
        if self.connection.in_transaction:
            self.nnfabrik.pending_clears.append((self.table_name, primary))
            return
        checkpoints = self.checkpoint_table & primary
        if checkpoints:
            checkpoints.delete_quick()

    def clear_pending_checkpoints(self) -> None:
        """Delete the checkpoints :meth:`clear_checkpoints` deferred, of the jobs whose result is now stored;
        those of jobs rolled back stay for the next attempt."""
        pending = [(name, key) for name, key in self.nnfabrik.pending_clears if name == self.table_name]
        if not pending or self.connection.in_transaction:
            return
        self.nnfabrik.pending_clears[:] = [item for item in self.nnfabrik.pending_clears if item[0] != self.table_name]
        try:
            for _, key in pending:
                if self & key:
                    self.clear_checkpoints(key)
        except Exception as err:  # e.g. the database is gone: the caller reports that; the checkpoints stay
            logger.warning("could not delete the checkpoints of finished jobs: %s", err)

    # ------------------------------------------------------------------ deleting

    def delete(self, *args: Any, **kwargs: Any):
        """DataJoint's ``delete`` (rows and their parts), then the files of the deleted parts in the
        external store (weights, handed-on data) that no other row references."""
        files: Dict[str, set] = {}
        for part in (getattr(self, name, None) for name in ("ModelStorage", "DataStorage")):
            if part is not None:
                for store, hashes in stored_files(part & self.proj()).items():
                    files.setdefault(store, set()).update(hashes)
        count = super().delete(*args, **kwargs)
        if files and not self.connection.in_transaction:
            delete_unused_store_files(self.connection, self.database, files)
        return count
