"""Registry of image data sets by name (the ``dataset_cls`` of ``ImageDatasetConfig``).

A data set is a ``DatasetSpec``: a reader that returns the raw train and test sets plus the defaults
the transforms need. Add your own with::

    register_dataset(DatasetSpec(name="MyData", load=my_reader, mean=(0.5,), std=(0.25,), image_size=28))

What the reader returns picks the path (``nntransfer.dataset.loader``):

- ``ArrayData`` (``ArrayData.from_images(uint8 [N, H, W(, C)], labels)`` or
  ``ArrayData.from_arrays(values [N, ...], labels)``): the in-memory path, batches sliced and
  transformed whole. Every built-in small data set reads this way.
- a map-style ``Dataset`` whose items are ``(numpy or torch array, label)``: stacked once into an
  ``ArrayData`` (arrays of any shape, never resized or converted to PIL), so the in-memory path too.
- a ``Dataset`` whose items are ``(PIL image, label)``: the per-example path (a ``DataLoader`` with
  torchvision transforms), for data that does not fit in memory (ImageNet, TinyImageNet folders).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from torch.utils.data import Dataset

from nntransfer.dataset.memory import ArrayData
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
    """What a reader returns. ``train``/``test``: ``ArrayData`` (in memory), or a ``Dataset`` whose items
    are ``(PIL image or array, int label)``; a ``targets`` attribute (all labels in order) saves reading
    every image to filter or split. ``channels``: of the raw examples (None: from ``ArrayData``)."""

    train: Union[Dataset, ArrayData]
    test: Union[Dataset, ArrayData]
    n_classes: int
    channels: Optional[int] = None
    class_to_idx: Optional[Dict[str, int]] = None  # folder data sets: read ImageNet-C style folders with it
    image_size: Optional[int] = None  # native side length when it depends on the request (FakeData)


@dataclass(frozen=True)
class DatasetSpec:
    """A named data set.

    Attributes:
        name: the ``dataset_cls`` that selects it.
        load: reader ``(LoadRequest) -> LoadedData``.
        mean, std: per-channel normalisation defaults (channels of the raw images); None: not normalised
            unless the config gives mean and std.
        image_size: native side length; None for data sets of varying size (resize, then centre crop)
            and for array data (never resized).
        corrupted_folder: default folder of its corrupted test sets inside ``data_dir`` (e.g. "CIFAR-10-C").
        options: the ``dataset_kwargs`` the reader accepts, with their defaults.
    """

    name: str
    load: Callable[[LoadRequest], LoadedData]
    mean: Optional[Tuple[float, ...]]
    std: Optional[Tuple[float, ...]]
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
