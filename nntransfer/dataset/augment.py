"""Whole-batch transforms of the in-memory path: colour mode, random crop, flip, rotation, normalisation.

Every function is pure: it takes a batch ``[B, C, H, W]`` (and a ``torch.Generator`` where it draws),
returns a new batch and never touches global random state. Random parameters (offsets, flips, angles)
are drawn on the CPU from the generator and then moved to the batch's device, so the same seed gives the
same batch on every device. The distributions are those of torchvision's per-example transforms:

========================  ===================================================================
``random_crop``           ``RandomCrop(size, padding)``: zero padding, offsets uniform in ``0..2p``
``random_flip``           ``RandomHorizontalFlip(p)``: each example flipped with probability ``p``
``random_rotation``       ``RandomRotation(d)``: angle uniform in ``[-d, d]``, nearest, zero fill
``convert_channels``      PIL's ``convert("L")`` (ITU-R 601 luma, integer rounding on uint8) / "RGB"
``normalize``             ``Normalize(mean, std)``
========================  ===================================================================

``BatchTransform`` strings them together for one split; the loader calls it on each batch.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

# PIL's integer luma: L = (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16  (ITU-R 601-2, 16-bit fixed point)
_LUMA_FIXED = (19595, 38470, 7471)
LUMA = (0.299, 0.587, 0.114)


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 images to float32 in [0, 1] (like ``ToTensor``); other dtypes to float32 unchanged."""
    if batch.dtype == torch.uint8:
        return batch.float().div_(255.0)
    return batch.float()


