"""``cnn2d``: the plain 2-D CNN teacher of the MNIST experiments of Nix, Sinz et al. (AISTATS 2022).

"Can functional transfer methods capture simple inductive biases?" trains this CNN on MNIST as the
translation-invariant teacher of an MLP student (``mlp`` with ``hidden_sizes=[512, 128, 32]``,
``dropout=0.1``, ``readout_bias=False``; see ``nntransfer.models.mlp``). With its defaults the core is,
for 28x28 inputs::

    conv1 (128 maps, 3x3, no padding) -> relu1 -> [dropout1]                    28 -> 26
    conv2 ( 64 maps, 3x3)             -> relu2 -> pool2 (2x2 max) -> [dropout2] 26 -> 24 -> 12
    conv3 ( 64 maps, 3x3)             -> relu3 -> pool3 (3x3 max) -> [dropout3] 12 -> 10 -> 3
    pool (global average) -> flatten                                            64 features

and the readout one linear layer ``fc`` (64 -> classes). Each block is ``conv<i> -> [bn<i>] -> relu<i> ->
[pool<i>] -> [dropout<i>]``; a pool of size 1 is left out (it computes nothing), as are batch norm (off
unless ``config.batch_norm``) and dropout (``config.dropout``, 0.1 in the paper). The options:

- ``channels`` (``[128, 64, 64]``), ``kernel_sizes`` (``[3, 3, 3]``), ``pool_sizes`` (``[1, 2, 3]``): one
  entry per convolution (max pools of that size and stride after each);
- ``padding`` (0): zero padding of every convolution (``kernel // 2`` keeps the size);
- ``global_pool`` (``"avg"``): ``"avg"`` or ``"max"`` over all positions before the readout;
- ``core_bias`` (True): the convolutions have biases.

The original's layer paths map to ours as ``layers.0`` -> ``core.conv1``, ``layers.5`` -> ``core.conv2``,
``layers.10`` -> ``core.conv3``, ``layers.17`` -> ``readout.fc`` (its ``MaxOut`` of size 1 is the identity
and left out). Inputs need at least 16x16 pixels with the defaults.
"""

from __future__ import annotations

from typing import Tuple

from torch import nn

from nntransfer.models.base import CoreReadoutModel, check_size, conv_output_size, dropout_layer, layers, use_batch_norm
from nntransfer.models.registry import register

#: the options of ``cnn2d`` and their defaults: the MNIST teacher of Nix, Sinz et al. (AISTATS 2022)
CNN2D_OPTIONS = {
    "channels": [128, 64, 64],
    "kernel_sizes": [3, 3, 3],
    "pool_sizes": [1, 2, 3],
    "padding": 0,
    "global_pool": "avg",
    "core_bias": True,
}


def _positive_ints(name: str, values, model_type: str) -> list:
    values = list(values)
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
        raise ValueError(f"options: {name!r} of model type {model_type!r} must be a non-empty list of positive integers, got {values!r}")
    return values


@register("cnn2d", options=CNN2D_OPTIONS, choices={"global_pool": ("avg", "max")}, input_dims=(3,))
def build_cnn2d(config, input_shape: Tuple[int, int, int], n_classes: int) -> CoreReadoutModel:
    """The ``cnn2d`` model for images ``(channels, height, width)``."""
    options = config.options
    channels = _positive_ints("channels", options["channels"], config.type)
    kernels = _positive_ints("kernel_sizes", options["kernel_sizes"], config.type)
    pools = _positive_ints("pool_sizes", options["pool_sizes"], config.type)
    if not len(channels) == len(kernels) == len(pools):
        raise ValueError(f"options: 'channels', 'kernel_sizes' and 'pool_sizes' of model type {config.type!r} need one "
                         f"entry per convolution, got {len(channels)}, {len(kernels)} and {len(pools)}")
    padding = options["padding"]
    if padding < 0:
        raise ValueError(f"options: 'padding' of model type {config.type!r} must be at least 0, got {padding!r}")
    bn = use_batch_norm(config, default=False)
    size = tuple(input_shape[1:])
    width = input_shape[0]
    named = []
    for i, (out, kernel, pool) in enumerate(zip(channels, kernels, pools), start=1):
        size = tuple(check_size(conv_output_size(n, kernel, 1, padding), f"conv{i}", config.type, input_shape) for n in size)
        if pool > 1:
            size = tuple(check_size(n // pool, f"pool{i}", config.type, input_shape) for n in size)
        named += [
            (f"conv{i}", nn.Conv2d(width, out, kernel, padding=padding, bias=options["core_bias"])),
            (f"bn{i}", nn.BatchNorm2d(out) if bn else None),
            (f"relu{i}", nn.ReLU()),
            (f"pool{i}", nn.MaxPool2d(pool) if pool > 1 else None),
            (f"dropout{i}", dropout_layer(config)),
        ]
        width = out
    global_pool = nn.AdaptiveAvgPool2d(1) if options["global_pool"] == "avg" else nn.AdaptiveMaxPool2d(1)
    core = layers(*named, ("pool", global_pool), ("flatten", nn.Flatten()))
    readout = layers(("fc", nn.Linear(width, n_classes, bias=config.readout_bias)))
    return CoreReadoutModel(core, readout, config.type, input_shape, n_classes)
