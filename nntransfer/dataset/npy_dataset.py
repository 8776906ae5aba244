"""Image data sets held in numpy arrays or ``.npy`` files, and lists of image files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

ArrayOrPath = Union[np.ndarray, str, Path]


def _as_array(value: ArrayOrPath, what: str) -> np.ndarray:
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise FileNotFoundError(f"{what} file {path} does not exist")
        return np.load(path, mmap_mode="r")  # memory-mapped: -C files hold hundreds of MB
    return np.asarray(value)


class NpyDataset(Dataset):
    """Images and integer labels from arrays (or ``.npy`` files, memory-mapped).

    ``images`` has shape ``[N, H, W]`` (gray) or ``[N, H, W, C]`` with C = 1 or 3; uint8 values, or
    floats in [0, 1]. Items are ``(transform(PIL image), int label)``.
    """

    def __init__(
        self,
        images: ArrayOrPath,
        labels: ArrayOrPath,
        transform: Optional[Callable[[Image.Image], Any]] = None,
    ):
        self.images = _as_array(images, "images")
        self.targets = np.asarray(_as_array(labels, "labels")).reshape(-1).astype(np.int64)
        shape = self.images.shape
        if len(shape) not in (3, 4) or (len(shape) == 4 and shape[-1] not in (1, 3)):
            raise ValueError(f"NpyDataset images must have shape [N, H, W] or [N, H, W, 1|3], got {list(shape)}")
        if shape[0] != len(self.targets):
            raise ValueError(f"NpyDataset has {shape[0]} images but {len(self.targets)} labels")
        self.transform = transform

    @property
    def channels(self) -> int:
        return 1 if self.images.ndim == 3 else int(self.images.shape[-1])

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> Tuple[Any, int]:
        image = np.asarray(self.images[index])
        if image.dtype != np.uint8:
            image = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        image = Image.fromarray(image)  # mode "L" or "RGB"
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])


class FileListDataset(Dataset):
    """Images read from ``(path, label)`` pairs, e.g. Tiny ImageNet's validation annotations."""

    def __init__(
        self,
        samples: Sequence[Tuple[str, int]],
        transform: Optional[Callable[[Image.Image], Any]] = None,
        loader: Optional[Callable[[str], Image.Image]] = None,  # None: torchvision's default_loader
    ):
        self.samples: List[Tuple[str, int]] = [(str(p), int(y)) for p, y in samples]
        self.targets = np.asarray([y for _, y in self.samples], dtype=np.int64)
        self.transform = transform
        if loader is None:  # torchvision's PIL loader, imported with the first data set that reads files
            from torchvision.datasets.folder import default_loader

            loader = default_loader
        self.loader = loader

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Tuple[Any, int]:
        path, label = self.samples[index]
        image = self.loader(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, label


def folder_samples(folder: Union[str, Path], class_to_idx: dict) -> List[Tuple[str, int]]:
    """``(path, label)`` of the images in ``folder/<class>/...`` with a given class numbering."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    return make_dataset(str(folder), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
