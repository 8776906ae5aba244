"""Where a work folder keeps a step's checkpoints, ``<folder>/<uid hash>/epoch_<n>.pt``, and which epochs it
holds: the file layout alone, without torch, so that reading a store's state (``status``) loads no
training code. Saving and restoring them is :class:`~nntransfer.trainer.checkpointing.LocalCheckpoints`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from nntransfer.configs.codec import make_hash
from nntransfer.errors import StorageError
from nntransfer.safe_files import is_real_folder


class CheckpointFolder:
    """The checkpoints of many runs in ``folder``, one sub-folder per run (named by its uid's hash)."""

    def __init__(self, folder: os.PathLike) -> None:
        self.folder = Path(folder)

    def run_folder(self, uid: Optional[Mapping[str, Any]]) -> Path:
        if uid is None:
            return self.folder / "default"
        return self.folder / make_hash(dict(uid))

    def checkpoints(self, uid=None) -> Dict[int, Path]:
        """Stored checkpoint files by epoch (whether their scores are readable or not)."""
        folder = self.run_folder(uid)
        if not self._own_folder(folder):
            return {}
        found = {}
        for path in folder.glob("epoch_*.pt"):
            epoch = epoch_of(path)
            if epoch is not None:
                found[epoch] = path
        return found

    def _own_folder(self, folder: Path) -> bool:
        """Whether ``folder`` is a real folder (False if there is none); a link or a file in its place is a
        :class:`~nntransfer.errors.StorageError`: checkpoints are never read, written or deleted through it."""
        if is_real_folder(folder):
            return True
        if not os.path.lexists(folder):
            return False
        raise StorageError(f"{folder} is not a folder (a symbolic link or a file someone put there): no checkpoint is "
                           "read or written through it; remove it and run again")


def epoch_of(path: Path) -> Optional[int]:
    try:
        return int(path.stem.split("_", 1)[1])
    except (IndexError, ValueError):
        return None
