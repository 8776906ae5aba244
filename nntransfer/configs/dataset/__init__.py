from nntransfer.configs.dataset.base import DatasetConfig
from nntransfer.configs.dataset.image import ImageDatasetConfig
from nntransfer.configs.dataset.mnist1d import MNIST1D_SHIFT_TESTS, MNIST1DConfig

__all__ = ["DatasetConfig", "ImageDatasetConfig", "MNIST1DConfig", "MNIST1D_SHIFT_TESTS"]
