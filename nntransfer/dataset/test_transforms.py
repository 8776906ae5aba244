"""Named test-time transforms: extra test sets made from the test split.

``ImageDatasetConfig.test_transforms`` names them::

    test_transforms={"test_shift": {"transform": "circular_shift", "low": 30, "high": 39},
                     "test_noisy": {"transform": "gaussian_noise", "std": 0.1}}

Each becomes a split of the loaders (``loaders["test_shift"][TASK_KEY]``) that the final evaluation
evaluates and reports under its name (``output["final"]["test_shift"]``). A transform is a pure function
``fn(batch, generator, **params) -> batch`` on float examples ``[N, ...]`` in data units ([0, 1] for
images, before normalisation). Randomness is drawn once per example from a generator seeded by the
split's name (and an optional ``seed`` parameter), so a test set is the same in every run and epoch.
Register your own with ``register_test_transform("name", fn)``.
"""

from __future__ import annotations

import inspect
import zlib
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import torch

from nntransfer.dataset.augment import rotate, translate, translation_shifts
from nntransfer.registry import Registry, did_you_mean

TestTransform = Callable[..., torch.Tensor]

#: every test-time transform by name (the ``"transform"`` entry of a ``test_transforms`` item)
TEST_TRANSFORMS: Registry[TestTransform] = Registry(
    "test transform", help="add your own with nntransfer.dataset.register_test_transform(name, fn)"
)


def register_test_transform(name: str, fn: Optional[TestTransform] = None, overwrite: bool = False):
    """Register ``fn(batch, generator, **params)`` under ``name``; without ``fn`` a decorator."""
    if fn is None:
        return lambda f: TEST_TRANSFORMS.register(name, f, overwrite=overwrite)
    return TEST_TRANSFORMS.register(name, fn, overwrite=overwrite)


@register_test_transform("rotation")
def rotation(batch: torch.Tensor, generator: Optional[torch.Generator], angle: float) -> torch.Tensor:
    """Every image ``[N, C, H, W]`` rotated counter-clockwise by ``angle`` degrees (nearest, zero fill)."""
    if batch.dim() != 4:
        raise ValueError(f"rotation needs images [N, C, H, W], got shape {list(batch.shape)}")
    return rotate(batch, torch.full((len(batch),), float(angle), dtype=torch.float64))


@register_test_transform("random_rotation")
def rotation_per_example(
    batch: torch.Tensor,
    generator: Optional[torch.Generator],
    angles: Optional[Sequence[float]] = None,
    low: Optional[float] = None,
    high: Optional[float] = None,
) -> torch.Tensor:
    """Each image ``[N, C, H, W]`` rotated counter-clockwise (nearest, zero fill) by an angle in degrees
    drawn once per example: one of ``angles``, uniformly (``[0, 90, 180, 270]`` is the rotated MNIST test
    set of Nix et al. 2022), or uniform in ``[low, high]``."""
    if batch.dim() != 4:
        raise ValueError(f"random_rotation needs images [N, C, H, W], got shape {list(batch.shape)}")
    if not ((angles is not None and low is None and high is None) or (angles is None and low is not None and high is not None)):
        raise ValueError("random_rotation needs either angles (a list of degrees) or both low and high, not both")
    if angles is not None:
        choices = torch.tensor([float(a) for a in angles], dtype=torch.float64)
        if len(choices) == 0:
            raise ValueError("random_rotation needs at least one angle")
        drawn = choices[torch.randint(len(choices), (len(batch),), generator=generator)]
    else:
        if float(high) < float(low):
            raise ValueError(f"random_rotation needs low <= high, got low={low}, high={high}")
        drawn = float(low) + (float(high) - float(low)) * torch.rand(len(batch), generator=generator, dtype=torch.float64)
    return rotate(batch, drawn)


@register_test_transform("circular_shift")
def circular_shift(
    batch: torch.Tensor, generator: Optional[torch.Generator], low: int, high: int, dim: int = -1
) -> torch.Tensor:
    """Each example rolled along ``dim`` (of the example; default the last axis) by an amount drawn
    uniformly from ``low..high`` (inclusive) once per example."""
    low, high = int(low), int(high)
    if high < low:
        raise ValueError(f"circular_shift needs low <= high, got low={low}, high={high}")
    shifts = torch.randint(low, high + 1, (len(batch),), generator=generator)
    return shift_examples(batch, shifts, dim)


