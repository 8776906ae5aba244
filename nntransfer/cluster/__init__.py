"""Beyond one machine: workers submitted to a SLURM cluster as one job array (``nntransfer submit``), their
state for ``status``, and ``nntransfer cancel``. Built on submitit (submission, requeueing) and SLURM's own
commands (:mod:`nntransfer.cluster.slurm`); it talks to a Store, never to a concrete backend."""

from nntransfer.cluster.submit import DEFAULT_LOG_DIR, SlurmOptions, WorkerTask, array_report, cancel, submit

__all__ = ["DEFAULT_LOG_DIR", "SlurmOptions", "WorkerTask", "array_report", "cancel", "submit"]
