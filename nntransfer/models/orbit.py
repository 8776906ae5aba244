"""`LearnedOrbit`: a learned representation of a finite group on the input and on named representations.

Orbit transfer (Nix, Sinz et al., AISTATS 2022, "Can Functional Transfer Methods Capture Simple Inductive
Biases?"): a step learns, from a frozen teacher, G transformations rho_g under which the teacher is
equivariant (``OrbitLearning``); a later step trains a student on the orbits rho_g x and to be equivariant
in the same way (``OrbitTransfer``). For 1-D signals every rho_g is a circular convolution along the last
axis, with one learned kernel per group element and layer; a one-hot kernel is a circular shift, so the
shifts of a shift-invariant teacher are exactly representable.

Convention: a kernel ``k`` of length K acts on ``x`` of length L (K <= L) as

    (rho x)[i] = sum_j k[j] * x[(i - (j - K // 2)) mod L]

so the one-hot kernel at index ``K // 2 + s`` is ``torch.roll(x, s, dims=-1)`` and the one at ``K // 2`` the
identity. The built module is the ``model`` of an orbit-learning step; its state dict holds one tensor
``kernels.<layer>`` of shape (G, K) per layer (dots in layer names become ``__``).

2-D layers (the paper's MNIST experiments; ``OrbitConfig.input_dims=2`` for the input, a ``[H, W]`` size in
``OrbitConfig.layers`` for a network layer): rho_g is a circular convolution over the last two axes with a
kernel of shape (Kh, Kw) (``kernels.<layer>`` of shape (G, Kh, Kw)),

    (rho x)[i, j] = sum_{a, b} k[a, b] * x[(i - (a - Kh // 2)) mod H, (j - (b - Kw // 2)) mod W]

so the one-hot kernel at ``(Kh // 2 + s, Kw // 2 + t)`` is ``torch.roll(x, (s, t), dims=(-2, -1))`` and the
one at the centre the identity. As in sinzlab/orbit_transfer (``models/learned_equiv.py``,
``LearnedEquivariance``), a 2-D layer acts on conv maps ``(B, C, H, W)``, on flat layers ``(B, C * H * W)``
read as ``(B, C, H, W)`` and on ViT tokens ``(B, H * W [+ 1], D)`` read as ``(B, D, H, W)`` (a leading class
token is left as it is). Unlike the original, whose hidden layers apply a learned linear map of the input's
kernel, every layer here has kernels of its own, as in 1-D.

Affine orbits (``OrbitConfig(kind="affine", input_dims=2)``; the paper's rotation experiment, after
``LearnedEquivarianceSTSimple`` in sinzlab/orbit_transfer ``models/learned_equiv.py``, a learned spatial
transformer): rho_g on a layer is a learned affine matrix theta_g (``theta.<layer>``, shape (G, 2, 3); (G, 3, 4)
with ``include_channels``) applied as

    rho_g x = F.grid_sample(x, F.affine_grid(theta_g, x.shape, align_corners=False),
                            mode="bilinear", padding_mode="zeros", align_corners=False)

i.e. the output at normalised position p (x the width axis, y the height axis, both in [-1, 1], pixel centres
at (2j + 1) / W - 1) reads the input at theta_g [p; 1] (zero outside, as the original). ``align_corners=False``
is the original's (PyTorch's default, which it left implicit): the identity matrix, and on a square map every
rotation by a multiple of 90 degrees, maps pixel centres onto pixel centres, so both are exact up to float
rounding, for odd and even sizes (with ``align_corners=True`` they would be too; other angles interpolate).
The matrix of the rotation by a (``rotation_theta``) is [[cos a, -sin a, 0], [sin a, cos a, 0]]; at 90 degrees it
is ``torch.rot90(x, 1, dims=(-2, -1))`` on a square map. Layouts, as the original: images and conv maps
``(B, C, H, W)``; flat layers ``(B, D)`` read as ``(B, C, s, s)`` with the fewest channels C that make D / C a
square s * s (``reshape_flat_to_chw``; or as ``(B, C, H, W)`` for a layer given as ``[H, W]``); the logits
(layer ``"output"``) ``(B, K)`` as a ``(B, 1, K, 1)`` image; ``gcnn`` group maps ``(B, C, N, H, W)`` as C * N maps
(H, W). With ``include_channels`` the 3 x 4 matrix acts on (depth, H, W) with the channels as depth,
``(B, 1, C, H, W)`` (a flat layer as the original, a conv map unlike the original, which gives it a depth of
1), and on group maps on (N, H, W) with the C maps as channels (as the original). With ``gaussian_transform``
every application draws theta_g + std * N(0, 1) per example (as the original, in every mode).
"""

