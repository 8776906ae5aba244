from nntransfer.configs.dataset.base import DatasetConfig
from nntransfer.configs.dataset.image import ImageDatasetConfig

__all__ = ["DatasetConfig", "ImageDatasetConfig"]
