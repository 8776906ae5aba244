"""Per-example image transforms of the per-example path (PIL images: ImageNet and TinyImageNet folders):
colour mode, resizing, augmentation (train only), normalisation. The in-memory path does the same on
whole batches (``nntransfer.dataset.augment``)."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from PIL import Image

from nntransfer.configs.dataset.image import ImageDatasetConfig

# ITU-R 601 luma weights: what PIL's convert("L") (and torchvision's Grayscale) use.
LUMA = (0.299, 0.587, 0.114)


class ConvertMode:
    """Convert a PIL image to "L" (1 channel) or "RGB" (3 channels); ``gray_rgb`` makes 3 equal channels."""

    def __init__(self, channels: int, gray_rgb: bool = False):
        self.channels = channels
        self.gray_rgb = gray_rgb

    def __call__(self, image: Image.Image) -> Image.Image:
        if self.channels == 1:
            return image.convert("L")
        if self.gray_rgb:
            return image.convert("L").convert("RGB")
        return image.convert("RGB")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(channels={self.channels}, gray_rgb={self.gray_rgb})"


class FixedRotation:
    """Rotate every image by the same angle (degrees, counter-clockwise); corners are filled with 0."""

    def __init__(self, angle: float):
        self.angle = float(angle)

    def __call__(self, image: Image.Image) -> Image.Image:
        from torchvision.transforms import functional as TF  # torchvision only where images are transformed

        return TF.rotate(image, self.angle)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(angle={self.angle})"


def output_channels(config: ImageDatasetConfig, raw_channels: int) -> int:
    """Channels of the tensors the loaders yield."""
    if config.convert_to_rgb:
        return 3
    if config.apply_grayscale:
        return 1
    return raw_channels


def normalization_stats(
    config: ImageDatasetConfig,
    default_mean: Optional[Sequence[float]],
    default_std: Optional[Sequence[float]],
    channels: int,
) -> Tuple[Optional[Tuple[float, ...]], Optional[Tuple[float, ...]]]:
    """Per-channel mean and std for ``channels`` output channels (``(None, None)``: the data set has no
    defaults and the config gives none).

    Given values must have one entry per output channel. Defaults are converted when the colour mode
    changes: gray from RGB takes the luma-weighted mean and std (an approximation), RGB from gray repeats.
    """
    if config.mean is not None or config.std is not None:
        if config.mean is None or config.std is None:
            raise ValueError("ImageDatasetConfig: give both mean and std, or neither (for the data set's defaults)")
        for name, values in (("mean", config.mean), ("std", config.std)):
            if len(values) != channels:
                raise ValueError(
                    f"ImageDatasetConfig.{name} has {len(values)} values but the images have {channels} channels"
                )
        return tuple(float(v) for v in config.mean), tuple(float(v) for v in config.std)
    if default_mean is None or default_std is None:
        return None, None

    def convert(values: Sequence[float]) -> Tuple[float, ...]:
        values = tuple(float(v) for v in values)
        gray_from_rgb = len(values) == 3 and (config.apply_grayscale or channels == 1)
        if gray_from_rgb:
            values = (sum(w * v for w, v in zip(LUMA, values)),)
        if len(values) == 1 and channels == 3:
            values = values * 3
        return values

    return convert(default_mean), convert(default_std)


def build_transform(
    config: ImageDatasetConfig,
    native_size: Optional[int],
    channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    train: bool,
    rotate: Optional[float] = None,
    normalize: bool = True,
) -> Any:
    """The transform of one split: PIL image -> float tensor [channels, input_size, input_size].

    Args:
        native_size: side length of the raw images; None if they vary (resize, then centre crop).
        channels: output channels (``output_channels``).
        train: add the configured augmentation.
        rotate: rotate every image by this angle first (the rotated test set).
        normalize: end with the normalisation (when configured); False: tensors in [0, 1].
    """
    from torchvision import transforms  # torchvision only where images are transformed

    size = config.input_size
    steps: List = [ConvertMode(channels, gray_rgb=config.apply_grayscale and channels == 3)]
    if rotate is not None:
        steps.append(FixedRotation(rotate))
    if native_size is None:  # ImageNet-style photos of varying size
        if train and config.augment_crop:
            steps.append(transforms.RandomResizedCrop(size))
        else:
            steps += [transforms.Resize(max(size, round(size * 256 / 224))), transforms.CenterCrop(size)]
    else:
        # Always resize: corrupted sets or custom readers may hold images of another size than the data
        # set's native one (PIL returns an unchanged copy when the size already fits).
        steps.append(transforms.Resize((size, size)))
        if train and config.augment_crop:
            steps.append(transforms.RandomCrop(size, padding=config.crop_padding))
    if train and config.augment_flip:
        steps.append(transforms.RandomHorizontalFlip())
    if train and config.augment_rotation:
        steps.append(transforms.RandomRotation(config.rotation_degrees))
    steps.append(transforms.ToTensor())
    if config.apply_normalization and normalize and mean is not None:
        steps.append(transforms.Normalize(list(mean), list(std)))
    return transforms.Compose(steps)