from __future__ import annotations

import logging
import math
from numbers import Integral
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from nntransfer.configs.model.orbit import ORBIT_INPUT, ORBIT_KIND_INITS, ORBIT_KINDS, ORBIT_OUTPUT, OrbitConfig
from nntransfer.models.builder import input_shape_and_classes

logger = logging.getLogger(__name__)

INPUT = ORBIT_INPUT
OUTPUT = ORBIT_OUTPUT


def full_length_kernel(kernel: torch.Tensor, length: int) -> torch.Tensor:
    """Kernels ``(..., K)`` as full-length kernels ``(..., length)`` whose index ``m`` is the weight of the
    shift by ``m`` (mod length), following the module's convention (index ``K // 2`` of ``kernel`` is shift 0)."""
    size = kernel.shape[-1]
    if size > length:
        raise ValueError(f"a kernel of length {size} does not fit an axis of length {length}")
    padded = torch.nn.functional.pad(kernel, (0, length - size))
    return torch.roll(padded, -(size // 2), dims=-1)


def circular_convolution(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``x`` of shape ``(B, ..., L)`` convolved circularly along its last axis with one kernel per example,
    ``kernel`` of shape ``(B, K)`` (or ``(K,)`` for all), K <= L; see the module docstring for the convention.
    Computed with the FFT (exact up to float rounding)."""
    length = x.shape[-1]
    h = full_length_kernel(kernel.to(x.dtype), length)
    if h.dim() == 2:
        if h.shape[0] != x.shape[0]:
            raise ValueError(f"{h.shape[0]} kernels for a batch of {x.shape[0]}")
        h = h.reshape(h.shape[0], *([1] * (x.dim() - 2)), length)
    spectrum = torch.fft.rfft(x.float(), dim=-1) * torch.fft.rfft(h.float(), dim=-1)
    return torch.fft.irfft(spectrum, n=length, dim=-1).to(x.dtype)


def full_size_kernel_2d(kernel: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Kernels ``(..., Kh, Kw)`` as full-size kernels ``(..., height, width)`` whose entry ``(m, n)`` is the weight
    of the shift by ``(m, n)`` (mod the size), following the module's convention (``(Kh // 2, Kw // 2)`` of
    ``kernel`` is no shift)."""
    kh, kw = kernel.shape[-2:]
    if kh > height or kw > width:
        raise ValueError(f"a kernel of {kh}x{kw} does not fit a map of {height}x{width}")
    padded = torch.nn.functional.pad(kernel, (0, width - kw, 0, height - kh))
    return torch.roll(padded, (-(kh // 2), -(kw // 2)), dims=(-2, -1))


def circular_convolution_2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``x`` of shape ``(B, ..., H, W)`` convolved circularly over its last two axes with one kernel per
    example, ``kernel`` of shape ``(B, Kh, Kw)`` (or ``(Kh, Kw)`` for all), Kh <= H, Kw <= W; see the module
    docstring for the convention. Computed with the 2-D FFT (exact up to float rounding)."""
    if x.dim() < 2:
        raise ValueError(f"a 2-D circular convolution needs inputs (..., H, W), got shape {tuple(x.shape)}")
    height, width = x.shape[-2:]
    h = full_size_kernel_2d(kernel.to(x.dtype), height, width)
    if h.dim() == 3:
        if h.shape[0] != x.shape[0]:
            raise ValueError(f"{h.shape[0]} kernels for a batch of {x.shape[0]}")
        h = h.reshape(h.shape[0], *([1] * (x.dim() - 3)), height, width)
    spectrum = torch.fft.rfft2(x.float(), dim=(-2, -1)) * torch.fft.rfft2(h.float(), dim=(-2, -1))
    return torch.fft.irfft2(spectrum, s=(height, width), dim=(-2, -1)).to(x.dtype)


def shift_kernel_2d(shift: Tuple[int, int], size: Tuple[int, int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The one-hot kernel of shape ``size`` that shifts by ``shift`` = (rows, columns) (each mod its side,
    relative to the centre)."""
    kernel = torch.zeros(*size, dtype=dtype)
    kernel[(size[0] // 2 + shift[0]) % size[0], (size[1] // 2 + shift[1]) % size[1]] = 1.0
    return kernel


def shift_of_element(g: int, group_size: int, size: Union[int, Tuple[int, int]]) -> Union[int, Tuple[int, int]]:
    """The shift element g starts as with ``init="shift"`` on a layer of ``size``: ``round(g * L / G)`` on an
    axis of length L. On an H x W map, with c = g taken into ``[-G // 2, G - G // 2)`` and m = ceil(sqrt(G)):
    ``(round(c * H / G), round(c * m * W / G))``, rounding halves away from zero, so that element (-g) mod G
    starts as the inverse shift; it walks G shifts over the map (distinct e.g. for every G <= 40 on 8 x 8). Each value is
    taken into ``[-L // 2, L - L // 2)``."""
    def centred(shift: int, length: int) -> int:
        return (shift + length // 2) % length - length // 2

    if isinstance(size, tuple):
        def away(value: float) -> int:
            return int(math.copysign(math.floor(abs(value) + 0.5), value))

        height, width = size
        m = math.isqrt(group_size - 1) + 1
        c = (g + group_size // 2) % group_size - group_size // 2
        return centred(away(c * height / group_size), height), centred(away(c * m * width / group_size), width)
    return centred(int(round(g * size / group_size)), size)


def shift_kernel(shift: int, size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The one-hot kernel of length ``size`` that shifts by ``shift`` (mod ``size``, relative to the centre)."""
    kernel = torch.zeros(size, dtype=dtype)
    kernel[(size // 2 + shift) % size] = 1.0
    return kernel


def _snap(value: float) -> float:
    """``value`` with float noise around 0 and +-1 removed (exact matrices for multiples of 90 degrees)."""
    for exact in (0.0, 1.0, -1.0):
        if abs(value - exact) < 1e-12:
            return exact
    return value


def rotation_theta(degrees: float, include_channels: bool = False) -> torch.Tensor:
    """The affine matrix (2 x 3; 3 x 4 with ``include_channels``, the depth axis left as it is) of the rotation
    by ``degrees`` in the direction of ``torch.rot90(x, 1, dims=(-2, -1))`` (see the module docstring)."""
    angle = math.radians(degrees)
    cos, sin = _snap(math.cos(angle)), _snap(math.sin(angle))
    if include_channels:
        return torch.tensor([[cos, -sin, 0.0, 0.0], [sin, cos, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    return torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]])


def identity_theta(include_channels: bool = False) -> torch.Tensor:
    """The identity's affine matrix, 2 x 3 (3 x 4 with ``include_channels``)."""
    rows = 3 if include_channels else 2
    return torch.eye(rows, rows + 1)


def _uniform(low: float, high: float) -> float:
    return float(torch.empty(1, dtype=torch.float64).uniform_(low, high).item())


def random_affine_theta(include_channels: bool = False) -> torch.Tensor:
    """A random affine matrix like the original's ``random_transform_init`` (drawn from the global torch RNG):
    the inverse of translation (t_x, t_y) in [-0.1, 0.1]^2 (normalised units) after rotation by a in [0, 360),
    shear (s_x, s_y) in [0, 15]^2 degrees and scale in [0.8, 1.2], as torchvision's ``RandomAffine`` builds it
    (its shear-rotation part has determinant 1). With ``include_channels`` the plane's 3 x 3 map is put into a 4 x 4
    one with a depth translation in [-0.1, 0.1] and followed by rotations about the x and y axes by angles in
    [0, 360); the first three rows are returned."""
    rotation = math.radians(_uniform(0.0, 360.0))
    tx, ty = _uniform(-0.1, 0.1), _uniform(-0.1, 0.1)
    scale = _uniform(0.8, 1.2)
    shear_x, shear_y = math.radians(_uniform(0.0, 15.0)), math.radians(_uniform(0.0, 15.0))
    # the forward map's linear part: rotation with shears, times scale (determinant scale^2)
    a = math.cos(rotation - shear_y) / math.cos(shear_y)
    b = -math.cos(rotation - shear_y) * math.tan(shear_x) / math.cos(shear_y) - math.sin(rotation)
    c = math.sin(rotation - shear_y) / math.cos(shear_y)
    d = -math.sin(rotation - shear_y) * math.tan(shear_x) / math.cos(shear_y) + math.cos(rotation)
    forward = torch.tensor([[a * scale, b * scale, tx], [c * scale, d * scale, ty], [0.0, 0.0, 1.0]], dtype=torch.float64)
    plane = torch.linalg.inv(forward)[:2]
    if not include_channels:
        return plane.float()
    transform = torch.eye(4, dtype=torch.float64)
    transform[:2, :2], transform[:2, 3] = plane[:, :2], plane[:, 2]
    transform[2, 3] = _uniform(-0.1, 0.1)
    about_x, about_y = math.radians(_uniform(0.0, 360.0)), math.radians(_uniform(0.0, 360.0))
    cx, sx, cy, sy = math.cos(about_x), math.sin(about_x), math.cos(about_y), math.sin(about_y)
    rot_x = torch.tensor([[1, 0, 0, 0], [0, cx, -sx, 0], [0, sx, cx, 0], [0, 0, 0, 1]], dtype=torch.float64)
    rot_y = torch.tensor([[cy, 0, sy, 0], [0, 1, 0, 0], [-sy, 0, cy, 0], [0, 0, 0, 1]], dtype=torch.float64)
    return (transform @ rot_x @ rot_y)[:3].float()


def flat_to_chw(x: torch.Tensor, size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """A flat ``(B, D)`` as maps ``(B, C, H, W)``: with ``size`` (H, W), C = D / (H * W); else, as the
    original's ``reshape_flat_to_chw``, the fewest channels C such that D / C is a square s * s (C divides D;
    unlike the original, which floors D / C). Raises ``ValueError`` when ``size`` does not divide D."""
    batch, width = x.shape
    if size is not None:
        positions = size[0] * size[1]
        if width % positions:
            raise ValueError(f"a flat layer of {width} values is not a multiple of {size[0]}x{size[1]} maps")
        return x.reshape(batch, width // positions, *size)
    for channels in range(1, width + 1):
        if width % channels == 0:
            side = math.isqrt(width // channels)
            if side * side == width // channels:
                return x.reshape(batch, channels, side, side)
    raise ValueError(f"a flat layer of {width} values cannot be read as maps")  # unreachable for width >= 1


def affine_transform(maps: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``maps`` ``(B, C, H, W)`` with ``theta`` (B, 2, 3), or ``(B, C, D, H, W)`` with (B, 3, 4): bilinear
    grid sampling, zero padding, ``align_corners=False`` (see the module docstring)."""
    theta = theta.to(maps.dtype)
    grid = F.affine_grid(theta, list(maps.shape), align_corners=False)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _key(layer: str) -> str:
    return layer.replace(".", "__")


Size = Union[int, Tuple[int, int]]
AFFINE = "affine"
CONVOLUTION = "convolution"


def _affine_size(layer: str, size: Any) -> Optional[Size]:
    """An affine layer's size: None (read from the representation), (H, W), or on ``"output"`` the number of
    classes, checked."""
    if size is None:
        return None
    if layer == OUTPUT and isinstance(size, Integral) and not isinstance(size, bool) and size > 0:
        return int(size)
    if layer != OUTPUT and isinstance(size, (list, tuple)):
        return _size(layer, size)
    raise ValueError(f"affine orbit layer {layer!r}: the size is None or a pair [H, W] ('output': None or the number of "
                     f"classes), got {size!r}")


def _size(layer: str, size: Any) -> Size:
    """A layer's size as an int (1-D) or a pair of ints (2-D), checked."""
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or not all(isinstance(n, Integral) and not isinstance(n, bool) and n > 0 for n in size):
            raise ValueError(f"orbit layer {layer!r}: a 2-D size is a pair of positive integers [H, W], got {size!r}")
        return int(size[0]), int(size[1])
    if not isinstance(size, Integral) or isinstance(size, bool) or size < 1:
        raise ValueError(f"orbit layer {layer!r}: the size must be a positive integer or a pair [H, W], got {size!r}")
    return int(size)


class LearnedOrbit(nn.Module):
    """G learned transformations per layer: ``transform(x, g, layer)`` is rho_g on that layer.

    Args:
        group_size: G.
        lengths: {layer name: length L of the axis the group acts on, or a pair (H, W) for a 2-D layer};
            must include ``"input"``.
        kernel_size: K (None: L of each layer, or (H, W); larger values are cut to L, or per axis to H and W).
        init: ``"random"`` (N(0, 1/number of kernel entries) entries), ``"identity"`` or ``"shift"`` (element g
            is the circular shift ``shift_of_element(g, G, size)``, except on ``"output"``, where it is the
            identity). With ``kind="affine"``: ``"random"`` (``random_affine_theta``), ``"identity"`` or
            ``"rotation"`` (``rotation_theta(360 * g / G)``, except on ``"output"``: the identity).
        init_noise: std of the noise added to ``"identity"``/``"shift"`` kernels (``"identity"``/``"rotation"``
            matrices).
        input_shape, n_classes: of the data the orbit was built for (informative).
        kind: ``"convolution"`` (kernels) or ``"affine"`` (matrices ``theta.<layer>``; see the module
            docstring); an affine layer's size is None (read from the representation), (H, W), or on
            ``"output"`` the number of classes; ``"input"`` is (H, W).
        include_channels, only_translation, prevent_translation, gaussian_transform, gaussian_std_init: of
            ``kind="affine"`` (``OrbitConfig``); ``gaussian_transform`` adds ``theta_std.<layer>`` (one learned std
            per matrix entry and layer, shared by the elements, starting at ``gaussian_std_init``).
    """

    def __init__(
        self,
        group_size: int,
        lengths: Mapping[str, Size],
        kernel_size: Optional[int] = None,
        init: str = "random",
        init_noise: float = 0.0,
        input_shape: Optional[tuple] = None,
        n_classes: Optional[int] = None,
        kind: str = CONVOLUTION,
        include_channels: bool = False,
        only_translation: bool = False,
        prevent_translation: bool = False,
        gaussian_transform: bool = False,
        gaussian_std_init: float = 0.1,
    ) -> None:
        super().__init__()
        if INPUT not in lengths:
            raise ValueError(f"lengths must include {INPUT!r}, got {sorted(lengths)}")
        if kind not in ORBIT_KINDS:
            raise ValueError(f"kind must be one of {ORBIT_KINDS}, got {kind!r}")
        if init not in ORBIT_KIND_INITS[kind]:
            raise ValueError(f"init must be one of {ORBIT_KIND_INITS[kind]} with kind={kind!r}, got {init!r}")
        if kind != AFFINE and (include_channels or only_translation or prevent_translation or gaussian_transform):
            raise ValueError("include_channels, only_translation, prevent_translation and gaussian_transform apply to kind='affine' only")
        if only_translation and prevent_translation:
            raise ValueError("only_translation and prevent_translation exclude each other")
        keys = [_key(layer) for layer in lengths]
        if len(set(keys)) != len(keys):
            raise ValueError(f"layer names {sorted(lengths)} collide once dots become '__'")
        self.group_size = int(group_size)
        self.kind = kind
        self.include_channels = bool(include_channels)
        self.only_translation = bool(only_translation)
        self.prevent_translation = bool(prevent_translation)
        self.gaussian_transform = bool(gaussian_transform)
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.n_classes = n_classes
        self.kernels = nn.ParameterDict()
        self.theta = nn.ParameterDict()  # empty unless kind="affine": no state-dict entries for convolution orbits
        self.theta_std = nn.ParameterDict()  # empty unless gaussian_transform
        if kind == AFFINE:
            self.lengths: Dict[str, Optional[Size]] = {layer: _affine_size(layer, length) for layer, length in lengths.items()}
            if not isinstance(self.lengths[INPUT], tuple):
                raise ValueError(f"an affine orbit acts on images: the input's size is (H, W), got {self.lengths[INPUT]!r}")
            for layer in self.lengths:
                self.theta[_key(layer)] = nn.Parameter(self._initial_theta(layer, init, init_noise))
                if self.gaussian_transform:
                    rows = 3 if self.include_channels else 2
                    self.theta_std[_key(layer)] = nn.Parameter(torch.full((rows, rows + 1), float(gaussian_std_init)))
            return
        self.lengths = {layer: _size(layer, length) for layer, length in lengths.items()}
        for layer, length in self.lengths.items():
            if isinstance(length, tuple):
                size = length if kernel_size is None else tuple(min(int(kernel_size), n) for n in length)
            else:
                size = length if kernel_size is None else min(int(kernel_size), length)
            self.kernels[_key(layer)] = nn.Parameter(self._initial_kernels(layer, length, size, init, init_noise))

    def _initial_kernels(self, layer: str, length: Size, size: Size, init: str, noise: float) -> torch.Tensor:
        G = self.group_size
        shape = (G, *size) if isinstance(size, tuple) else (G, size)
        entries = math.prod(shape[1:])
        if init == "random":
            return torch.randn(*shape) / entries ** 0.5
        kernels = torch.zeros(*shape)
        for g in range(G):
            identity = init == "identity" or layer == OUTPUT
            if isinstance(size, tuple):
                shift = (0, 0) if identity else shift_of_element(g, G, length)
                index = (size[0] // 2 + shift[0], size[1] // 2 + shift[1])
                if all(0 <= i < n for i, n in zip(index, size)):  # else the shift does not fit: the element starts at zero
                    kernels[(g, *index)] = 1.0
            else:
                shift = 0 if identity else shift_of_element(g, G, length)
                index = size // 2 + shift
                if 0 <= index < size:  # else the shift does not fit a short kernel: the element starts at zero
                    kernels[g, index] = 1.0
        return kernels + noise * torch.randn(*shape) if noise else kernels

    def _initial_theta(self, layer: str, init: str, noise: float) -> torch.Tensor:
        G, channels = self.group_size, self.include_channels
        if init == "random":
            return torch.stack([random_affine_theta(channels) for _ in range(G)])
        if init == "rotation" and layer != OUTPUT:
            theta = torch.stack([rotation_theta(360.0 * g / G, channels) for g in range(G)])
        else:
            theta = identity_theta(channels).expand(G, -1, -1).clone()
        return theta + noise * torch.randn(theta.shape) if noise else theta

    @property
    def affine(self) -> bool:
        """Whether the elements are affine matrices (``kind="affine"``)."""
        return self.kind == AFFINE

    def is_2d(self, layer: str) -> bool:
        """Whether the group acts on ``layer`` by 2-D circular convolutions."""
        return not self.affine and isinstance(self.lengths[layer], tuple)

    def matrices(self, layer: str, g: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The affine matrices of ``layer`` that act, shape (G, 2, 3) ((G, 3, 4) with ``include_channels``), or
        one per entry of ``g``: the stored ``theta.<layer>`` (with ``gaussian_transform`` and ``g`` given, plus
        ``theta_std.<layer>`` times fresh standard normal noise, one draw per entry), with ``only_translation``
        its translation column after the identity's linear part, with ``prevent_translation`` its linear part
        and a zero translation."""
        if not self.affine:
            raise ValueError(f"a {self.kind} orbit has kernels, not affine matrices (OrbitConfig.kind='affine')")
        if layer not in self.lengths:
            raise ValueError(f"the orbit has no layer {layer!r}; it has {self.layers}")
        theta = self.theta[_key(layer)]
        if g is not None:
            theta = theta[torch.remainder(g.to(theta.device), self.group_size)]
            if self.gaussian_transform:
                theta = theta + torch.randn(theta.shape, device=theta.device, dtype=theta.dtype) * self.theta_std[_key(layer)]
        if self.only_translation:
            rows = theta.shape[1]
            eye = torch.eye(rows, dtype=theta.dtype, device=theta.device).expand(theta.shape[0], -1, -1)
            return torch.cat([eye, theta[:, :, -1:]], dim=2)
        if self.prevent_translation:
            return torch.cat([theta[:, :, :-1], torch.zeros_like(theta[:, :, -1:])], dim=2)
        return theta

    def element_parameters(self, layer: str = INPUT) -> torch.Tensor:
        """What tells the elements apart on ``layer``, one row per element (G, ...): the matrices that act, or
        the kernels."""
        return self.matrices(layer) if self.affine else self.kernel(layer)

    @property
    def layers(self):
        """The layer names, ``"input"`` first."""
        return list(self.lengths)

    def kernel(self, layer: str) -> torch.Tensor:
        """The kernels of ``layer``, shape (G, K), or (G, Kh, Kw) on a 2-D layer."""
        if self.affine:
            raise ValueError("an affine orbit has matrices, not kernels: use matrices(layer)")
        if layer not in self.lengths:
            raise ValueError(f"the orbit has no layer {layer!r}; it has {self.layers}")
        return self.kernels[_key(layer)]

    def inverse_index(self, g: torch.Tensor) -> torch.Tensor:
        """The index of the inverse element: (-g) mod G."""
        return torch.remainder(-g, self.group_size)

    def sample(self, n: int, device: Union[str, torch.device, None] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` group elements drawn uniformly (LongTensor)."""
        return torch.randint(0, self.group_size, (n,), device=device, generator=generator)

    def transform(self, x: torch.Tensor, g: Union[torch.Tensor, int], layer: str = INPUT) -> torch.Tensor:
        """rho_g on ``layer`` applied to ``x``, one element per example (``g``: LongTensor (B,) or an int for
        all). ``x`` has shape ``(B, ..., L)``; a flat ``(B, D)`` with D a multiple of L is read as
        ``(B, D / L, L)`` (a flattened ``(channels, length)`` map) and returned flat. On a 2-D layer of size
        (H, W), ``x`` has shape ``(B, ..., H, W)``, or is flat ``(B, C * H * W)``, or holds ViT tokens
        ``(B, H * W, D)`` or ``(B, 1 + H * W, D)`` (the class token first, left as it is); it is returned in
        its own shape. An affine orbit reads the layouts of the module docstring ("Affine orbits")."""
        if self.affine:
            return self._transform_affine(x, g, layer)
        kernels = self.kernel(layer)
        shape = x.shape
        if not isinstance(g, torch.Tensor):
            g = torch.full((shape[0],), int(g), dtype=torch.long, device=x.device)
        if g.shape != (shape[0],):
            raise ValueError(f"one group element per example: g has shape {tuple(g.shape)} for a batch of {shape[0]}")
        g = torch.remainder(g.to(kernels.device), self.group_size)
        if self.is_2d(layer):
            return self._transform_2d(x, kernels[g], layer)
        length = self.lengths[layer]
        if shape[-1] != length:
            if x.dim() == 2 and shape[-1] % length == 0:
                x = x.reshape(shape[0], -1, length)
            else:
                raise ValueError(f"orbit layer {layer!r} acts on an axis of length {length}; got a representation of shape {tuple(shape)}")
        return circular_convolution(x, kernels[g]).reshape(shape)

    def _transform_affine(self, x: torch.Tensor, g: Union[torch.Tensor, int], layer: str) -> torch.Tensor:
        shape, size = x.shape, self.lengths[layer]
        if not isinstance(g, torch.Tensor):
            g = torch.full((shape[0],), int(g), dtype=torch.long, device=x.device)
        if g.shape != (shape[0],):
            raise ValueError(f"one group element per example: g has shape {tuple(g.shape)} for a batch of {shape[0]}")
        theta = self.matrices(layer, g).to(x.device)

        def refuse(what: str) -> ValueError:
            return ValueError(f"affine orbit layer {layer!r} acts on images or conv maps (B, C, H, W), gcnn maps (B, C, N, H, W), "
                              f"flat layers (B, D) or, as 'output', logits (B, K); {what}, got a representation of shape {tuple(shape)}")

        if x.dim() == 2 and layer == OUTPUT:
            if isinstance(size, int) and shape[1] != size:
                raise refuse(f"it has {size} logits")
            maps = x.reshape(shape[0], 1, shape[1], 1)
        elif x.dim() == 2 and layer != INPUT:
            try:
                maps = flat_to_chw(x, size if isinstance(size, tuple) else None)
            except ValueError as err:
                raise refuse(str(err)) from None
        elif x.dim() in (4, 5):
            if isinstance(size, tuple) and tuple(shape[-2:]) != size:
                raise refuse(f"its maps are {size[0]}x{size[1]}")
            maps = x
        else:
            raise refuse("this one is none of these" if layer != INPUT else "the input must be images (B, C, H, W)")
        if self.include_channels:
            out = affine_transform(maps.unsqueeze(1) if maps.dim() == 4 else maps, theta)
        elif maps.dim() == 5:
            out = affine_transform(maps.flatten(1, 2), theta)
        else:
            out = affine_transform(maps, theta)
        return out.reshape(shape)

    def _transform_2d(self, x: torch.Tensor, kernels: torch.Tensor, layer: str) -> torch.Tensor:
        height, width = self.lengths[layer]
        shape, positions = x.shape, height * width
        if x.dim() >= 3 and tuple(shape[-2:]) == (height, width):
            return circular_convolution_2d(x, kernels)
        if x.dim() == 2 and shape[-1] % positions == 0:
            return circular_convolution_2d(x.reshape(shape[0], -1, height, width), kernels).reshape(shape)
        if x.dim() == 3 and shape[1] in (positions, positions + 1):  # ViT tokens (B, [1 +] H * W, D)
            first = shape[1] - positions
            maps = x[:, first:].transpose(1, 2).reshape(shape[0], shape[2], height, width)
            tokens = circular_convolution_2d(maps, kernels).reshape(shape[0], shape[2], positions).transpose(1, 2)
            return torch.cat([x[:, :first], tokens], dim=1)
        raise ValueError(f"orbit layer {layer!r} acts on maps of {height}x{width} (B, ..., {height}, {width}), flat "
                         f"layers of a multiple of {positions} values or {positions} (+1) tokens; got a representation "
                         f"of shape {tuple(shape)}")

    def forward(self, x: torch.Tensor, g: Optional[torch.Tensor] = None) -> torch.Tensor:
        """rho_g x on the input; ``g`` None: one element per example drawn uniformly (global RNG). The
        trainers do not need it (the orbit modules call ``transform``); it makes the module callable like a
        model, e.g. to look at transformed inputs."""
        if g is None:
            g = self.sample(x.shape[0], device=x.device)
        return self.transform(x, g, INPUT)

    def extra_repr(self) -> str:
        kind = "" if not self.affine else f", kind={self.kind!r}, include_channels={self.include_channels}"
        return f"group_size={self.group_size}, lengths={self.lengths}{kind}"


def orbit_lengths(config: OrbitConfig, input_shape: tuple, n_classes: int) -> Dict[str, Optional[Size]]:
    """{layer: length, or (H, W) on a 2-D layer} of the config for data of ``input_shape`` (one example's)
    and ``n_classes``, ``"input"`` first. ``input_dims=2`` needs images (channels, height, width). An affine
    orbit's layers given as None stay None (read from the representation), except ``"output"``."""
    input_shape = tuple(int(n) for n in input_shape)
    if config.input_dims == 2:
        if len(input_shape) != 3:
            raise ValueError(f"OrbitConfig.input_dims=2 acts on images (channels, height, width); the data has inputs of shape {input_shape}")
        lengths: Dict[str, Size] = {INPUT: input_shape[-2:]}
    else:
        lengths = {INPUT: input_shape[-1]}
    for layer, length in config.layers.items():
        if length is None:
            lengths[layer] = int(n_classes) if layer == OUTPUT or config.kind != AFFINE else None
        elif isinstance(length, (list, tuple)):
            lengths[layer] = (int(length[0]), int(length[1]))
        else:
            lengths[layer] = int(length)
    return lengths


def learned_orbit_builder(dataloaders: Mapping[str, Any], seed: Optional[int], state_dict: Optional[Mapping[str, Any]] = None,
                          **config: Any) -> LearnedOrbit:
    """Build the ``LearnedOrbit`` of ``OrbitConfig(**config)`` for the data in ``dataloaders`` (the input's
    last axis gives the input length, or its last two axes the input's (H, W) with ``input_dims=2``; the
    number of classes the length of ``"output"`` when it is None).
    ``seed`` seeds the initial kernels or matrices (the global random state is left as it was); ``state_dict``: trained
    kernels, which must fit exactly."""
    orbit_config = OrbitConfig.from_dict(config, carry_unknown=True)  # a recipe subclass's own fields: unused
    input_shape, n_classes = input_shape_and_classes(dataloaders)
    lengths = orbit_lengths(orbit_config, input_shape, n_classes)
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(int(seed))
        model = LearnedOrbit(orbit_config.group_size, lengths, orbit_config.kernel_size, orbit_config.init,
                             orbit_config.init_noise, input_shape=input_shape, n_classes=n_classes,
                             kind=orbit_config.kind, include_channels=orbit_config.include_channels,
                             only_translation=orbit_config.only_translation,
                             prevent_translation=orbit_config.prevent_translation,
                             gaussian_transform=orbit_config.gaussian_transform,
                             gaussian_std_init=orbit_config.gaussian_std_init)
    logger.info("built a learned %s orbit of %d elements on %s", orbit_config.kind, orbit_config.group_size, lengths)
    if state_dict is not None:
        state = {name: torch.as_tensor(value) for name, value in state_dict.items()}
        own = model.state_dict()
        wrong = sorted(set(own) ^ set(state)) + sorted(n for n in set(own) & set(state) if own[n].shape != state[n].shape)
        if wrong:
            raise ValueError(f"the orbit weights do not fit the orbit OrbitConfig builds (keys or shapes differ: {wrong[:4]})")
        model.load_state_dict(state)
    return model


def check_orbit_config(config: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` (one line) for an invalid ``OrbitConfig`` dict (the run layer calls it first)."""
    OrbitConfig.from_dict(dict(config), carry_unknown=True)


learned_orbit_builder.check_config = check_orbit_config
