"""`NoiseAugmentation`: Gaussian noise on the inputs, by std or by signal-to-noise ratio, as a mixture of
levels with fractions of the batch; added in pixel units and clipped to the valid pixel range."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence, Tuple, Union

import torch

from nntransfer.configs.trainer.mixins import NoiseAugmentationMixin
from nntransfer.dataset.info import normalization
from nntransfer.trainer.main_loop_modules.base import BatchState, LoopContext, MainLoopModule
from nntransfer.trainer.main_loop_modules.registry import register

Level = Union[None, float, Tuple[float, float]]


def sample_noise_levels(
    levels: Mapping[Level, float],
    batch_size: int,
    generator: Optional[torch.Generator] = None,
    device: Union[str, torch.device] = "cpu",
) -> torch.Tensor:
    """One noise level per example of a batch: ``levels`` maps a level to the fraction of the batch that
    gets it (consecutive slices of the batch, which the loader shuffled); a level ``(low, high)`` is drawn
    uniformly once per batch; examples left over and level ``None`` are clean (NaN)."""
    out = torch.full((batch_size,), float("nan"), device=device)
    start, cumulative = 0, 0.0
    for level, fraction in levels.items():
        cumulative += fraction
        stop = min(batch_size, int(round(cumulative * batch_size)))
        if level is None or stop <= start:
            start = max(start, stop)
            continue
        if isinstance(level, (tuple, list)):
            low, high = level
            value = low + (high - low) * torch.rand((), generator=generator, device=device).item()
        else:
            value = float(level)
        out[start:stop] = value
        start = stop
    return out


def _channel_view(values: Optional[Union[Sequence[float], torch.Tensor]], x: torch.Tensor, fill: float) -> torch.Tensor:
    if values is None or len(values) == 0:
        return torch.full((1, x.shape[1], 1, 1), fill, dtype=x.dtype, device=x.device)
    return torch.as_tensor(values, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)


def apply_noise(
    x: torch.Tensor,
    std: Optional[Union[float, torch.Tensor]] = None,
    snr: Optional[Union[float, torch.Tensor]] = None,
    mean: Optional[Union[Sequence[float], torch.Tensor]] = None,
    data_std: Optional[Union[Sequence[float], torch.Tensor]] = None,
    pixel_range: Tuple[float, float] = (0.0, 1.0),
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Noisy copy of a normalised batch ``x`` [B, C, H, W] (``pixel = x * data_std + mean``).

    Give ``std`` (noise std in pixel units) or ``snr`` (mean squared pixel / noise variance, per image),
    each a number or one value per example; NaN, 0 (std) or inf (snr) leave an example unchanged. The noise
    is added to the pixels, clipped to ``pixel_range`` and normalised back. ``x`` is not modified.
    """
    if (std is None) == (snr is None):
        raise ValueError("apply_noise needs exactly one of std or snr")
    level = torch.as_tensor(std if std is not None else snr, dtype=x.dtype, device=x.device)
    if level.dim() == 0:
        level = level.expand(x.shape[0])
    if std is not None:
        noisy = torch.isfinite(level) & (level > 0)
    else:
        if bool((level <= 0).any()):
            raise ValueError("apply_noise: a signal-to-noise ratio must be positive")
        noisy = torch.isfinite(level)
    mean_t, std_t = _channel_view(mean, x, 0.0), _channel_view(data_std, x, 1.0)
    pixels = x * std_t + mean_t
    if std is not None:
        sigma = level
    else:
        sigma = torch.sqrt(pixels.pow(2).mean(dim=(1, 2, 3)) / level)
    sigma = torch.where(noisy, sigma, torch.zeros_like(sigma)).view(-1, 1, 1, 1)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    pixels = torch.clamp(pixels + noise * sigma, pixel_range[0], pixel_range[1])
    return torch.where(noisy.view(-1, 1, 1, 1), (pixels - mean_t) / std_t, x)


class NoiseSource:
    """Noise of one configuration (``{level: fraction}`` by std or by snr) for a step's inputs, in pixel units
    of the data set (its ``DataInfo`` normalisation, or the trainer config's ``input_mean``/``input_std``)."""

    def __init__(self, context: LoopContext, std_levels: Mapping, snr_levels: Mapping) -> None:
        self.kind, self.levels = ("std", std_levels) if std_levels else ("snr", snr_levels)
        config = context.config
        self.mean, self.std = normalization(context.data_info, config.input_mean, config.input_std)
        self.pixel_range = tuple(config.pixel_range)

    def __call__(self, inputs: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        levels = sample_noise_levels(self.levels, inputs.shape[0], generator=generator, device=inputs.device)
        return apply_noise(inputs, **{self.kind: levels}, mean=self.mean, data_std=self.std,
                           pixel_range=self.pixel_range, generator=generator)


@register
class NoiseAugmentation(MainLoopModule):
    """Adds noise to the inputs in training (from the global RNG, so resumed runs continue identically) and,
    with ``noise_in_evaluation``, in validation (from a generator reseeded every epoch: the same noise on
    every evaluation). The final evaluation ("Test") stays clean; ``noise_test`` covers noisy tests."""

    config_mixin = NoiseAugmentationMixin

    def __init__(self, context: LoopContext) -> None:
        super().__init__(context)
        self.noise = NoiseSource(context, self.config.noise_std, self.config.noise_snr)
        self.generator: Optional[torch.Generator] = None

    def pre_epoch(self, mode: str) -> None:
        """Reseed the evaluation generator."""
        if mode == "Validation":
            self.generator = torch.Generator(device=self.context.device).manual_seed(self.context.seed)

    def pre_forward(self, state: BatchState) -> None:
        """Replace the inputs by their noisy version."""
        if state.mode == "Training":
            state.inputs = self.noise(state.inputs)
        elif state.mode == "Validation" and self.config.noise_in_evaluation:
            state.inputs = self.noise(state.inputs, generator=self.generator)
