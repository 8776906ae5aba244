"""``gcnn``: a rotation-equivariant group CNN over the cyclic group C_N with a rotation-invariant readout.

The teacher of the rotation experiment of Nix, Sinz et al. (AISTATS 2022, "orbit transfer"): a group
CNN (Cohen & Welling 2016) whose feature maps carry one copy per rotation, ``[B, C, N, H, W]``. Its default
options are the original's P4 network for 28x28 MNIST:

- core: ``conv1`` lifting convolution (8 maps, 5x5) -> ``pool1`` -> ``relu1`` -> ``conv2`` group
  convolution (32 maps, 3x3) -> ``pool2`` -> ``relu2`` -> ``conv3`` (64 maps, 3x3) -> ``pool3`` -> ``relu3``
  (padding 1 everywhere; ``bn1``..``bn3`` with ``batch_norm=True``);
- readout: ``conv4`` group convolution to one map per class (3x3) -> ``group_pool`` (max over the N
  rotations: the invariant readout) -> ``spatial_pool`` (global average) -> ``flatten``.

``reset=["readout"]`` therefore re-initialises ``conv4``, the one layer whose size is the number of
classes; the ``"readout"`` representation (the core's output) is ``[B, 64, N, H, W]``. The config's
``dropout`` is not used (the original's group CNN had none either). The spatial poolings are 2x2 max pools with stride 2 on even sizes and 3x3 ones with stride 2 and
padding 1 on odd sizes, so that every pooling window maps onto a pooling window under a 90 degree
rotation (a 2x2 pool on an odd size drops the last row and column, which the original did): the logits
are invariant to ``torch.rot90`` of a square input for every ``group_order`` divisible by 4, exactly up
to float rounding.

Options: ``group_order`` N (4: the original's P4; 8: C8), ``channels`` of the core's layers,
``kernel_sizes`` (the lifting layer's, each group layer's, then the readout's), ``padding``,
``group_pool`` (``max`` or ``mean``), and ``backend``:

- ``torch`` (default, no extra dependency): each filter is rotated for the N group elements, exactly by
  ``torch.rot90`` for multiples of 90 degrees and by bilinear interpolation on the filter grid for the
  angles in between (C8: 45 degrees); the group convolutions also shift the filter along the group axis;
- ``escnn``: the lifting and group convolutions are ``escnn.nn.R2Conv`` layers (steerable filters of
  ``gspaces.rot2dOnR2(N)``, regular representations), run on plain tensors; needs
  ``pip install 'nntransfer[escnn]'``. Their weights are escnn's basis coefficients, which ``weight_init``
  leaves to escnn's own initialisation.
"""

from __future__ import annotations

import math
import sys
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from nntransfer.models.base import CoreReadoutModel, check_size, conv_output_size, layers, use_batch_norm
from nntransfer.models.registry import register

ESCNN_HINT = "pip install 'nntransfer[escnn]'"


def require_escnn():
    """The ``escnn`` module, or a one-line ``ImportError`` that says how to install it."""
    try:
        import escnn  # noqa: F401
        from escnn import gspaces
        from escnn import nn as enn
    except ImportError as err:
        missing = getattr(err, "name", None) == "escnn" or sys.modules.get("escnn", False) is None
        reason = "" if missing else f" (importing it failed: {str(err).splitlines()[0]})"
        raise ImportError(f"model type 'gcnn' with backend 'escnn' needs escnn: {ESCNN_HINT}{reason}") from None
    return gspaces, enn


# ------------------------------------------------------------------------------------- filter rotation


def interpolation_matrix(kernel: int, degrees: float) -> torch.Tensor:
    """``[k*k, k*k]`` matrix ``M`` such that ``filter.flatten() @ M.T`` is the ``k x k`` filter rotated by
    ``degrees`` in the direction of ``torch.rot90(.., 1, (-2, -1))``, sampled bilinearly (zero outside)."""
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    centre = (kernel - 1) / 2
    matrix = torch.zeros(kernel * kernel, kernel * kernel, dtype=torch.float64)
    for row in range(kernel):
        for col in range(kernel):
            y, x = row - centre, col - centre
            # as torch.rot90, the output at (y, x) reads the input at (x, -y) for 90 degrees
            src_y, src_x = cos * y + sin * x + centre, cos * x - sin * y + centre
            y0, x0 = math.floor(src_y), math.floor(src_x)
            for dy in (0, 1):
                for dx in (0, 1):
                    yy, xx = y0 + dy, x0 + dx
                    weight = (1 - abs(src_y - yy)) * (1 - abs(src_x - xx))
                    if 0 <= yy < kernel and 0 <= xx < kernel and weight > 1e-12:
                        matrix[row * kernel + col, yy * kernel + xx] += weight
    return matrix


