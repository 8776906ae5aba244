"""Image classification data: the ``img_dataset_loader`` dataset function and its building blocks.

``img_dataset_loader(seed, transfer_data=None, **ImageDatasetConfig().to_dict())`` returns a
``DataLoaders`` dict ``{"train": {"img_classification": DataLoader}, "validation": ..., "test": ...}``
(plus ``test_rotated`` and ``c_test`` when configured) whose ``info`` is a ``DataInfo`` (number of
classes, input shape, normalisation). Data sets are looked up by name in a registry
(``available_datasets()``, ``register_dataset``).
"""

from nntransfer.dataset import sources  # noqa: F401  (registers the built-in data sets)
from nntransfer.dataset.corrupted import load_corrupted
from nntransfer.dataset.info import DataInfo, DataLoaders, data_info
from nntransfer.dataset.loader import build_dataloaders, check_dataset_config, img_dataset_loader
from nntransfer.dataset.npy_dataset import FileListDataset, NpyDataset
from nntransfer.dataset.registry import (
    DATASETS,
    DatasetSpec,
    LoadedData,
    LoadRequest,
    available_datasets,
    get_dataset,
    register_dataset,
)
from nntransfer.defaults import TASK_KEY  # re-exported: defined once, in nntransfer.defaults

__all__ = [
    "TASK_KEY",
    "img_dataset_loader",
    "check_dataset_config",
    "build_dataloaders",
    "DataInfo",
    "DataLoaders",
    "data_info",
    "NpyDataset",
    "FileListDataset",
    "load_corrupted",
    "DATASETS",
    "DatasetSpec",
    "LoadedData",
    "LoadRequest",
    "available_datasets",
    "get_dataset",
    "register_dataset",
]
