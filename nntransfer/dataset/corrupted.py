"""Corrupted test sets in the standard "-C" layouts, one data set per corruption and severity.

Three layouts are recognised in the corruption folder:

- CIFAR-10-C style: ``<corruption>.npy`` (all severities stacked, ``stacked_severities`` blocks of equal
  size, severity 1 first) and ``labels.npy`` (one label per row, or per block);
- MNIST-C style: ``<corruption>/test_images.npy`` and ``<corruption>/test_labels.npy`` (severity 1);
- ImageNet-C style: ``<corruption>/<severity>/<class>/<image>`` (Tiny-ImageNet-C, ImageNet-C).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
from torch.utils.data import Dataset

from nntransfer.dataset.npy_dataset import FileListDataset, NpyDataset, folder_samples

LAYOUTS = (
    "<corruption>.npy + labels.npy (CIFAR-10-C), <corruption>/test_images.npy + test_labels.npy (MNIST-C), "
    "or <corruption>/<severity>/<class>/<images> (ImageNet-C)"
)


def _stacked_npy(root: Path, stacked_severities: int) -> Dict[str, Dict[int, Dataset]]:
    labels = np.load(root / "labels.npy", mmap_mode="r")
    found: Dict[str, Dict[int, Dataset]] = {}
    for path in sorted(root.glob("*.npy")):
        if path.name == "labels.npy":
            continue
        images = np.load(path, mmap_mode="r")
        n = len(images)
        if n % stacked_severities:
            raise ValueError(
                f"{path} has {n} images, not a multiple of stacked_severities={stacked_severities}; "
                f"set stacked_severities to the number of severities stacked in the file"
            )
        block = n // stacked_severities
        if len(labels) not in (n, block):
            raise ValueError(f"{root / 'labels.npy'} has {len(labels)} labels; expected {n} or {block} for {path.name}")
        found[path.stem] = {}
        for severity in range(1, stacked_severities + 1):
            rows = slice((severity - 1) * block, severity * block)
            block_labels = labels[rows] if len(labels) == n else labels
            found[path.stem][severity] = NpyDataset(images[rows], block_labels)
    return found


def _folders(root: Path, class_to_idx: Optional[Dict[str, int]]) -> Dict[str, Dict[int, Dataset]]:
    found: Dict[str, Dict[int, Dataset]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if (folder / "test_images.npy").exists():
            found[folder.name] = {1: NpyDataset(folder / "test_images.npy", folder / "test_labels.npy")}
            continue
        severities = sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
        if not severities:
            continue
        found[folder.name] = {}
        for severity in severities:
            images = folder / str(severity)
            classes = class_to_idx
            if classes is None:  # no training folder to number the classes by: sorted folder names
                classes = {c: i for i, c in enumerate(sorted(p.name for p in images.iterdir() if p.is_dir()))}
            samples = folder_samples(images, classes)
            found[folder.name][severity] = FileListDataset(samples)
    return found


def load_corrupted(
    root: Path,
    corruptions: Sequence[str] = (),
    severities: Sequence[int] = (),
    stacked_severities: int = 5,
    class_to_idx: Optional[Dict[str, int]] = None,
) -> Dict[str, Dict[int, Dataset]]:
    """``{corruption: {severity: data set}}`` from ``root``; items are ``(PIL image, int label)``.

    Args:
        corruptions, severities: keep only these (empty: all found); asking for one that is not there is
            an error.
        stacked_severities: severities stacked in each CIFAR-10-C style file.
        class_to_idx: class numbering of ImageNet-C style folders (that of the training set).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"corrupted test data folder {root} does not exist; set corrupted_data_dir to a folder with {LAYOUTS}"
        )
    if (root / "labels.npy").exists():
        found = _stacked_npy(root, stacked_severities)
    else:
        found = _folders(root, class_to_idx)
    if not found:
        raise FileNotFoundError(f"no corrupted test sets in {root}; expected {LAYOUTS}")
    if corruptions:
        missing = sorted(set(corruptions) - set(found))
        if missing:
            raise ValueError(f"corruptions {missing} not found in {root}; found: {', '.join(sorted(found))}")
        found = {name: found[name] for name in corruptions}
    if severities:
        wanted = [int(s) for s in severities]
        for name, by_severity in found.items():
            absent = [s for s in wanted if s not in by_severity]
            if absent:
                raise ValueError(
                    f"severities {absent} not found for corruption {name!r} in {root}; found {sorted(by_severity)}"
                )
        found = {name: {s: by_severity[s] for s in wanted} for name, by_severity in found.items()}
    return found
