"""Workers on a SLURM cluster: ``nntransfer submit`` and :func:`submit`, ``nntransfer cancel`` and :func:`cancel`.

What ``submit`` does, in this order (anything wrong before step 5 is one line, and nothing is submitted)::

    1. the options, the store (shared by every node: ``Store.check_shared``) and SLURM (sbatch, the partition)
    2. the recipe, checked as ``run`` checks it (``check_run``: names, changed code, one batch per step)
    3. the store filled for the recipe (config tables), failures cleared with ``retry_failed``
    4. submitit writes one job array of N tasks; each task is a ``WorkerTask``: ``nntransfer worker`` in the job
    5. the array recorded in the store, so that ``status`` and ``cancel`` find it from any machine

A task's life (signals as SLURM sends them)::

    start  -> run_experiments(worker=True): take steps, train, store, until every step is done or failed
    SIGTERM (scancel, the time limit, preemption) -> the step in hand is released at once, its checkpoint
           kept; exit (SLURM requeues a preempted task where the partition's PreemptMode says so)
    SIGUSR2 (sent ``signal_delay`` before the time limit)
           requeue=True:  submitit requeues the task (``WorkerTask.checkpoint``), which resumes the step from
                          its checkpoint when it starts again (up to MAX_REQUEUES times)
           requeue=False: stop as on SIGTERM

submitit keeps each array's submission (a pickle of the ``WorkerTask``, which holds the database login the
workers need) and logs in the log folder; it is created readable by its owner only, and must be on a
filesystem the nodes share.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from nntransfer.cluster import slurm
from nntransfer.configs import runtime as runtime_options
from nntransfer.pipeline.addresses import backend_of, open_store, parse_address
from nntransfer.pipeline.backends import store_address
from nntransfer.pipeline.fast_dev_run import refuse_fast_dev_run_option
from nntransfer.pipeline.runner import check_run, effective_runtime, log_handler, run_experiments
from nntransfer.pipeline.store import TRAINABLE, Store, Submission, step_status
from nntransfer.provenance import cluster_job
from nntransfer.recipes.loading import load_recipe
from nntransfer.recipes.selection import select_chains
from nntransfer.registry import did_you_mean
from nntransfer.search.run import counted_trials, prepare_search, run_search, study_storage

__all__ = ["DEFAULT_LOG_DIR", "SlurmOptions", "WorkerTask", "submit", "cancel"]
logger = logging.getLogger(__name__)

#: where the workers' logs (and submitit's submission files) go unless ``log_dir`` says otherwise
DEFAULT_LOG_DIR = "./nntransfer_slurm"
#: seconds before the time limit at which a task is told to stop (SIGUSR2), at most
SIGNAL_DELAY = 90
#: how often a task that reaches its time limit is requeued with ``requeue`` (preemptions do not count)
MAX_REQUEUES = 3
#: sbatch options submit sets itself (``--slurm`` may not): the array, its logs and its signal
RESERVED_PARAMETERS = {"array", "output", "error", "signal", "open-mode", "wrap", "parsable"}
_MEMORY = re.compile(r"\d+[KMGT]?")
_PARAMETER = re.compile(r"[a-z][a-z0-9-]*")


@dataclass
class SlurmOptions:
    """What the job array asks SLURM for: ``workers`` tasks, each on ``partition`` for ``time`` (``HH:MM:SS``,
    any SLURM form) with ``cpus_per_task`` CPUs, ``mem`` memory (``16G``) and ``gpus_per_task`` GPUs;
    ``setup`` lines run before each worker (``module load cuda``); ``parameters`` are further sbatch options
    (``{"account": "lab", "qos": "high"}``); ``requeue``: a task that reaches its time limit is requeued and
    resumes from its checkpoint, and sbatch gets ``--requeue`` (SLURM may requeue it after a node failure or
    a preemption); ``log_dir``: the folder of the logs, on a filesystem the nodes share."""

    workers: int = 1
    partition: Optional[str] = None
    time: Optional[str] = None
    cpus_per_task: Optional[int] = None
    mem: Optional[str] = None
    gpus_per_task: Optional[int] = None
    setup: Sequence[str] = ()
    parameters: Mapping[str, str] = field(default_factory=dict)
    requeue: bool = False
    log_dir: str = DEFAULT_LOG_DIR
    job_name: str = "nntransfer"

    def check(self) -> None:
        """One line for the first option SLURM would refuse or misread."""
        for name in ("workers", "cpus_per_task", "gpus_per_task"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < (1 if name != "gpus_per_task" else 0)):
                raise ValueError(f"--{name.replace('_', '-')} takes a whole number of at least {1 if name != 'gpus_per_task' else 0}, not {value!r}")
        if self.time is not None:
            slurm.minutes(self.time)
        if self.mem is not None and not _MEMORY.fullmatch(str(self.mem)):
            raise ValueError(f"--mem takes a SLURM memory size such as 4000M or 16G, not {self.mem!r}")
        if isinstance(self.setup, str):
            raise ValueError("setup takes a list of shell lines, not one string")
        for key in self.parameters:
            if not _PARAMETER.fullmatch(str(key)):
                raise ValueError(f"--slurm takes KEY=VALUE with KEY an sbatch long option without its dashes (account, qos), not {key!r}")
            if key in RESERVED_PARAMETERS:
                raise ValueError(f"--slurm {key}=... is set by nntransfer submit itself; leave it out")

    @property
    def limit_minutes(self) -> Optional[int]:
        return None if self.time is None else slurm.minutes(self.time)

    def executor_parameters(self) -> Dict[str, Any]:
        """The parameters of submitit's ``SlurmExecutor`` (options left unset are SLURM's defaults)."""
        params: Dict[str, Any] = dict(job_name=self.job_name, stderr_to_stdout=True)
        params["time"] = self.limit_minutes  # None: no --time (unlimited), never submitit's default of 5 minutes
        if self.limit_minutes is not None:
            # told to stop a quarter of a short limit before it ends, SIGNAL_DELAY before a long one
            params["signal_delay_s"] = int(min(SIGNAL_DELAY, max(10, self.limit_minutes * 60 // 4)))
        for name in ("partition", "cpus_per_task", "mem", "gpus_per_task"):
            if getattr(self, name) is not None:
                params[name] = getattr(self, name)
        if self.setup:
            params["setup"] = list(self.setup)
        extra = dict(self.parameters)
        if self.requeue:
            extra["requeue"] = True
        if extra:
            params["additional_parameters"] = extra
        return params


@dataclass
class WorkerTask:
    """One task of a submitted array: ``nntransfer worker`` for the recipe and store, in the job's process
    (submitit calls it with the task's index). ``environment``: what the worker needs to reach the store
    (``Store.worker_environment``), set before the store opens."""

    recipe: str
    store: str
    experiment: Optional[str] = None
    chains: Optional[List[str]] = None
    seeds: Optional[List[int]] = None
    order: str = "original"
    runtime: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    poll_seconds: float = 2.0
    requeue: bool = False
    environment: Dict[str, str] = field(default_factory=dict)
    #: instead of working through the recipe, run trials of a search: {"space": path, "trials": N, "study": name}
    search: Optional[Dict[str, Any]] = None

    def __call__(self, task: int) -> str:
        os.environ.update(self.environment)
        root = logging.getLogger()
        if not root.handlers:  # the task's log file: the same lines as a worker's stderr
            root.addHandler(log_handler())
            root.setLevel(logging.INFO)
            logging.getLogger("submitit").propagate = False  # it writes its own lines to the same file
            backend_of(self.store).configure_logging(quiet=False)  # the backend's libraries in our format, once
        gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
        logger.info("worker %d of SLURM job %s on %s; %s", task, cluster_job() or "?", platform.node(),
                    f"GPUs SLURM gave it: CUDA_VISIBLE_DEVICES={gpus} (cuda:0 is the first)" if gpus else "no GPUs")
        try:
            if self.search is not None:
                result = run_search(self.recipe, self.search["space"], self.search["trials"], store=self.store,
                                    experiment=self.experiment, chain=(self.chains or [None])[0],
                                    seed=(self.seeds or [None])[0], study=self.search["study"], runtime=self.runtime,
                                    progress=False)  # fmt: skip
                logger.info("worker finished: %s", str(result).replace("\n", "; "))
                return str(result)
            recipe = select_chains(load_recipe(self.recipe, self.experiment), self.chains, self.seeds)
            rows = run_experiments(recipe, store=self.store, order=self.order, progress=False, runtime=self.runtime,
                                   worker=True, poll_seconds=self.poll_seconds, resume_hint=None)  # fmt: skip
        except KeyboardInterrupt as stop:  # SIGTERM from scancel or the time limit: the step was released
            logger.warning("worker stopped (%s): its step was released and resumes from its checkpoint", stop or "SIGTERM")
            return "stopped"
        logger.info("worker finished: %s", rows.summary)
        return str(rows.summary)

    def checkpoint(self, task: int) -> Any:
        """What submitit calls on SIGUSR2 (the time limit is near): with
        ``requeue``, the same task again (submitit requeues it; the step resumes from its checkpoint when
        it starts); without, the worker stops as on SIGTERM."""
        if not self.requeue:
            raise KeyboardInterrupt("the time limit is near")
        import submitit

        logger.warning("the time limit is near: requeued; the step resumes from its checkpoint")
        return submitit.helpers.DelayedSubmission(self, task)


def _recipe_reference(recipe: Union[str, os.PathLike]) -> str:
    """What the workers load: a recipe on disk as an absolute path (they may start in another folder), a
    module name as it is."""
    if not isinstance(recipe, (str, os.PathLike)):
        raise ValueError("submit sends the workers a recipe on disk (a folder, a .py file or a module name), "
                         "not experiments defined in this process")  # fmt: skip
    path = Path(recipe).expanduser()
    return str(path.resolve()) if path.exists() else str(recipe)


def _shared_store(address: str) -> None:
    scheme, location = parse_address(address)
    backend_of(address).check_shared(location)


def _check_partition(partition: Optional[str]) -> None:
    if partition is None:
        return
    known = slurm.partitions()
    if partition not in known:
        raise ValueError(f"SLURM has no partition {partition!r}{did_you_mean(partition, known)}; it has {', '.join(known) or 'none'}")


def _log_folder(log_dir: Union[str, os.PathLike]) -> Path:
    folder = Path(log_dir).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)  # the submission pickles hold the database login
    return folder


def submit(
    recipe: Union[str, os.PathLike],
    store: Optional[str] = None,
    schema: Optional[str] = None,
    workers: int = 1,
    experiment: Optional[str] = None,
    chains: Optional[Sequence[str]] = None,
    seeds: Optional[Sequence[int]] = None,
    order: str = "original",
    runtime: Optional[Mapping[str, Mapping[str, Any]]] = None,
    partition: Optional[str] = None,
    time: Optional[str] = None,
    cpus_per_task: Optional[int] = None,
    mem: Optional[str] = None,
    gpus_per_task: Optional[int] = None,
    setup: Sequence[str] = (),
    slurm_parameters: Optional[Mapping[str, str]] = None,
    requeue: bool = False,
    log_dir: Union[str, os.PathLike] = DEFAULT_LOG_DIR,
    retry_failed: bool = False,
    rerun_changed: bool = False,
    reuse_changed: bool = False,
    poll_seconds: float = 2.0,
    progress: bool = True,
    space: Optional[Union[str, os.PathLike]] = None,
    trials: Optional[int] = None,
    study: Optional[str] = None,
) -> Optional[Submission]:
    """Check ``recipe`` as a run does, fill the store at the address ``store`` (or ``schema``: the
    ``datajoint:`` shortcut) and submit ``workers`` ``nntransfer worker`` tasks for it as one SLURM job
    array (see the module docstring); returns the :class:`~nntransfer.pipeline.store.Submission` the store
    recorded, or None when no step waits to be trained (every step done, failed or held by a running
    worker: nothing is submitted). With ``space`` (a search space file, and ``trials``), the tasks run
    trials of that search (``nntransfer search``) instead, sharing its study. Bad input (a store of one machine, no SLURM, an unknown partition, a recipe that fails its
    checks) is a one-line ``ValueError`` and submits nothing."""
    options = SlurmOptions(workers=workers, partition=partition, time=time, cpus_per_task=cpus_per_task, mem=mem,
                           gpus_per_task=gpus_per_task, setup=tuple(setup), parameters=dict(slurm_parameters or {}),
                           requeue=requeue, log_dir=str(log_dir))  # fmt: skip
    options.check()
    if rerun_changed and reuse_changed:
        raise ValueError("pass either --rerun-changed or --reuse-changed, not both")
    reference = _recipe_reference(recipe)
    address = store_address(store, None, schema)
    _shared_store(address)
    slurm.require_slurm()
    _check_partition(partition)
    if options.time is None:  # what SLURM gives a job without --time, said explicitly (submitit's default is 5 min)
        options.time = slurm.partition_time_limit(partition)
    if space is not None:
        return _submit_search(reference, address, space, trials, study, options, experiment, chains, seeds, runtime)
    loaded = select_chains(load_recipe(reference, experiment), chains, seeds)
    refuse_fast_dev_run_option(loaded, effective_runtime(runtime, progress))
    checked = check_run(loaded, address, progress, runtime, rerun_changed, reuse_changed)
    target: Store = checked.store
    if retry_failed:
        target.clear_failures(loaded)
    target.prepare(loaded, checked.runtime, checked.provenance)
    if not any(row.state in TRAINABLE for row in step_status(target, loaded)):
        logger.info("no step of %s waits in %s: nothing submitted", loaded.name, target.where)
        return None
    task = WorkerTask(
        reference, address, experiment, list(chains) if chains else None, [int(s) for s in seeds] if seeds else None,
        order, runtime_options.merge(runtime), poll_seconds, requeue, target.worker_environment(),
    )  # fmt: skip
    submission = _submit_array(task, options, reference)
    target.record_submission(submission)
    logger.info("submitted SLURM job %s: %d worker(s) for %s", submission.job_id, submission.tasks, target.where)
    return submission


def _submit_search(reference: str, address: str, space: Union[str, os.PathLike], trials: Optional[int], study: Optional[str],
                   options: SlurmOptions, experiment: Optional[str], chains: Optional[Sequence[str]],
                   seeds: Optional[Sequence[int]], runtime: Optional[Mapping[str, Mapping[str, Any]]]) -> Optional[Submission]:
    """``submit --space``: the search checked and its study created here, then N tasks running its trials."""
    import optuna

    if trials is None:
        raise ValueError("--space needs --trials N (how many trials the study is to have)")
    if len(chains or ()) > 1 or len(seeds or ()) > 1:
        raise ValueError("a search runs on one chain and one seed: give --chain and --seed once at most")
    space_reference = _recipe_reference(space)
    prepared = prepare_search(reference, space_reference, trials, address, experiment, (chains or [None])[0],
                              (seeds or [None])[0], study)  # fmt: skip
    counted = counted_trials(optuna.load_study(study_name=prepared.study, storage=study_storage(prepared.url)))
    if len(counted) >= trials:
        logger.info("study %r has %d trial(s) already: nothing submitted", prepared.study, len(counted))
        return None
    task = WorkerTask(reference, address, experiment, list(chains) if chains else None, [int(s) for s in seeds] if seeds else None,
                      runtime=runtime_options.merge(runtime), requeue=options.requeue,
                      environment=prepared.store.worker_environment(),
                      search={"space": space_reference, "trials": trials, "study": prepared.study})  # fmt: skip
    submission = _submit_array(task, options, reference)
    prepared.store.record_submission(submission)
    logger.info("submitted SLURM job %s: %d worker(s) for study %r in %s", submission.job_id, submission.tasks,
                prepared.study, prepared.store.where)  # fmt: skip
    return submission


def _submit_array(task: WorkerTask, options: SlurmOptions, reference: str) -> Submission:
    import submitit

    created = not Path(options.log_dir).expanduser().exists()
    folder = _log_folder(options.log_dir)
    before = set(folder.iterdir())
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=MAX_REQUEUES if options.requeue else 0)
    executor.update_parameters(**options.executor_parameters())
    failed: Optional[Exception] = None
    with _captured_stderr() as sbatch_said:
        try:
            jobs = executor.map_array(task, list(range(options.workers)))
        except Exception as err:
            failed = err
    said = [line.strip() for line in sbatch_said if line.strip()]
    if failed is not None:  # sbatch refused: one line with SLURM's reason, and nothing left behind
        for path in set(folder.iterdir()) - before:
            path.unlink()
        if created:
            folder.rmdir()
        said = said or str(failed).strip().splitlines()
        reason = said[-1].replace("sbatch: error: ", "") if said else type(failed).__name__
        raise ValueError(f"sbatch refused the job array: {reason}")
    for line in said:  # what sbatch warned about on its way
        logger.warning("%s", line)
    return Submission(job_id=str(jobs[0].job_id).split("_")[0], tasks=options.workers, recipe=reference, log_dir=str(folder))


@contextlib.contextmanager
def _captured_stderr() -> Iterator[List[str]]:
    """The lines child processes (sbatch, which submitit runs) write to stderr while the block runs,
    instead of on the terminal: the list the block gets is filled when it ends."""
    lines: List[str] = []
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines.extend(captured.read().decode(errors="replace").splitlines())


def _open(store: Optional[str], schema: Optional[str]) -> Store:
    address = store_address(store, None, schema)
    _shared_store(address)
    return open_store(address, create=False)


def cancel(store: Optional[str] = None, schema: Optional[str] = None, job: Optional[str] = None) -> List[slurm.ArrayState]:
    """Cancel the job arrays submitted for the store at the address ``store`` (``schema``: the ``datajoint:``
    shortcut) that still have tasks queued or running, or only the array ``job``; returns their states before
    the cancel. Each running worker gets SIGTERM: it releases its step, whose checkpoint is kept, so that
    submitting again resumes it."""
    target = _open(store, schema)
    slurm.require_slurm()
    submitted = {s.job_id: s.tasks for s in target.submissions()}
    if job is not None and str(job) not in submitted:
        known = ", ".join(submitted) or "none"
        raise ValueError(f"no job array {job} was submitted for {target.where} (submitted: {known})")
    states = [s for s in slurm.array_states(submitted) if s.active and (job is None or s.job_id == str(job))]
    slurm.cancel_jobs([s.job_id for s in states])
    return states

