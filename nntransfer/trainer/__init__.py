"""Trainers. ``classification_trainer`` is what ``ClassificationTrainerConfig.fn`` names.

Names are imported when first used, so that a light module of this package (``observers``,
``checkpoint_files``) loads without torch."""

import importlib
from typing import Any

__all__ = [
    "Trainer",
    "ImgClassificationTrainer",
    "classification_trainer",
    "check_trainer_config",
    "trainer_config_from_dict",
    "LocalCheckpoints",
]
_HOME = {
    "Trainer": "nntransfer.trainer.trainer",
    "ImgClassificationTrainer": "nntransfer.trainer.img_classification",
    "classification_trainer": "nntransfer.trainer.img_classification",
    "trainer_config_from_dict": "nntransfer.trainer.img_classification",
    "check_trainer_config": "nntransfer.trainer.checks",
    "LocalCheckpoints": "nntransfer.trainer.checkpointing",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
