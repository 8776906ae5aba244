"""``vit``: a small Vision Transformer (Dosovitskiy et al. 2021), torchvision's ``VisionTransformer`` as core.

The student of the ResNet-18 -> ViT experiment of Nix, Sinz et al. (AISTATS 2022) on MNIST; the defaults
are its sizes: 28x28 images cut into 7x7 patches (16 tokens and a class token), ``hidden_dim`` 64,
``num_layers`` 6 encoder blocks of ``num_heads`` 8 heads with MLPs of ``mlp_dim`` 128, and a head
``Linear(64, 128) -> GELU -> Linear(128, classes)``.

The core is ``torchvision.models.VisionTransformer`` without its classification head: patch embedding
``core.conv_proj`` (a ``patch_size`` convolution with stride ``patch_size``, for the data's channels),
class token and position embedding, the blocks ``core.encoder.layers.encoder_layer_<i>`` (each ``ln_1``,
``self_attention``, ``ln_2``, ``mlp``) and the final ``core.encoder.ln``; its output is the class token's
features ``[N, hidden_dim]``. So ``"readout"`` (the readout's input) is that vector and
``core.encoder.layers.encoder_layer_<i>`` the tokens ``[N, 17, hidden_dim]`` after block ``i`` (hook a
block or its ``mlp``: ``self_attention`` returns a tuple). The readout is the head: ``"mlp"`` (the
paper's: ``fc1`` to ``mlp_dim``, ``gelu``, ``fc``) or ``"linear"`` (torchvision's: ``fc`` alone).

Options (defaults): ``patch_size`` (7), ``num_layers`` (6), ``num_heads`` (8), ``hidden_dim`` (64),
``mlp_dim`` (128), ``head`` (``"mlp"``), ``attention_dropout`` (0.0); ``config.dropout`` is the dropout
of the encoder. The image size is the data's; images that are not square with a side that is a multiple of
``patch_size`` are zero-padded at the bottom and right to the smallest such square (logged at INFO when built).
"""

from __future__ import annotations

import logging
import math
from typing import Tuple

from torch import nn
from torch.nn import functional as F

from nntransfer.models.base import CoreReadoutModel, layers
from nntransfer.models.registry import register

logger = logging.getLogger(__name__)


class PadTo:
    """Forward pre-hook: zero-pad the input images ``[N, C, H, W]`` at the bottom and right to ``side`` x ``side``."""

    def __init__(self, side: int) -> None:
        self.side = side

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        x = args[0]
        return (F.pad(x, (0, self.side - x.shape[-1], 0, self.side - x.shape[-2])), *args[1:])


#: the options of ``vit`` and their defaults: the MNIST student of Nix, Sinz et al. (AISTATS 2022)
VIT_OPTIONS = {
    "patch_size": 7,
    "num_layers": 6,
    "num_heads": 8,
    "hidden_dim": 64,
    "mlp_dim": 128,
    "head": "mlp",
    "attention_dropout": 0.0,
}


@register("vit", options=VIT_OPTIONS, choices={"head": ("mlp", "linear")}, input_dims=(3,))
def build_vit(config, input_shape: Tuple[int, int, int], n_classes: int) -> CoreReadoutModel:
    """The ``vit`` model for images ``(channels, side, side)``."""
    from torchvision.models.vision_transformer import VisionTransformer  # torchvision takes seconds to import

    options = config.options
    for name in ("patch_size", "num_layers", "num_heads", "hidden_dim", "mlp_dim"):
        if options[name] < 1:
            raise ValueError(f"options: {name!r} of model type {config.type!r} must be at least 1, got {options[name]!r}")
    if not 0.0 <= options["attention_dropout"] < 1.0:
        raise ValueError(f"options: 'attention_dropout' of model type {config.type!r} must be in [0, 1), got {options['attention_dropout']!r}")
    channels, height, width = input_shape
    patch, hidden = options["patch_size"], options["hidden_dim"]
    side = -(-max(height, width) // patch) * patch  # the smallest multiple of the patch size that holds the image
    if hidden % options["num_heads"]:
        raise ValueError(f"options: 'hidden_dim' {hidden} of model type {config.type!r} must be a multiple of 'num_heads' {options['num_heads']}")
    vit = VisionTransformer(
        image_size=side, patch_size=patch, num_layers=options["num_layers"], num_heads=options["num_heads"],
        hidden_dim=hidden, mlp_dim=options["mlp_dim"], dropout=float(config.dropout),
        attention_dropout=float(options["attention_dropout"]), num_classes=n_classes,
    )
    # torchvision's patch embedding takes 3 channels; the data's instead, initialised as torchvision does
    vit.conv_proj = nn.Conv2d(channels, hidden, kernel_size=patch, stride=patch)
    nn.init.trunc_normal_(vit.conv_proj.weight, std=math.sqrt(1.0 / (channels * patch * patch)))
    nn.init.zeros_(vit.conv_proj.bias)
    vit.heads = nn.Identity()  # the core ends at the class token's features; the head is the readout
    if (height, width) != (side, side):
        logger.info("model type %r: %dx%d images are zero-padded at the bottom and right to %dx%d (a multiple of "
                    "patch_size %d)", config.type, height, width, side, side, patch)
        vit.register_forward_pre_hook(PadTo(side))
    if options["head"] == "mlp":
        readout = layers(
            ("fc1", nn.Linear(hidden, options["mlp_dim"])),
            ("gelu", nn.GELU()),
            ("fc", nn.Linear(options["mlp_dim"], n_classes, bias=config.readout_bias)),
        )
    else:
        readout = layers(("fc", nn.Linear(hidden, n_classes, bias=config.readout_bias)))
    return CoreReadoutModel(vit, readout, config.type, input_shape, n_classes)
