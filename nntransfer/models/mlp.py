"""Multi-layer perceptrons: ``mlp`` (hidden sizes from the config) and LeNet-300-100 (LeCun et al. 1998).

Both take inputs of any shape (images, ``(C, L)`` signals, ...). The core flattens the input and applies the hidden layers (``fc<i> -> [bn<i>] -> relu<i> -> [dropout<i>]``);
the readout is one linear layer ``fc`` to the classes. The hidden layers have biases unless the option
``core_bias`` is False, the readout unless ``config.readout_bias`` is False: with both False,
``mlp`` with the option ``hidden_sizes=[600, 400]`` is the bias-free MNIST-1D student of Nix, Sinz et al.
(AISTATS 2022), 40*600 + 600*400 + 400*10 = 268,000 weights.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

from torch import nn

from nntransfer.models.base import CoreReadoutModel, dropout_layer, layers, use_batch_norm
from nntransfer.models.registry import register


def build_mlp_model(config, input_shape: Tuple[int, int, int], n_classes: int, hidden_sizes: Sequence[int]) -> CoreReadoutModel:
    """Flatten, ``hidden_sizes`` ReLU layers (core), one linear layer to ``n_classes`` (readout)."""
    if any(not isinstance(n, int) or n < 1 for n in hidden_sizes):
        raise ValueError(f"hidden layer sizes must be positive integers, got {list(hidden_sizes)}")
    bn = use_batch_norm(config, default=False)
    named = [("flatten", nn.Flatten())]
    width = math.prod(input_shape)
    for i, hidden in enumerate(hidden_sizes, start=1):
        named += [
            (f"fc{i}", nn.Linear(width, hidden, bias=config.options["core_bias"])),
            (f"bn{i}", nn.BatchNorm1d(hidden) if bn else None),
            (f"relu{i}", nn.ReLU()),
            (f"dropout{i}", dropout_layer(config)),
        ]
        width = hidden
    readout = layers(("fc", nn.Linear(width, n_classes, bias=config.readout_bias)))
    return CoreReadoutModel(layers(*named), readout, config.type, input_shape, n_classes)


@register("mlp", options={"hidden_sizes": [512, 256], "core_bias": True})
def build_mlp(config, input_shape: Tuple[int, int, int], n_classes: int) -> CoreReadoutModel:
    """MLP with hidden layers of the option ``hidden_sizes``."""
    return build_mlp_model(config, input_shape, n_classes, config.options["hidden_sizes"])


@register("lenet300-100", options={"core_bias": True})
def build_lenet300_100(config, input_shape: Tuple[int, int, int], n_classes: int) -> CoreReadoutModel:
    """LeNet-300-100: hidden layers of 300 and 100 units."""
    return build_mlp_model(config, input_shape, n_classes, (300, 100))
