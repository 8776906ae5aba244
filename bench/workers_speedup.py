"""Two `nntransfer worker` processes vs one on a queue of CPU-bound jobs, in one run.

    python bench/workers_speedup.py [--jobs 12] [--work 1.5]

Goal: two workers on two cores finish the queue at least 1.8x as fast as one. Each run uses (and drops)
its own scratch schema; the wall time includes the workers' start-up.
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


def run_workers(count, recipe, env):
    schema = f"nnt_speed_{uuid.uuid4().hex[:6]}"
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
    return elapsed


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
        one = run_workers(1, recipe, env)
        two = run_workers(2, recipe, env)
    print(f"1 worker : {one:6.1f} s for {args.jobs} jobs of {args.work} CPU-s")
    print(f"2 workers: {two:6.1f} s")
    print(f"speed-up : {one / two:.2f}x (goal >= 1.8x)")


if __name__ == "__main__":
    main()
