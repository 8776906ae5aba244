"""Locally connected layers: convolutions whose filters are not shared across positions.

Each output position has its own filter over the same receptive field a convolution would use, so
the layer keeps the locality of a convolution but drops its translation equivariance. With every
position's filter set to the same values it computes exactly what ``nn.Conv1d``/``nn.Conv2d`` computes.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple, Union

import torch
from torch import nn
from torch.nn import functional as F

from nntransfer.models.base import conv_output_size

_Pair = Union[int, Sequence[int]]


def _pair(value: _Pair) -> Tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class LocallyConnected2d(nn.Module):
    """2d locally connected layer over inputs of a fixed spatial size.

    Args:
        in_channels, out_channels: as for ``nn.Conv2d``.
        input_size: ``(height, width)`` of the input (an int means square); the number of filters
            depends on it.
        kernel_size, stride, padding: as for ``nn.Conv2d`` (zero padding).
        bias: one bias per output channel and position.

    Shapes: weight ``(out, in, kh, kw, out_h, out_w)``, bias ``(out, out_h, out_w)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        input_size: _Pair,
        kernel_size: _Pair,
        stride: _Pair = 1,
        padding: _Pair = 0,
        bias: bool = True,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.input_size = _pair(input_size)
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        self.output_size = tuple(
            conv_output_size(n, k, s, p)
            for n, k, s, p in zip(self.input_size, self.kernel_size, self.stride, self.padding)
        )
        if min(self.output_size) < 1:
            raise ValueError(
                f"LocallyConnected2d: input size {self.input_size} is smaller than kernel {self.kernel_size} "
                f"with padding {self.padding}"
            )
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size, *self.output_size))
        self.bias = nn.Parameter(torch.empty(out_channels, *self.output_size)) if bias else None
        self.reset_parameters()

    @property
    def fan_in(self) -> int:
        return self.in_channels * math.prod(self.kernel_size)

    @property
    def fan_out(self) -> int:
        return self.out_channels * math.prod(self.kernel_size)

    def reset_parameters(self) -> None:
        # The distribution nn.Conv2d uses by default: U(+-1/sqrt(fan_in)) for weights and biases.
        bound = 1.0 / math.sqrt(self.fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(f"LocallyConnected2d was built for inputs of size {self.input_size}, got {tuple(x.shape[-2:])}")
        patches = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)  # (B, in*kh*kw, L)
        weight = self.weight.reshape(self.out_channels, -1, patches.shape[-1])  # (out, in*kh*kw, L)
        out = torch.einsum("bil,oil->bol", patches, weight).reshape(x.shape[0], self.out_channels, *self.output_size)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, input_size={self.input_size}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}"
        )


class LocallyConnected1d(nn.Module):
    """1d locally connected layer over inputs of a fixed length (see ``LocallyConnected2d``).

    Shapes: weight ``(out, in, kernel, out_length)``, bias ``(out, out_length)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        input_size: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.input_size, self.kernel_size, self.stride, self.padding = input_size, kernel_size, stride, padding
        self.output_size = conv_output_size(input_size, kernel_size, stride, padding)
        if self.output_size < 1:
            raise ValueError(
                f"LocallyConnected1d: input length {input_size} is smaller than kernel {kernel_size} with padding {padding}"
            )
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, self.output_size))
        self.bias = nn.Parameter(torch.empty(out_channels, self.output_size)) if bias else None
        self.reset_parameters()

    @property
    def fan_in(self) -> int:
        return self.in_channels * self.kernel_size

    @property
    def fan_out(self) -> int:
        return self.out_channels * self.kernel_size

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size:
            raise ValueError(f"LocallyConnected1d was built for inputs of length {self.input_size}, got {x.shape[-1]}")
        x = F.pad(x, (self.padding, self.padding))
        patches = x.unfold(2, self.kernel_size, self.stride)  # (B, in, L, k)
        patches = patches.permute(0, 1, 3, 2).reshape(x.shape[0], -1, self.output_size)  # (B, in*k, L)
        weight = self.weight.reshape(self.out_channels, -1, self.output_size)
        out = torch.einsum("bil,oil->bol", patches, weight)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, input_size={self.input_size}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}"
        )
