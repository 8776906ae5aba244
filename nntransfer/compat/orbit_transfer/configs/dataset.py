"""orbit_transfer's data set configs: ``MNIST1DDatasetConfig`` (orbit_transfer/configs/dataset/mnist_1d.py) and
``MNIST`` (orbit_transfer/configs/dataset/mnist.py), with the original defaults, as this library's
``MNIST1DConfig`` and ``ImageDatasetConfig``."""

from __future__ import annotations

from typing import Any, Dict

from nntransfer.compat.orbit_transfer._translate import (
    OriginalFields,
    Refused,
    check_default,
    integral,
    refuse_leftovers,
)
from nntransfer.configs.dataset import ImageDatasetConfig, MNIST1DConfig

#: sinzlab/nntransfer nntransfer/configs/dataset/base.py: DatasetConfig's fields
ORIGINAL_DATASET = {"batch_size": 128, "pin_memory": True, "shuffle": True, "valid_size": 0.1}

#: sinzlab/nntransfer nntransfer/configs/dataset/image.py: ImageDatasetConfig's fields
ORIGINAL_IMAGE = {
    "dataset_cls": "CIFAR10", "apply_augmentation": True, "apply_normalization": True, "apply_grayscale": False,
    "apply_noise": {}, "convert_to_rgb": False, "input_width": 32, "input_height": 32,
    "add_corrupted_test": False, "add_stylized_test": False, "use_c_test_as_val": False, "show_sample": False,
    "filter_classes": (),
}
# (its data_dir and num_workers are this library's runtime options: where the data lies and how it is read)

#: the batches orbit_transfer's simple trainer draws (its ``batch_size``; SimpleTrainerConfig's default)
SIMPLE_TRAINER_BATCH = 1000
#: the length of an MNIST-1D signal
MNIST1D_LENGTH = 40


class MNIST1DDatasetConfig(OriginalFields, MNIST1DConfig):
    """orbit_transfer/dataset/mnist_1d.py: MNIST-1D without translation (the lab's stored copy; here generated
    by the ``mnist1d`` package with its defaults, 5,000 signals, seed 42, no translation), ``valid_size`` of
    the training signals held out; training and validation signals circularly shifted by an amount drawn
    per signal from ``0 .. train_shift - 1`` (all by 0 when ``train_shift`` is 0); the test sets "test_shift"
    (the original's ``test``: shifts ``train_shift .. 39``) and "test_all" (``0 .. 39``). The original's
    simple trainer draws batches of 1000 from the arrays, so the loaders batch by 1000."""

    ORIGINAL = {**ORIGINAL_DATASET, "train_shift": 30, "original": False, "dataset_cls": "1DMNIST"}

    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        if "train_shift" in kwargs and kwargs["train_shift"] is not None:  # np.linspace gives floats
            kwargs = dict(kwargs, train_shift=integral(type(self).__name__, "train_shift", kwargs["train_shift"]))
            self.__dict__["train_shift"] = kwargs["train_shift"]
        self.declare_original_defaults(MNIST1DDatasetConfig, kwargs)
        super().__init__(**kwargs)

    def translate(self, original: Dict[str, Any]) -> Dict[str, Any]:
        owner = type(self).__name__
        if original.pop("dataset_cls", "1DMNIST") not in ("1DMNIST", "MNIST1D"):
            raise Refused(owner, "dataset_cls other than '1DMNIST' is no data set of orbit_transfer's MNIST-1D loader")
        if original.pop("original", False):
            raise Refused(owner, "original=True (greydanus' pickle with its own translations, downloaded) is not "
                                 "available: this library generates MNIST-1D without translation")
        shift = integral(owner, "train_shift", original.pop("train_shift", 30))
        if not 0 <= shift <= MNIST1D_LENGTH:
            raise Refused(owner, f"train_shift={shift} is outside 0 .. {MNIST1D_LENGTH}")
        original.pop("batch_size", None)  # unread by the original: the simple trainer batches by its own batch_size
        original.pop("pin_memory", None)  # a loader detail, no meaning for what trains
        shuffle = original.pop("shuffle", True)
        valid_size = original.pop("valid_size", 0.1)
        refuse_leftovers(owner, original)
        unseen_low = shift if shift < MNIST1D_LENGTH else 0  # a roll by 40 is none
        unseen_high = MNIST1D_LENGTH - 1 if shift < MNIST1D_LENGTH else 0
        return {
            "dataset_cls": "MNIST1D",
            "batch_size": SIMPLE_TRAINER_BATCH,
            "valid_size": valid_size,
            "shuffle": shuffle,
            "dataset_kwargs": {"num_samples": 5000, "seed": 42, "train_shift": (0, max(shift - 1, 0)), "shift_seed": 0},
            "test_transforms": {
                "test_shift": {"transform": "circular_shift", "low": unseen_low, "high": unseen_high},
                "test_all": {"transform": "circular_shift", "low": 0, "high": MNIST1D_LENGTH - 1},
            },
        }


