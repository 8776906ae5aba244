"""The paper's own MNIST-1D recipe (sinzlab/orbit_transfer_recipes ``_2021_09_24_aistats/mnist_1d_shift.py``, only
its import line changed: ``tests/fixtures/orbit_transfer_aistats``) at full size for one training shift, on
``nntransfer.compat.orbit_transfer``'s step loop: its teacher and the students of its six chains (KD, direct
matching, attention, RDL, plain CE, and the learned orbit then orbit transfer), each as the recipe sets it (40,000
steps at most, evaluated every 100, early stopping after 5 decays), one seed (42, the recipe's).

Prints each chain's last step's test accuracy on seen shifts (0 .. shift-1), unseen shifts (shift .. 39) and
all shifts, beside the paper's table (best of its search, at shift 30). Finished steps are reused.

    python bench/mnist1d_original_recipe.py                       # shift 30 on this machine's CPU
    python bench/mnist1d_original_recipe.py --device cuda --workdir /tmp/w
    python bench/mnist1d_original_recipe.py --total-steps 200 --workdir /tmp/quick   # a quick look, shrunk
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from paper_mnist1d import PAPER  # noqa: E402

import nntransfer  # noqa: E402
from nntransfer.pipeline.local import LocalStore  # noqa: E402
from nntransfer.recipes.loading import load_recipe  # noqa: E402

MODULE = ROOT / "tests" / "fixtures" / "orbit_transfer_aistats" / "mnist_1d_shift.py.txt"
#: the recipe's chain names (before ':') and the rows of the paper's table they are
PAPER_ROW = {"kd": "kd", "kd_match": "matching", "attention": "attention", "rdl": "rdl", "Equiv transfer": "orbit"}
SPLITS = ("test", "test_shift", "test_all")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shift", type=float, default=30.0, help="the training shift (one of the recipe's 0, 5, ..., 40)")
    parser.add_argument("--workdir", default="nntransfer_mnist1d_original_work")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--total-steps", type=int, default=None, help="shrink: the recipe's total_steps (40000) replaced")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    recipe_file = Path(args.workdir) / "mnist_1d_shift.py"
    recipe_file.parent.mkdir(parents=True, exist_ok=True)
    text = MODULE.read_text()
    if args.total_steps is not None:
        text = re.sub(r"self\.total_steps = \d+", f"self.total_steps = {args.total_steps}", text)
    recipe_file.write_text(text)
    recipe = load_recipe(str(recipe_file))
    chains = {d.name: c for d, c in recipe.transfer_experiments.items() if f"shift={args.shift} " in d.name}
    if not chains:
        raise SystemExit(f"no chain of the recipe trains at shift={args.shift}")
    started = time.time()
    rows = nntransfer.run(str(recipe_file), workdir=args.workdir, chains=list(chains), progress=False,
                          runtime={"trainer": {"device": args.device}})
    failed = [row for row in rows if row.state != "done"]
    if failed:
        raise SystemExit(f"{len(failed)} step(s) did not finish: {failed}")
    store = LocalStore(Path(args.workdir))
    print(f"MNIST-1D, the paper's recipe as written, shift {args.shift:g}, seed 42, {args.device}, "
          f"{time.time() - started:.0f} s; test accuracy (%)")
    print("| chain | last step | steps trained | seen | unseen | all | paper seen | paper unseen | paper all |")
    print("|---|---|---|---|---|---|---|---|---|")
    teacher_done = False
    for name, chain in chains.items():
        for level in ([0] if not teacher_done else []) + [len(chain) - 1]:
            result = store.load(chain.step_key(level))
            final, task = result.output["final"], "img_classification"
            ours = " | ".join(f"{final[split][task]['accuracy']:.1f}" for split in SPLITS)
            label = "teacher (CNN)" if level == 0 else name.split(":")[0]
            paper = PAPER.get(PAPER_ROW.get(label, ""), None)
            paper_cells = " | ".join(f"{v:.1f}" for v in paper) if paper else " |  | "
            print(f"| {label} | {level} | {result.output.get('steps')} | {ours} | {paper_cells} |")
        teacher_done = True


if __name__ == "__main__":
    main()
