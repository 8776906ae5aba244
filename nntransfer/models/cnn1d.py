"""``cnn1d_invariant``: a 1-D CNN exactly invariant to circular shifts of its input signal ``(channels, length)``.

The teacher of the MNIST-1D experiments of Nix, Sinz et al. (AISTATS 2022, "Can functional transfer
methods capture simple inductive biases?"): ``CNN1D_LAYERS`` convolutions of ``CNN1D_CHANNELS`` channels
(kernel ``CNN1D_KERNEL``, stride 1, circular padding that keeps the length), each ``conv<i> -> [bn<i>] ->
relu<i>``, then a global max over the length (``pool``) and ``flatten`` (the core); dropout and one linear layer to the
classes (the readout).

Circular convolutions with stride 1 commute with circular shifts (``conv(roll(x, k)) == roll(conv(x), k)``),
and so do the pointwise ReLU and batch norm; the maximum over all positions does not see a shift. So
``model(x) == model(torch.roll(x, k, -1))`` for every ``k``, up to float rounding. (Dropout in training
mode draws masks per call; the invariance holds for any fixed mask, and exactly in eval mode.)

The convolutions have biases unless the option ``core_bias`` is False (the paper's are bias-free, as is its
readout: ``readout_bias=False``). Batch norm is off unless ``config.batch_norm`` is True; its shift
parameters are biases that ``core_bias`` does not remove.
"""

from __future__ import annotations

from typing import Tuple

from torch import nn

from nntransfer.models.base import CoreReadoutModel, check_size, dropout_layer, layers, use_batch_norm
from nntransfer.models.registry import register

CNN1D_CHANNELS = 32
CNN1D_KERNEL = 5  # odd: the circular padding of kernel // 2 keeps the length
CNN1D_LAYERS = 3


@register("cnn1d_invariant", options={"core_bias": True}, input_dims=(2,))
def build_cnn1d_invariant(config, input_shape: Tuple[int, int], n_classes: int) -> CoreReadoutModel:
    """The ``cnn1d_invariant`` model for inputs ``(channels, length)``."""
    channels, length = input_shape
    # circular padding wraps around at most once: the signal must be at least kernel // 2 long
    check_size(length - CNN1D_KERNEL // 2 + 1, "the circular padding", config.type, input_shape)
    bn = use_batch_norm(config, default=False)
    named = []
    width = channels
    for i in range(1, CNN1D_LAYERS + 1):
        conv = nn.Conv1d(
            width, CNN1D_CHANNELS, CNN1D_KERNEL, stride=1, padding=CNN1D_KERNEL // 2,
            padding_mode="circular", bias=config.options["core_bias"],
        )
        named += [
            (f"conv{i}", conv),
            (f"bn{i}", nn.BatchNorm1d(CNN1D_CHANNELS) if bn else None),
            (f"relu{i}", nn.ReLU()),
        ]
        width = CNN1D_CHANNELS
    # global max over the length: (N, C, L) -> (N, C, 1) -> (N, C)
    core = layers(*named, ("pool", nn.AdaptiveMaxPool1d(1)), ("flatten", nn.Flatten()))
    readout = layers(("dropout", dropout_layer(config)), ("fc", nn.Linear(CNN1D_CHANNELS, n_classes, bias=config.readout_bias)))
    return CoreReadoutModel(core, readout, config.type, input_shape, n_classes)
