"""Trainers. ``classification_trainer`` is what ``ClassificationTrainerConfig.fn`` names."""

from nntransfer.trainer.checkpointing import LocalCheckpoints
from nntransfer.trainer.checks import check_trainer_config
from nntransfer.trainer.img_classification import (
    ImgClassificationTrainer,
    classification_trainer,
    trainer_config_from_dict,
)
from nntransfer.trainer.trainer import Trainer

__all__ = [
    "Trainer",
    "ImgClassificationTrainer",
    "classification_trainer",
    "check_trainer_config",
    "trainer_config_from_dict",
    "LocalCheckpoints",
]
