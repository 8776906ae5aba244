"""`ClassificationTrainerConfig`: the image classification trainer (owned by the trainer issue)."""

from nntransfer.configs.trainer.base import TrainerConfig


class ClassificationTrainerConfig(TrainerConfig):
    fn = "nntransfer.trainer.classification_trainer"

    def __init__(self, **kwargs):
        self.max_iter = 10
        super().__init__(**kwargs)
