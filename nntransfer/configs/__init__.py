"""Config objects that name every experiment. ``from nntransfer.configs import *`` is the notebook idiom."""

from nntransfer.configs.base import BaseConfig, Description
from nntransfer.configs.dataset import DatasetConfig, ImageDatasetConfig, MNIST1DConfig
from nntransfer.configs.experiment import Experiment
from nntransfer.configs.model import ClassificationModelConfig, ModelConfig, OrbitConfig
from nntransfer.configs.trainer import (
    AttentionTransferMixin,
    CKATransferMixin,
    ClassificationTrainerConfig,
    EpochLoopConfig,
    KnowledgeDistillationMixin,
    LayerMatchingMixin,
    NoiseAugmentationMixin,
    OrbitLearningMixin,
    OrbitTransferMixin,
    ParameterDistanceMixin,
    RDLMixin,
    RepresentationMatchingMixin,
    RepresentationMonitorMixin,
    TrainerConfig,
    TransferMethodMixin,
)
from nntransfer.configs.transfer_experiment import TransferExperiment

__all__ = [
    "BaseConfig",
    "Description",
    "DatasetConfig",
    "ImageDatasetConfig",
    "MNIST1DConfig",
    "ModelConfig",
    "ClassificationModelConfig",
    "OrbitConfig",
    "TrainerConfig",
    "EpochLoopConfig",
    "ClassificationTrainerConfig",
    "KnowledgeDistillationMixin",
    "AttentionTransferMixin",
    "CKATransferMixin",
    "LayerMatchingMixin",
    "ParameterDistanceMixin",
    "RDLMixin",
    "OrbitLearningMixin",
    "OrbitTransferMixin",
    "NoiseAugmentationMixin",
    "RepresentationMatchingMixin",
    "RepresentationMonitorMixin",
    "TransferMethodMixin",
    "Experiment",
    "TransferExperiment",
]
