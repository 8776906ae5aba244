"""Pieces every model shares: the core/readout structure, shape arithmetic and weight initialisation."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable, Optional, Sequence, Tuple

import torch
from torch import nn

from nntransfer.registry import Registry


class CoreReadoutModel(nn.Module):
    """``readout(core(x))``: ``core`` extracts features, ``readout`` turns them into class logits.

    Transfer recipes freeze, reset or replace one of the two, and representation matching reads
    ``core``'s output, so every model type has exactly these two submodules.

    Attributes:
        model_type: the registered type name this model was built as.
        input_shape: ``(channels, height, width)`` the model was built for.
        n_classes: number of logits.
    """

    def __init__(self, core: nn.Module, readout: nn.Module, model_type: str, input_shape: Tuple[int, int, int], n_classes: int):
        super().__init__()
        self.core = core
        self.readout = readout
        self.model_type = model_type
        self.input_shape = tuple(input_shape)
        self.n_classes = n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.core(x))


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Length of one spatial dimension after a convolution or pooling layer."""
    return (size + 2 * padding - kernel) // stride + 1


def check_size(size: int, what: str, model_type: str, input_shape: Sequence[int]) -> int:
    """``size`` if positive; otherwise the one-line error for an input too small for the architecture."""
    if size < 1:
        raise ValueError(
            f"input shape {tuple(input_shape)} is too small for model type {model_type!r}: the feature map "
            f"vanishes at {what}; use larger images (e.g. the dataset config's input_size) or another type"
        )
    return size


@torch.no_grad()
def feature_shape(module: nn.Module, input_shape: Sequence[int], model_type: str) -> Tuple[int, ...]:
    """Shape (without batch dimension) of ``module``'s output for one input of ``input_shape``.

    Runs one zero input in eval mode (no batch-norm statistics change, no random numbers drawn), so it
    leaves the module and the random state as they were. A too-small input becomes a ``ValueError``."""
    was_training = module.training
    module.eval()
    try:
        out = module(torch.zeros(1, *input_shape))
    except RuntimeError as err:
        raise ValueError(
            f"input shape {tuple(input_shape)} does not fit model type {model_type!r} ({str(err).splitlines()[0]}); "
            "use larger images (e.g. the dataset config's input_size) or change the stem/type"
        ) from None
    finally:
        module.train(was_training)
    if out.numel() == 0:
        raise ValueError(f"input shape {tuple(input_shape)} is too small for model type {model_type!r}: no features left")
    return tuple(out.shape[1:])


def layers(*named: Tuple[str, Optional[nn.Module]]) -> nn.Sequential:
    """``nn.Sequential`` of the ``(name, module)`` pairs whose module is not None.

    Optional layers (batch norm, dropout) are left out rather than replaced by ``Identity``, so layer
    paths and state dict keys only name layers that compute something."""
    return nn.Sequential(OrderedDict((name, module) for name, module in named if module is not None))


def _fans(module: nn.Module) -> Tuple[int, int]:
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if hasattr(module, "fan_in"):  # layers that know their fans, e.g. the locally connected ones
        return module.fan_in, module.fan_out
    # Conv layers: channels times kernel area (per group for the fan-in).
    receptive = math.prod(module.weight.shape[2:])
    return module.weight.shape[1] * receptive, module.weight.shape[0] * receptive


def _is_initialised(module: nn.Module) -> bool:
    if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return True
    return hasattr(module, "fan_in") and isinstance(getattr(module, "weight", None), nn.Parameter)


#: ``weight_init`` name -> function that re-initialises a model in place
WEIGHT_INITS: Registry[Callable[[nn.Module], None]] = Registry("weight_init")


@torch.no_grad()
def _redraw(model: nn.Module, draw: Callable[[torch.Tensor, int, int], None]) -> None:
    """``draw(weight, fan_in, fan_out)`` for every conv/linear/locally connected weight; zero biases."""
    for module in model.modules():
        if not _is_initialised(module):
            continue
        fan_in, fan_out = _fans(module)
        draw(module.weight, fan_in, fan_out)
        if module.bias is not None:
            module.bias.zero_()


@WEIGHT_INITS.register("default")
def pytorch_default_init(model: nn.Module) -> None:
    """Keep PyTorch's initialisation (each layer's own ``reset_parameters``)."""


@WEIGHT_INITS.register("kaiming_normal")
def kaiming_normal_init(model: nn.Module) -> None:
    """N(0, 2/fan_in) (He et al., for ReLU networks); zero biases."""
    _redraw(model, lambda weight, fan_in, fan_out: weight.normal_(0.0, math.sqrt(2.0 / fan_in)))


@WEIGHT_INITS.register("xavier_uniform")
def xavier_uniform_init(model: nn.Module) -> None:
    """U(+-sqrt(6/(fan_in+fan_out))) (Glorot & Bengio); zero biases."""

    def draw(weight: torch.Tensor, fan_in: int, fan_out: int) -> None:
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        weight.uniform_(-bound, bound)

    _redraw(model, draw)


def initialise_weights(model: nn.Module, method: str) -> None:
    """Re-initialise ``model`` with the ``weight_init`` called ``method`` (see ``WEIGHT_INITS``)."""
    WEIGHT_INITS.get(method)(model)


def use_batch_norm(config, default: bool) -> bool:
    """The config's ``batch_norm``, or the architecture's ``default`` when it is None."""
    return default if config.batch_norm is None else bool(config.batch_norm)


def dropout_layer(config) -> Optional[nn.Module]:
    """``nn.Dropout`` with the config's probability, or None when it is 0."""
    return nn.Dropout(config.dropout) if config.dropout > 0 else None
