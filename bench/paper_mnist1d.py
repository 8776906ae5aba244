"""Reproduce the MNIST-1D table of Nix, Sinz et al. (AISTATS 2022): can functional transfer methods pass a
CNN teacher's shift invariance to an MLP student?

Runs the recipe ``examples/mnist1d_paper`` (teacher, scratch student, KD, RDL, attention transfer, direct
matching, orbit transfer; three seeds) in a work folder (finished steps are reused, so a second run only
prints), then prints the students' test accuracy on seen (0-29), unseen (30-39) and all (0-39) shifts as
mean ± std over the seeds, beside the paper's numbers for this setting (one seed, best of a
hyper-parameter search). Chance is 10%.

    python bench/paper_mnist1d.py                       # the full table (about 25 minutes on 2 CPU cores)
    python bench/paper_mnist1d.py --seeds 1 --epochs 5 --teacher-epochs 5  # a quick look
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from pathlib import Path
from typing import Dict, List, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from mnist1d_paper import chains  # noqa: E402

import nntransfer  # noqa: E402
from nntransfer.defaults import TASK_KEY  # noqa: E402
from nntransfer.pipeline.local import LocalStore  # noqa: E402

#: the paper's Table (MNIST-1D, MLP student of a CNN teacher): seen / unseen / all shifts
PAPER = {
    "kd": (53.6, 11.0, 39.9),
    "rdl": (51.4, 11.7, 39.7),
    "attention": (51.7, 12.3, 40.0),
    "matching": (54.7, 12.2, 40.5),
    "orbit": (77.2, 76.5, 77.3),
}
LABELS = {
    "teacher": "teacher (CNN)", "scratch": "student from scratch", "kd": "knowledge distillation", "rdl": "RDL",
    "attention": "attention transfer", "matching": "direct matching", "orbit": "orbit transfer",
}
SPLITS = ("test_seen", "test_unseen", "test_all")


def accuracies(recipe, store: LocalStore) -> Dict[str, Dict[str, List[float]]]:
    """``{method: {split: [accuracy per seed]}}`` of the last step of every chain."""
    table: Dict[str, Dict[str, List[float]]] = {}
    for description, chain in recipe.items():
        final = store.load(chain.get_key()).output["final"]
        for split in SPLITS:
            value = final[split][TASK_KEY]["accuracy"]
            table.setdefault(description.name, {}).setdefault(split, []).append(float(value))
    return table


def mean_std(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:5.1f}       "
    return f"{statistics.mean(values):5.1f} ± {statistics.stdev(values):4.1f}"


def print_table(table: Dict[str, Dict[str, List[float]]], n_seeds: int) -> None:
    print(f"MNIST-1D, test accuracy (%), mean ± std over {n_seeds} seed(s); paper: one seed, best of a search")
    print("| method | seen (0-29) | unseen (30-39) | all (0-39) | paper seen | paper unseen | paper all |")
    print("|---|---|---|---|---|---|---|")
    for method in ("teacher", "scratch") + chains.METHODS:
        if method not in table:
            continue
        ours = " | ".join(mean_std(table[method][split]) for split in SPLITS)
        paper = " | ".join(f"{v:.1f}" for v in PAPER[method]) if method in PAPER else " |  | "
        print(f"| {LABELS[method]} | {ours} | {paper} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="nntransfer_paper_work", help="work folder (finished steps are reused)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(chains.SEEDS))
    parser.add_argument("--epochs", type=int, default=chains.EPOCHS, help="epochs of the students")
    parser.add_argument("--teacher-epochs", type=int, default=chains.TEACHER_EPOCHS,
                        help="epochs of the teacher and of learning the orbit")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    recipe = chains.build(seeds=tuple(args.seeds), epochs=args.epochs, teacher_epochs=args.teacher_epochs)
    rows = nntransfer.run(recipe, workdir=args.workdir, progress=True, runtime={"trainer": {"device": args.device}})
    failed = [row for row in rows if row.state != "done"]
    if failed:
        raise SystemExit(f"{len(failed)} step(s) did not finish; see `nntransfer status --workdir {args.workdir}`")
    print_table(accuracies(recipe, LocalStore(args.workdir)), len(args.seeds))


if __name__ == "__main__":
    main()
