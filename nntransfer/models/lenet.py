"""LeNet-5 (LeCun et al. 1998) with a convolutional, locally connected or fully connected core.

The three cores share the layout ``layer1 (6 maps, 5x5, padding 2) -> relu -> 2x2 max pool -> layer2
(16 maps, 5x5) -> relu -> 2x2 max pool`` and the layer names, so their representations (``core.layer1``,
``core.pool2``, ...) can be compared across cores:

- ``conv``: the two layers are convolutions (shared weights, local receptive fields);
- ``locally_connected``: same receptive fields, one filter per position (locality without sharing);
- ``fully_connected``: dense layers with the same output sizes (neither locality nor sharing).

The readout is everything after the core, ``flatten -> fc1 (120) -> fc2 (84) -> fc3 (n_classes)`` with
ReLUs (like VGG's classifier): ``reset=["readout"]`` re-initialises all three fully connected layers, and
``reset=["readout.fc3"]`` only the last, a new classification layer on the transferred fc1 and fc2.
Inputs need at least 12x12 pixels.
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

from torch import nn

from nntransfer.models.base import (
    CoreReadoutModel,
    check_size,
    conv_output_size,
    dropout_layer,
    layers,
    use_batch_norm,
)
from nntransfer.models.locally_connected import LocallyConnected2d
from nntransfer.models.registry import register


def _conv_layer(in_channels: int, out_channels: int, in_size: Tuple[int, int], out_size: Tuple[int, int], kernel: int, padding: int) -> nn.Module:
    return nn.Conv2d(in_channels, out_channels, kernel, padding=padding)


def _locally_connected_layer(in_channels: int, out_channels: int, in_size: Tuple[int, int], out_size: Tuple[int, int], kernel: int, padding: int) -> nn.Module:
    return LocallyConnected2d(in_channels, out_channels, in_size, kernel, padding=padding)


def _fully_connected_layer(in_channels: int, out_channels: int, in_size: Tuple[int, int], out_size: Tuple[int, int], kernel: int, padding: int) -> nn.Module:
    return layers(
        ("flatten", nn.Flatten()),
        ("linear", nn.Linear(in_channels * in_size[0] * in_size[1], out_channels * out_size[0] * out_size[1])),
        ("unflatten", nn.Unflatten(1, (out_channels, *out_size))),
    )


#: ``core_type`` -> the layer ``layer1``/``layer2`` of the core are made of (the allowed values, defined here)
CORE_LAYERS: Dict[str, Callable[..., nn.Module]] = {
    "conv": _conv_layer,
    "locally_connected": _locally_connected_layer,
    "fully_connected": _fully_connected_layer,
}


@register("lenet5", options={"core_type": "conv"}, choices={"core_type": tuple(CORE_LAYERS)}, input_dims=(3,))
def build_lenet5(config, input_shape: Tuple[int, int, int], n_classes: int) -> CoreReadoutModel:
    """LeNet-5 for ``input_shape`` (the option ``core_type`` picks the core's layers)."""
    core_layer = CORE_LAYERS[config.options["core_type"]]
    channels, height, width = input_shape
    bn = use_batch_norm(config, default=False)

    def size_after(size, kernel, padding, what):
        return tuple(check_size(conv_output_size(n, kernel, 1, padding), what, config.type, input_shape) for n in size)

    size0 = (height, width)
    size1 = size_after(size0, 5, 2, "layer1")
    pooled1 = tuple(check_size(n // 2, "pool1", config.type, input_shape) for n in size1)  # 2x2, stride 2
    size2 = size_after(pooled1, 5, 0, "layer2")
    pooled2 = tuple(check_size(n // 2, "pool2", config.type, input_shape) for n in size2)

    core = layers(
        ("layer1", core_layer(channels, 6, size0, size1, 5, 2)),
        ("bn1", nn.BatchNorm2d(6) if bn else None),
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)),
        ("layer2", core_layer(6, 16, pooled1, size2, 5, 0)),
        ("bn2", nn.BatchNorm2d(16) if bn else None),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
    )
    readout = layers(
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(16 * pooled2[0] * pooled2[1], 120)),
        ("relu1", nn.ReLU()),
        ("dropout1", dropout_layer(config)),
        ("fc2", nn.Linear(120, 84)),
        ("relu2", nn.ReLU()),
        ("dropout2", dropout_layer(config)),
        ("fc3", nn.Linear(84, n_classes, bias=config.readout_bias)),
    )
    return CoreReadoutModel(core, readout, config.type, input_shape, n_classes)
