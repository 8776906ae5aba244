"""ResNets (He et al. 2016) for small images: ``resnet18``, ``resnet34`` (basic blocks), ``resnet50`` (bottlenecks).

The stem is configurable: the default 3x3 convolution with stride 1 and no pooling keeps the resolution
of small images (CIFAR-style); the options ``stem_kernel=7, stem_stride=2, stem_padding=3, stem_pool=True`` are the
ImageNet stem. The core is ``stem -> layer1 .. layer4`` (64, 128, 256, 512 channels, x4 for bottlenecks;
layers 2-4 halve the resolution); the readout is ``global average pool -> [dropout] -> fc``.
"""

from __future__ import annotations

from functools import partial
from typing import List, Tuple

import torch
from torch import nn

from nntransfer.models.base import (
    CoreReadoutModel,
    dropout_layer,
    feature_shape,
    layers,
    use_batch_norm,
)
from nntransfer.models.registry import register


def _norm(channels: int, enabled: bool) -> nn.Module:
    # Identity keeps the block's attribute layout the same with and without batch norm.
    return nn.BatchNorm2d(channels) if enabled else nn.Identity()


def _shortcut(in_channels: int, out_channels: int, stride: int, bn: bool) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return layers(
        ("conv", nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=not bn)),
        ("bn", nn.BatchNorm2d(out_channels) if bn else None),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions plus the shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, bn: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=not bn)
        self.bn1 = _norm(channels, bn)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=not bn)
        self.bn2 = _norm(channels, bn)
        self.shortcut = _shortcut(in_channels, channels, stride, bn)
        self.relu = nn.ReLU()

    @property
    def last_norm(self) -> nn.Module:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, plus the shortcut (ResNet-50)."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, bn: bool = True):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=not bn)
        self.bn1 = _norm(channels, bn)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=not bn)
        self.bn2 = _norm(channels, bn)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=not bn)
        self.bn3 = _norm(out_channels, bn)
        self.shortcut = _shortcut(in_channels, out_channels, stride, bn)
        self.relu = nn.ReLU()

    @property
    def last_norm(self) -> nn.Module:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


_DEPTHS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3))}
_WIDTHS = (64, 128, 256, 512)
#: the options of every ResNet type and their defaults: a stem for small images (7, 2, 3, True is ImageNet's)
RESNET_OPTIONS = {"stem_kernel": 3, "stem_stride": 1, "stem_padding": 1, "stem_pool": False, "zero_init_residual": False}


def build_resnet(config, input_shape: Tuple[int, int, int], n_classes: int, depth: int) -> CoreReadoutModel:
    """ResNet-``depth`` (18, 34 or 50) for ``input_shape`` with the config's stem."""
    block, counts = _DEPTHS[depth]
    options = config.options
    for name, least in (("stem_kernel", 1), ("stem_stride", 1), ("stem_padding", 0)):
        if options[name] < least:
            raise ValueError(f"options: {name!r} of model type {config.type!r} must be at least {least}, got {options[name]!r}")
    bn = use_batch_norm(config, default=True)
    stem = layers(
        ("conv", nn.Conv2d(input_shape[0], _WIDTHS[0], options["stem_kernel"], stride=options["stem_stride"],
                           padding=options["stem_padding"], bias=not bn)),
        ("bn", nn.BatchNorm2d(_WIDTHS[0]) if bn else None),
        ("relu", nn.ReLU()),
        ("pool", nn.MaxPool2d(3, stride=2, padding=1) if options["stem_pool"] else None),
    )
    stages: List[Tuple[str, nn.Module]] = [("stem", stem)]
    in_channels = _WIDTHS[0]
    for i, (width, count) in enumerate(zip(_WIDTHS, counts), start=1):
        blocks = []
        for j in range(count):
            stride = 2 if (i > 1 and j == 0) else 1
            blocks.append(block(in_channels, width, stride=stride, bn=bn))
            in_channels = width * block.expansion
        stages.append((f"layer{i}", nn.Sequential(*blocks)))
    core = layers(*stages)
    feature_shape(core, input_shape, config.type)  # a clear error now instead of an odd one in training

    if options["zero_init_residual"] and bn:
        for module in core.modules():
            if isinstance(module, (BasicBlock, Bottleneck)):
                nn.init.zeros_(module.last_norm.weight)

    readout = layers(
        ("pool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("dropout", dropout_layer(config)),
        ("fc", nn.Linear(in_channels, n_classes, bias=config.readout_bias)),
    )
    return CoreReadoutModel(core, readout, config.type, input_shape, n_classes)


for _depth in _DEPTHS:
    register(f"resnet{_depth}", partial(build_resnet, depth=_depth), options=RESNET_OPTIONS, input_dims=(3,))