class _RotatedFilters(nn.Module):
    """Rotates the last two (spatial) axes of a filter tensor by the N rotations of C_N.

    Rotation ``r = q * N/4 + s`` (N divisible by 4) is ``torch.rot90`` by ``q`` of the interpolated
    rotation by ``s`` steps, so rotations that differ by 90 degrees differ exactly by ``rot90``."""

    def __init__(self, group_order: int, kernel: int):
        super().__init__()
        self.group_order = group_order
        self.kernel = kernel
        self.quarter = group_order // 4 if group_order % 4 == 0 else None
        steps = self.quarter if self.quarter is not None else group_order
        for step in range(1, steps):
            matrix = interpolation_matrix(kernel, 360.0 * step / group_order).to(torch.get_default_dtype())
            self.register_buffer(f"interp{step}", matrix, persistent=False)

    def rotate(self, weight: torch.Tensor, r: int) -> torch.Tensor:
        quarters, step = divmod(r, self.quarter) if self.quarter is not None else (0, r)
        if step:
            matrix = getattr(self, f"interp{step}")
            weight = (weight.reshape(-1, self.kernel * self.kernel) @ matrix.T).reshape(weight.shape)
        return torch.rot90(weight, quarters, (-2, -1)) if quarters else weight


class LiftingConv2d(nn.Module):
    """Images ``[B, C_in, H, W]`` -> group feature maps ``[B, C_out, N, H, W]``: one filter per output
    map, rotated for each of the N rotations."""

    def __init__(self, in_channels: int, out_channels: int, group_order: int, kernel: int, padding: int, bias: bool = True):
        super().__init__()
        self.group_order, self.padding = group_order, padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.fan_in = in_channels * kernel * kernel  # read by the weight_init methods
        self.fan_out = out_channels * kernel * kernel
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.rotations = _RotatedFilters(group_order, kernel)

    def filters(self) -> torch.Tensor:
        out_channels, in_channels, k, _ = self.weight.shape
        rotated = torch.stack([self.rotations.rotate(self.weight, r) for r in range(self.group_order)], 1)
        return rotated.reshape(out_channels * self.group_order, in_channels, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.filters(), padding=self.padding)
        y = y.view(y.shape[0], -1, self.group_order, *y.shape[-2:])
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1, 1)


class GroupConv2d(nn.Module):
    """Group feature maps ``[B, C_in, N, H, W]`` -> ``[B, C_out, N, H, W]``: for the output rotation r the
    filter is rotated by r and shifted cyclically by r along its group axis."""

    def __init__(self, in_channels: int, out_channels: int, group_order: int, kernel: int, padding: int, bias: bool = True):
        super().__init__()
        self.group_order, self.padding = group_order, padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, group_order, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.fan_in = in_channels * group_order * kernel * kernel
        self.fan_out = out_channels * group_order * kernel * kernel
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.rotations = _RotatedFilters(group_order, kernel)

    def filters(self) -> torch.Tensor:
        out_channels, in_channels, n, k, _ = self.weight.shape
        rotated = torch.stack(
            [self.rotations.rotate(torch.roll(self.weight, r, dims=2), r) for r in range(n)], 1
        )  # [out, N (output rotation), in, N (input rotation), k, k]
        return rotated.reshape(out_channels * n, in_channels * n, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n, h, w = x.shape
        y = F.conv2d(x.reshape(b, c * n, h, w), self.filters(), padding=self.padding)
        y = y.view(b, -1, n, *y.shape[-2:])
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1, 1)


class EscnnConv2d(nn.Module):
    """An ``escnn.nn.R2Conv`` of ``gspaces.rot2dOnR2(N)`` (trivial input fields for the lifting layer,
    regular ones otherwise; regular output fields) on plain tensors ``[B, C, (N,) H, W]`` ->
    ``[B, C_out, N, H, W]``. The R2Conv stays in training mode, so its expanded filter is never cached
    as a buffer and the state dict is the same in train and eval mode."""

    def __init__(self, in_channels: int, out_channels: int, group_order: int, kernel: int, padding: int,
                 bias: bool = True, lifting: bool = False):
        super().__init__()
        gspaces, enn = require_escnn()
        space = gspaces.rot2dOnR2(N=group_order)
        in_repr = space.trivial_repr if lifting else space.regular_repr
        in_type = enn.FieldType(space, in_channels * [in_repr])
        out_type = enn.FieldType(space, out_channels * [space.regular_repr])
        self.group_order, self.padding = group_order, padding
        self.conv = enn.R2Conv(in_type, out_type, kernel, padding=padding, bias=bias)

    def train(self, mode: bool = True) -> "EscnnConv2d":
        self.training = mode  # the R2Conv keeps expanding its filter from its weights
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            x = x.reshape(x.shape[0], -1, *x.shape[-2:])
        weight, bias = self.conv.expand_parameters()
        y = F.conv2d(x, weight, bias, padding=self.padding)
        return y.view(y.shape[0], -1, self.group_order, *y.shape[-2:])  # escnn: N channels per regular field


# ------------------------------------------------------------------------------------------ pooling


def symmetric_pool_size(size: int) -> int:
    """Length of one spatial axis after ``SymmetricMaxPool2d``."""
    return size // 2 if size % 2 == 0 else (size + 1) // 2


