"""Two `nntransfer worker` processes vs one on a queue of CPU-bound jobs, in one run.

    python bench/workers_speedup.py [--jobs 12] [--work 1.5]

Goal: two workers on two cores finish the queue at least 1.8x as fast as one. Each run uses (and drops)
its own scratch schema. Two times are reported: the queue time (first job's start to last job's end,
the throughput of the workers) and the wall time (which adds the workers' start-up, ~2-3 s each).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

HERE = Path(__file__).parent

RECIPE = '''
from nntransfer.configs import Description, Experiment, TransferExperiment
from trivial_steps import TrivialDatasetConfig, TrivialModelConfig, TrivialTrainerConfig

transfer_experiments = {{
    Description("job", seed): TransferExperiment(
        [Experiment(TrivialDatasetConfig(), TrivialModelConfig(), TrivialTrainerConfig(work_seconds={work}), seed=seed)]
    )
    for seed in range({jobs})
}}
'''


def run_workers(count, recipe, env, log):
    schema = f"nnt_speed_{uuid.uuid4().hex[:6]}"
    log.unlink(missing_ok=True)
    env = dict(env, BENCH_LOG=str(log))
    start = time.perf_counter()
    workers = [
        subprocess.Popen([sys.executable, "-m", "nntransfer", "worker", str(recipe), "--schema", schema, "--quiet", "--poll", "0.2"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]  # fmt: skip
    for worker in workers:
        _, err = worker.communicate()
        if worker.returncode != 0:
            raise SystemExit(f"worker failed: {err[-1000:]}")
    elapsed = time.perf_counter() - start
    subprocess.run(["mysql", "-h", "127.0.0.1", "-u", "root", "-e", f"DROP DATABASE IF EXISTS `{schema}`"], check=False)
    spans = [tuple(map(float, line.split())) for line in log.read_text().splitlines()]
    queue = max(end for _, end in spans) - min(start for start, _ in spans)
    return elapsed, queue


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--work", type=float, default=1.5, help="CPU seconds per job")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        recipe = Path(folder) / "speed_recipe.py"
        recipe.write_text(textwrap.dedent(RECIPE.format(jobs=args.jobs, work=args.work)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
                   OMP_NUM_THREADS="1", NNTRANSFER_STORE=str(Path(folder) / "store"))  # fmt: skip
        log = Path(folder) / "jobs.log"
        one, one_queue = run_workers(1, recipe, env, log)
        two, two_queue = run_workers(2, recipe, env, log)
    print(f"{args.jobs} jobs of {args.work} CPU-s each      queue     wall")
    print(f"1 worker               {one_queue:8.1f} s {one:8.1f} s")
    print(f"2 workers              {two_queue:8.1f} s {two:8.1f} s")
    print(f"speed-up (goal >= 1.8x) {one_queue / two_queue:7.2f}x {one / two:7.2f}x")


if __name__ == "__main__":
    main()
