"""Pre-train on digits 0-4, then fine-tune on digits 5-9 starting from those weights (new readout); and
digits 5-9 from scratch, the fine-tuning's baseline (its transfer gain and forward transfer)."""

from nntransfer.configs import (
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Description,
    Experiment,
    ImageDatasetConfig,
    TransferExperiment,
)

SEEDS = (1, 2)


def digits(first: int, stop: int, comment: str) -> ImageDatasetConfig:
    return ImageDatasetConfig(dataset_cls="Digits", filter_classes=(first, stop), batch_size=32, comment=comment)


model = ClassificationModelConfig(type="lenet300-100", comment="LeNet-300-100")


def trainer(comment: str, **options) -> ClassificationTrainerConfig:
    return ClassificationTrainerConfig(max_iter=12, lr=0.003, patience=4, show_progress=False, comment=comment, **options)


transfer_experiments = {
    Description(name="digits 0-4 -> 5-9", seed=seed): TransferExperiment(
        [
            Experiment(digits(0, 5, "digits 0-4"), model, trainer("pre-train"), seed=seed, comment="pre-train 0-4"),
            Experiment(digits(5, 10, "digits 5-9"), model, trainer("fine-tune", reset=["readout"]), seed=seed, comment="fine-tune 5-9"),
        ]
    )
    for seed in SEEDS
}
transfer_experiments.update({
    Description(name="digits 5-9 from scratch", seed=seed): TransferExperiment(
        [Experiment(digits(5, 10, "digits 5-9"), model, trainer("from scratch"), seed=seed, comment="from scratch 5-9")]
    )
    for seed in SEEDS
})
