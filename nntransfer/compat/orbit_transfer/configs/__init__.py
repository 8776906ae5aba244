"""``from orbit_transfer.configs import *`` as ``from nntransfer.compat.orbit_transfer.configs import *``: the
config classes of sinzlab/orbit_transfer's ``configs`` package, with the original defaults, as this library's
configs (``nntransfer.compat.orbit_transfer``)."""

from nntransfer.compat.orbit_transfer.configs.dataset import MNIST, MNIST1DDatasetConfig
from nntransfer.compat.orbit_transfer.configs.model import (
    ClassificationModel,
    CNNModel,
    MLPModel,
    MNIST1DModelConfig,
    MNISTModel,
    TransferModel,
)
from nntransfer.compat.orbit_transfer.configs.trainer import (
    Classification,
    DataGenerationMixin,
    SimpleTrainerConfig,
    TransferMixin,
)

__all__ = [
    "MNIST",
    "MNIST1DDatasetConfig",
    "ClassificationModel",
    "CNNModel",
    "MLPModel",
    "MNISTModel",
    "TransferModel",
    "MNIST1DModelConfig",
    "Classification",
    "TransferMixin",
    "DataGenerationMixin",
    "SimpleTrainerConfig",
]
