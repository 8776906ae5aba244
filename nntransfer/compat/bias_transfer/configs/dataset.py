"""``ImageDatasetConfig`` as the recipes of bias_transfer (July 2021) meant it: the original nntransfer's
``ImageDatasetConfig`` (``nntransfer/configs/dataset/image.py`` and ``base.py`` of sinzlab/nntransfer),
whose ``fn`` was bias_transfer's torchvision loader (``bias_transfer/dataset/torchvision_loader.py``),
mapped onto this library's image loader."""

from typing import Any, Dict

from nntransfer.compat.bias_transfer.configs._fields import refused, translated
from nntransfer.configs.dataset.image import ImageDatasetConfig as _LibraryImageDatasetConfig

#: the data sets mapped: torchvision data sets of 32x32 images, which the original loader read as they are
#: (its ``input_width``/``input_height`` only sized the random crop; it never resized)
MAPPED_DATASETS = ("CIFAR10", "CIFAR100", "SVHN")
#: the original nntransfer's ``data_mean_defaults`` / ``data_std_defaults`` of these data sets (exact values;
#: this library's own defaults are rounded to four digits)
ORIGINAL_MEAN = {
    "CIFAR100": (0.5070751592371323, 0.48654887331495095, 0.4409178433670343),
    "CIFAR10": (0.49139968, 0.48215841, 0.44653091),
    "SVHN": (0.4377, 0.4438, 0.4728),
}
ORIGINAL_STD = {
    "CIFAR100": (0.2673342858792401, 0.2564384629170883, 0.27615047132568404),
    "CIFAR10": (0.24703223, 0.24348513, 0.26158784),
    "SVHN": (0.1980, 0.2010, 0.1970),
}
#: the original's data folder (a runtime option here: ``--data-dir`` or ``NNTRANSFER_DATA_DIR`` win over it)
ORIGINAL_DATA_DIR = "./data/image_classification/torchvision/"


def _filter_classes(value: Any, config: Any, memory: Dict[str, Any]) -> Dict[str, Any]:
    if value in ((), [], None):
        return {"filter_classes": None}
    raise ValueError(f"{type(config).__name__}: filter_classes={value!r} cannot be kept here: the original's "
                     f"ClassesFilter is not mapped (only the original default () is accepted)")


class ImageDatasetConfig(_LibraryImageDatasetConfig):
    """The original ``ImageDatasetConfig`` (fields and defaults of sinzlab/nntransfer, July 2021).

    ================================  ==========================================================================
    original field (default)          here
    ================================  ==========================================================================
    dataset_cls ("CIFAR10")           dataset_cls; CIFAR10, CIFAR100 or SVHN (others refused)
    batch_size (128)                  batch_size
    valid_size (0.1), shuffle (True)  valid_size, shuffle (validation: held-out training images, no augmentation)
    pin_memory (True)                 pin_memory (runtime option)
    num_workers (1)                   num_workers (runtime option)
    data_dir (ORIGINAL_DATA_DIR)      data_dir (runtime option; NNTRANSFER_DATA_DIR / --data-dir win)
    apply_augmentation (True)         augment_crop (padding 4), augment_flip, augment_rotation (15 degrees)
    apply_normalization (True)        apply_normalization
    train_data_mean, train_data_std   mean, std (default: the original's exact per-channel values)
    apply_grayscale (False)           apply_grayscale
    convert_to_rgb (False)            convert_to_rgb
    input_width, input_height (32)    input_size (32; any other size refused: the original never resized)
    add_corrupted_test (False)        add_corrupted_test (read from data_dir, never downloaded)
    filter_classes (())               filter_classes None; a (start, end) is refused
    apply_noise ({})                  refused unless {}
    add_stylized_test (False)         refused unless False
    use_c_test_as_val (False)         refused unless False
    show_sample (False)               refused unless False
    ================================  ==========================================================================

    ``download`` is True, as the original loader always asked torchvision to download.
    """

    ALIASES = {
        "filter_classes": translated("filter_classes", _filter_classes, "filter_classes",
                                     "filter_classes=() is the original's 'all classes'; here None"),
        "apply_noise": refused("apply_noise", {}, "bias_transfer's torchvision loader reads no apply_noise (use "
                                                  "nntransfer's NoiseAugmentationMixin on the trainer)"),
        "add_stylized_test": refused("add_stylized_test", False, "no stylized test sets here"),
        "use_c_test_as_val": refused("use_c_test_as_val", False, "a corrupted test set cannot be the validation set here"),
        "show_sample": refused("show_sample", False, "the loader plots no sample grid here"),
    }

    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.set_defaults(
            dataset_cls="CIFAR10",
            batch_size=128,
            valid_size=0.1,
            shuffle=True,
            pin_memory=True,
            num_workers=1,
            data_dir=ORIGINAL_DATA_DIR,
            download=True,
            input_size=32,
            augment_crop=True,
            crop_padding=4,
            augment_flip=True,
            augment_rotation=True,
            rotation_degrees=15.0,
            apply_normalization=True,
            apply_grayscale=False,
            convert_to_rgb=False,
            add_corrupted_test=False,
        )
        if "MNIST" in str(self.dataset_cls):  # the original rotated no MNIST-like data set
            self.set_defaults(augment_rotation=False)
        # the original looked its mean and std up when the config was built (with normalisation; it had none for
        # gray CIFAR/SVHN)
        if self.apply_normalization and not self.apply_grayscale and self.dataset_cls in ORIGINAL_MEAN:
            self.set_defaults(mean=list(ORIGINAL_MEAN[self.dataset_cls]), std=list(ORIGINAL_STD[self.dataset_cls]))
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        name = type(self).__name__
        if self.dataset_cls not in MAPPED_DATASETS:
            raise ValueError(
                f"{name}: dataset_cls={self.dataset_cls!r} cannot be kept here: bias_transfer's torchvision loader is "
                f"mapped for {', '.join(MAPPED_DATASETS)} only (use nntransfer.configs.ImageDatasetConfig)"
            )
        if self.input_size != 32:
            raise ValueError(
                f"{name}: input_size={self.input_size!r} (input_width/input_height) cannot be kept here: the original "
                f"only cropped {self.dataset_cls}'s 32x32 images to it and never resized; use 32"
            )
        if self.apply_normalization and (self.mean is None or self.std is None):
            raise ValueError(
                f"{name}: the original has no mean and std of {self.dataset_cls}"
                f"{' in gray' if self.apply_grayscale else ''}; give train_data_mean and train_data_std, or "
                f"apply_normalization=False"
            )
        super().conditional_assignment()