class SymmetricMaxPool2d(nn.Module):
    """Max pooling with stride 2 of ``[B, C, N, H, W]`` (or ``[B, C, H, W]``) whose windows a 90 degree
    rotation maps onto each other: 2x2 on an even axis, 3x3 with padding 1 on an odd one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        kernel = tuple(2 if n % 2 == 0 else 3 for n in (h, w))
        padding = tuple(0 if n % 2 == 0 else 1 for n in (h, w))
        y = F.max_pool2d(x.reshape(-1, 1, h, w) if x.dim() != 4 else x, kernel, 2, padding)
        return y.view(*x.shape[:-2], *y.shape[-2:])


class GroupPool(nn.Module):
    """``[B, C, N, H, W]`` -> ``[B, C, H, W]``: max (or mean) over the N rotations, invariant to them."""

    def __init__(self, mode: str = "max"):
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(2) if self.mode == "max" else x.mean(2)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


# ------------------------------------------------------------------------------------------ the model


def _conv_layer(backend: str, in_channels: int, out_channels: int, group_order: int, kernel: int, padding: int,
                bias: bool, lifting: bool) -> nn.Module:
    if backend == "escnn":
        return EscnnConv2d(in_channels, out_channels, group_order, kernel, padding, bias, lifting=lifting)
    layer = LiftingConv2d if lifting else GroupConv2d
    return layer(in_channels, out_channels, group_order, kernel, padding, bias)


def _check_options(options, what: str) -> Tuple[int, List[int], List[int], int]:
    group_order, channels = int(options["group_order"]), [int(c) for c in options["channels"]]
    kernels, padding = [int(k) for k in options["kernel_sizes"]], int(options["padding"])
    if group_order < 1:
        raise ValueError(f"options: {what}: group_order must be at least 1, got {group_order}")
    if not channels or min(channels) < 1:
        raise ValueError(f"options: {what}: channels must be a non-empty list of positive numbers, got {channels}")
    if len(kernels) != len(channels) + 1 or any(k < 1 or k % 2 == 0 for k in kernels):
        raise ValueError(f"options: {what}: kernel_sizes needs {len(channels) + 1} odd sizes (one per core layer and "
                         f"the readout's; a rotation maps an odd filter's grid onto itself), got {kernels}")
    if padding < 0:
        raise ValueError(f"options: {what}: padding must be non-negative, got {padding}")
    return group_order, channels, kernels, padding


@register(
    "gcnn",
    options={"group_order": 4, "channels": [8, 32, 64], "kernel_sizes": [5, 3, 3, 3], "padding": 1,
             "group_pool": "max", "backend": "torch"},
    choices={"group_pool": ("max", "mean"), "backend": ("torch", "escnn")},
    input_dims=(3,),
)
def build_gcnn(config, input_shape: Tuple[int, int, int], n_classes: int) -> CoreReadoutModel:
    """The rotation-equivariant group CNN for ``input_shape`` (see the module's docstring)."""
    options = config.options
    backend = options["backend"]
    if backend == "escnn":
        require_escnn()
    group_order, channels, kernels, padding = _check_options(options, "model type 'gcnn'")
    bn = use_batch_norm(config, default=False)
    size = tuple(input_shape[1:])
    named: List[Tuple[str, Optional[nn.Module]]] = []
    in_channels = input_shape[0]
    for index, (out_channels, kernel) in enumerate(zip(channels, kernels), start=1):
        size = tuple(check_size(conv_output_size(n, kernel, 1, padding), f"conv{index}", config.type, input_shape) for n in size)
        size = tuple(symmetric_pool_size(n) for n in size)
        named += [
            (f"conv{index}", _conv_layer(backend, in_channels, out_channels, group_order, kernel, padding, True, index == 1)),
            (f"pool{index}", SymmetricMaxPool2d()),
            (f"bn{index}", nn.BatchNorm3d(out_channels) if bn else None),  # one statistic per map, shared by rotations
            (f"relu{index}", nn.ReLU()),
        ]
        in_channels = out_channels
    last = len(channels) + 1
    for n in size:
        check_size(conv_output_size(n, kernels[-1], 1, padding), f"conv{last}", config.type, input_shape)
    readout = layers(
        (f"conv{last}", _conv_layer(backend, in_channels, n_classes, group_order, kernels[-1], padding,
                                    config.readout_bias, len(channels) == 0)),
        ("group_pool", GroupPool(options["group_pool"])),
        ("spatial_pool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
    )
    return CoreReadoutModel(layers(*named), readout, config.type, input_shape, n_classes)


def rotate_group_maps(x: torch.Tensor, quarters: int) -> torch.Tensor:
    """How a ``torch.rot90`` of the input by ``quarters`` acts on torch-backend feature maps
    ``[B, C, N, H, W]`` (N divisible by 4): rotate the maps and shift the group axis by ``quarters * N/4``."""
    n = x.shape[2]
    return torch.roll(torch.rot90(x, quarters, (-2, -1)), quarters * (n // 4), dims=2)


__all__: Sequence[str] = [
    "GroupConv2d",
    "GroupPool",
    "LiftingConv2d",
    "EscnnConv2d",
    "SymmetricMaxPool2d",
    "build_gcnn",
    "interpolation_matrix",
    "require_escnn",
    "rotate_group_maps",
]
