"""The loss ablation of orbit transfer (the paper's recipe: sinzlab/orbit_transfer_recipes,
``_2021_09_24_aistats/mnist_2d_cnn_linear_loss_ablation.py``): which terms of the loss that learns the orbit
matter? The translation experiment's teacher -> learn the orbit -> MLP student chain (``chains.py``), with each
of the four terms of ``OrbitLearningMixin`` on or off, as the original's grid: identity 10 or 0 (the
original's ``id_factor``), invertibility 1 or 0 (``inv_factor``; the mixin's default is 10), equivariance 1 or
0 (``equiv_factor``) and the cross-entropy on transformed images 1 or 0 (``ce_factor``): 16 chains, one seed
(the original's). With every term off the orbit does not train (nothing to minimise) and keeps its random
initialisation. Tested as the translation experiment.
"""

from itertools import product

from nntransfer.configs import Description, Experiment, TransferExperiment

from .chains import (
    DATA_DIR,
    DATASET_CLS,
    EPOCHS,
    ORBIT,
    ORBIT_EPOCHS,
    STUDENT,
    TEACHER,
    TEACHER_EPOCHS,
    TEACHER_LR,
    OrbitLearningTrainer,
    data,
    student_options,
    student_trainer,
    teacher_step,
)

SEEDS = (1,)
#: the original's grid: (identity, invertibility, equivariance, cross-entropy)
GRID = list(product((10.0, 0.0), (1.0, 0.0), (1.0, 0.0), (1.0, 0.0)))


def name(identity: float, invertibility: float, equivariance: float, ce: float) -> str:
    return f"ablation id={identity:g} inv={invertibility:g} equiv={equivariance:g} ce={ce:g}"


def build(seeds=SEEDS, epochs=EPOCHS, teacher_epochs=TEACHER_EPOCHS, orbit_epochs=ORBIT_EPOCHS, dataset_cls=DATASET_CLS,
          data_dir=DATA_DIR):
    """``{Description: TransferExperiment}``: one chain per setting of the grid and seed (names ``ablation ...``);
    the teacher is ``chains.py``'s (the same step: a shared work folder trains it once)."""
    dataset = data(dataset_cls, data_dir)
    common = student_options(epochs)
    chains = {}
    for seed in seeds:
        first = teacher_step(dataset, TEACHER, teacher_epochs, TEACHER_LR, seed)
        for identity, invertibility, equivariance, ce in GRID:
            learning = OrbitLearningTrainer(max_iter=orbit_epochs, show_progress=False, comment="learn orbit",
                                            orbit_identity_weight=identity, orbit_invertibility_weight=invertibility,
                                            orbit_equivariance_weight=equivariance, orbit_ce_weight=ce)
            steps = [first, Experiment(dataset, ORBIT, learning, seed=seed),
                     Experiment(dataset, STUDENT, student_trainer("orbit", **common), seed=seed)]
            chains[Description(name=name(identity, invertibility, equivariance, ce), seed=seed)] = TransferExperiment(steps)
    return chains


transfer_experiments = build()
