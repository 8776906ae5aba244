"""Two experiments, two seeds each, a few epochs: seconds on a laptop CPU.

``pretrained``: step "0-4" trains on the digits 0-4; step "5-9" continues from its weights on the
digits 5-9 with a freshly initialised readout.
``scratch``: one step "5-9" trains the same model on the digits 5-9 from random weights.

Every step is also evaluated on the validation set under Gaussian pixel noise (``noise_test``).
"""

from nntransfer.configs import (
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Description,
    Experiment,
    ImageDatasetConfig,
    TransferExperiment,
)

EPOCHS = 3
SEEDS = (1, 2)
NOISE_LEVELS = [0.0, 0.2, 0.4, 0.8]


def digits(classes):
    """The digits ``classes[0] <= label < classes[1]``, relabelled from 0."""
    return ImageDatasetConfig(dataset_cls="Digits", filter_classes=classes, batch_size=64)


def trainer(**options):
    return ClassificationTrainerConfig(max_iter=EPOCHS, show_progress=False, noise_test={"noise_std": NOISE_LEVELS},
                                       **options)


def step(classes, seed, **trainer_options):
    label = f"{classes[0]}-{classes[1] - 1}"
    return Experiment(digits(classes), ClassificationModelConfig(type="lenet300-100"), trainer(**trainer_options),
                      seed=seed, comment=label)


transfer_experiments = {}
for seed in SEEDS:
    transfer_experiments[Description(name="pretrained", seed=seed)] = TransferExperiment(
        [step((0, 5), seed), step((5, 10), seed, reset=["readout"])]
    )
    transfer_experiments[Description(name="scratch", seed=seed)] = TransferExperiment([step((5, 10), seed)])
