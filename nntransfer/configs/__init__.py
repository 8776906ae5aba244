"""Config objects that name every experiment. ``from nntransfer.configs import *`` is the notebook idiom."""

from nntransfer.configs.base import BaseConfig, Description
from nntransfer.configs.dataset import DatasetConfig, ImageDatasetConfig, MNIST1DConfig
from nntransfer.configs.experiment import Experiment
from nntransfer.configs.model import ClassificationModelConfig, ModelConfig
from nntransfer.configs.trainer import (
    ClassificationTrainerConfig,
    AttentionTransferMixin,
    KnowledgeDistillationMixin,
    LayerMatchingMixin,
    NoiseAugmentationMixin,
    ParameterDistanceMixin,
    RDLMixin,
    RepresentationMatchingMixin,
    RepresentationMonitorMixin,
    TrainerConfig,
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
    "TrainerConfig",
    "ClassificationTrainerConfig",
    "KnowledgeDistillationMixin",
    "AttentionTransferMixin",
    "LayerMatchingMixin",
    "ParameterDistanceMixin",
    "RDLMixin",
    "NoiseAugmentationMixin",
    "RepresentationMatchingMixin",
    "RepresentationMonitorMixin",
    "Experiment",
    "TransferExperiment",
]
