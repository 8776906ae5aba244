"""`ImageDatasetConfig`: image classification data sets, read by ``nntransfer.dataset.img_dataset_loader``."""

from typing import Any, Dict

from nntransfer.configs.dataset.base import DatasetConfig
from nntransfer.configs.original import Alias, input_size_alias


def _augmentation(value: Any, config: Any, memory: Dict[str, Any]) -> Dict[str, Any]:
    """The original ``apply_augmentation``: random crop (padding 4), horizontal flip and rotation (15 degrees;
    not for MNIST-like data sets or ImageNet, see ``_no_rotation``)."""
    return {"augment_crop": bool(value), "augment_flip": bool(value), "augment_rotation": bool(value)}


def _no_rotation(config: Any, owned: Dict[str, str]) -> None:
    """The original rotated no data set whose name contains "MNIST" (nor ImageNet)."""
    if owned.get("augment_rotation") == "apply_augmentation" and config.augment_rotation:
        name = str(config.__dict__.get("dataset_cls", ""))
        if "MNIST" in name or name == "ImageNet":
            config.__dict__["augment_rotation"] = False


class ImageDatasetConfig(DatasetConfig):
    """Settings of the image classification loaders (see ``nntransfer.dataset``).

    Fields (besides ``DatasetConfig``'s batch_size, valid_size, shuffle, num_workers, pin_memory, data_dir):

    Data set
        dataset_cls: registered data set name: "Digits" (scikit-learn's 8x8 digits, no download),
            "FakeData", "MNIST", "TranslatedMNIST" (``canvas_size``, ``train_shift``, ``shift_seed``), "FashionMNIST", "CIFAR10", "CIFAR100", "SVHN", "MNIST1D" (generated
            offline; see ``MNIST1DConfig``), all held in memory; "TinyImageNet", "ImageNet" (folders,
            read per example). ``nntransfer.dataset.available_datasets()`` lists them.
        dataset_kwargs: extra options of the data set's reader, e.g. for FakeData
            ``{"size": 1000, "test_size": 200, "num_classes": 10, "channels": 3}``.
        download: let torchvision download the data set into ``data_dir`` when its files are missing.
        input_size: side length (pixels) of the square images the model sees; images are resized to it
            (array data such as MNIST-1D signals is never resized: the model sees its real shape).

    Split and sampling
        train_subset: fraction in (0, 1] of the training split that is kept.
        data_repeats: each training example appears this many times per epoch.
        filter_classes: ``(start, stop)``: keep the classes ``start <= label < stop`` (like ``range``)
            in every split, or None for all classes.
        relabel_classes: with ``filter_classes``, map the kept labels to ``0..stop-start-1``; if False,
            labels (and the number of classes) stay those of the full data set.
        examples_per_class: keep this many training examples of each class (None: all).

    Transforms (augmentation applies to the training split only)
        augment_crop, crop_padding: random crop after zero-padding by ``crop_padding`` pixels
            (random resized crop for ImageNet-style folder data sets).
        augment_flip: random horizontal flip.
        augment_rotation, rotation_degrees: random rotation within +-``rotation_degrees``.
        apply_normalization: subtract ``mean`` and divide by ``std`` per channel; None takes the data
            set's defaults.
        apply_grayscale: convert to one gray channel (three identical channels with ``convert_to_rgb``).
        convert_to_rgb: convert to three channels (e.g. MNIST for an ImageNet model).

    Robustness test sets
        add_rotated_test, rotated_test_angle: add split "test_rotated": the test set rotated by this angle.
        add_corrupted_test: add split "c_test" ``{corruption: {severity: loader}}`` read from
            ``corrupted_data_dir`` (None: the data set's standard folder in ``data_dir``, e.g.
            ``CIFAR-10-C``, ``mnist_c``).
        corruptions, corruption_severities: the corruptions / severities to load (empty: all found).
        stacked_severities: severities stacked in each CIFAR-10-C style ``<corruption>.npy`` file.
        test_transforms: extra test sets made from the test split, ``{split name: {"transform": name,
            **parameters}}``; each is evaluated at the end and reported under its name. Registered
            transforms (``nntransfer.dataset.TEST_TRANSFORMS``): ``rotation`` (``angle``),
            ``random_rotation`` (``angles`` or ``low``/``high`` degrees, drawn per example), ``translation``
            (``low``, ``high``, ``random_sign``, ``circular``: pixels on both axes, drawn per example),
            ``circular_shift`` (``low``, ``high``: amount drawn per example, inclusive; ``dim``),
            ``gaussian_noise`` (``std``, ``clip``); every entry may add ``seed`` (default 0).
            Example: ``{"test_unseen": {"transform": "circular_shift", "low": 30, "high": 39}}``.

    Original nntransfer names (translated, with a ``DeprecationWarning``): ``input_width``/``input_height``
    (-> ``input_size``; both equal), ``apply_augmentation`` (-> ``augment_crop``, ``augment_flip`` and,
    except for MNIST-like data sets and ImageNet, ``augment_rotation``), ``train_data_mean``/``train_data_std``
    (-> ``mean``/``std``).

    A subclass sets its own defaults before calling ``super().__init__``::

        class Cifar10Config(ImageDatasetConfig):
            def __init__(self, **kwargs):
                self.dataset_cls, self.input_size, self.augment_crop = "CIFAR10", 32, True
                super().__init__(**kwargs)
    """

    fn = "nntransfer.dataset.img_dataset_loader"

    #: the original nntransfer's names (``nntransfer.configs.original``: translated before hashing, with a warning)
    ALIASES = {
        "input_width": input_size_alias(1, square=True),
        "input_height": input_size_alias(0, square=True),
        "apply_augmentation": Alias(
            "augment_crop", convert=_augmentation, finish=_no_rotation,
            hint="'apply_augmentation' is the original nntransfer's switch of augment_crop, augment_flip and "
                 "augment_rotation (no rotation for MNIST-like data sets and ImageNet); set those"),
        "train_data_mean": "mean",
        "train_data_std": "std",
    }

    def __init__(self, **kwargs):
        defaults = dict(
            dataset_cls="Digits",
            dataset_kwargs={"DEFAULT EMPTY": True},
            download=False,
            input_size=8,
            batch_size=64,
            # split and sampling
            train_subset=1.0,
            data_repeats=1,
            filter_classes=None,
            relabel_classes=True,
            examples_per_class=None,
            # transforms
            augment_crop=False,
            crop_padding=4,
            augment_flip=False,
            augment_rotation=False,
            rotation_degrees=15.0,
            apply_normalization=True,
            mean=None,
            std=None,
            apply_grayscale=False,
            convert_to_rgb=False,
            # robustness test sets
            add_rotated_test=False,
            rotated_test_angle=90.0,
            add_corrupted_test=False,
            corrupted_data_dir=None,
            corruptions=[],
            corruption_severities=[],
            stacked_severities=5,
            test_transforms={"DEFAULT EMPTY": True},
        )
        # setdefault: a subclass (e.g. a CIFAR config of a recipe) that sets its own defaults first keeps them.
        self.set_defaults(**defaults)
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        # No derived values; check the values whose mistakes would otherwise surface deep in a worker.
        self._check_values()

    def _check_values(self) -> None:
        name = type(self).__name__
        if not 0 <= self.valid_size <= 1:
            raise ValueError(f"{name}.valid_size must be a fraction in [0, 1], got {self.valid_size!r}")
        if not 0 < self.train_subset <= 1:
            raise ValueError(f"{name}.train_subset must be a fraction in (0, 1], got {self.train_subset!r}")
        if self.data_repeats < 1:
            raise ValueError(f"{name}.data_repeats must be at least 1, got {self.data_repeats!r}")
        if self.batch_size < 1:
            raise ValueError(f"{name}.batch_size must be at least 1, got {self.batch_size!r}")
        if self.input_size < 1:
            raise ValueError(f"{name}.input_size must be at least 1, got {self.input_size!r}")
        if self.stacked_severities < 1:
            raise ValueError(f"{name}.stacked_severities must be at least 1, got {self.stacked_severities!r}")
        if self.filter_classes is not None:
            ok = isinstance(self.filter_classes, (list, tuple)) and len(self.filter_classes) == 2
            ok = ok and all(isinstance(c, int) and not isinstance(c, bool) for c in self.filter_classes)
            if not ok or self.filter_classes[0] >= self.filter_classes[1] or self.filter_classes[0] < 0:
                raise ValueError(
                    f"{name}.filter_classes must be (start, stop) with 0 <= start < stop, "
                    f"got {self.filter_classes!r}"
                )
        if self.examples_per_class is not None and (
            not isinstance(self.examples_per_class, int) or self.examples_per_class < 1
        ):
            raise ValueError(
                f"{name}.examples_per_class must be a positive int or None, got {self.examples_per_class!r}"
            )
        for field in ("mean", "std"):
            value = getattr(self, field)
            if value is not None and (
                not isinstance(value, (list, tuple)) or not all(isinstance(v, (int, float)) for v in value)
            ):
                raise ValueError(f"{name}.{field} must be a list of per-channel numbers or None, got {value!r}")
        reserved = {"train", "validation", "test", "test_rotated", "c_test", "validation_noise"}
        if not isinstance(self.test_transforms, dict):
            raise ValueError(f"{name}.test_transforms must be a dict {{split name: {{'transform': ...}}}}, got {self.test_transforms!r}")
        for split, entry in self.test_transforms.items():
            if not isinstance(split, str) or split in reserved or "/" in split:
                raise ValueError(f"{name}.test_transforms: {split!r} cannot name a split (reserved: {', '.join(sorted(reserved))})")
            if not isinstance(entry, dict) or not isinstance(entry.get("transform"), str):
                raise ValueError(f"{name}.test_transforms[{split!r}] must be a dict with a 'transform' name, got {entry!r}")
        if self.std is not None and any(v <= 0 for v in self.std):
            raise ValueError(f"{name}.std must be positive, got {self.std!r}")
