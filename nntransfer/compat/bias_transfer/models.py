"""bias_transfer's model builder (``bias_transfer/models/__init__.py``, July 2021) on this library's: it
registers the original nntransfer's LeNet-5 (``nntransfer/models/lenet.py`` of sinzlab/nntransfer) as the
model type ``bias_transfer-lenet5`` and builds ``ClassificationModel`` configs with this library's
``classification_model_builder``, their original type names translated (``MAPPED_TYPES``)."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple

from torch import nn

from nntransfer.compat.bias_transfer.configs.model import CORE_TYPES, MAPPED_TYPES
from nntransfer.models.base import CoreReadoutModel, dropout_layer, layers
from nntransfer.models.builder import check_model_config
from nntransfer.models.builder import classification_model_builder as _library_builder
from nntransfer.models.locally_connected import LocallyConnected2d
from nntransfer.models.registry import register


@register("bias_transfer-lenet5", options={"core": "conv"}, choices={"core": CORE_TYPES}, input_dims=(3,))
def build_original_lenet5(config, input_shape: Tuple[int, int, int], n_classes: int) -> CoreReadoutModel:
    """The original nntransfer's ``LeNet5``: 3x3 layers without padding (6 and 16 maps), each followed by a ReLU,
    dropout and a 2x2 max pool, then 120, 84 and ``n_classes`` units with ReLU and dropout between them.
    The option ``core`` (the original's ``core_type``, named as the original LeNet5's argument so that it is
    not taken for this library's ``lenet5`` option): ``lc`` makes both layers locally connected (no bias,
    weights drawn from N(0, 1), as the original's); ``fc`` makes them dense layers with the conv layers'
    sizes (after pooling for the first) and drops the pooling, as the original did."""
    if config.batch_norm:
        raise ValueError("model type 'bias_transfer-lenet5': the original LeNet-5 had no batch norm")
    channels, height, width = input_shape
    h1, w1 = height - 2, width - 2  # 3x3, no padding
    h2, w2 = h1 // 2 - 2, w1 // 2 - 2
    if min(h2, w2) < 2:
        raise ValueError(f"model type 'bias_transfer-lenet5': input {input_shape} is too small (the original LeNet-5 needs at least 10x10 pixels)")
    flat = 16 * (h2 // 2) * (w2 // 2)
    core_type = config.options["core"]
    if core_type == "fc":
        intermediate = (h1 // 2) * (w1 // 2) * 6
        layer1: nn.Module = layers(("flatten", nn.Flatten()), ("linear", nn.Linear(channels * height * width, intermediate)))
        layer2: nn.Module = nn.Linear(intermediate, flat)
        pool1: Optional[nn.Module] = None
        pool2: Optional[nn.Module] = None
    else:
        if core_type == "lc":  # the original's locally connected layers: no bias, weights drawn from N(0, 1)
            layer1 = LocallyConnected2d(channels, 6, (height, width), 3, bias=False)
            layer2 = LocallyConnected2d(6, 16, (h1 // 2, w1 // 2), 3, bias=False)
            for layer in (layer1, layer2):
                nn.init.normal_(layer.weight)
        else:
            layer1, layer2 = nn.Conv2d(channels, 6, 3), nn.Conv2d(6, 16, 3)
        pool1, pool2 = nn.MaxPool2d(2), nn.MaxPool2d(2)
    core = layers(
        ("conv1", layer1), ("relu1", nn.ReLU()), ("dropout1", dropout_layer(config)), ("pool1", pool1),
        ("conv2", layer2), ("relu2", nn.ReLU()), ("dropout2", dropout_layer(config)), ("pool2", pool2),
    )
    readout = layers(
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(flat, 120)), ("relu1", nn.ReLU()), ("dropout1", dropout_layer(config)),
        ("fc2", nn.Linear(120, 84)), ("relu2", nn.ReLU()), ("dropout2", dropout_layer(config)),
        ("fc3", nn.Linear(84, n_classes, bias=config.readout_bias)),
    )
    return CoreReadoutModel(core, readout, config.type, input_shape, n_classes)


def _translated(config: Mapping[str, Any]) -> dict:
    """The config's values with the original model type replaced by this library's (``MAPPED_TYPES``)."""
    values = dict(config)
    if values.get("type") in MAPPED_TYPES:
        values["type"] = MAPPED_TYPES[values["type"]]
    return values


def classification_model_builder(dataloaders: Mapping[str, Any], seed: Optional[int],
                                 state_dict: Optional[Mapping[str, Any]] = None, **config: Any) -> nn.Module:
    """bias_transfer's ``classification_model_builder``: this library's, for the original model types."""
    return _library_builder(dataloaders, seed, state_dict=state_dict, **_translated(config))


def _check_config(config: Mapping[str, Any]) -> None:
    check_model_config(_translated(config))


classification_model_builder.check_config = _check_config  # type: ignore[attr-defined]
