"""Registry of image data sets by name (the ``dataset_cls`` of ``ImageDatasetConfig``).

A data set is a ``DatasetSpec``: a reader that returns the raw train and test sets (items are
``(PIL image, int label)``) plus the defaults the transforms need. Add your own with::

    register_dataset(DatasetSpec(name="MyData", load=my_reader, mean=(0.5,), std=(0.25,), image_size=28))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from torch.utils.data import Dataset

from nntransfer.registry import Registry, did_you_mean


@dataclass(frozen=True)
class LoadRequest:
    """What a reader gets: where the data lives, whether it may download, and its options."""

    data_dir: Path
    download: bool
    input_size: int
    options: Mapping[str, Any]


@dataclass(frozen=True)
class LoadedData:
    """What a reader returns. ``train``/``test`` items are ``(PIL image, int label)``; a ``targets``
    attribute (all labels in order) saves reading every image to filter or split."""

    train: Dataset
    test: Dataset
    n_classes: int
    channels: int
    class_to_idx: Optional[Dict[str, int]] = None  # folder data sets: read ImageNet-C style folders with it
    image_size: Optional[int] = None  # native side length when it depends on the request (FakeData)


@dataclass(frozen=True)
class DatasetSpec:
    """A named data set.

    Attributes:
        name: the ``dataset_cls`` that selects it.
        load: reader ``(LoadRequest) -> LoadedData``.
        mean, std: per-channel normalisation defaults (channels of the raw images).
        image_size: native side length; None for data sets of varying size (resize, then centre crop).
        corrupted_folder: default folder of its corrupted test sets inside ``data_dir`` (e.g. "CIFAR-10-C").
        options: the ``dataset_kwargs`` the reader accepts, with their defaults.
    """

    name: str
    load: Callable[[LoadRequest], LoadedData]
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    image_size: Optional[int]
    corrupted_folder: Optional[str] = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def resolve_options(self, given: Mapping[str, Any]) -> Dict[str, Any]:
        """The reader's options: defaults updated by ``given``; unknown keys are an error."""
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            accepted = ", ".join(sorted(self.options)) or "none"
            hint = did_you_mean(unknown[0], self.options)
            raise ValueError(f"{self.name} does not accept dataset_kwargs {unknown}; it accepts: {accepted}{hint}")
        return {**self.options, **given}


#: every data set by name; ``dataset_cls`` matches case-insensitively ("cifar10" finds "CIFAR10")
DATASETS: Registry[DatasetSpec] = Registry(
    "data set", case_sensitive=False, help="add your own with register_dataset(DatasetSpec(...))"
)


def register_dataset(spec: DatasetSpec, overwrite: bool = False) -> DatasetSpec:
    """Make ``spec`` available as ``dataset_cls=spec.name`` (names are matched case-insensitively)."""
    return DATASETS.register(spec.name, spec, overwrite=overwrite)


def get_dataset(name: str) -> DatasetSpec:
    """The registered data set called ``name``; an unknown name lists what exists."""
    return DATASETS.get(name)


def available_datasets() -> List[str]:
    """Names of all registered data sets."""
    return DATASETS.available()
