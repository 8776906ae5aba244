"""The in-memory path: a data set held as one tensor, batches sliced by index and transformed whole.

``ArrayData`` holds every example of a split in one tensor (uint8 images ``[N, C, H, W]`` as the source
stores them, or float arrays of any shape ``[N, ...]``) and its labels. ``MemoryLoader`` is a drop-in
for a ``DataLoader`` over some of its rows: it slices a batch of rows, applies a ``BatchTransform`` (on
the device the data lives on) and yields ``(inputs, targets[, extras])``.

Randomness follows ``DataLoader`` exactly: each epoch draws one int64 from the loader's ``generator``
(the DataLoader's "base seed"; here it seeds that epoch's augmentation), then the ``RepeatSampler``
draws the order. So without augmentation the batches are those the per-example path gives, and a
checkpoint of ``generator`` resumes the same epochs.

The trainer calls ``loader.set_device(device)``; the data is then copied there once (shared by every
loader over it) when it takes less than ``DEVICE_FRACTION`` of the device's free memory, else batches
are sliced on the CPU and only they travel.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Dict, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from nntransfer.dataset.augment import BatchTransform
from nntransfer.dataset.splits import RepeatSampler

logger = logging.getLogger(__name__)

#: the data is copied to an accelerator when it takes at most this fraction of its free memory
DEVICE_FRACTION = 0.25

ArrayLike = Union[np.ndarray, torch.Tensor]


class ArrayData:
    """All examples of one split in memory: ``inputs`` ``[N, ...]`` and int64 ``targets`` ``[N]``.

    Args:
        inputs: the examples, stacked. ``image=True``: uint8 (or float in [0, 1]) images ``[N, C, H, W]``.
            ``image=False``: arrays of any shape per example, taken as they are (float32).
        targets: one integer label per example.
        image: whether the examples are images (resized to ``input_size``, colour modes apply).
    """

    def __init__(self, inputs: ArrayLike, targets: ArrayLike, image: bool = True) -> None:
        tensor = torch.as_tensor(np.asarray(inputs) if isinstance(inputs, np.ndarray) else inputs)
        if not image and tensor.dtype != torch.float32:
            tensor = tensor.float()
        if image and tensor.dim() != 4:
            raise ValueError(f"image ArrayData needs [N, C, H, W] inputs, got shape {list(tensor.shape)}")
        self.inputs = tensor.contiguous()
        self.targets = np.asarray(targets).astype(np.int64).reshape(-1)
        self.image = bool(image)
        if len(self.inputs) != len(self.targets):
            raise ValueError(f"ArrayData has {len(self.inputs)} examples but {len(self.targets)} labels")
        self._placed: Dict[str, torch.Tensor] = {}

    @classmethod
    def from_images(cls, images: ArrayLike, labels: ArrayLike) -> "ArrayData":
        """Images as numpy stores them: ``[N, H, W]`` (gray) or ``[N, H, W, C]`` (C = 1 or 3); uint8, or
        floats in [0, 1] (rounded to uint8 like the per-example path)."""
        array = np.asarray(images)
        if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] not in (1, 3)):
            raise ValueError(f"images must have shape [N, H, W] or [N, H, W, 1|3], got {list(array.shape)}")
        if array.dtype != np.uint8:
            array = np.clip(np.round(array * 255.0), 0, 255).astype(np.uint8)
        if array.ndim == 3:
            array = array[:, :, :, None]
        return cls(torch.from_numpy(np.array(array.transpose(0, 3, 1, 2), order="C")), labels, image=True)

    @classmethod
    def from_arrays(cls, values: ArrayLike, labels: ArrayLike) -> "ArrayData":
        """Arrays of any shape per example (``[N, ...]``), e.g. ``[N, 1, 40]`` signals: never resized."""
        return cls(values, labels, image=False)

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def example_shape(self) -> tuple:
        return tuple(int(n) for n in self.inputs.shape[1:])

    @property
    def channels(self) -> int:
        return int(self.inputs.shape[1]) if self.inputs.dim() > 1 else 1

    def on(self, device: torch.device) -> torch.Tensor:
        """``inputs`` on ``device`` (copied once, then shared); the CPU tensor when it does not fit."""
        device = torch.device(device)
        if device.type == "cpu":
            return self.inputs
        key = str(device)
        if key not in self._placed:
            placed = self.inputs
            try:
                free, _ = torch.cuda.mem_get_info(device) if device.type == "cuda" else (math.inf, None)
            except Exception:  # another accelerator: try to copy
                free = math.inf
            if self.inputs.nbytes <= DEVICE_FRACTION * free:
                placed = self.inputs.to(device)
            else:
                logger.info("data of %.0f MB kept on the CPU (too large for %s)", self.inputs.nbytes / 2**20, device)
            self._placed[key] = placed
        return self._placed[key]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_placed"] = {}  # device copies are not pickled
        return state


class MemoryView(Dataset):
    """Rows ``indices`` of an ``ArrayData`` as a map-style data set (what ``loader.dataset`` is on the
    in-memory path): items are ``(transformed example, label)``, one at a time; the loader itself
    transforms whole batches."""

    def __init__(
        self,
        data: ArrayData,
        indices: Sequence[int],
        transform: BatchTransform,
        labels: Optional[np.ndarray] = None,
        extras: Optional[Dict[str, torch.Tensor]] = None,
    ) -> None:
        self.data = data
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform
        self.label_map = labels
        self.extras = extras or {}
        base = data.targets[self.indices]
        self.targets = base if labels is None else labels[base]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        example = self.transform(self.data.inputs[int(self.indices[i])][None], None)[0]
        if self.extras:
            return example, int(self.targets[i]), {name: rows[i] for name, rows in self.extras.items()}
        return example, int(self.targets[i])


class MemoryLoader:
    """A ``DataLoader`` over a ``MemoryView`` that slices and transforms whole batches.

    Attributes (those of ``DataLoader`` that nntransfer reads): ``dataset``, ``batch_size``,
    ``sampler`` (a ``RepeatSampler`` for training, None for evaluation), ``generator``.
    """

    def __init__(
        self,
        view: MemoryView,
        batch_size: int,
        generator: torch.Generator,
        train: bool = False,
        repeats: int = 1,
        shuffle: bool = True,
    ) -> None:
        self.dataset = view
        self.batch_size = int(batch_size)
        self.generator = generator
        self.sampler = RepeatSampler(len(view), repeats, shuffle, generator) if train else None
        self.device = torch.device("cpu")
        self._targets = torch.as_tensor(view.targets, dtype=torch.int64)
        self._indices = torch.as_tensor(view.indices, dtype=torch.int64)
        self.unaugmented_dataset: Optional[MemoryView] = None

    def set_device(self, device: Union[str, torch.device]) -> "MemoryLoader":
        """Yield batches on ``device`` (the data is copied there if it fits; see ``ArrayData.on``)."""
        self.device = torch.device(device)
        return self

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return math.ceil(n / self.batch_size)

    def _order(self) -> torch.Tensor:
        if self.sampler is None:
            return torch.arange(len(self.dataset))
        return torch.as_tensor(list(iter(self.sampler)), dtype=torch.int64)

    def __iter__(self) -> Iterator[Any]:
        # the draws of a DataLoader, in its order: the base seed, then the sampler's permutation
        base_seed = int(torch.empty((), dtype=torch.int64).random_(generator=self.generator).item())
        transform = self.dataset.transform
        augment = torch.Generator().manual_seed(base_seed) if transform.random else None
        inputs = self.dataset.data.on(self.device)
        order = self._order()
        local = inputs.device
        rows_all = self._indices[order].to(local)
        targets_all = self._targets[order].to(self.device)
        extras = {name: values[order].to(self.device) for name, values in self.dataset.extras.items()}
        for start in range(0, len(order), self.batch_size):
            stop = start + self.batch_size
            batch = inputs[rows_all[start:stop]]
            if batch.device != self.device:
                batch = batch.to(self.device, non_blocking=True)
            batch = transform(batch, augment)
            if extras:
                yield batch, targets_all[start:stop], {name: values[start:stop] for name, values in extras.items()}
            else:
                yield batch, targets_all[start:stop]

    def __repr__(self) -> str:
        return f"MemoryLoader(n={len(self.dataset)}, batch_size={self.batch_size}, transform={self.dataset.transform})"


def stack_examples(dataset: Dataset) -> Optional[ArrayData]:
    """A map-style data set whose items are ``(array, label)`` (numpy or torch, any shape) as one
    ``ArrayData``; None if its items are not arrays (PIL images: the per-example path)."""
    if len(dataset) == 0:
        return None
    first = dataset[0][0]
    if not isinstance(first, (np.ndarray, torch.Tensor)):
        return None
    items = [dataset[i] for i in range(len(dataset))]
    values = torch.stack([torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x) for x, _ in items])
    return ArrayData.from_arrays(values, [int(y) for _, y in items])
