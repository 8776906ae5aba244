from nntransfer.configs.trainer.base import TrainerConfig
from nntransfer.configs.trainer.classification import ClassificationTrainerConfig
from nntransfer.configs.trainer.mixins import (
    KnowledgeDistillationMixin,
    NoiseAugmentationMixin,
    RepresentationMatchingMixin,
    RepresentationMonitorMixin,
)

__all__ = [
    "TrainerConfig",
    "ClassificationTrainerConfig",
    "KnowledgeDistillationMixin",
    "NoiseAugmentationMixin",
    "RepresentationMatchingMixin",
    "RepresentationMonitorMixin",
]
