"""``conv1d``: a small 1-D convolutional network for signals ``(channels, length)`` such as MNIST-1D.

Three convolutions of ``CONV1D_CHANNELS`` channels (kernel 5, then 3 and 3, stride 2 each after the
first), each ``conv<i> -> [bn<i>] -> relu<i>``, then flatten (the core); dropout and one linear layer to
the classes (the readout). Small, like the reference CNN of the MNIST-1D paper (Greydanus, 2020).
"""

from __future__ import annotations

from typing import Tuple

from torch import nn

from nntransfer.models.base import CoreReadoutModel, check_size, conv_output_size, dropout_layer, layers, use_batch_norm
from nntransfer.models.registry import register

CONV1D_CHANNELS = 32
#: (kernel, stride, padding) of the three convolutions
CONV1D_LAYERS = ((5, 1, 2), (3, 2, 1), (3, 2, 1))


@register("conv1d", input_dims=(2,))
def build_conv1d(config, input_shape: Tuple[int, int], n_classes: int) -> CoreReadoutModel:
    """The ``conv1d`` model for inputs ``(channels, length)``."""
    channels, length = input_shape
    bn = use_batch_norm(config, default=False)
    named = []
    width = channels
    for i, (kernel, stride, padding) in enumerate(CONV1D_LAYERS, start=1):
        named += [
            (f"conv{i}", nn.Conv1d(width, CONV1D_CHANNELS, kernel, stride=stride, padding=padding)),
            (f"bn{i}", nn.BatchNorm1d(CONV1D_CHANNELS) if bn else None),
            (f"relu{i}", nn.ReLU()),
        ]
        width = CONV1D_CHANNELS
        length = check_size(conv_output_size(length, kernel, stride, padding), "signal length", config.type, input_shape)
    core = layers(*named, ("flatten", nn.Flatten()))
    readout = layers(("dropout", dropout_layer(config)), ("fc", nn.Linear(CONV1D_CHANNELS * length, n_classes, bias=config.readout_bias)))
    return CoreReadoutModel(core, readout, config.type, input_shape, n_classes)
