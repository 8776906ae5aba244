"""Image classification data: the ``img_dataset_loader`` dataset function and its building blocks.

``img_dataset_loader(seed, transfer_data=None, **ImageDatasetConfig().to_dict())`` returns
``{"train": {"img_classification": DataLoader}, "validation": ..., "test": ...}`` (plus ``test_rotated``
and ``c_test`` when configured). Data sets are looked up by name in a registry
(``available_datasets()``, ``register_dataset``).
"""

from nntransfer.dataset import sources  # noqa: F401  (registers the built-in data sets)
from nntransfer.dataset.corrupted import load_corrupted
from nntransfer.dataset.loader import TASK_KEY, build_dataloaders, img_dataset_loader
from nntransfer.dataset.npy_dataset import FileListDataset, NpyDataset
from nntransfer.dataset.registry import (
    DatasetSpec,
    LoadedData,
    LoadRequest,
    available_datasets,
    get_dataset,
    register_dataset,
)

__all__ = [
    "TASK_KEY",
    "img_dataset_loader",
    "build_dataloaders",
    "NpyDataset",
    "FileListDataset",
    "load_corrupted",
    "DatasetSpec",
    "LoadedData",
    "LoadRequest",
    "available_datasets",
    "get_dataset",
    "register_dataset",
]
