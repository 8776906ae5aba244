"""``nntransfer report`` at scale: a work folder of many two-step chains (a sweep), timed.

Trains one real two-step digits chain (a few seconds), then stores its outputs, with the scores shifted per
chain, under the keys of every chain of a sweep recipe (``--chains`` names, one seed each, every step its own
configs) through ``LocalStore.save``; then runs ``nntransfer report`` on it in a fresh process and prints the
wall time, the peak memory and the pixel size of every PNG. Target: under 10 s for 300 chains, and plots of
a readable size (no side over a few thousand pixels).

    python bench/report_scale.py --chains 300 [--keep DIR]
"""

import argparse
import json
import logging
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = '''"""A sweep of {chains} two-step chains on the digits (written by bench/report_scale.py)."""

from nntransfer.configs import (ClassificationModelConfig, ClassificationTrainerConfig, Description, Experiment,
                                ImageDatasetConfig, TransferExperiment)

model = ClassificationModelConfig(type="mlp", input_size=8, options={{"hidden_sizes": [16]}})


def chain(lr):
    return TransferExperiment([
        Experiment(ImageDatasetConfig(dataset_cls="Digits", input_size=8, filter_classes=(0, 5), comment="0-4"), model,
                   ClassificationTrainerConfig(max_iter=2, lr=lr, show_progress=False), seed=1, comment="pre-train"),
        Experiment(ImageDatasetConfig(dataset_cls="Digits", input_size=8, filter_classes=(5, 10), comment="5-9"), model,
                   ClassificationTrainerConfig(max_iter=2, lr=lr, reset=["readout"], show_progress=False), seed=1,
                   comment="fine-tune"),
    ])


transfer_experiments = {{Description(name=f"lr {{i}}", seed=1): chain(1e-3 * (1 + i / {chains})) for i in range({chains})}}
'''


def png_size(path: Path) -> tuple:
    with open(path, "rb") as handle:
        header = handle.read(24)
    return struct.unpack(">II", header[16:24])


def shifted(node, by: float):
    """``node`` (the final evaluation) with every number shifted by ``by``."""
    if isinstance(node, dict):
        return {key: shifted(value, by) for key, value in node.items()}
    return node + by if isinstance(node, float) else node


def build(folder: Path, chains: int) -> Path:
    """The sweep recipe and a work folder where every chain is done (one real chain trained, then copied)."""
    from nntransfer.configs import codec
    from nntransfer.pipeline.local import LocalStore
    from nntransfer.pipeline.runner import run_experiments
    from nntransfer.pipeline.step import StepMeta, StepResult
    from nntransfer.recipes.loading import load_recipe

    recipe_dir = folder / "sweep_recipe"
    recipe_dir.mkdir(parents=True)
    (recipe_dir / "__init__.py").write_text("")
    (recipe_dir / "sweep.py").write_text(RECIPE.format(chains=chains))
    recipe = load_recipe(str(recipe_dir))
    workdir = folder / "work"
    items = list(recipe.transfer_experiments.items())
    first = load_recipe(str(recipe_dir))
    first.transfer_experiments = dict(items[:1])
    run_experiments(first, workdir=str(workdir), progress=False)  # one real chain: real outputs
    store = LocalStore(workdir)
    trained = [store.load(items[0][1].step_key(level)) for level in range(2)]
    weights = [store.load_weights(items[0][1].step_key(level)) for level in range(2)]
    for index, (description, chain) in enumerate(items[1:], start=1):
        for level in range(2):
            output = codec.loads(codec.dumps(trained[level].output))
            output["final"] = shifted(output.get("final", {}), -(index % 17) * 0.7)  # something to show
            meta = StepMeta(description.name, description.seed, level, chain[level].comment, chain[level].to_dict())
            store.save(chain.step_key(level), StepResult(trained[level].score, output, weights[level]), meta)
    return recipe_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chains", type=int, default=300)
    parser.add_argument("--keep", help="build in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(args.keep) if args.keep else Path(temporary)
        started = time.perf_counter()
        recipe_dir = build(folder, args.chains)
        print(f"built {args.chains} chains in {time.perf_counter() - started:.1f} s")
        out = folder / "report"
        command = [sys.executable, "-c",
                   "import resource, sys; from nntransfer.cli.main import main; status = main(sys.argv[1:]); "
                   "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
                   "sys.exit(status)",
                   "report", str(recipe_dir), "--workdir", str(folder / "work"), "--out", str(out), "--quiet"]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"report failed ({done.returncode}):\n{done.stderr}")
        peak = next((int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("peak_rss_kb")), 0)
        sizes = {path.name: png_size(path) for path in sorted(out.glob("*.png"))}
        print(f"report of {args.chains} chains: {seconds:.1f} s, peak memory {peak / 1024:.0f} MB")
        for name, (width, height) in sizes.items():
            print(f"  {name}: {width} x {height} px")
        print(json.dumps({"chains": args.chains, "seconds": round(seconds, 2), "peak_mb": round(peak / 1024),
                          "plots": {name: list(size) for name, size in sizes.items()}}))


if __name__ == "__main__":
    main()
