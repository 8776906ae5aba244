"""VGG networks (Simonyan & Zisserman 2015): ``vgg11``, ``vgg13``, ``vgg16``, ``vgg19``.

The core is five blocks ``block<i>`` of 3x3 convolutions (``conv<j> -> [bn<j>] -> relu<j>``) each ending in
a 2x2 max pool, so inputs need at least 32x32 pixels. The readout has two hidden layers of
option ``readout_hidden_size`` units, either dense (``flatten -> fc1 -> fc2 -> fc3``) or as convolutions
(``conv1`` spanning the whole final feature map, then 1x1 ``conv2``, ``conv3``, then ``flatten``), which
compute the same function class.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Dict, Tuple

from torch import nn

from nntransfer.models.base import CoreReadoutModel, check_size, dropout_layer, layers, use_batch_norm
from nntransfer.models.registry import register

# Output channels of the convolutions of each of the five blocks.
_BLOCKS = {
    11: ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    13: ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    16: ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    19: ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512)),
}


def _dense_readout(config, in_channels: int, size: Tuple[int, int], n_classes: int) -> nn.Module:
    hidden = config.options["readout_hidden_size"]
    return layers(
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(in_channels * size[0] * size[1], hidden)),
        ("relu1", nn.ReLU()),
        ("dropout1", dropout_layer(config)),
        ("fc2", nn.Linear(hidden, hidden)),
        ("relu2", nn.ReLU()),
        ("dropout2", dropout_layer(config)),
        ("fc3", nn.Linear(hidden, n_classes, bias=config.readout_bias)),
    )


def _conv_readout(config, in_channels: int, size: Tuple[int, int], n_classes: int) -> nn.Module:
    hidden = config.options["readout_hidden_size"]
    return layers(
        ("conv1", nn.Conv2d(in_channels, hidden, size)),
        ("relu1", nn.ReLU()),
        ("dropout1", dropout_layer(config)),
        ("conv2", nn.Conv2d(hidden, hidden, 1)),
        ("relu2", nn.ReLU()),
        ("dropout2", dropout_layer(config)),
        ("conv3", nn.Conv2d(hidden, n_classes, 1, bias=config.readout_bias)),
        ("flatten", nn.Flatten()),
    )


#: ``readout_type`` -> readout builder (the allowed values, defined here)
READOUTS: Dict[str, Callable[..., nn.Module]] = {"dense": _dense_readout, "conv": _conv_readout}


def build_vgg(config, input_shape: Tuple[int, int, int], n_classes: int, depth: int) -> CoreReadoutModel:
    """VGG-``depth`` (11, 13, 16 or 19); ``config.batch_norm`` and the option ``readout_type`` pick the variant."""
    if config.options["readout_hidden_size"] < 1:
        raise ValueError(f"options: 'readout_hidden_size' of model type {config.type!r} must be at least 1, "
                         f"got {config.options['readout_hidden_size']!r}")
    build_readout = READOUTS[config.options["readout_type"]]
    bn = use_batch_norm(config, default=False)
    in_channels, height, width = input_shape
    blocks = []
    for i, widths in enumerate(_BLOCKS[depth], start=1):
        named = []
        for j, out_channels in enumerate(widths, start=1):
            named += [
                (f"conv{j}", nn.Conv2d(in_channels, out_channels, 3, padding=1)),
                (f"bn{j}", nn.BatchNorm2d(out_channels) if bn else None),
                (f"relu{j}", nn.ReLU()),
            ]
            in_channels = out_channels
        named.append(("pool", nn.MaxPool2d(2)))
        blocks.append((f"block{i}", layers(*named)))
        height = check_size(height // 2, f"block{i}", config.type, input_shape)
        width = check_size(width // 2, f"block{i}", config.type, input_shape)
    core = layers(*blocks)

    readout = build_readout(config, in_channels, (height, width), n_classes)
    return CoreReadoutModel(core, readout, config.type, input_shape, n_classes)


for _depth in _BLOCKS:
    register(f"vgg{_depth}", partial(build_vgg, depth=_depth), options={"readout_type": "dense", "readout_hidden_size": 512},
             choices={"readout_type": tuple(READOUTS)}, input_dims=(3,))
