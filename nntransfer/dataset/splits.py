"""Index arithmetic on data sets: class filters, the seeded train/validation split, subsets, and the views
and sampler the loaders are built from. Functions here take and return index arrays; they never read
images."""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def dataset_targets(dataset: Dataset) -> np.ndarray:
    """All labels of ``dataset`` as int64, from its ``targets``/``labels`` attribute if it has one
    (otherwise by reading every item)."""
    for name in ("targets", "labels"):
        values = getattr(dataset, name, None)
        if values is not None:
            return np.asarray(values).astype(np.int64).reshape(-1)
    return np.asarray([int(dataset[i][1]) for i in range(len(dataset))], dtype=np.int64)


def check_class_range(filter_classes: Optional[Sequence[int]], n_classes: int, dataset_name: str) -> None:
    """A class range must lie inside the data set's classes ``0..n_classes-1``."""
    if filter_classes is None:
        return
    start, stop = filter_classes
    if not (0 <= start < stop <= n_classes):
        raise ValueError(
            f"filter_classes=({start}, {stop}) is outside {dataset_name}'s classes: "
            f"use 0 <= start < stop <= {n_classes}"
        )


def label_map(filter_classes: Optional[Sequence[int]], relabel: bool, n_classes: int) -> Tuple[Optional[np.ndarray], int]:
    """``(map, n_out)``: ``map[label]`` is the new label (None: labels unchanged) and ``n_out`` the number
    of classes the model sees. Labels outside the kept range map to -1 (they are filtered out anyway)."""
    if filter_classes is None or not relabel:
        return None, n_classes
    start, stop = filter_classes
    mapping = np.full(n_classes, -1, dtype=np.int64)
    mapping[start:stop] = np.arange(stop - start)
    return mapping, stop - start


def filter_by_class(targets: np.ndarray, filter_classes: Optional[Sequence[int]]) -> np.ndarray:
    """Indices (ascending) of the examples whose label lies in ``[start, stop)``; all if None."""
    if filter_classes is None:
        return np.arange(len(targets))
    start, stop = filter_classes
    return np.flatnonzero((targets >= start) & (targets < stop))


def split_train_valid(
    indices: np.ndarray, valid_size: float, shuffle: bool, seed: int
) -> Tuple[np.ndarray, np.ndarray]:
    """Seeded split into ``(train, valid)``; ``floor(valid_size * n)`` examples go to validation.

    With ``shuffle`` the order is a permutation drawn from ``seed`` (train keeps that order, so a subset
    taken from its front is random); without, the last examples are the validation set."""
    if not 0 <= valid_size <= 1:
        raise ValueError(f"valid_size must be a fraction in [0, 1], got {valid_size!r}")
    indices = np.asarray(indices)
    n_valid = int(np.floor(valid_size * len(indices)))
    if n_valid >= len(indices):
        raise ValueError(
            f"valid_size={valid_size} leaves no training examples out of {len(indices)}; lower valid_size"
        )
    if shuffle:
        order = indices[np.random.default_rng(seed).permutation(len(indices))]
        return order[n_valid:], order[:n_valid]
    return indices[: len(indices) - n_valid], indices[len(indices) - n_valid :]


def take_fraction(indices: np.ndarray, fraction: float) -> np.ndarray:
    """The first ``ceil(fraction * n)`` indices (at least one)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"train_subset must be a fraction in (0, 1], got {fraction!r}")
    return indices[: max(1, int(np.ceil(fraction * len(indices))))]


def take_per_class(indices: np.ndarray, targets: np.ndarray, per_class: int) -> np.ndarray:
    """The first ``per_class`` indices of every class present (in the order given)."""
    labels = targets[indices]
    keep = []
    for label in np.unique(labels):
        members = indices[labels == label]
        if len(members) < per_class:
            raise ValueError(
                f"examples_per_class={per_class} but class {int(label)} has only {len(members)} training "
                f"examples; lower examples_per_class (or valid_size)"
            )
        keep.append(members[:per_class])
    return np.concatenate(keep) if keep else indices[:0]


def table_rows(transfer_data: Optional[Mapping[str, Any]], n_rows: int) -> Dict[str, torch.Tensor]:
    """``transfer_data`` as tensors, checked to hold one row per training example (float64 -> float32)."""
    rows: Dict[str, torch.Tensor] = {}
    for name, values in (transfer_data or {}).items():
        array = np.asarray(values)
        if array.ndim == 0 or array.shape[0] != n_rows:
            got = "a scalar" if array.ndim == 0 else f"{array.shape[0]} rows"
            raise ValueError(
                f"transfer_data[{name!r}] has {got} but the training set has {n_rows} examples; it must come "
                f"from a step with the same dataset config and seed"
            )
        if array.dtype.kind not in "biuf":
            raise ValueError(f"transfer_data[{name!r}] must be a numeric array, got dtype {array.dtype}")
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        # A copy: arrays from database blobs are read-only, which torch.from_numpy warns about.
        rows[name] = torch.from_numpy(np.array(array, copy=True, order="C"))
    return rows


class SplitView(Dataset):
    """Examples ``indices`` of ``base`` with a transform, optional label map and per-example extras.

    Items are ``(transform(image), label)``, or ``(image, label, {name: row})`` with ``extras``
    (tensors with one row per example of this view, in index order)."""

    def __init__(
        self,
        base: Dataset,
        indices: Sequence[int],
        transform: Optional[Callable] = None,
        labels: Optional[np.ndarray] = None,
        extras: Optional[Dict[str, torch.Tensor]] = None,
    ):
        self.base = base
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform
        self.labels = labels
        self.extras = extras or {}

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        image, label = self.base[int(self.indices[i])]
        if self.transform is not None:
            image = self.transform(image)
        label = int(label) if self.labels is None else int(self.labels[int(label)])
        if self.extras:
            return image, label, {name: rows[i] for name, rows in self.extras.items()}
        return image, label


class RepeatSampler(Sampler[int]):
    """Every index ``0..n-1`` ``repeats`` times per epoch; shuffled with ``generator`` if ``shuffle``.

    A seeded generator makes the batch order a function of the seed; it advances each epoch, so epochs
    differ from each other but not between runs."""

    def __init__(self, n: int, repeats: int = 1, shuffle: bool = True, generator: Optional[torch.Generator] = None):
        self.n = int(n)
        self.repeats = int(repeats)
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self) -> int:
        return self.n * self.repeats

    def __iter__(self) -> Iterator[int]:
        order = torch.arange(self.n).repeat(self.repeats)
        if self.shuffle and len(order):
            order = order[torch.randperm(len(order), generator=self.generator)]
        return iter(order.tolist())
