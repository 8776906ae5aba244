from nntransfer.configs.trainer.base import TrainerConfig
from nntransfer.configs.trainer.classification import ClassificationTrainerConfig
from nntransfer.configs.trainer.loop import EpochLoopConfig
from nntransfer.configs.trainer.mixins import (
    AttentionTransferMixin,
    CKATransferMixin,
    KnowledgeDistillationMixin,
    LayerMatchingMixin,
    NoiseAugmentationMixin,
    ParameterDistanceMixin,
    RDLMixin,
    RepresentationMatchingMixin,
    RepresentationMonitorMixin,
    TransferMethodMixin,
)
from nntransfer.configs.trainer.orbit import OrbitLearningMixin, OrbitTransferMixin

__all__ = [
    "TrainerConfig",
    "EpochLoopConfig",
    "ClassificationTrainerConfig",
    "KnowledgeDistillationMixin",
    "OrbitLearningMixin",
    "OrbitTransferMixin",
    "AttentionTransferMixin",
    "LayerMatchingMixin",
    "CKATransferMixin",
    "ParameterDistanceMixin",
    "RDLMixin",
    "NoiseAugmentationMixin",
    "RepresentationMatchingMixin",
    "RepresentationMonitorMixin",
    "TransferMethodMixin",
]
