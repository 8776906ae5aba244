"""The MNIST-1D table of Nix, Sinz et al. (AISTATS 2022), tuned: each method's best setting of a search.

The paper reports each method at the best setting of a hyper-parameter search; ``bench/paper_mnist1d.py``
trains every method at one shared setting. This script searches, per method, the student's learning rate
and the method's own weight (``SPACES``) on seed 1 (``nntransfer.search``: TPE, validation accuracy, which
holds the seen shifts 0-29 only; hopeless trials pruned against the median after 20 epochs), trains the best
setting on seeds 1-3 and prints "best of N trials, mean ± std over 3 seeds" beside the untuned numbers (when
the work folder holds them) and the paper's. Everything lands in one work folder and is reused: a second run
only prints, and several processes may share the folder (each takes the methods it is given).

    python bench/paper_mnist1d_tuned.py --trials 12                       # every method
    python bench/paper_mnist1d_tuned.py --trials 12 --methods kd rdl      # some, e.g. one process per core
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "bench"))

from mnist1d_paper import chains  # noqa: E402
from paper_mnist1d import LABELS, PAPER, SPLITS, mean_std  # noqa: E402

from nntransfer.configs import Description  # noqa: E402
from nntransfer.defaults import TASK_KEY  # noqa: E402
from nntransfer.pipeline.local import LocalStore  # noqa: E402
from nntransfer.recipes.loading import Recipe  # noqa: E402
from nntransfer.search import Choice, LogUniform, SearchSpace, Uniform, run_search  # noqa: E402

#: the search seed, and the seeds the best setting is trained on
SEARCH_SEED, SEEDS = 1, (1, 2, 3)
LR = LogUniform(3e-4, 1e-2)
#: method -> the student's settings searched (the student is the chain's last step)
SPACES = {
    "scratch": {"lr": LR},
    "kd": {"lr": LR, "kd_weight": Uniform(0.1, 1.0), "kd_temperature": Choice([1.0, 2.0, 4.0, 8.0])},
    "rdl": {"lr": LR, "rdl_weight": LogUniform(0.1, 10.0)},
    "attention": {"lr": LR, "at_weight": LogUniform(10.0, 1e4)},
    "matching": {"lr": LR, "match_weight": LogUniform(0.1, 10.0)},
    "orbit": {"lr": LR, "orbit_equivariance_weight": LogUniform(0.1, 10.0)},
}
PRUNER = {"n_startup_trials": 4, "n_warmup_steps": 20}


def space_of(method: str, student_step: int) -> SearchSpace:
    params = {(student_step, "trainer", name): distribution for name, distribution in SPACES[method].items()}
    return SearchSpace(params=params, chain=method, objective="validation accuracy", sampler="tpe", seed=0,
                       pruner="median", pruner_options=PRUNER)  # fmt: skip


def tuned(method: str, trials: int, workdir: str, epochs: int, teacher_epochs: int, device: str) -> Dict[str, List[float]]:
    """Search ``method`` (continuing its study), train its best setting on every seed; ``{split: [accuracy per seed]}``."""
    recipe = chains.build(seeds=(SEARCH_SEED,), epochs=epochs, teacher_epochs=teacher_epochs)
    description = Description(name=method, seed=SEARCH_SEED)
    base = recipe[description]
    space = space_of(method, len(base) - 1)
    result = run_search(Recipe("mnist1d_paper_tuned", None, {description: base}), space, trials, store=f"local:{workdir}",
                        then_seeds=SEEDS, runtime={"trainer": {"device": device}}, progress=False)  # fmt: skip
    print(f"{method}: {result}", file=sys.stderr, flush=True)
    store = LocalStore(workdir)
    best = space.trial_chain(base, result.best_params)
    found: Dict[str, List[float]] = {}
    for seed in SEEDS:
        seeded = copy.deepcopy(best)
        for step in seeded:
            step.seed = seed
        final = store.load(seeded.get_key()).output["final"]
        for split in SPLITS:
            found.setdefault(split, []).append(float(final[split][TASK_KEY]["accuracy"]))
    found["best"] = [result.best_value]
    found["settings"] = result.best_params  # type: ignore[assignment]
    found["trials"] = [result.finished, result.pruned]  # type: ignore[list-item]
    return found


def untuned(method: str, workdir: str, epochs: int, teacher_epochs: int) -> Dict[str, List[float]]:
    """The method at the shared setting of ``paper_mnist1d.py`` where the work folder holds all its seeds."""
    recipe = chains.build(seeds=SEEDS, epochs=epochs, teacher_epochs=teacher_epochs)
    store = LocalStore(workdir)
    found: Dict[str, List[float]] = {}
    for seed in SEEDS:
        key = recipe[Description(name=method, seed=seed)].get_key()
        if not store.is_done(key):
            return {}
        final = store.load(key).output["final"]
        for split in SPLITS:
            found.setdefault(split, []).append(float(final[split][TASK_KEY]["accuracy"]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="nntransfer_paper_work", help="work folder (finished steps and studies are reused)")
    parser.add_argument("--trials", type=int, default=12, help="trials per method")
    parser.add_argument("--methods", nargs="+", default=list(SPACES), choices=list(SPACES))
    parser.add_argument("--epochs", type=int, default=chains.EPOCHS, help="epochs of the students")
    parser.add_argument("--teacher-epochs", type=int, default=chains.TEACHER_EPOCHS, help="epochs of the teacher and of learning the orbit")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"MNIST-1D, test accuracy (%): best of {args.trials} trials (seed {SEARCH_SEED}, validation accuracy), "
          f"mean ± std over seeds {', '.join(map(str, SEEDS))}; untuned: the shared setting; paper: one seed, best of a search")  # fmt: skip
    print("| method | tuned seen | tuned unseen | tuned all | untuned all | paper seen | paper unseen | paper all | best setting (trials finished, pruned) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for method in args.methods:
        ours = tuned(method, args.trials, args.workdir, args.epochs, args.teacher_epochs, args.device)
        before = untuned(method, args.workdir, args.epochs, args.teacher_epochs)
        paper = " | ".join(f"{v:.1f}" for v in PAPER[method]) if method in PAPER else " |  | "
        settings = ", ".join(f"{key.split('/')[-1]} {value:.3g}" for key, value in ours["settings"].items())  # type: ignore[union-attr]
        cells = " | ".join(mean_std(ours[split]) for split in SPLITS)
        print(f"| {LABELS[method]} | {cells} | {mean_std(before['test_all']) if before else ''} | {paper} | "
              f"{settings} ({ours['trials'][0]}, {ours['trials'][1]}) |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
