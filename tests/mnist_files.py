"""Tiny MNIST files in their real on-disk formats, from scikit-learn's real digits (shared by the tests)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Tuple

import numpy as np

from nntransfer.dataset.sources import digits_arrays


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file as MNIST ships it: magic (0, 0, 0x08 = uint8, ndim), big-endian sizes, the bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def digits28(n: int, start: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """``n`` real digits as 28x28 uint8 MNIST-like images (8x8 upscaled 3x to 24x24, 2 pixels of border)."""
    images, labels = digits_arrays()
    images = np.kron(images[start:start + n], np.ones((3, 3), dtype=np.uint8))
    return np.pad(images, ((0, 0), (2, 2), (2, 2))), labels[start:start + n].astype(np.int64)


def write_mnist(root: Path, n_train: int, n_test: int):
    """torchvision's raw MNIST layout under ``root``: the first ``n_train`` digits to train, the next to test."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (x_train, y_train), (x_test, y_test) = digits28(n_train), digits28(n_test, start=n_train)
    for name, array in (("train-images-idx3-ubyte", x_train), ("train-labels-idx1-ubyte", y_train),
                        ("t10k-images-idx3-ubyte", x_test), ("t10k-labels-idx1-ubyte", y_test)):
        write_idx(raw / name, array)
    return x_train, y_train, x_test, y_test
