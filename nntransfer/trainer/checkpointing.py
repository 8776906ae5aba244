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

import logging
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch

from nntransfer.configs.codec import make_hash  # nnfabrik's hash, without loading DataJoint

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


class LocalCheckpoints:
    """nnfabrik's checkpoint callback on a folder: ``<folder>/<uid hash>/epoch_<n>.pt``.

    A job restarted with the same folder and uid finds its checkpoints again. Files are written to a
    temporary name first and then renamed, so a job killed while saving leaves the previous ones intact.
    """

    def __init__(self, folder: os.PathLike) -> None:
        self.folder = Path(folder)

    def run_folder(self, uid: Optional[Mapping[str, Any]]) -> Path:
        if uid is None:
            return self.folder / "default"
        return self.folder / make_hash(dict(uid))

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

    def checkpoints(self, uid=None) -> Dict[int, Path]:
        """Stored checkpoint files by epoch."""
        folder = self.run_folder(uid)
        if not folder.is_dir():
            return {}
        return {int(p.stem.split("_")[1]): p for p in folder.glob("epoch_*.pt")}

    def clear(self, uid=None) -> None:
        """Delete the checkpoints of ``uid``."""
        shutil.rmtree(self.run_folder(uid), ignore_errors=True)

    def _save(self, uid, epoch: int, model, maximize: bool, state: Dict[str, Any]) -> None:
        if epoch % state.pop("save_every_n", 1) != 0:
            return
        score = state.pop("score", 0.0)
        keep_best_n = state.pop("keep_best_n", 1)
        keep_last_n = state.pop("keep_last_n", 1)
        keep_selection = state.pop("keep_selection", ())
        state["net"] = model.state_dict()
        folder = self.run_folder(uid)
        folder.mkdir(parents=True, exist_ok=True)
        # the score beside the file, so that choosing what to keep does not load every checkpoint
        (folder / f"epoch_{epoch:06d}.score").write_text(repr(float(score)))
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as handle:
            torch.save({"epoch": epoch, "score": float(score), "state": state}, handle)
        os.replace(handle.name, folder / f"epoch_{epoch:06d}.pt")
        self._filter(uid, keep_best_n, keep_last_n, keep_selection, maximize)

    def _scores(self, uid) -> Dict[int, float]:
        return {epoch: float(path.with_suffix(".score").read_text()) for epoch, path in self.checkpoints(uid).items()}

    def _filter(self, uid, keep_best_n: int, keep_last_n: int, keep_selection, maximize: bool) -> None:
        scores = self._scores(uid)
        by_score = sorted(scores, key=lambda e: scores[e], reverse=maximize)
        by_epoch = sorted(scores, reverse=True)
        keep = set(by_score[:keep_best_n]) | set(by_epoch[:keep_last_n]) | (set(scores) & set(keep_selection))
        for epoch, path in self.checkpoints(uid).items():
            if epoch not in keep:
                path.unlink()
                path.with_suffix(".score").unlink(missing_ok=True)

    def _restore(self, uid, action: str, maximize: bool, state: Dict[str, Any]) -> None:
        files = self.checkpoints(uid)
        if not files:
            return
        if action == "last":
            epoch = max(files)
        else:
            scores = self._scores(uid)
            epoch = sorted(scores, key=lambda e: scores[e], reverse=maximize)[0]
        stored = torch.load(files[epoch], map_location="cpu", weights_only=True)  # resumable without the GPU
        state["epoch"], state["score"] = stored["epoch"], stored["score"]
        for key, entry in stored["state"].items():
            if key in state and hasattr(state[key], "load_state_dict"):
                state[key].load_state_dict(entry)
            else:
                state[key] = entry
        logger.info("restored checkpoint of epoch %d from %s", epoch, files[epoch])
