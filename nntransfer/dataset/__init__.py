"""Image classification data: the ``img_dataset_loader`` dataset function and its building blocks.

``img_dataset_loader(seed, transfer_data=None, **ImageDatasetConfig().to_dict())`` returns a
``DataLoaders`` dict ``{"train": {"img_classification": loader}, "validation": ..., "test": ...}``
(plus ``test_rotated``, ``c_test`` and the named ``test_transforms`` sets when configured) whose
``info`` is a ``DataInfo`` (number of classes, input shape, normalisation). Data sets are looked up by
name in a registry (``available_datasets()``, ``register_dataset``).

Two paths, chosen by what the data set's reader returns: data that fits in memory (every built-in small
data set, and any source of arrays) is held as one tensor and served by ``MemoryLoader``s that slice
batches and augment them whole on the trainer's device (``augment``); image folders (ImageNet,
TinyImageNet) are read per example by ``DataLoader``s with torchvision transforms (``transforms``).
"""

from nntransfer.dataset import sources  # noqa: F401  (registers the built-in data sets)
from nntransfer.dataset.augment import BatchTransform
from nntransfer.dataset.corrupted import load_corrupted
from nntransfer.dataset.info import DataInfo, DataLoaders, data_info
from nntransfer.dataset.loader import build_dataloaders, check_dataset_config, img_dataset_loader
from nntransfer.dataset.memory import ArrayData, MemoryLoader, MemoryView
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
from nntransfer.dataset.test_transforms import TEST_TRANSFORMS, register_test_transform
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
    "ArrayData",
    "MemoryLoader",
    "MemoryView",
    "BatchTransform",
    "TEST_TRANSFORMS",
    "register_test_transform",
]
