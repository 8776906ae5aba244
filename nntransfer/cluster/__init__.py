"""Beyond one machine: workers submitted to a SLURM cluster as one job array (``nntransfer submit``), their
state for ``status``, and ``nntransfer cancel``. Built on submitit (submission, requeueing) and SLURM's own
commands (:mod:`nntransfer.cluster.slurm`); it talks to a Store, never to a concrete backend.

Names are imported when first used: ``status`` reads the arrays' state (:mod:`~nntransfer.cluster.slurm`)
without loading what submitting needs (submitit, the trainer, torch)."""

import importlib
from typing import Any

__all__ = ["DEFAULT_LOG_DIR", "SlurmOptions", "WorkerTask", "array_report", "cancel", "submit"]
_HOME = {"array_report": "nntransfer.cluster.slurm"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME.get(name, "nntransfer.cluster.submit")), name)
