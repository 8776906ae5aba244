"""orbit_transfer's MNIST-1D models (``orbit_transfer/models/mnist_1d.py`` of sinzlab/orbit_transfer) as this
library's model types, registered when this module is imported (a translated ``MNIST1DModelConfig`` names
``classification_model_builder`` below as its ``fn``, so the process that builds the model imports it):

==================================  ==========================================================================
``orbit_transfer-fc_single``        ``FCSingleLayer``: 40 -> ``hidden_dim`` -> 10 x 40 linear maps (no biases, a
                                    ReLU between), then the maximum of each class's 40 values
``orbit_transfer-fully_conv_single`` ``FullyConv``: two 1-D convolutions (``channels`` maps, then one per class;
                                    circular padding, no biases, a ReLU between), then the maximum over positions
``orbit_transfer-simple_fully_conv`` ``SimpleFullyConv``: the same with ``layers`` convolutions
``orbit_transfer-simple_fc``        ``SimpleFC``: ``layers`` linear maps 40 -> 40·channels -> ... -> 40·10 (no biases,
                                    ReLUs between), then 40·10 -> 10
==================================  ==========================================================================

and the learned orbit of the MNIST-1D experiments, ``StaticLearnedEquivariance`` (no classifier, so no model type:
``learned_orbit_builder`` builds it), which the step loop of ``nntransfer.compat.orbit_transfer.simple_trainer``
trains (``forward="equiv_learn"``) and hands on as the teacher of ``forward="equiv_transfer"``.

Each is a ``CoreReadoutModel``: the core is every layer up to the last hidden ReLU, the readout the layer to
the class maps (``conv<L>`` or ``linear<L>``) and what reads them out (``pool``: the maximum over positions;
``linear``). The original's representation layers (its ``IntermediateLayerGetter`` paths, which its transfer
methods read: each layer's output before the ReLU) map onto this model's layers by ``original_layers``. PyTorch's default
initialisation, as the original's; the classes are the data's (MNIST-1D's 10, which the original fixed).

The 2-D experiments' models: ``orbit_transfer-gcnn`` (orbit_transfer/models/group_cnn.py's P4 group CNN,
``build_gcnn``), ``orbit_transfer-vit`` (orbit_transfer/models/vit.py's ViT on vit-pytorch's transformer of 2021,
``build_vit``: the same module names, and the same draws from one seed), and the learned orbits of
``TransferModel``, ``LearnedEquivariance`` and ``AffineLearnedEquivariance``, built by ``learned_orbit_builder``.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from nntransfer.compat.orbit_transfer.configs.model import (
    LEARNED_ORBIT_2D_TYPE,
    LEARNED_ORBIT_AFFINE_TYPE,
    LEARNED_ORBIT_TYPE,
    MODEL_PREFIX,
)
from nntransfer.models.base import CoreReadoutModel, check_size, conv_output_size, layers
from nntransfer.models.builder import check_model_config
from nntransfer.models.builder import classification_model_builder as _library_builder
from nntransfer.models.group_cnn import GroupConv2d, GroupPool, LiftingConv2d
from nntransfer.models.registry import register


class MaxOverPositions(nn.Module):
    """``[B, classes, positions]`` -> ``[B, classes]``: the maximum over positions (the original's readout)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.amax(x, dim=-1)


class ClassMaps(nn.Module):
    """``[B, classes * positions]`` -> ``[B, classes, positions]``, as the original's ``reshape(B, 10, -1)``."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.n_classes = n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.n_classes, -1)


def original_layers_of(model: nn.Module) -> Dict[str, str]:
    """``original_layers`` of a model that one of this module's types built (its type and layer count read off it)."""
    model_type = getattr(model, "model_type", "")
    if not model_type.startswith(MODEL_PREFIX):
        raise ValueError(f"{type(model).__name__} ({model_type or 'no model type'}) is no orbit_transfer MNIST-1D model")
    depth = sum(1 for name, module in model.named_modules() if isinstance(module, (nn.Conv1d, nn.Linear))
                and name.rsplit(".", 1)[-1][:4] in ("conv", "line") and name.rsplit(".", 1)[-1][-1].isdigit())
    return original_layers(model_type[len(MODEL_PREFIX):], depth)


def original_layers(model_type: str, n_layers: int) -> Dict[str, str]:
    """The original model's representation layers (``IntermediateLayerGetter`` paths) -> this model's layers."""
    if model_type == "fc_single":
        return {"linear1": "core.linear1", "linear2": "readout.linear2"}
    if model_type == "fully_conv_single":
        return {"conv1": "core.conv1", "conv2": "readout.conv2"}
    if model_type == "simple_fully_conv":
        return {f"conv_stack.{2 * i}": f"{'readout' if i == n_layers - 1 else 'core'}.conv{i + 1}" for i in range(n_layers)}
    if model_type == "simple_fc":
        return {f"linear_stack.{2 * i}": f"{'readout' if i == n_layers - 1 else 'core'}.linear{i + 1}" for i in range(n_layers)}
    raise ValueError(f"no MNIST-1D model type {model_type!r} in orbit_transfer")


def _length(input_shape: Tuple[int, ...], model_type: str) -> Tuple[int, int]:
    channels, length = input_shape
    if channels != 1:
        raise ValueError(f"model type {model_type!r}: the original MNIST-1D models take one channel, got {input_shape}")
    return channels, length


def _conv_stack(config, input_shape, n_classes, n_layers: int) -> CoreReadoutModel:
    """``FullyConv`` / ``SimpleFullyConv``: ``n_layers`` circular convolutions, the last to the class maps."""
    options = config.options
    channels, length = _length(input_shape, config.type)
    if n_layers < 2:
        raise ValueError(f"model type {config.type!r}: layers must be at least 2 (the original's loop), got {n_layers}")
    named: List[Tuple[str, nn.Module]] = []
    width = channels
    size = length
    for index in range(1, n_layers + 1):
        out = n_classes if index == n_layers else options["channels"]
        size = check_size(conv_output_size(size, options["kernel_size"], options["stride"], options["padding"]),
                          f"conv{index}", config.type, input_shape)
        conv = nn.Conv1d(width, out, options["kernel_size"], stride=options["stride"], padding=options["padding"],
                         bias=False, padding_mode="circular")
        named.append((f"conv{index}", conv))
        if index < n_layers:
            named.append((f"relu{index}", nn.ReLU()))
        width = out
    core = layers(*named[:-1])
    readout = layers(named[-1], ("pool", MaxOverPositions()))
    return CoreReadoutModel(core, readout, config.type, input_shape, n_classes)


CONV_OPTIONS = {"channels": 15, "kernel_size": 5, "stride": 1, "padding": 2}


@register(MODEL_PREFIX + "fully_conv_single", options=CONV_OPTIONS, input_dims=(2,))
def build_fully_conv_single(config, input_shape: Tuple[int, int], n_classes: int) -> CoreReadoutModel:
    """orbit_transfer's ``FullyConv`` (see the module's docstring)."""
    return _conv_stack(config, input_shape, n_classes, 2)


@register(MODEL_PREFIX + "simple_fully_conv", options={**CONV_OPTIONS, "layers": 2}, input_dims=(2,))
def build_simple_fully_conv(config, input_shape: Tuple[int, int], n_classes: int) -> CoreReadoutModel:
    """orbit_transfer's ``SimpleFullyConv`` (see the module's docstring)."""
    return _conv_stack(config, input_shape, n_classes, config.options["layers"])


@register(MODEL_PREFIX + "simple_fc", options={"channels": 15, "layers": 2}, input_dims=(2,))
def build_simple_fc(config, input_shape: Tuple[int, int], n_classes: int) -> CoreReadoutModel:
    """orbit_transfer's ``SimpleFC`` (see the module's docstring)."""
    _, length = _length(input_shape, config.type)
    n_layers, wide = config.options["layers"], length * config.options["channels"]
    if n_layers < 2:
        raise ValueError(f"model type {config.type!r}: layers must be at least 2 (the original's loop), got {n_layers}")
    sizes = [length] + [wide] * (n_layers - 1) + [length * n_classes]
    named: List[Tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
    for index in range(1, n_layers + 1):
        named.append((f"linear{index}", nn.Linear(sizes[index - 1], sizes[index], bias=False)))
        if index < n_layers:
            named.append((f"relu{index}", nn.ReLU()))
    core = layers(*named[:-1])
    readout = layers(named[-1], ("linear", nn.Linear(length * n_classes, n_classes, bias=False)))
    return CoreReadoutModel(core, readout, config.type, input_shape, n_classes)


@register(MODEL_PREFIX + "fc_single", options={"hidden_dim": 400}, input_dims=(2,))
def build_fc_single(config, input_shape: Tuple[int, int], n_classes: int) -> CoreReadoutModel:
    """orbit_transfer's ``FCSingleLayer`` (see the module's docstring)."""
    _, length = _length(input_shape, config.type)
    hidden = config.options["hidden_dim"]
    core = layers(("flatten", nn.Flatten()), ("linear1", nn.Linear(length, hidden, bias=False)), ("relu1", nn.ReLU()))
    readout = layers(("linear2", nn.Linear(hidden, n_classes * length, bias=False)), ("class_maps", ClassMaps(n_classes)),
                     ("pool", MaxOverPositions()))
    return CoreReadoutModel(core, readout, config.type, input_shape, n_classes)


# ---------------------------------------------------------------------- the rotation teacher (2-D)


class P4SpatialMaxPool(nn.Module):
    """Max pooling over the plane of P4 maps (a window of ``size``, stride ``size``, no padding: an odd side loses
    its last row and column), as the original's ``MaxSpatialPoolP4``."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.max_pool2d(x.reshape(x.shape[0], -1, x.shape[3], x.shape[4]), self.size)
        return y.reshape(x.shape[0], -1, 4, y.shape[2], y.shape[3])


@register(MODEL_PREFIX + "gcnn", options={"small": False}, input_dims=(3,))
def build_gcnn(config, input_shape: Tuple[int, int, int], n_classes: int) -> CoreReadoutModel:
    """orbit_transfer/models/group_cnn.py ``GCNN`` (``small``: ``GCNN_small``): three blocks of P4 convolution,
    2x2 spatial max pool and ReLU (8, 32, 64 filters, the first 5x5, the others 3x3; small: 4, 8, 16, all 3x3),
    then a P4 convolution to one map per class, the maximum over rotations, the spatial mean: the logits.
    The layer names are the original's (``pool1`` is the first pool's output, before its ReLU). The P4
    convolutions are this library's (``nntransfer.models.group_cnn``'s ``LiftingConv2d``/``GroupConv2d`` at
    group order 4, zero padding 1, biases: the original's ``ConvZ2P4``/``ConvP4``, its weight shapes and
    Kaiming-uniform initialisation); the pools are the original's, which the library's ``gcnn`` does not use."""
    channels, height, width = input_shape
    widths, first = ((4, 8, 16), 3) if config.options["small"] else ((8, 32, 64), 5)
    named: List[Tuple[str, nn.Module]] = []
    size = min(height, width)
    previous = channels
    for block, (out, kernel) in enumerate(zip(widths, (first, 3, 3)), start=1):
        size = check_size(conv_output_size(size, kernel, 1, 1) // 2, f"pool{block}", config.type, input_shape)
        conv = LiftingConv2d(previous, out, 4, kernel, 1) if block == 1 else GroupConv2d(previous, out, 4, kernel, 1)
        named += [(f"conv{block}", conv), (f"pool{block}", P4SpatialMaxPool(2)), (f"relu{block}", nn.ReLU())]
        previous = out
    readout = layers(("conv4", GroupConv2d(previous, n_classes, 4, 3, 1)), ("pool4", GroupPool("max")),
                     ("pool5", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()))
    return CoreReadoutModel(layers(*named), readout, config.type, input_shape, n_classes)


# ---------------------------------------------------------------------- the ViT student of the 2-D experiments


class PreNorm(nn.Module):
    """``fn(LayerNorm(x))`` (vit-pytorch's block wrapper of 2021, whose names the recipes' layer paths use)."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class TokenAttention(nn.Module):
    """Multi-head self-attention over tokens: ``heads`` heads of width ``dim_head``, the queries, keys and values
    from one bias-free ``to_qkv``, then ``to_out`` (a linear map back to ``dim``, or nothing for one head as wide as
    ``dim``), as vit-pytorch's ``Attention`` of 2021 (no dropout: the original set none)."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head ** -0.5
        self.attend = nn.Softmax(dim=-1)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        project = not (heads == 1 and dim_head == dim)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(0.0)) if project else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        q, k, v = (t.reshape(batch, tokens, self.heads, -1).transpose(1, 2) for t in self.to_qkv(x).chunk(3, dim=-1))
        attention = self.attend(q @ k.transpose(-1, -2) * self.scale)
        return self.to_out((attention @ v).transpose(1, 2).reshape(batch, tokens, -1))


class TokenFeedForward(nn.Module):
    """``net``: Linear -> GELU -> Dropout -> Linear -> Dropout (dropout 0, as the original's; ``net.4`` is the
    block's output, which the recipes read)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(hidden, dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TokenTransformer(nn.Module):
    """``depth`` pre-norm residual blocks, ``layers[i] = [PreNorm(attention), PreNorm(feed-forward)]``, no final
    norm (vit-pytorch's ``Transformer`` of 2021)."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([PreNorm(dim, TokenAttention(dim, heads, dim_head)), PreNorm(dim, TokenFeedForward(dim, mlp_dim))])
            for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attention, feed_forward in self.layers:
            x = attention(x) + x
            x = feed_forward(x) + x
        return x


class PatchTokens(nn.Module):
    """The core of orbit_transfer's ViT: ``patch`` x ``patch`` patches (row-major; pixels, then channels) mapped to
    ``dim`` by ``patch_to_embedding``, a learned class token first, learned positions added (``pos_embedding`` and
    ``cls_token`` drawn from N(0, 1)), the transformer, then the class token's features."""

    def __init__(self, image_size: int, patch: int, channels: int, dim: int, depth: int, heads: int, mlp_dim: int):
        super().__init__()
        self.patch_size = patch
        patches = (image_size // patch) ** 2
        # made in the original's order, so that one seed draws the same numbers
        self.pos_embedding = nn.Parameter(torch.randn(1, patches + 1, dim))
        self.patch_to_embedding = nn.Linear(channels * patch * patch, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.transformer = TokenTransformer(dim, depth, heads, dim, mlp_dim)  # per-head width dim, as the original
        self.to_cls_token = nn.Identity()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = images.shape
        p = self.patch_size
        patches = images.reshape(batch, channels, height // p, p, width // p, p).permute(0, 2, 4, 3, 5, 1)
        x = self.patch_to_embedding(patches.reshape(batch, (height // p) * (width // p), p * p * channels))
        x = torch.cat((self.cls_token.expand(batch, -1, -1), x), dim=1) + self.pos_embedding
        return self.to_cls_token(self.transformer(x)[:, 0])


#: the options of ``orbit_transfer-vit`` and their defaults: the paper's MNIST student (mnist_2d_resnet_vit.py);
#: ``image_size`` None: the data's side (the original's field, set by its recipes, must match the data)
VIT_OPTIONS = {"image_size": None, "patch_size": 7, "dim": 64, "depth": 6, "heads": 8, "mlp_dim": 128}


@register(MODEL_PREFIX + "vit", options=VIT_OPTIONS, input_dims=(3,))
def build_vit(config, input_shape: Tuple[int, int, int], n_classes: int) -> CoreReadoutModel:
    """orbit_transfer/models/vit.py ``ViT`` (what ``vit_builder`` built: its config never declared ``orig_vit``):
    ``PatchTokens`` as the core, ``Linear(dim, mlp_dim) -> GELU -> Linear(mlp_dim, classes)`` as the readout (the
    original's ``mlp_head``). Each of the ``heads`` attention heads is ``dim`` wide (the original passed ``dim`` as
    vit-pytorch's ``dim_head``), unlike this library's ``vit`` (torchvision's, ``dim / heads`` wide)."""
    options = config.options
    channels, height, width = input_shape
    size, patch = options["image_size"] or height, options["patch_size"]
    if (height, width) != (size, size):
        raise ValueError(f"model type {config.type!r} is built for {size}x{size} images (image_size), the data's are "
                         f"{height}x{width}")
    if not isinstance(patch, int) or patch < 1 or size % patch:
        raise ValueError(f"model type {config.type!r}: patch_size {patch!r} does not fit images of {size}x{size} "
                         "(their side must be a multiple of it)")
    for name in ("dim", "depth", "heads", "mlp_dim"):
        if not isinstance(options[name], int) or options[name] < 1:
            raise ValueError(f"options: {name!r} of model type {config.type!r} must be a positive whole number, got {options[name]!r}")
    core = PatchTokens(size, patch, channels, options["dim"], options["depth"], options["heads"], options["mlp_dim"])
    readout = nn.Sequential(nn.Linear(options["dim"], options["mlp_dim"]), nn.GELU(), nn.Linear(options["mlp_dim"], n_classes))
    return CoreReadoutModel(core, readout, config.type, input_shape, n_classes)


def classification_model_builder(dataloaders: Mapping[str, Any], seed: Optional[int],
                                 state_dict: Optional[Mapping[str, Any]] = None, **config: Any) -> nn.Module:
    """This library's ``classification_model_builder``, named as the ``fn`` of ``MNIST1DModelConfig``'s
    translation so that a process that builds the model has imported this module (which registers the types)."""
    return _library_builder(dataloaders, seed, state_dict=state_dict, **config)


classification_model_builder.check_config = check_model_config  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- the learned orbit


def circular_padding(kernel_size: int) -> Tuple[int, int]:
    """(left, right) circular padding that keeps a signal's length under a kernel of ``kernel_size`` (the
    original's: ``kernel_size - 1`` in all, the smaller half on the left)."""
    total = kernel_size - 1
    return total // 2, total - total // 2


class StaticLearnedEquivariance(nn.Module):
    """orbit_transfer/models/mnist_1d.py ``StaticLearnedEquivariance``: a learned action of a cyclic group of
    ``group_size`` elements on signals. Element ``g`` acts on the input by circular convolution with the learned
    kernel ``kernels[g]`` (every channel of a sample alike, each sample with its own element); on the output of
    layer ``l > 0`` of a network by the kernel ``layer_transforms[l](kernels[g])``: ``layers - 1`` maps to kernels
    of the same size, the last (the network's logits) to kernels of size 10. ``n``: how often the action is
    applied. ``layer_transforms[0]`` is built, as in the original, and never used (layer 0 takes the kernels
    themselves). Parameter names are the original's, so its state dicts load."""

    def __init__(self, kernel_size: int = 5, group_size: int = 40, layers: int = 0):
        super().__init__()
        self.kernels = nn.Parameter(torch.randn(group_size, kernel_size))
        if layers:
            maps = [nn.Linear(kernel_size, kernel_size) for _ in range(layers - 1)] + [nn.Linear(kernel_size, 10)]
            self.layer_transforms: Optional[nn.ModuleList] = nn.ModuleList(maps)
        else:
            self.layer_transforms = None

    @property
    def n_layers(self) -> int:
        """How many layers the action is defined on (0: the input only)."""
        return 0 if self.layer_transforms is None else len(self.layer_transforms)

    def forward(self, x: torch.Tensor, g: Optional[torch.Tensor] = None, l: int = 0, n: int = 1) -> torch.Tensor:  # noqa: E741
        if g is None:  # the original returned 0 here: there is nothing to compute without a group element
            raise TypeError("StaticLearnedEquivariance acts on (signals, group elements): call it as orbit(x, g, layer)")
        if x.dim() < 3:
            x = x.reshape(-1, 1, x.shape[-1])
        kernel = self.kernels[g % self.kernels.shape[0]]
        if self.layer_transforms is not None and l > 0:
            kernel = self.layer_transforms[l](kernel)
        # each sample its own kernel: samples become the channels of one grouped convolution
        x = x.transpose(0, 1)
        padding = circular_padding(kernel.shape[-1])
        for _ in range(n):
            x = F.conv1d(F.pad(x, padding, mode="circular"), kernel.unsqueeze(1), groups=kernel.shape[0])
        return x.transpose(0, 1)


def flat_as_maps(x: torch.Tensor) -> torch.Tensor:
    """A flat ``[B, h]`` as ``[B, c, s, s]``, ``c`` the smallest number of channels with ``h / c`` a square (the
    original's ``reshape_flat_to_chw``); one line when there is none."""
    size = x.shape[1]
    channels = 1
    while math.isqrt(size // channels) ** 2 != size // channels:
        channels += 1
        if size / channels < 1:
            raise ValueError(f"an output of {size} values cannot be read as channels of a square map")
    side = math.isqrt(size // channels)
    return x.reshape(-1, channels, side, side)


class LearnedEquivariance(nn.Module):
    """orbit_transfer/models/learned_equiv.py ``LearnedEquivariance``: the learned orbit of the 2-D experiments, a
    learned action of a group of ``group_size`` elements on images and on a network's layer outputs.

    Element ``g`` acts on the input by circular 2-D convolution with the learned kernel ``kernels[g]`` (``[k, k]``;
    every channel of a sample alike, each sample with its own element). On the output of layer ``l`` (1, 2, ...)
    of a network it acts with the kernel mapped by ``layer_transforms``: ``Linear(k², k²)`` per hidden layer and,
    for the last layer (the ``output_size`` logits), ``Linear(k², output_size)``, a circular 1-D convolution over
    the logits. Without ``first_layer_transform`` (the original's default: its config had no such field, and its
    builder passed None) the first layer takes the input's kernels as they are, and one map fewer is built.
    Flat outputs act as maps (``flat_as_maps``); ``n``: how often the action is applied. Parameter names are the
    original's, so its state dicts load.

    ``vit_input``: the hidden layers are a ViT's tokens ``[B, T, C]``; as in the original, the *last* token is
    set aside as the class token and the other ``T - 1`` (a square number) act as a ``C``-channel square map in
    their order, then the set-aside token is appended again. orbit_transfer's ViT puts its class token first, so
    the original moved it into the map and the last patch out of it, and returned the tokens in another order
    (that token last); kept here as it was, since the student learned under exactly that action."""

    def __init__(self, kernel_size: int = 5, group_size: int = 25, num_layers: int = 4, output_size: int = 10,
                 first_layer_transform: bool = False, vit_input: bool = False):
        super().__init__()
        self.kernels = nn.Parameter(torch.randn(group_size, kernel_size, kernel_size))
        self.vit_input = bool(vit_input)
        self.first_layer_transform = bool(first_layer_transform)
        self.output_size = output_size
        self.num_layers = num_layers
        if num_layers:
            hidden = num_layers - 1 - (0 if self.first_layer_transform else 1)
            maps = [nn.Linear(kernel_size ** 2, kernel_size ** 2) for _ in range(hidden)]
            self.layer_transforms: Optional[nn.ModuleList] = nn.ModuleList(maps + [nn.Linear(kernel_size ** 2, output_size)])
        else:
            self.layer_transforms = None

    @property
    def group_size(self) -> int:
        return self.kernels.shape[0]

    @property
    def n_layers(self) -> int:
        """How many layers of a network the orbit acts on besides the input (0: the input only)."""
        return self.num_layers if self.layer_transforms is not None else 0

    def element_parameters(self) -> torch.Tensor:
        """The input's G kernels (what the identity term compares)."""
        return self.kernels

    def kernel(self, g: torch.Tensor, layer: int) -> Tuple[torch.Tensor, bool]:
        """The kernels of the elements ``g`` on layer ``layer`` (0: the input) and whether they act on logits."""
        kernel = self.kernels[g % self.group_size]
        index = layer if self.first_layer_transform or layer == 0 else layer - 1
        if self.layer_transforms is None or index == 0:
            return kernel, False
        if index > len(self.layer_transforms):
            raise ValueError(f"the orbit acts on {self.num_layers} layers, not on layer {layer}")
        mapped = self.layer_transforms[index - 1](kernel.flatten(1))
        if index == len(self.layer_transforms):
            return mapped, True
        return mapped.reshape(kernel.shape), False

    def forward(self, x: torch.Tensor, g: Optional[torch.Tensor] = None, l: int = 0, n: int = 1) -> torch.Tensor:  # noqa: E741
        if g is None:  # the original returned 0 here: there is nothing to compute without a group element
            raise TypeError("LearnedEquivariance acts on (inputs, group elements): call it as orbit(x, g, layer)")
        kernel, on_logits = self.kernel(torch.as_tensor(g, device=self.kernels.device), l)
        if self.vit_input and l > 0 and not on_logits:
            return self._on_tokens(x, kernel, l, n)
        shape = x.shape
        if on_logits:
            if x.dim() != 2 or shape[1] != self.output_size:
                raise ValueError(f"layer {l} is the orbit's last (the {self.output_size} logits); got an output of "
                                 f"shape {tuple(shape[1:])}")
            maps = x.unsqueeze(1)
        elif x.dim() == 2:
            maps = flat_as_maps(x)
        elif x.dim() == 4:
            maps = x
        else:
            raise ValueError(f"the orbit acts on images or flat outputs, not on shape {tuple(shape[1:])}")
        return self._convolve(maps, kernel, on_logits, n).reshape(shape)

    @staticmethod
    def _convolve(maps: torch.Tensor, kernel: torch.Tensor, on_logits: bool, n: int) -> torch.Tensor:
        """``n`` circular convolutions of each sample's maps with its own kernel (1-D over logits, else 2-D)."""
        if not on_logits and maps.shape[-1] < kernel.shape[-1] // 2:
            raise ValueError(f"a map of {maps.shape[-2]}x{maps.shape[-1]} is smaller than the circular padding of "
                             f"the orbit's {kernel.shape[-1]}x{kernel.shape[-1]} kernels")
        # each sample its own kernel: samples become the channels of one grouped convolution
        maps = maps.transpose(0, 1)
        pad = circular_padding(kernel.shape[-1])
        padding = pad if on_logits else pad + pad
        convolve = F.conv1d if on_logits else F.conv2d
        for _ in range(n):
            maps = convolve(F.pad(maps, padding, mode="circular"), kernel.unsqueeze(1), groups=kernel.shape[0])
        return maps.transpose(0, 1)

    def _on_tokens(self, x: torch.Tensor, kernel: torch.Tensor, layer: int, n: int) -> torch.Tensor:
        """The action on a ViT's tokens ``[B, T, C]`` (see the class docstring)."""
        if x.dim() != 3:
            raise ValueError(f"with vit_input the orbit acts on tokens [batch, tokens, channels] in layer {layer}; got "
                             f"an output of shape {tuple(x.shape[1:])}")
        batch, tokens, channels = x.shape
        side = math.isqrt(tokens - 1)
        if side * side != tokens - 1:
            raise ValueError(f"with vit_input the orbit reads {tokens} - 1 tokens of layer {layer} as a square map; "
                             f"{tokens - 1} is no square")
        grid = x[:, :-1].transpose(1, 2).reshape(batch, channels, side, side)
        acted = self._convolve(grid, kernel, False, n)
        return torch.cat([acted.flatten(2).transpose(1, 2), x[:, -1:]], dim=1)



class AffineLearnedEquivariance(nn.Module):
    """orbit_transfer/models/learned_equiv.py ``LearnedEquivarianceSTSimple`` (``TransferModel(spatial_transformer=
    True)``): the learned orbit of the rotation experiment, one learned affine map per group element and layer
    (``theta[l, g]``: 3x4 over (channel, height, width) volumes with ``include_channels``, else 2x3 over the plane),
    applied by ``affine_grid`` and trilinear/bilinear ``grid_sample`` (zeros outside, corners not aligned, torch's
    defaults as there). Every element starts as the identity (the original's default, ``random_transform_init``
    unset). Images ``[B, C, H, W]`` act as volumes of depth 1 with ``include_channels``; P4 maps ``[B, C, 4, H, W]``
    as they are; a flat output as ``[B, 1, c, s, s]`` (``c`` channels of a square); the last layer's logits
    ``[B, 10]`` as ``[B, 1, 10, 1]``. Outputs of five axes come back as ``[B, C·D, H, W]``; ``n`` is not read (as
    there). Parameter name ``theta``, as the original's."""

    def __init__(self, group_size: int = 25, num_layers: int = 4, include_channels: bool = True):
        super().__init__()
        rows, cols = (3, 4) if include_channels else (2, 3)
        identity = torch.eye(rows, cols).flatten()
        self.theta = nn.Parameter(identity.repeat(num_layers + 1, group_size, 1))
        self.include_channels = bool(include_channels)
        self.num_layers = num_layers
        self.shape = (rows, cols)

    @property
    def group_size(self) -> int:
        return self.theta.shape[1]

    @property
    def n_layers(self) -> int:
        """How many layers of a network the orbit acts on besides the input."""
        return self.num_layers

    def element_parameters(self) -> torch.Tensor:
        """The input layer's G affine maps, flat (what the identity term compares)."""
        return self.theta[0]

    def forward(self, x: torch.Tensor, g: Optional[torch.Tensor] = None, l: int = 0, n: int = 1) -> torch.Tensor:  # noqa: E741
        if g is None:
            raise TypeError("AffineLearnedEquivariance acts on (inputs, group elements): call it as orbit(x, g, layer)")
        if not 0 <= l <= self.num_layers:
            raise ValueError(f"the orbit acts on {self.num_layers} layers, not on layer {l}")
        g = torch.as_tensor(g, device=self.theta.device) % self.group_size
        theta = self.theta[l][g].view(-1, *self.shape)
        flatten_after = False
        if x.dim() == 2 and l == self.num_layers:
            x = x.unsqueeze(1).unsqueeze(3)
        elif x.dim() == 2:
            x = flat_as_maps(x)
            if self.include_channels:
                x, flatten_after = x.unsqueeze(1), True
        if self.include_channels and x.dim() < 5:
            x, flatten_after = x.unsqueeze(2), True
        if x.dim() != (5 if self.include_channels else 4):
            raise ValueError(f"an orbit {'with' if self.include_channels else 'without'} include_channels cannot act on "
                             f"an output of shape {tuple(x.shape[1:])}")
        x = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), align_corners=False)
        return x.flatten(1, 2) if flatten_after else x


def learned_orbit_builder(dataloaders: Mapping[str, Any], seed: Optional[int],
                          state_dict: Optional[Mapping[str, Any]] = None, **config: Any) -> nn.Module:
    """The learned orbit of a translated ``MNIST1DModelConfig(type="static_equivariance_transfer")``
    (``StaticLearnedEquivariance``) or ``TransferModel()`` (``LearnedEquivariance``, the 2-D one;
    ``AffineLearnedEquivariance`` with ``spatial_transformer=True``): its ``options``,
    initial kernels drawn from ``seed`` (the global random state is left as it was); ``state_dict``: weights to
    load (they must fit)."""
    check_learned_orbit_config(config)
    options = config["options"]
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        if config["type"] == LEARNED_ORBIT_TYPE:
            orbit: nn.Module = StaticLearnedEquivariance(options["kernel_size"], options["group_size"], options["layers"])
        elif config["type"] == LEARNED_ORBIT_AFFINE_TYPE:
            orbit = AffineLearnedEquivariance(options["group_size"], options["num_layers"], options["include_channels"])
        else:
            orbit = LearnedEquivariance(options["kernel_size"], options["group_size"], options["num_layers"],
                                        options["output_size"], options["first_layer_transform"],
                                        options.get("vit_input", False))
    if state_dict is not None:
        orbit.load_state_dict({name: torch.as_tensor(value) for name, value in state_dict.items()})
    return orbit


def check_learned_orbit_config(config: Mapping[str, Any]) -> None:
    """``ValueError`` (one line) unless ``config`` is a learned orbit's: its type and positive sizes."""
    kind = config.get("type")
    kinds = (LEARNED_ORBIT_TYPE, LEARNED_ORBIT_2D_TYPE, LEARNED_ORBIT_AFFINE_TYPE)
    if kind not in kinds:
        raise ValueError(f"learned_orbit_builder builds {', '.join(map(repr, kinds))}, not {kind!r}")
    options = config.get("options") or {}
    sizes = {LEARNED_ORBIT_TYPE: ("kernel_size", "group_size"), LEARNED_ORBIT_AFFINE_TYPE: ("group_size",),
             LEARNED_ORBIT_2D_TYPE: ("kernel_size", "group_size", "output_size")}[kind]
    for name in sizes:
        if not isinstance(options.get(name), int) or options[name] < 1:
            raise ValueError(f"{kind}: {name} must be a positive whole number, got {options.get(name)!r}")
    layers = "layers" if kind == LEARNED_ORBIT_TYPE else "num_layers"
    if not isinstance(options.get(layers), int) or options[layers] < 0:
        raise ValueError(f"{kind}: {layers} must be a whole number >= 0, got {options.get(layers)!r}")
    if kind == LEARNED_ORBIT_2D_TYPE and options[layers] == 1 and not options.get("first_layer_transform"):
        raise ValueError(f"{kind}: num_layers=1 without first_layer_transform: the original acted on two layers then")


learned_orbit_builder.check_config = check_learned_orbit_config  # type: ignore[attr-defined]


__all__ = ["MODEL_PREFIX", "original_layers", "original_layers_of", "classification_model_builder",
           "StaticLearnedEquivariance", "LearnedEquivariance", "AffineLearnedEquivariance", "flat_as_maps",
           "build_gcnn", "build_vit", "learned_orbit_builder", "build_fc_single",
           "build_fully_conv_single", "build_simple_fully_conv", "build_simple_fc"]
