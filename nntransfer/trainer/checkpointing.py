"""Checkpoints: the random-number state, and `LocalCheckpoints`, nnfabrik's checkpoint callback protocol
on a local folder (the tables' ``TrainedModelChkptBase.call_back`` stores the same into a table).

The protocol, ``cb(uid=uid, epoch=epoch, model=model, state=state)``:
    state["action"] == "save": store ``state`` (minus the keys below) plus ``"net": model.state_dict()``
        as the checkpoint of ``epoch`` with ``state["score"]``, when ``epoch % save_every_n == 0``; then keep
        only the ``keep_best_n`` best, the ``keep_last_n`` last and the ``keep_selection`` epochs.
    state["action"] in ("last", "best"): load that checkpoint, if any: set ``state["epoch"]`` and
        ``state["score"]``, call ``load_state_dict`` on every state entry that has it (``"net"`` is the
        model) and put the other entries into ``state``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import random
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np
import torch

from nntransfer.errors import StorageError
from nntransfer.safe_files import (
    ensure_folder,
    open_for_reading,
    read_text,
    remove_entry,
    write_atomically,
)
from nntransfer.trainer.checkpoint_files import CheckpointFolder

logger = logging.getLogger(__name__)


def get_rng_state(generators: Optional[Mapping[str, torch.Generator]] = None) -> Dict[str, Any]:
    """The state of every random-number generator training draws from: Python, NumPy, torch (CPU and
    CUDA) and the given generators (e.g. those of the DataLoaders). Plain values and tensors only, so that
    ``torch.load(weights_only=True)`` reads it back."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any], generators: Optional[Mapping[str, torch.Generator]] = None) -> None:
    """Inverse of ``get_rng_state``."""
    random.setstate(_as_tuple(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.int64).astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, generator in (generators or {}).items():
        if name in state["generators"]:
            generator.set_state(state["generators"][name])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def loader_generators(loaders: Mapping[str, Any]) -> Dict[str, torch.Generator]:
    """The torch generators a DataLoader shuffles with (its own or its sampler's), by task key."""
    found: Dict[str, torch.Generator] = {}
    for key, loader in loaders.items():
        for owner, attr in ((loader, "generator"), (getattr(loader, "sampler", None), "generator")):
            generator = getattr(owner, attr, None)
            if isinstance(generator, torch.Generator) and all(generator is not g for g in found.values()):
                found[f"{key}.{type(owner).__name__}"] = generator
    return found


class LocalCheckpoints(CheckpointFolder):
    """nnfabrik's checkpoint callback on a folder: ``<folder>/<uid hash>/epoch_<n>.pt`` and beside each
    its score, ``epoch_<n>.score`` (so that choosing what to keep loads no checkpoint).

    A job restarted with the same folder and uid finds its checkpoints again. Each file is written to a
    temporary name first and then renamed, the score before the checkpoint, so a job killed while saving
    leaves the previous checkpoints intact. A damaged checkpoint (truncated or garbage ``.pt``, a missing
    or garbage ``.score``) never blocks the job: restoring skips and deletes it with a WARNING naming the
    file, and falls back to an earlier one or starts the job over; choosing what to keep deletes a checkpoint
    whose score cannot be read. A full disk or an unwritable folder is a
    :class:`~nntransfer.errors.StorageError` (one line) and leaves no partial file. Only regular files are
    read (a link, FIFO or device named like a checkpoint is damaged), and a link where the run's folder should
    be is a ``StorageError``: nothing is read, written or deleted outside ``folder`` through it.
    """

    def __call__(self, uid=None, epoch: Optional[int] = None, model=None, state: Optional[Dict[str, Any]] = None) -> None:
        state = state if state is not None else {}
        maximize = state.pop("maximize_score", True)
        action = state.pop("action", "save")
        if action == "save":
            self._save(uid, epoch, model, maximize, state)
        elif action in ("last", "best"):
            self._restore(uid, action, maximize, state)
        else:
            raise ValueError(f"unknown checkpoint action {action!r}; use 'save', 'last' or 'best'")

    def clear(self, uid=None) -> None:
        """Delete the checkpoints of ``uid`` (a link in their place is removed, not followed)."""
        with contextlib.suppress(OSError):
            remove_entry(self.run_folder(uid))

    # ------------------------------------------------------------------ saving

    def _save(self, uid, epoch: int, model, maximize: bool, state: Dict[str, Any]) -> None:
        if epoch % state.pop("save_every_n", 1) != 0:
            return
        score = state.pop("score", 0.0)
        keep_best_n = state.pop("keep_best_n", 1)
        keep_last_n = state.pop("keep_last_n", 1)
        keep_selection = state.pop("keep_selection", ())
        state["net"] = model.state_dict()
        folder = self.run_folder(uid)
        path = folder / f"epoch_{epoch:06d}.pt"
        buffer = io.BytesIO()  # serialised in memory: writing the bytes raises a plain OSError on a full disk
        torch.save({"epoch": epoch, "score": float(score), "state": state}, buffer)
        self._own_folder(folder)
        try:
            ensure_folder(folder, self.folder)
            # the score first: a kill between the two leaves a score without checkpoint, which is ignored
            write_atomically(path.with_suffix(".score"), repr(float(score)).encode())
            write_atomically(path, buffer.getbuffer())
        except OSError as err:
            raise StorageError(
                f"cannot write the checkpoint {path} ({_reason(err)}); free some space or make {self.folder} writable"
            ) from None
        self._filter(uid, keep_best_n, keep_last_n, keep_selection, maximize)

    def _scores(self, uid) -> Tuple[Dict[int, float], Dict[int, str]]:
        """The readable scores by epoch, and for each checkpoint without one, what is wrong with it."""
        scores, broken = {}, {}
        for epoch, path in self.checkpoints(uid).items():
            score_file = path.with_suffix(".score")
            try:
                score = float(read_text(score_file, limit=64))
            except FileNotFoundError:
                broken[epoch] = f"{path} has no score file {score_file.name}"
                continue
            except (OSError, ValueError, UnicodeDecodeError) as err:
                broken[epoch] = f"the score file {score_file} is damaged ({type(err).__name__})"
                continue
            if math.isnan(score):
                broken[epoch] = f"the score file {score_file} holds no number"
                continue
            scores[epoch] = score
        return scores, broken

    def _filter(self, uid, keep_best_n: int, keep_last_n: int, keep_selection, maximize: bool) -> None:
        scores, broken = self._scores(uid)
        by_score = sorted(scores, key=lambda e: (scores[e], e), reverse=maximize)
        by_epoch = sorted(scores, reverse=True)
        keep = set(by_score[:keep_best_n]) | set(by_epoch[:keep_last_n]) | (set(scores) & set(keep_selection))
        for epoch, path in self.checkpoints(uid).items():
            if epoch in broken:  # never restored: it would only take space
                logger.warning("deleting checkpoint %s: %s", path, broken[epoch])
            if epoch not in keep:
                _remove_checkpoint(path)
        for orphan in self.run_folder(uid).glob("epoch_*.score"):  # left by a kill between score and checkpoint
            if not orphan.with_suffix(".pt").exists():
                orphan.unlink(missing_ok=True)

    # ------------------------------------------------------------------ restoring

    def _restore(self, uid, action: str, maximize: bool, state: Dict[str, Any]) -> None:
        folder = self.run_folder(uid)
        if not self._own_folder(folder):
            return
        for partial in folder.glob("*.tmp"):  # of a job killed while saving; this job owns the folder now
            partial.unlink(missing_ok=True)
        files = self.checkpoints(uid)
        if not files:
            return
        scores, broken = self._scores(uid)
        for epoch in sorted(broken, reverse=True):  # never restorable: out of the way
            logger.warning("skipping checkpoint %s: %s; deleted it", files[epoch], broken[epoch])
            _remove_checkpoint(files[epoch])
        if action == "last":
            candidates = sorted(scores, reverse=True)
        else:
            candidates = sorted(scores, key=lambda e: (scores[e], e), reverse=maximize)
        for epoch in candidates:
            stored = self._load(files[epoch])
            if stored is None:
                _remove_checkpoint(files[epoch])
                continue
            state["epoch"], state["score"] = stored["epoch"], stored["score"]
            for key, entry in stored["state"].items():
                if key in state and hasattr(state[key], "load_state_dict"):
                    state[key].load_state_dict(entry)
                else:
                    state[key] = entry
            logger.info("restored checkpoint of epoch %d from %s", epoch, files[epoch])
            return
        logger.warning("no usable checkpoint in %s: the job starts over from the beginning", folder)

    @staticmethod
    def _load(path: Path) -> Optional[Dict[str, Any]]:
        """The checkpoint in ``path``, or None (with a WARNING naming it) if it cannot be read whole."""
        try:
            with open_for_reading(path) as handle:  # a regular file: never a link, a FIFO or a device
                stored = torch.load(handle, map_location="cpu", weights_only=True)  # resumable without the GPU
            if not (isinstance(stored, dict) and {"epoch", "score", "state"} <= set(stored) and isinstance(stored["state"], dict)):
                raise ValueError("not a checkpoint of this format")
        except Exception as err:  # truncated, garbage, or not a checkpoint: torch raises many kinds
            logger.warning("skipping checkpoint %s: it cannot be read (%s: %s); deleted it, trying an earlier one",
                           path, type(err).__name__, _short(err))
            return None
        return stored


def _remove_checkpoint(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_suffix(".score").unlink(missing_ok=True)


def _short(err: BaseException, limit: int = 100) -> str:
    text = (str(err).strip().splitlines() or [""])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reason(err: OSError) -> str:
    return err.strerror or str(err) or type(err).__name__
