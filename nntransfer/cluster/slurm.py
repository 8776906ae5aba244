"""What nntransfer asks a SLURM cluster directly, through its own commands (``sinfo``, ``squeue``,
``scancel``): the partitions, the state of a job array's tasks, cancelling. Submitting goes through submitit
(:mod:`nntransfer.cluster.submit`). Every call has a time limit; a command that is missing or fails is one
line (``ValueError``) naming it."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["ArrayState", "array_report", "require_slurm", "partitions", "partition_time_limit", "array_states", "cancel_jobs", "minutes"]

#: seconds a SLURM command may take (clients retry about 8 s while slurmctld restarts)
COMMAND_TIMEOUT = 30
#: squeue's states of a task that has not started (again) yet
PENDING_STATES = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "RESV_DEL_HOLD", "SUSPENDED"}
_TIME = re.compile(r"(?:(\d+)-)?(?:(\d+):)?(?:(\d+):)?(\d+)")


def require_slurm() -> None:
    """One line when this machine cannot submit to SLURM (no ``sbatch`` on PATH)."""
    missing = [name for name in ("sbatch", "squeue", "sinfo", "scancel") if shutil.which(name) is None]
    if missing:
        raise ValueError(f"SLURM's {', '.join(missing)} not found on PATH: submit from a machine of the cluster "
                         "(a login node), or load SLURM's module first")  # fmt: skip


def _run(command: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ValueError(f"{command[0]} did not answer within {COMMAND_TIMEOUT}s: is slurmctld running?") from None
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise ValueError(f"{' '.join(command)} failed: {reason[-1] if reason else f'exit status {done.returncode}'}")
    return done.stdout


def partitions() -> List[str]:
    """The cluster's partition names (the default one too, without ``sinfo``'s ``*``)."""
    return sorted({line.strip() for line in _run(["sinfo", "-h", "-o", "%R"]).splitlines() if line.strip()})


def partition_time_limit(partition: Optional[str] = None) -> Optional[str]:
    """The time limit a job without ``--time`` gets in ``partition`` (the default partition if None): its
    ``DefaultTime``, else its ``MaxTime``; None when it has none (unlimited)."""
    fields: Dict[str, str] = {}
    for line in _run(["scontrol", "show", "partition", "-o", *([partition] if partition else [])]).splitlines():
        found = dict(word.partition("=")[::2] for word in line.split())
        if partition or found.get("Default") == "YES" or not fields:  # one line per partition: the named, else the default
            fields = found
    for name in ("DefaultTime", "MaxTime"):
        value = fields.get(name, "NONE")
        if value not in ("NONE", "UNLIMITED", "INFINITE", ""):
            return value
    return None


def minutes(limit: str) -> int:
    """A SLURM time limit (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``) in whole
    minutes, rounded up, as submitit takes it; one line for anything else."""
    text = str(limit).strip()
    match = _TIME.fullmatch(text)
    if not match:
        raise ValueError(f"--time takes a SLURM time limit such as 30, 02:00:00 or 1-12:00:00, not {limit!r}")
    days, *parts = match.groups()
    numbers = [int(p) for p in parts if p is not None]
    if days is not None:  # D-HH[:MM[:SS]]
        hours, mins, secs = (numbers + [0, 0])[:3]
    elif len(numbers) == 3:
        hours, mins, secs = numbers
    elif len(numbers) == 2:  # MM:SS
        hours, mins, secs = 0, numbers[0], numbers[1]
    else:
        hours, mins, secs = 0, numbers[0], 0
    total = ((int(days or 0) * 24 + hours) * 60 + mins) * 60 + secs
    if total <= 0:
        raise ValueError(f"--time must be positive, not {limit!r}")
    return -(-total // 60)


@dataclass
class ArrayState:
    """How many tasks of a job array are ``pending`` (queued, requeued), ``running`` and ``finished``
    (no longer in the queue: done, failed, cancelled or timed out)."""

    job_id: str
    tasks: int
    pending: int = 0
    running: int = 0

    @property
    def finished(self) -> int:
        return max(0, self.tasks - self.pending - self.running)

    @property
    def active(self) -> bool:
        return bool(self.pending or self.running)

    def __str__(self) -> str:
        return f"SLURM job {self.job_id}: {self.pending} pending, {self.running} running, {self.finished} finished of {self.tasks} task(s)"


def array_states(arrays: Dict[str, int]) -> List[ArrayState]:
    """The state of each job array (job id -> number of tasks), from ``squeue``: a task it no longer lists
    has finished."""
    states = {job: ArrayState(job, tasks) for job, tasks in arrays.items()}
    if not states:
        return []
    # one call for all; squeue refuses the whole call when none of the ids is known any more (all purged)
    done = subprocess.run(["squeue", "-h", "-r", "-o", "%F %T", "-j", ",".join(states)],
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT)  # fmt: skip
    if done.returncode != 0 and "Invalid job id" not in done.stderr:
        raise ValueError(f"squeue failed: {(done.stderr or done.stdout).strip() or done.returncode}")
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        job, _, state = line.strip().partition(" ")
        if job in states:
            if state in PENDING_STATES:
                states[job].pending += 1
            else:
                states[job].running += 1
    return list(states.values())


def cancel_jobs(job_ids: Sequence[str]) -> None:
    """``scancel`` the jobs (every task of an array): each running task's processes get SIGTERM."""
    if job_ids:
        _run(["scancel", *job_ids])


def array_report(target: Any, limit: int = 5) -> List[str]:
    """Lines for ``status``: each job array submitted for ``target`` (a Store) with tasks still queued or running, and
    the last one (at most ``limit``), with its pending, running and finished tasks and its logs; nothing for
    a store nothing was submitted for."""
    submitted = target.submissions()
    if not submitted:
        return []
    try:
        require_slurm()
        states = {s.job_id: s for s in array_states({s.job_id: s.tasks for s in submitted})}
    except ValueError as err:
        return [f"{len(submitted)} job array(s) submitted; their state is unknown here ({err})"]
    shown = [s for s in submitted if states[s.job_id].active] or submitted[-1:]
    lines = [f"{states[s.job_id]}; logs in {shlex.quote(s.log_dir)}" for s in shown[-limit:]]
    older = len(submitted) - len(shown)
    if older > 0:
        lines.append(f"{older} earlier job array(s), finished")
    return lines
