"""``bias_transfer.configs`` for the recipes of sinzlab/nntransfer_recipes (see ``nntransfer.compat.bias_transfer``)."""

from nntransfer.compat.bias_transfer.configs.dataset import ImageDatasetConfig
from nntransfer.compat.bias_transfer.configs.model import ClassificationModel, ModelConfig
from nntransfer.compat.bias_transfer.configs.trainer import Classification, TrainerConfig
from nntransfer.compat.bias_transfer.configs.unavailable import (
    MNIST,
    CIFAR10Model,
    CIFAR100Model,
    DataGenerationMixin,
    Generated,
    MNISTModel,
    MNISTTransfer,
    MNISTTransferModel,
    NoiseAdversarialMixin,
    NoiseAugmentationMixin,
    Regression,
    RepresentationMatchingMixin,
    RepresentationMonitorMixin,
    SimclrMixin,
    SVHNModel,
    TinyImageNet,
    ToyDatasetConfig,
    ToyModel,
    ToyTrainerConfig,
    TransferMixin,
)

__all__ = [
    # what the original stack's recipes got under these names (see the package docstring)
    "ImageDatasetConfig",
    "ModelConfig",
    "TrainerConfig",
    # bias_transfer.configs' own exports
    "ClassificationModel",
    "Classification",
    "MNIST",
    "MNISTTransfer",
    "TinyImageNet",
    "ToyDatasetConfig",
    "Generated",
    "CIFAR10Model",
    "CIFAR100Model",
    "MNISTModel",
    "MNISTTransferModel",
    "SVHNModel",
    "ToyModel",
    "Regression",
    "ToyTrainerConfig",
    "DataGenerationMixin",
    "TransferMixin",
    "NoiseAdversarialMixin",
    "RepresentationMatchingMixin",
    "RepresentationMonitorMixin",
    "NoiseAugmentationMixin",
    "SimclrMixin",
]
