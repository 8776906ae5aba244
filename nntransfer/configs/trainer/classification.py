"""`ClassificationTrainerConfig`: the generic epoch loop's settings plus those of the image classification trainer."""

from nntransfer.configs.trainer.loop import EpochLoopConfig
from nntransfer.defaults import TASK_KEY

OBJECTIVES = ("accuracy", "loss", "total_loss")
NOISE_KINDS = ("noise_std", "noise_snr")


class ClassificationTrainerConfig(EpochLoopConfig):
    """Settings of ``nntransfer.trainer.classification_trainer``: the generic epoch loop's (``EpochLoopConfig``:
    optimisation, duration and early stopping, tasks, model manipulation, running) with classification's
    defaults (``objective="accuracy"``, maximised; ``loss_functions={"img_classification": "CrossEntropyLoss"}``),
    and what the image classification trainer adds.

    Objective: ``"accuracy"`` or ``"loss"``.

    Evaluation:
        mc_dropout_samples: > 0: the final evaluation also averages this many forward passes with dropout on.
        noise_test: noise levels for the final evaluation on the validation set,
            ``{"noise_std": [0.1, 0.2], "noise_snr": [4.0]}`` (std in pixel units, SNR as power ratio).
        input_mean, input_std: per-channel normalisation the data set applied (pixel = input * std + mean),
            so that noise is added in pixel units and clipped to ``pixel_range``. Empty: read the ``mean``/``std``
            attributes of the training DataLoader when it has them, else inputs are taken as pixels.
        pixel_range: valid (min, max) of a pixel before normalisation.
        compute_transfer_data: return ``output["transfer_data"] = {"logits": [N, classes]}`` over the
            training set (rows in dataset order) for the next transfer step.
        compute_fisher: hand the diagonal Fisher information of the trained model on the training set to
            the next step (for EWC, ``ParameterDistanceMixin``).
    """

    fn = "nntransfer.trainer.classification_trainer"

    def __init__(self, **kwargs):
        self.set_defaults(
            # the loop's fields with classification's defaults
            loss_functions={TASK_KEY: "CrossEntropyLoss"},
            objective="accuracy",
            maximize=True,
            # evaluation
            mc_dropout_samples=0,
            noise_test={"DEFAULT EMPTY": True},
            input_mean=[],
            input_std=[],
            pixel_range=(0.0, 1.0),
            compute_transfer_data=False,
            compute_fisher=False,
        )
        super().__init__(**kwargs)

    def _validate(self) -> None:
        super()._validate()
        name = type(self).__name__
        if self.objective not in OBJECTIVES:
            raise ValueError(f"{name}.objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.mc_dropout_samples < 0:
            raise ValueError(f"{name}.mc_dropout_samples must not be negative, got {self.mc_dropout_samples!r}")
        unknown = set(self.noise_test) - set(NOISE_KINDS)
        if unknown:
            raise ValueError(f"{name}.noise_test keys must be among {NOISE_KINDS}, got {sorted(unknown)}")
        if len(self.input_mean) != len(self.input_std):
            raise ValueError(f"{name}: input_mean and input_std need one value per channel each (or both empty)")