def shift_examples(batch: torch.Tensor, shifts: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Roll example ``i`` of ``batch`` by ``shifts[i]`` positions along its axis ``dim`` (circularly)."""
    axis = dim % (batch.dim() - 1) + 1 if dim < 0 else dim + 1
    length = batch.shape[axis]
    positions = torch.arange(length, device=batch.device)
    source = (positions[None, :] - shifts.to(batch.device)[:, None]) % length  # [N, L]
    view = [len(batch)] + [1] * (batch.dim() - 1)
    view[axis] = length
    index = source.view(view).expand_as(batch)
    return torch.gather(batch, axis, index)


@register_test_transform("translation")
def translation(
    batch: torch.Tensor, generator: Optional[torch.Generator], low: int, high: int, random_sign: bool = False,
    circular: bool = False,
) -> torch.Tensor:
    """Each image ``[N, C, H, W]`` moved by whole pixels down and right, each amount drawn uniformly from
    ``low..high`` (inclusive; negative: up, left) once per example and axis, times a random sign with
    ``random_sign``; zero fill (``circular``: rolled). MNIST-C's ``translate`` (Mu & Gilmer 2019, the 2-D test
    set of Nix et al. 2022) is ``low=3, high=3, random_sign=True``: 3 pixels along both axes, each sign random."""
    low, high = int(low), int(high)
    if high < low:
        raise ValueError(f"translation needs low <= high, got low={low}, high={high}")
    if batch.dim() != 4:
        raise ValueError(f"translation needs images [N, C, H, W], got shape {list(batch.shape)}")
    return translate(batch, translation_shifts(len(batch), low, high, generator, random_sign), circular=bool(circular))


@register_test_transform("gaussian_noise")
def gaussian_noise(
    batch: torch.Tensor, generator: Optional[torch.Generator], std: float, clip: bool = False
) -> torch.Tensor:
    """Gaussian noise of standard deviation ``std`` (data units) added to every value; ``clip`` keeps
    images in [0, 1]."""
    noisy = batch + float(std) * torch.randn(batch.shape, generator=generator, dtype=batch.dtype)
    return noisy.clamp(0.0, 1.0) if clip else noisy


def split_seed(name: str, params: Mapping[str, Any]) -> int:
    """The seed of a named test set's draws: its name and its ``seed`` parameter (default 0)."""
    return zlib.crc32(name.encode()) + 1_000_003 * int(params.get("seed", 0))


def resolve(name: str, spec: Mapping[str, Any]) -> Callable[[torch.Tensor, Optional[torch.Generator]], torch.Tensor]:
    """The function of one ``test_transforms`` entry with its parameters bound; ``ValueError`` (one line)
    for an unknown transform or parameters it does not take."""
    if not isinstance(spec, Mapping) or "transform" not in spec:
        raise ValueError(f"test_transforms[{name!r}] must be a dict with a 'transform' entry, got {spec!r}")
    try:
        fn = TEST_TRANSFORMS.get(spec["transform"])
    except ValueError as err:
        raise ValueError(f"test_transforms[{name!r}]: {err}") from None
    params: Dict[str, Any] = {k: v for k, v in spec.items() if k not in ("transform", "seed")}
    accepted = list(inspect.signature(fn).parameters)[2:]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"test_transforms[{name!r}] ({spec['transform']}) takes no parameter {unknown[0]!r}"
            f"{did_you_mean(unknown[0], accepted)} (it takes: {', '.join(accepted + ['seed'])})"
        )
    try:
        inspect.signature(fn).bind(None, None, **params)
    except TypeError as err:
        raise ValueError(f"test_transforms[{name!r}] ({spec['transform']}): {err}") from None
    return lambda batch, generator: fn(batch, generator, **params)


def check_test_transforms(transforms: Optional[Mapping[str, Any]]) -> None:
    """Check every entry of a ``test_transforms`` config value (names and parameters)."""
    for name, spec in (transforms or {}).items():
        resolve(name, spec)


def apply_named(name: str, spec: Mapping[str, Any], batch: torch.Tensor) -> torch.Tensor:
    """The test set ``name``: ``batch`` (float, data units) transformed by its entry, seeded by its name."""
    generator = torch.Generator().manual_seed(split_seed(name, spec))
    return resolve(name, spec)(batch, generator)
