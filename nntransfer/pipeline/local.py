"""``LocalStore``: finished steps in a work folder, no database.

    <workdir>/steps/<hash of the step key>/   one folder per finished step, written whole or not at all:
        key.json          the step's key and experiment (configs), for people and tools
        result.json       score, name, seed, step, comment, seconds, finished, provenance
        output.json       the trainer's output (tracker log, final evaluation), through the one codec
        model_state.pt    the trained weights (read back with ``torch.load(weights_only=True)``)
        transfer_data.npz the data handed to the next step, if any (read without pickle)
    <workdir>/failed/<hash>.txt     the error of a step's last failed attempt
    <workdir>/checkpoints/<hash>/   checkpoints of steps being trained (a killed run resumes from them)

Nothing read back from the folder can execute code: JSON, NumPy without pickle, weights only.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from nntransfer.configs import codec
from nntransfer.configs.codec import make_hash
from nntransfer.defaults import DEFAULT_WORKDIR
from nntransfer.pipeline.step import StepMeta, StepResult
from nntransfer.pipeline.store import DONE, FAILED, WAITING, Key, StepState, Store, StoredStep
from nntransfer.provenance import RecipeSource

# torch is imported where weights are read or written: ``status`` and ``report`` read JSON only and
# must start fast.

logger = logging.getLogger(__name__)


class LocalStore(Store):
    """Steps in a work folder (see module docstring)."""

    name = "local"

    def __init__(self, workdir: os.PathLike = DEFAULT_WORKDIR) -> None:
        self.workdir = Path(workdir)
        self.where = f"work folder {self.workdir}"

    # ------------------------------------------------------------------ paths

    def step_dir(self, key: Key) -> Path:
        return self.workdir / "steps" / make_hash(key)

    def failure_file(self, key: Key) -> Path:
        return self.workdir / "failed" / f"{make_hash(key)}.txt"

    def _read_json(self, path: Path) -> Any:
        try:
            return codec.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read {path} ({type(err).__name__}: {err}); delete its step folder to train it again") from None

    # ------------------------------------------------------------------ reading

    def states(self, keys: Sequence[Key]) -> List[StepState]:
        found = []
        for key in keys:
            result = self.step_dir(key) / "result.json"
            failure = self.failure_file(key)
            if result.exists():
                found.append(StepState(DONE, score=float(self._read_json(result)["score"])))
            elif failure.exists():
                text = failure.read_text(errors="replace").strip()
                found.append(StepState(FAILED, error=text.splitlines()[0] if text else "failed (no message recorded)"))
            else:
                found.append(StepState(WAITING))
        return found

    def load(self, key: Key) -> StoredStep:
        folder = self.step_dir(key)
        info = self._read_json(folder / "result.json")
        output = self._read_json(folder / "output.json")
        return StoredStep(float(info["score"]), output, info)

    def load_weights(self, key: Key) -> Dict[str, Any]:
        import torch

        path = self.step_dir(key) / "model_state.pt"
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # missing, truncated or not a weights file
            raise ValueError(f"cannot read the weights {path} ({type(err).__name__}); delete its step folder to train it again") from None

    def load_transfer_data(self, key: Key) -> Optional[Dict[str, np.ndarray]]:
        path = self.step_dir(key) / "transfer_data.npz"
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}

    # ------------------------------------------------------------------ writing

    def save(self, key: Key, result: StepResult, meta: StepMeta) -> None:
        """Write the step's files to a temporary folder, then rename it into place."""
        import torch

        final = self.step_dir(key)
        temporary = final.parent / f".{final.name}.{os.getpid()}.tmp"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        (temporary / "key.json").write_text(codec.dumps({"key": key, "experiment": meta.experiment}, indent=2))
        (temporary / "output.json").write_text(codec.dumps(result.output))
        torch.save(result.model_state, temporary / "model_state.pt")
        if result.transfer_data:
            np.savez(temporary / "transfer_data.npz", **{k: np.asarray(v) for k, v in result.transfer_data.items()})
        info = dict(
            name=meta.name,
            seed=meta.seed,
            step=meta.step,
            comment=meta.comment,
            score=result.score,
            seconds=result.seconds,
            finished=_now(),
            **RecipeSource.record(),
        )
        (temporary / "result.json").write_text(json.dumps(info, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(temporary, final)
        self.failure_file(key).unlink(missing_ok=True)

    def record_failure(self, key: Key, error: BaseException, meta: StepMeta) -> None:
        failure = self.failure_file(key)
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(f"{type(error).__name__}: {error}\n\n{''.join(traceback.format_exception(error))}")

    def checkpoints(self, key: Key) -> Callable:
        from nntransfer.trainer.checkpointing import LocalCheckpoints

        return LocalCheckpoints(self.workdir / "checkpoints")

    def clear_checkpoints(self, key: Key) -> None:
        self.checkpoints(key).clear(dict(key))


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")
