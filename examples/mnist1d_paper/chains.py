"""The experiments of the reproduction, three seeds each:

``scratch``    the student alone;
``teacher``    the shift-invariant CNN (step 0 of every other chain, trained once per seed);
``kd``, ``rdl``, ``attention``, ``matching``: teacher -> student with the teacher in the student's loop;
``orbit``      teacher -> learn the orbit (a group of 40 learned circular convolutions under which the
               teacher is equivariant) -> student trained on the orbits with an equivariance loss.
"""

from nntransfer.configs import (
    AttentionTransferMixin,
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Description,
    Experiment,
    KnowledgeDistillationMixin,
    LayerMatchingMixin,
    MNIST1DConfig,
    OrbitConfig,
    OrbitLearningMixin,
    OrbitTransferMixin,
    RDLMixin,
    TransferExperiment,
)

SEEDS = (1, 2, 3)
#: epochs of the students (all trained alike: Adam, lr 3e-3, the best validated epoch restored)
EPOCHS = 100
#: epochs of the teacher and of learning the orbit
TEACHER_EPOCHS = 20
STUDENT_LR = 3e-3
NO_EARLY_STOP = 1000  # patience: train every epoch, keep the best validated one


class KDTrainer(KnowledgeDistillationMixin, ClassificationTrainerConfig):
    pass


class RDLTrainer(RDLMixin, ClassificationTrainerConfig):
    pass


class AttentionTrainer(AttentionTransferMixin, ClassificationTrainerConfig):
    pass


class MatchingTrainer(LayerMatchingMixin, ClassificationTrainerConfig):
    pass


class OrbitLearningTrainer(OrbitLearningMixin, ClassificationTrainerConfig):
    pass


class OrbitTransferTrainer(OrbitTransferMixin, ClassificationTrainerConfig):
    pass


DATA = MNIST1DConfig()
TEACHER = ClassificationModelConfig(type="cnn1d_invariant", options={"core_bias": False}, readout_bias=False, comment="cnn")
STUDENT = ClassificationModelConfig(type="mlp", options={"hidden_sizes": [600, 400], "core_bias": False}, readout_bias=False,
                                    comment="mlp")
ORBIT = OrbitConfig(group_size=40, comment="orbit")
METHODS = ("kd", "rdl", "attention", "matching", "orbit")


def student_trainer(method, **common):
    """The student's trainer config of ``method`` (its teacher: the previous step's model)."""
    common = dict(common, teacher="previous", start_from_previous=False, comment=method)
    if method == "kd":
        return KDTrainer(kd_weight=0.5, kd_temperature=4.0, **common)
    if method == "rdl":
        return RDLTrainer(rdl_layers={"core.relu2": "core.relu3"}, rdl_weight=1.0, **common)
    if method == "attention":
        return AttentionTrainer(at_layers={"core.relu1": "core.relu1", "core.relu2": "core.relu3"}, **common)
    if method == "matching":
        return MatchingTrainer(match_layers={"output": "output"}, match_criterion="l2", **common)
    if method == "orbit":
        return OrbitTransferTrainer(**common)
    raise ValueError(f"unknown method {method!r}; the methods are {METHODS}")


def build(seeds=SEEDS, epochs=EPOCHS, teacher_epochs=TEACHER_EPOCHS):
    """``{Description: TransferExperiment}`` of every method and seed."""
    common = dict(max_iter=epochs, lr=STUDENT_LR, patience=NO_EARLY_STOP, show_progress=False)
    teacher_trainer = ClassificationTrainerConfig(max_iter=teacher_epochs, patience=NO_EARLY_STOP, show_progress=False,
                                                  comment="teacher")
    teacher = [Experiment(DATA, TEACHER, teacher_trainer, seed=seed) for seed in seeds]
    chains = {}
    for seed, teacher_step in zip(seeds, teacher):
        chains[Description(name="scratch", seed=seed)] = TransferExperiment(
            [Experiment(DATA, STUDENT, ClassificationTrainerConfig(comment="scratch", **common), seed=seed)])
        chains[Description(name="teacher", seed=seed)] = TransferExperiment([teacher_step])
        for method in METHODS:
            steps = [teacher_step]
            if method == "orbit":
                # the mixin's defaults: lr 0.01, no early stopping, the last state kept
                learning = OrbitLearningTrainer(max_iter=teacher_epochs, show_progress=False, comment="learn orbit")
                steps.append(Experiment(DATA, ORBIT, learning, seed=seed))
            steps.append(Experiment(DATA, STUDENT, student_trainer(method, **common), seed=seed))
            chains[Description(name=method, seed=seed)] = TransferExperiment(steps)
    return chains


transfer_experiments = build()
