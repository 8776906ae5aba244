"""Workers through SLURM vs workers started by hand, on the same queue, in one run.

    SLURM_CONF=/tmp/nntransfer-slurm/slurm.conf python bench/slurm_overhead.py [--steps 40] [--work 0.2] [--workers 4] [--repeats 2]

A recipe of STEPS one-step chains (WORK CPU-s each, bench/trivial_steps.py) is run by WORKERS `nntransfer worker`
processes started here, and by `nntransfer submit --workers WORKERS` as one job array on the SLURM cluster that
SLURM_CONF names (waited for until the array has left squeue); each run on its own scratch schema, the order
alternating over the repeats. Two times per run: the wall time (from starting the workers, or the submit command,
to the last worker done: the workers' start-up included) and the queue time (first step's start to last step's
end). Goal: the overhead per step, (SLURM wall - by-hand wall) / STEPS, under 1 s. The scratch schemas (nnfabrik's
core schema included), the store and the logs are dropped afterwards, also when a run fails.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

HERE = Path(__file__).parent

RECIPE = """
from nntransfer.configs import Description, Experiment, TransferExperiment
from trivial_steps import TrivialDatasetConfig, TrivialModelConfig, TrivialTrainerConfig

transfer_experiments = {{
    Description("step", seed): TransferExperiment(
        [Experiment(TrivialDatasetConfig(), TrivialModelConfig(), TrivialTrainerConfig(work_seconds={work}), seed=seed)]
    )
    for seed in range({steps})
}}
"""


def mysql(sql):
    return subprocess.run(
        ["mysql", "-h", "127.0.0.1", "-u", "root", "-N", "-e", sql], capture_output=True, text=True, check=False
    ).stdout


def queue_time(log, steps):
    spans = [tuple(map(float, line.split())) for line in log.read_text().splitlines()] if log.exists() else []
    if len(spans) != steps:
        raise SystemExit(f"{len(spans)} steps logged their work in {log}, not {steps}")
    return max(end for _, end in spans) - min(start for start, _ in spans)


def by_hand(args, recipe, schema, env):
    start = time.perf_counter()
    workers = [
        subprocess.Popen([sys.executable, "-m", "nntransfer", "worker", str(recipe), "--schema", schema, "--quiet", "--poll", str(args.poll)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(args.workers)
    ]  # fmt: skip
    try:
        for worker in workers:
            _, err = worker.communicate()
            if worker.returncode != 0:
                raise SystemExit(f"worker failed: {err[-1000:]}")
    finally:
        for worker in workers:  # the others, when one failed
            if worker.poll() is None:
                worker.kill()
    return time.perf_counter() - start


def through_slurm(args, recipe, schema, env, log_dir):
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "nntransfer", "submit", str(recipe), "--schema", schema, "--workers", str(args.workers),
                           "--log-dir", str(log_dir), "--poll", str(args.poll), "--quiet"], env=env, capture_output=True, text=True)  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("submitted SLURM job ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"nntransfer submit failed: {(done.stderr or done.stdout)[-1000:]}")
    job = lines[0].split()[3].rstrip(":")
    while still_queued(job):
        time.sleep(0.1)
    return time.perf_counter() - start


def still_queued(job):
    """Whether squeue lists a task of the array; asked again while squeue fails (slurmctld restarting)."""
    for _ in range(30):
        done = subprocess.run(["squeue", "-h", "-r", "-o", "%F", "-j", job], capture_output=True, text=True, timeout=30)
        if done.returncode == 0:
            return job in done.stdout.split()
        print(f"squeue failed ({done.stderr.strip()}), asking again", file=sys.stderr)
        time.sleep(1)
    raise SystemExit(f"squeue keeps failing for job {job}: {done.stderr.strip()}")


def cancel_ours(log_dir):
    """scancel the arrays still queued whose submission file is in this run's log folder (an interrupted
    submit may have submitted one before it printed its id)."""
    queued = subprocess.run(["squeue", "-h", "-o", "%F %o"], capture_output=True, text=True, timeout=30).stdout
    ours = {
        job
        for job, _, command in (line.partition(" ") for line in queued.splitlines())
        if command.startswith(f"{log_dir}/")
    }
    if ours:
        subprocess.run(["scancel", *sorted(ours)], check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--work", type=float, default=0.2, help="CPU seconds per step")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between a worker's checks, both ways")
    args = parser.parse_args()
    try:
        subprocess.run(["squeue", "-h"], capture_output=True, timeout=15, check=True)
    except (OSError, subprocess.SubprocessError):
        raise SystemExit(f"squeue does not answer (SLURM_CONF={os.environ.get('SLURM_CONF', 'unset')}): "
                         "run .ci/slurm-cluster start and export the SLURM_CONF it prints") from None  # fmt: skip
    prefix = f"nnt_slurmb_{uuid.uuid4().hex[:6]}"
    times = {}  # (repeat, "hand" | "slurm") -> (queue, wall)
    with tempfile.TemporaryDirectory() as folder:
        recipe, log_dir = Path(folder) / "overhead_recipe.py", Path(folder).resolve() / "slurm_logs"
        recipe.write_text(textwrap.dedent(RECIPE.format(steps=args.steps, work=args.work)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1",
                   NNTRANSFER_STORE=str(Path(folder) / "store"), NNFABRIK_SCHEMA_NAME=f"{prefix}_core")  # fmt: skip
        try:
            for repeat in range(args.repeats):
                for kind in ("hand", "slurm") if repeat % 2 == 0 else ("slurm", "hand"):
                    schema, log = f"{prefix}_{repeat}_{kind}", Path(folder) / f"{repeat}_{kind}.log"
                    run_env = dict(env, BENCH_LOG=str(log))
                    if kind == "hand":
                        wall = by_hand(args, recipe, schema, run_env)
                    else:
                        wall = through_slurm(args, recipe, schema, run_env, log_dir)
                    times[repeat, kind] = queue, wall = queue_time(log, args.steps), wall
                    print(f"repeat {repeat + 1} {kind}: queue {queue:.1f} s, wall {wall:.1f} s", flush=True)
        finally:
            cancel_ours(log_dir)
            names = mysql(f"SHOW DATABASES LIKE '{prefix.replace('_', chr(92) + '_')}%'").split()
            if names:
                mysql("SET FOREIGN_KEY_CHECKS=0; " + " ".join(f"DROP DATABASE IF EXISTS `{name}`;" for name in names))
    print(f"\n{args.steps} steps of {args.work} CPU-s, {args.workers} workers, queue / wall time:")
    print("           by hand            SLURM              overhead per step")
    overheads = []
    for repeat in range(args.repeats):
        (hand_queue, hand), (slurm_queue, through) = times[repeat, "hand"], times[repeat, "slurm"]
        overheads.append((through - hand) / args.steps)
        print(
            f"repeat {repeat + 1}   {hand_queue:5.1f} / {hand:5.1f} s   {slurm_queue:5.1f} / {through:5.1f} s   {overheads[-1]:6.3f} s"
        )
    median = statistics.median(overheads)
    verdict = "meets" if median < 1 else "misses"
    print(f"overhead per step, median of {args.repeats}: {median:.3f} s ({verdict} the goal: < 1 s per step)")


if __name__ == "__main__":
    main()