def convert_channels(batch: torch.Tensor, channels: int, gray_rgb: bool = False) -> torch.Tensor:
    """``[B, C, H, W]`` with C in (1, 3) to ``channels`` channels, like PIL's ``convert("L")`` /
    ``convert("RGB")``; ``gray_rgb``: gray first, then three equal channels. uint8 batches are converted
    with PIL's integer formula (bit-identical), float batches with the luma weights."""
    if batch.shape[1] not in (1, 3):
        raise ValueError(f"colour conversion needs 1 or 3 channels, got {batch.shape[1]}")
    to_gray = batch.shape[1] == 3 and (channels == 1 or gray_rgb)
    if to_gray:
        if batch.dtype == torch.uint8:
            weights = torch.tensor(_LUMA_FIXED, dtype=torch.int32, device=batch.device).view(1, 3, 1, 1)
            batch = ((batch.int() * weights).sum(1, keepdim=True) + 0x8000).bitwise_right_shift(16).to(torch.uint8)
        else:
            weights = torch.tensor(LUMA, dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
            batch = (batch * weights).sum(1, keepdim=True)
    if channels == 3 and batch.shape[1] == 1:
        batch = batch.expand(-1, 3, -1, -1)
    if batch.shape[1] != channels:
        raise ValueError(f"cannot convert {batch.shape[1]} channels to {channels}")
    return batch


def crop_offsets(n: int, padding: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    """``[n, 2]`` (top, left) offsets, each uniform in ``0..2 * padding``."""
    return torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)


def crop_at(batch: torch.Tensor, offsets: torch.Tensor, padding: int) -> torch.Tensor:
    """Crop each example of the zero-padded batch at its ``(top, left)`` offset (output size unchanged)."""
    if padding == 0:
        return batch
    b, _, h, w = batch.shape
    padded = F.pad(batch, (padding, padding, padding, padding))
    offsets = offsets.to(batch.device)
    rows = offsets[:, 0, None] + torch.arange(h, device=batch.device)  # [B, H]
    cols = offsets[:, 1, None] + torch.arange(w, device=batch.device)  # [B, W]
    index = torch.arange(b, device=batch.device)[:, None, None]
    # advanced indexing -> [B, H, W, C]
    return padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def random_crop(batch: torch.Tensor, padding: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    """``RandomCrop(size, padding=padding)`` on every example: zero-pad, crop at a random offset."""
    return crop_at(batch, crop_offsets(len(batch), padding, generator), padding)


def flip_mask(n: int, p: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """``[n]`` booleans, each True with probability ``p``."""
    return torch.rand(n, generator=generator) < p


def random_flip(batch: torch.Tensor, generator: Optional[torch.Generator], p: float = 0.5) -> torch.Tensor:
    """``RandomHorizontalFlip(p)`` on every example (the last axis is mirrored)."""
    mask = flip_mask(len(batch), p, generator).to(batch.device).view(-1, *([1] * (batch.dim() - 1)))
    return torch.where(mask, batch.flip(-1), batch)


def rotate(batch: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate each example counter-clockwise by its angle (degrees) about the image centre, nearest
    neighbour, corners filled with 0 (what torchvision's ``rotate`` does). Works for ``H != W``."""
    b, _, h, w = batch.shape
    dtype = batch.dtype if batch.is_floating_point() else torch.float32
    theta = angles.to(batch.device, torch.float64) * (math.pi / 180.0)
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    ys = torch.arange(h, device=batch.device, dtype=torch.float64) - (h - 1) / 2
    xs = torch.arange(w, device=batch.device, dtype=torch.float64) - (w - 1) / 2
    y, x = ys[None, :, None], xs[None, None, :]
    # output pixel (x, y) samples the input at the inverse rotation (y axis points down)
    src_x = cos * x - sin * y
    src_y = sin * x + cos * y
    grid = torch.stack([(src_x + (w - 1) / 2 + 0.5) * (2.0 / w) - 1, (src_y + (h - 1) / 2 + 0.5) * (2.0 / h) - 1], -1)
    out = F.grid_sample(batch.to(dtype), grid.to(dtype), mode="nearest", padding_mode="zeros", align_corners=False)
    return out.to(batch.dtype)


def rotation_angles(n: int, degrees: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """``[n]`` angles uniform in ``[-degrees, degrees]``."""
    return torch.rand(n, generator=generator, dtype=torch.float64) * (2 * degrees) - degrees


def random_rotation(batch: torch.Tensor, degrees: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """``RandomRotation(degrees)`` on every example."""
    return rotate(batch, rotation_angles(len(batch), degrees, generator))


def translate(batch: torch.Tensor, shifts: torch.Tensor, circular: bool = False) -> torch.Tensor:
    """Move the content of each example ``[B, C, H, W]`` by whole pixels: ``shifts[i] = (down, right)``
    (negative: up, left). Pixels moved in from outside are 0 (what leaves the image is lost), or, with
    ``circular``, those that left at the other side (a roll)."""
    if batch.dim() != 4:
        raise ValueError(f"translation needs images [N, C, H, W], got shape {list(batch.shape)}")
    b, _, h, w = batch.shape
    shifts = shifts.to(batch.device, torch.int64).view(b, 2)
    rows = torch.arange(h, device=batch.device)[None, :] - shifts[:, :1]  # [B, H]: source row of each row
    cols = torch.arange(w, device=batch.device)[None, :] - shifts[:, 1:]  # [B, W]
    if circular:
        rows, cols = rows % h, cols % w
        inside = None
    else:
        inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]  # [B, H, W]
        rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    index = torch.arange(b, device=batch.device)[:, None, None]
    moved = batch.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    if inside is not None:
        moved = moved * inside[..., None].to(moved.dtype)
    return moved.permute(0, 3, 1, 2).contiguous()


def translation_shifts(n: int, low: int, high: int, generator: Optional[torch.Generator], random_sign: bool = False) -> torch.Tensor:
    """``[n, 2]`` integer shifts (down, right), each drawn uniformly from ``low..high`` (inclusive) and,
    with ``random_sign``, multiplied by a random sign."""
    shifts = torch.randint(int(low), int(high) + 1, (n, 2), generator=generator)
    if random_sign:
        shifts = shifts * (torch.randint(0, 2, (n, 2), generator=generator) * 2 - 1)
    return shifts


def normalize(batch: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(batch - mean) / std`` per channel (axis 1)."""
    mean_t, std_t = _stats(tuple(mean), tuple(std), batch.dtype, batch.device, batch.dim())
    return (batch - mean_t) / std_t


@functools.lru_cache(maxsize=64)
def _stats(mean, std, dtype, device, dim):
    """Mean and std as broadcastable tensors on ``device`` (cached: no host-to-device copy per batch)."""
    shape = (1, -1) + (1,) * (dim - 2)
    return (torch.tensor(mean, dtype=dtype, device=device).view(shape),
            torch.tensor(std, dtype=dtype, device=device).view(shape))


@dataclass(frozen=True)
class BatchTransform:
    """The transform of one split on the in-memory path: raw batch -> float32 model inputs.

    In order: colour mode (``channels``; ``gray_rgb``), to float ([0, 1] for uint8), random crop with
    ``crop_padding``, flip, rotation within ``rotation_degrees``, normalisation with ``mean``/``std``.
    None / False switches a step off; ``channels=None`` keeps the data's channels (any shape)."""

    channels: Optional[int] = None
    gray_rgb: bool = False
    crop_padding: Optional[int] = None
    flip: bool = False
    rotation_degrees: Optional[float] = None
    mean: Optional[Sequence[float]] = None
    std: Optional[Sequence[float]] = None

    @property
    def random(self) -> bool:
        """Whether the transform draws random numbers (augments)."""
        return self.crop_padding is not None or self.flip or self.rotation_degrees is not None

    def __call__(self, batch: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if self.channels is not None and (batch.shape[1] != self.channels or self.gray_rgb):
            batch = convert_channels(batch, self.channels, self.gray_rgb)
        batch = to_float(batch)
        if self.crop_padding is not None:
            batch = random_crop(batch, self.crop_padding, generator)
        if self.flip:
            batch = random_flip(batch, generator)
        if self.rotation_degrees is not None:
            batch = random_rotation(batch, self.rotation_degrees, generator)
        if self.mean is not None:
            batch = normalize(batch, self.mean, self.std)
        return batch.contiguous()

    def without_augmentation(self) -> "BatchTransform":
        """The same transform without its random steps (validation, test, unaugmented training data)."""
        return BatchTransform(self.channels, self.gray_rgb, None, False, None, self.mean, self.std)