class MNIST(OriginalFields, ImageDatasetConfig):
    """orbit_transfer/configs/dataset/mnist.py: torchvision's MNIST at 28x28, without augmentation or
    normalisation. ``add_rotated_test`` (orbit_transfer/dataset/torchvision_loader.py, nntransfer's
    ``DiscreteRotateTransform([0, 90, 180, 270])``): the test set with each digit rotated by one of 0, 90,
    180, 270 degrees drawn at random, here the test set "test_rot90s" with one of those angles drawn per
    digit; ``add_corrupted_test``: MNIST-C (``mnist_c`` in the data folder) as "c_test". ``dataset_cls="MNIST-C"``:
    training on MNIST-C's ``translate`` training images, testing on MNIST's test split (this library's
    ``MNIST-C`` data set), as the original's loader."""

    ORIGINAL = {**ORIGINAL_DATASET, **ORIGINAL_IMAGE, "dataset_cls": "MNIST", "input_width": 28, "input_height": 28,
                "apply_augmentation": False, "apply_normalization": False, "add_rotated_test": False}

    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.declare_original_defaults(MNIST, kwargs)
        super().__init__(**kwargs)

    def translate(self, original: Dict[str, Any]) -> Dict[str, Any]:
        owner = type(self).__name__
        dataset_cls = original.pop("dataset_cls", "MNIST")
        if dataset_cls not in ("MNIST", "MNIST-C"):
            raise Refused(owner, f"dataset_cls={dataset_cls!r}: only 'MNIST' and 'MNIST-C' (its translate corruption "
                                 "for training, MNIST's test split) are mapped")
        out: Dict[str, Any] = {"dataset_cls": dataset_cls}
        for name in ("batch_size", "shuffle", "valid_size", "apply_normalization", "apply_grayscale",
                     "convert_to_rgb", "add_corrupted_test"):
            if name in original:
                out[name] = original.pop(name)
        for name in ("pin_memory", "show_sample"):  # loader and display details: no meaning for what trains
            original.pop(name, None)
        check_default(owner, original, ("apply_noise", "add_stylized_test", "use_c_test_as_val", "filter_classes"),
                      ORIGINAL_IMAGE, "has no counterpart mapped here")
        for name in ("input_width", "input_height"):
            value = original.pop(name, 28)
            if value != 28:
                raise Refused(owner, f"{name}={value!r}: only MNIST's own 28x28 is mapped")
        if original.pop("apply_augmentation", False):
            raise Refused(owner, "apply_augmentation=True on MNIST is not mapped")
        if original.pop("add_rotated_test", False):
            out["test_transforms"] = {"test_rot90s": {"transform": "random_rotation", "angles": [0, 90, 180, 270]}}
        refuse_leftovers(owner, original)
        return out
