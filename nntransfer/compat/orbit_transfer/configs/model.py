"""orbit_transfer's model configs (orbit_transfer/configs/model/): ``ClassificationModel``, ``CNNModel``,
``MLPModel``, ``MNISTModel``, ``TransferModel`` and ``MNIST1DModelConfig``, with the original defaults, as this
library's ``ClassificationModelConfig``.

Mapped: the CNN (orbit_transfer/models/cnn.py) as ``cnn2d`` and the MLP (orbit_transfer/models/mlp.py) as
``mlp``, where the layers are the same (see ``CNNModel`` and ``MLPModel``); sinzlab/nntransfer's ResNets as
``resnet18/34/50``; orbit_transfer's ViT, P4 group CNN and learned orbits as the ``orbit_transfer-*`` types of
``nntransfer.compat.orbit_transfer.models``; each with the original's layer paths in ``get_intermediate_rep``
translated to ours. Refused (one line each): the other model types, and settings a mapped type cannot be.
"""

from __future__ import annotations

from typing import Any, Dict, List

from nntransfer.compat.orbit_transfer._translate import OriginalFields, Refused, integral, refuse_leftovers, warn_once
from nntransfer.configs.model import ClassificationModelConfig

#: the prefix of the MNIST-1D model types (``nntransfer.compat.orbit_transfer.models``, which imports torch)
MODEL_PREFIX = "orbit_transfer-"
#: the learned orbit of the MNIST-1D experiments (no classifier: built by ``learned_orbit_builder``)
LEARNED_ORBIT_TYPE = MODEL_PREFIX + "static_equivariance_transfer"
#: the learned orbit of the 2-D experiments (``TransferModel``; built by the same builder)
LEARNED_ORBIT_2D_TYPE = MODEL_PREFIX + "equiv_transfer"
#: and its affine one (``TransferModel(spatial_transformer=True)``, the rotation experiment's)
LEARNED_ORBIT_AFFINE_TYPE = MODEL_PREFIX + "equiv_transfer_affine"

#: sinzlab/nntransfer nntransfer/configs/model/base.py: ModelConfig's fields
ORIGINAL_MODEL = {"dropout": 0.0, "get_intermediate_rep": {}}

#: orbit_transfer/configs/model/classification.py: ClassificationModel's fields (for its ResNet/VGG builders)
ORIGINAL_CLASSIFICATION = {
    "type": "resnet50", "core_type": "conv", "conv_stem_kernel_size": 3, "conv_stem_padding": 1,
    "conv_stem_stride": 1, "core_stride": 1, "max_pool_after_stem": False, "advanced_init": False,
    "zero_init_residual": False, "adaptive_pooling": False, "avg_pool": False, "noise_adv_classification": False,
    "noise_adv_regression": False, "num_noise_readout_layers": 1, "noise_sigmoid_output": False,
    "pretrained": False, "pretrained_path": "", "readout_type": "dense", "add_buffer": (),
}

#: orbit_transfer/models/group_cnn.py GCNN's layer names (its ``IntermediateLayerGetter`` paths) -> those of
#: the model type ``orbit_transfer-gcnn`` (``nntransfer.compat.orbit_transfer.models.build_gcnn``)
GCNN_LAYERS = {**{f"{kind}{i}": f"core.{kind}{i}" for kind in ("conv", "pool") for i in (1, 2, 3)},
               "conv4": "readout.conv4", "pool4": "readout.pool4", "pool5": "readout.pool5", "flatten": "readout.flatten"}

#: the original MNIST models have 10 outputs; ours read the number of classes from the data
MNIST_CLASSES = 10
#: what orbit_transfer's vit_builder read besides the classes and channels
VIT_FIELDS = ("image_size", "patch_size", "dim", "depth", "heads", "mlp_dim")

#: the ResNets of sinzlab/nntransfer's resnet_builder that this library builds (``resnet18``, ``resnet34``,
#: ``resnet50``: the same blocks, widths and strides)
RESNET_DEPTHS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3)}


def resnet_layer_paths(model_type: str, stem_pool: bool) -> Dict[str, str]:
    """sinzlab/nntransfer's ResNet (torchvision's module names) -> this library's ``resnet*`` paths. A block's
    ``relu`` is left out: the original applied that one in-place module twice per block."""
    blocks = RESNET_DEPTHS[model_type]
    parts = ("conv1", "bn1", "conv2", "bn2") + (("conv3", "bn3") if model_type == "resnet50" else ())
    paths = {"conv1": "core.stem.conv", "bn1": "core.stem.bn", "relu": "core.stem.relu", "maxpool": "core.stem.pool" if stem_pool else "core.stem.relu",
             "avgpool": "readout.pool", "flatten": "readout.flatten", "fc": "readout.fc"}
    for stage, count in enumerate(blocks, start=1):
        paths[f"layer{stage}"] = f"core.layer{stage}"
        for block in range(count):
            here = f"layer{stage}.{block}"
            paths[here] = f"core.{here}"
            paths.update({f"{here}.{part}": f"core.{here}.{part}" for part in parts})
            if block == 0 and (stage > 1 or model_type == "resnet50"):
                paths.update({f"{here}.downsample": f"core.{here}.shortcut", f"{here}.downsample.0": f"core.{here}.shortcut.conv",
                              f"{here}.downsample.1": f"core.{here}.shortcut.bn"})
    return paths


def vit_layer_paths(depth: int) -> Dict[str, str]:
    """orbit_transfer/models/vit.py ViT's layer paths (``depth`` blocks) -> those of ``orbit_transfer-vit``."""
    paths = {"mlp_head.0": "readout.0", "mlp_head.1": "readout.1", "mlp_head.2": "readout.2", "mlp_head": "readout",
             "to_cls_token": "core.to_cls_token", "transformer": "core.transformer",
             "patch_to_embedding": "core.patch_to_embedding"}
    for i in range(depth):
        here = f"transformer.layers.{i}"
        paths.update({f"{here}.0": f"core.{here}.0", f"{here}.1": f"core.{here}.1",
                      f"{here}.0.norm": f"core.{here}.0.norm", f"{here}.1.norm": f"core.{here}.1.norm",
                      f"{here}.0.fn": f"core.{here}.0.fn", f"{here}.1.fn": f"core.{here}.1.fn",
                      f"{here}.0.fn.to_qkv": f"core.{here}.0.fn.to_qkv", f"{here}.0.fn.to_out": f"core.{here}.0.fn.to_out",
                      f"{here}.0.fn.attend": f"core.{here}.0.fn.attend"})
        paths.update({f"{here}.1.fn.net.{k}": f"core.{here}.1.fn.net.{k}" for k in range(5)})
        paths.update({f"{here}.0.fn.to_out.{k}": f"core.{here}.0.fn.to_out.{k}" for k in range(2)})
    return paths


#: sinzlab/nntransfer's resnet_builder reads these fields of orbit_transfer's ClassificationModel / MNISTModel
RESNET_READ = ("conv_stem_kernel_size", "conv_stem_padding", "conv_stem_stride", "core_stride", "max_pool_after_stem",
               "adaptive_pooling", "advanced_init", "zero_init_residual", "num_classes", "input_channels")


def _take_common(owner: str, original: Dict[str, Any]) -> None:
    """The ResNet/VGG fields of orbit_transfer's ClassificationModel: unread by the CNN and MLP builders; those
    that change what a model is (a pretrained download, a noise-adversarial head) are refused, as none is mapped."""
    for name in ("pretrained", "noise_adv_classification", "noise_adv_regression"):
        if original.get(name):
            raise Refused(owner, f"{name}=True: orbit_transfer's model builder's {name} is not mapped")
    for name in ORIGINAL_CLASSIFICATION:
        if name != "type":
            original.pop(name, None)


def _paths(owner: str, rep: Dict[str, str], mapping: Dict[str, str]) -> Dict[str, str]:
    """``get_intermediate_rep`` ({name: layer path} here) with the original's layer paths made ours."""
    out = {}
    for name, layer in rep.items():
        if layer not in mapping:
            raise Refused(owner, f"get_intermediate_rep layer {layer!r} is no layer of the original model "
                                 f"(its layers: {', '.join(sorted(mapping, key=lambda p: int(p.split('.')[-1])))})")
        out[name] = mapping[layer]
    return out


def cnn_layer_paths(num_layers: int, pool_size: List[int], dropout: Any, batch_norm: bool) -> Dict[str, str]:
    """orbit_transfer/models/cnn.py's ``layers.<i>`` -> ``cnn2d``'s paths (a MaxOut of 1 and a max pool of 1
    compute nothing: their output is the layer's before them)."""
    paths: Dict[str, str] = {}
    i = 0
    for block in range(1, num_layers):
        paths[f"layers.{i}"] = f"core.conv{block}"
        paths[f"layers.{i + 1}"] = f"core.conv{block}"  # MaxOut(1)
        i += 2
        if batch_norm:
            paths[f"layers.{i}"] = f"core.bn{block}"
            i += 1
        paths[f"layers.{i}"] = f"core.relu{block}"
        paths[f"layers.{i + 1}"] = f"core.pool{block}" if pool_size[block - 1] > 1 else f"core.relu{block}"
        i += 2
        if dropout is not None:
            paths[f"layers.{i}"] = f"core.dropout{block}" if dropout else paths[f"layers.{i - 1}"]
            i += 1
    paths[f"layers.{i}"] = "core.pool"
    paths[f"layers.{i + 1}"] = "core.flatten"
    paths[f"layers.{i + 2}"] = "readout.fc"
    return paths


def mlp_layer_paths(num_layers: int, dropout: Any) -> Dict[str, str]:
    """orbit_transfer/models/mlp.py's ``layers.<i>`` -> ``mlp``'s paths (without batch norm)."""
    paths = {"layers.0": "core.flatten"}
    i = 1
    for block in range(1, num_layers):
        paths[f"layers.{i}"] = f"core.fc{block}"
        paths[f"layers.{i + 1}"] = f"core.relu{block}"
        i += 2
        if dropout is not None:
            paths[f"layers.{i}"] = f"core.dropout{block}" if dropout else f"core.relu{block}"
            i += 1
    paths[f"layers.{i}"] = "readout.fc"
    return paths


class ClassificationModel(OriginalFields, ClassificationModelConfig):
    """orbit_transfer/configs/model/classification.py: the types ``cnn``, ``mlp``, ``gcnn``, ``vit``,
    ``resnet18/34/50`` and the learned orbit ``equiv_transfer`` (``TransferModel``); other types are refused with
    one line."""

    ORIGINAL = {**ORIGINAL_MODEL, **ORIGINAL_CLASSIFICATION}

    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.declare_original_defaults(ClassificationModel, kwargs)
        super().__init__(**kwargs)

    def translate(self, original: Dict[str, Any]) -> Dict[str, Any]:
        owner = type(self).__name__
        model_type = original.pop("type", "resnet50")
        if model_type == "cnn":
            return self._cnn(owner, original)
        if model_type == "mlp":
            return self._mlp(owner, original)
        if model_type == "equiv_transfer":
            return self._learned_orbit(owner, original)
        if model_type == "gcnn":
            return self._gcnn(owner, original)
        if model_type in RESNET_DEPTHS:
            return self._resnet(owner, model_type, original)
        if model_type == "vit":
            return self._vit(owner, original)
        raise Refused(owner, f"type={model_type!r}: this orbit_transfer model type is not mapped onto nntransfer's "
                             f"model types (mapped: cnn, mlp, gcnn, vit, {', '.join(RESNET_DEPTHS)}, equiv_transfer)")

    def _common(self, owner: str, original: Dict[str, Any]) -> None:
        _take_common(owner, original)
        output_size = original.pop("output_size", MNIST_CLASSES)
        if output_size != MNIST_CLASSES:
            raise Refused(owner, f"output_size={output_size!r}: the models here have as many outputs as the data "
                                 f"has classes; only MNIST's {MNIST_CLASSES} are mapped")
        activation = original.pop("activation", "relu")
        if activation != "relu":
            raise Refused(owner, f"activation={activation!r}: only 'relu' is mapped")

    def _cnn(self, owner: str, original: Dict[str, Any]) -> Dict[str, Any]:
        """orbit_transfer/models/cnn.py: per block Conv2d (bias) -> MaxOut -> [BatchNorm2d] -> activation ->
        MaxPool2d -> [Dropout], then a global average, a flatten and a linear readout (bias)."""
        self._common(owner, original)
        num_layers = original.pop("num_layers")
        channels, kernels = list(original.pop("channels")), list(original.pop("kernel_size"))
        pools, max_out = list(original.pop("pool_size")), list(original.pop("max_out"))
        dropout, batch_norm = original.pop("dropout", 0.0), bool(original.pop("batch_norm", False))
        rep = original.pop("get_intermediate_rep", {}) or {}
        refuse_leftovers(owner, original)
        blocks = num_layers - 1
        if len(channels) != num_layers or len(kernels) < blocks or len(pools) < blocks or len(max_out) < blocks:
            raise Refused(owner, "channels, kernel_size, pool_size and max_out do not describe num_layers layers")
        if any(m != 1 for m in max_out[:blocks]):
            raise Refused(owner, f"max_out={max_out!r}: a MaxOut over more than one channel has no counterpart in cnn2d")
        if channels[0] != 1:
            raise Refused(owner, f"channels[0]={channels[0]!r}: only MNIST's one input channel is mapped")
        return {
            "type": "cnn2d",
            "options": {"channels": channels[1:], "kernel_sizes": kernels[:blocks], "pool_sizes": pools[:blocks],
                        "padding": 0, "global_pool": "avg", "core_bias": True},
            "dropout": float(dropout or 0.0),
            "batch_norm": batch_norm,
            "readout_bias": True,
            "get_intermediate_rep": _paths(owner, rep, cnn_layer_paths(num_layers, pools, dropout, batch_norm)),
        }

    def _mlp(self, owner: str, original: Dict[str, Any]) -> Dict[str, Any]:
        """orbit_transfer/models/mlp.py: Flatten, per hidden layer Linear (bias) -> activation -> [BatchNorm1d]
        -> [Dropout], then a linear readout without bias."""
        self._common(owner, original)
        num_layers = original.pop("num_layers")
        sizes = list(original.pop("layer_size"))
        dropout, batch_norm = original.pop("dropout", 0.0), bool(original.pop("batch_norm", False))
        rep = original.pop("get_intermediate_rep", {}) or {}
        refuse_leftovers(owner, original)
        if batch_norm:
            raise Refused(owner, "batch_norm=True: the original MLP normalises after the activation, nntransfer's "
                                 "mlp before it")
        if len(sizes) != num_layers:
            raise Refused(owner, f"layer_size={sizes!r} does not describe num_layers={num_layers} layers")
        if sizes[0] != 28 * 28:
            raise Refused(owner, f"layer_size[0]={sizes[0]!r}: only MNIST's 28x28 inputs are mapped")
        return {
            "type": "mlp",
            "options": {"hidden_sizes": sizes[1:], "core_bias": True},
            "dropout": float(dropout or 0.0),
            "batch_norm": False,
            "readout_bias": False,
            "get_intermediate_rep": _paths(owner, rep, mlp_layer_paths(num_layers, dropout)),
        }


    @staticmethod
    def _resnet(owner: str, model_type: str, original: Dict[str, Any]) -> Dict[str, Any]:
        """sinzlab/nntransfer models/resnet.py ``resnet_builder`` (torchvision's blocks; the stem from the config;
        PyTorch's default initialisation unless ``advanced_init``; ``AvgPool2d(4)`` before ``fc`` unless
        ``adaptive_pooling``) as this library's ``resnet18/34/50``, which has the same blocks, widths, strides and
        initialisation and averages globally: the same network wherever the last maps are 4x4 (MNIST's 28x28 with
        the default stem). Refused in one line: what it cannot be (another input, ``core_stride``, the
        ``advanced_init`` initialisation, a pool that is not global)."""
        read = {name: original.pop(name, ORIGINAL_CLASSIFICATION.get(name)) for name in RESNET_READ}
        width, height = original.pop("input_width", None), original.pop("input_height", None)
        for name in ("core_type", "avg_pool", "readout_type", "num_noise_readout_layers", "noise_sigmoid_output",
                     "pretrained_path", "add_buffer"):
            original.pop(name, None)  # read by no part of resnet_builder
        _take_common(owner, original)
        rep = original.pop("get_intermediate_rep", {}) or {}
        dropout = original.pop("dropout", 0.0)
        refuse_leftovers(owner, original)
        if read["num_classes"] != MNIST_CLASSES:
            raise Refused(owner, f"num_classes={read['num_classes']!r}: the models here have as many outputs as the data has "
                                 f"classes; only MNIST's {MNIST_CLASSES} are mapped (MNISTModel declares it)")
        if read["input_channels"] != 1 or (width, height) not in ((28, 28), (None, None)):
            raise Refused(owner, f"input_channels={read['input_channels']!r}, input {width}x{height}: only MNIST's "
                                 "28x28 images of one channel are mapped")
        if dropout:
            raise Refused(owner, f"dropout={dropout!r}: resnet_builder's ResNet has no dropout")
        if read["core_stride"] != 1:
            raise Refused(owner, f"core_stride={read['core_stride']!r}: a strided first stage has no counterpart in resnet*")
        if read["advanced_init"]:
            raise Refused(owner, "advanced_init=True: the fan-out Kaiming initialisation is not mapped (resnet* starts "
                                 "from PyTorch's defaults, as the original did without it)")
        if read["zero_init_residual"]:
            warn_once(owner, "zero_init_residual=True is read by resnet_builder only with advanced_init=True (dropped)")
        kernel, stride, padding = (integral(owner, name, read[name]) for name in
                                   ("conv_stem_kernel_size", "conv_stem_stride", "conv_stem_padding"))
        pool = bool(read["max_pool_after_stem"])
        side = (28 + 2 * padding - kernel) // stride + 1
        side = (side - 1) // 2 + 1 if pool else side
        for _ in range(3):
            side = (side - 1) // 2 + 1
        if not read["adaptive_pooling"] and side != 4:
            raise Refused(owner, f"the last maps are {side}x{side} and the original pooled them with AvgPool2d(4), "
                                 "which is no global average there: set adaptive_pooling=True")
        return {
            "type": model_type,
            "options": {"stem_kernel": kernel, "stem_stride": stride, "stem_padding": padding, "stem_pool": pool,
                        "zero_init_residual": False},
            "dropout": 0.0, "batch_norm": True, "readout_bias": True,
            "get_intermediate_rep": _paths(owner, rep, resnet_layer_paths(model_type, pool)),
        }

    @staticmethod
    def _vit(owner: str, original: Dict[str, Any]) -> Dict[str, Any]:
        """orbit_transfer/models/vit.py ``vit_builder``: its own ``ViT`` (the config never declared ``orig_vit``, so
        vit-pytorch's own was never built) as the model type ``orbit_transfer-vit``
        (``nntransfer.compat.orbit_transfer.models.build_vit``); it read ``image_size``, ``patch_size``,
        ``num_classes``, ``channels``, ``dim``, ``depth``, ``heads``, ``mlp_dim`` and nothing else."""
        if original.pop("orig_vit", None):
            raise Refused(owner, "orig_vit=True: vit-pytorch's own ViT is not mapped (orbit_transfer's ViT is)")
        options = {name: integral(owner, name, original.pop(name)) for name in
                   ("image_size", "patch_size", "dim", "depth", "heads", "mlp_dim") if name in original}
        missing = sorted(set(VIT_FIELDS) - set(options))
        if missing:
            raise Refused(owner, f"{', '.join(missing)} not set: vit_builder read them from the config, which declared none")
        classes, channels = original.pop("num_classes", None), original.pop("channels", None)
        if classes != MNIST_CLASSES or channels != 1:
            raise Refused(owner, f"num_classes={classes!r}, channels={channels!r}: only MNIST's {MNIST_CLASSES} classes "
                                 "and one channel are mapped")
        for name in ("emb_dropout", "dropout"):
            original.pop(name, None)  # orbit_transfer's ViT has no dropout; emb_dropout went to vit-pytorch's only
        _take_common(owner, original)
        rep = original.pop("get_intermediate_rep", {}) or {}
        refuse_leftovers(owner, original)
        return {"fn": MNIST1D_BUILDER, "type": MODEL_PREFIX + "vit", "options": options, "dropout": 0.0,
                "readout_bias": True, "batch_norm": False,
                "get_intermediate_rep": _paths(owner, rep, vit_layer_paths(options["depth"]))}

    @staticmethod
    def _gcnn(owner: str, original: Dict[str, Any]) -> Dict[str, Any]:
        """orbit_transfer/models/group_cnn.py ``gcnn_builder``: ``GCNN`` or ``GCNN_small`` (``small``), with
        ``output_size`` outputs; it read nothing else. The fields of the CNN the recipes' teacher class sets for
        its other use (channels, dropout, ...) are dropped with a warning; ``large_filters`` was read by nothing."""
        _take_common(owner, original)
        if original.pop("output_size", MNIST_CLASSES) != MNIST_CLASSES:
            raise Refused(owner, f"output_size other than {MNIST_CLASSES}: the models here have as many outputs as the "
                                 "data has classes")
        small = bool(original.pop("small", None))
        if original.pop("large_filters", None):
            raise Refused(owner, "large_filters=True is read by nothing in orbit_transfer's gcnn builder")
        rep = original.pop("get_intermediate_rep", {}) or {}
        unread = {name: original.pop(name) for name in ("num_layers", "channels", "kernel_size", "pool_size", "max_out",
                                                        "activation", "dropout", "batch_norm") if name in original}
        refuse_leftovers(owner, original)
        warn_once(owner, f"{', '.join(f'{k}={v!r}' for k, v in unread.items())} read by nothing in orbit_transfer's "
                         "gcnn builder (dropped)" if unread else "")
        return {"fn": MNIST1D_BUILDER, "type": MODEL_PREFIX + "gcnn", "options": {"small": small}, "dropout": 0.0,
                "readout_bias": False, "batch_norm": False, "get_intermediate_rep": _paths(owner, rep, GCNN_LAYERS)}

    @staticmethod
    def _learned_orbit(owner: str, original: Dict[str, Any]) -> Dict[str, Any]:
        """orbit_transfer/models/learned_equiv.py ``equiv_builder``: ``LearnedEquivariance(kernel_size, group_size,
        num_layers, output_size, vit_input, first_layer_transform)`` (``models.LearnedEquivariance``). The
        original's config declared neither ``first_layer_transform`` nor ``vit_input`` and read None where a
        recipe left them out: no transform for the first layer, no ViT tokens."""
        _take_common(owner, original)
        for name, unread in (("dropout", 0.0), ("get_intermediate_rep", {})):
            value = original.pop(name, unread)
            if value not in (unread, None, {}):
                raise Refused(owner, f"{name}={value!r}: LearnedEquivariance does not read it")
        vit_input = bool(original.pop("vit_input", None))
        if original.pop("spatial_transformer", None):
            if vit_input:
                raise Refused(owner, "vit_input=True with spatial_transformer=True: the affine orbit did not read it")
            return _affine_orbit(owner, original)
        options = {name: integral(owner, name, original.pop(name))
                   for name in ("kernel_size", "group_size", "num_layers", "output_size")}
        options["first_layer_transform"] = bool(original.pop("first_layer_transform", None))
        if vit_input:  # left out of the key when unset, as before it was mapped
            options["vit_input"] = True
        for name in ("only_translation", "prevent_translation", "include_channels", "gaussian_transform",
                     "random_transform_init", "gaussian_std_init"):
            if original.pop(name, None):
                raise Refused(owner, f"{name} is read only by the affine orbit (spatial_transformer=True)")
        refuse_leftovers(owner, original)
        if options["output_size"] != MNIST_CLASSES:
            raise Refused(owner, f"output_size={options['output_size']!r}: the orbit's last layer acts on the logits; "
                                 f"only MNIST's {MNIST_CLASSES} are mapped")
        return {"fn": LEARNED_ORBIT_BUILDER, "type": LEARNED_ORBIT_2D_TYPE, "options": options, "dropout": 0.0,
                "readout_bias": False, "batch_norm": False}


def _affine_orbit(owner: str, original: Dict[str, Any]) -> Dict[str, Any]:
    """``LearnedEquivarianceSTSimple(num_layers, group_size, only_translation, prevent_translation,
    include_channels, gaussian_transform, random_transform_init, gaussian_std_init)``
    (``models.AffineLearnedEquivariance``); ``kernel_size`` and ``output_size`` are not read by it."""
    for name, why in (("only_translation", "translations only"), ("prevent_translation", "maps without translation"),
                      ("gaussian_transform", "maps drawn from learned Gaussians"),
                      ("random_transform_init", "random initial maps")):
        if original.pop(name, None):
            raise Refused(owner, f"{name}=True (the affine orbit's {why}) is not mapped")
    original.pop("gaussian_std_init", None)  # read only with gaussian_transform
    options = {name: integral(owner, name, original.pop(name)) for name in ("group_size", "num_layers")}
    options["include_channels"] = bool(original.pop("include_channels", None))
    for name in ("kernel_size", "output_size", "first_layer_transform"):
        original.pop(name, None)
    refuse_leftovers(owner, original)
    return {"fn": LEARNED_ORBIT_BUILDER, "type": LEARNED_ORBIT_AFFINE_TYPE, "options": options, "dropout": 0.0,
            "readout_bias": False, "batch_norm": False}


class MNISTModel(ClassificationModel):
    """orbit_transfer/configs/model/simple_2d.py MNISTModel: LeNet-5 by default (refused: not mapped); with
    ``type="resnet18"`` (mnist_2d_resnet_vit.py's teacher) sinzlab/nntransfer's ResNet-18 (``_resnet``)."""

    ORIGINAL = {"type": "lenet5", "num_classes": 10, "input_width": 28, "input_height": 28, "input_channels": 1}

    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.declare_original_defaults(MNISTModel, kwargs)
        super().__init__(**kwargs)


class CNNModel(ClassificationModel):
    """orbit_transfer/configs/model/simple_2d.py CNNModel, with its defaults (MaxOut 4 in the last block and
    batch norm: refused, as cnn2d has no MaxOut); the paper's teacher (channels [1, 128, 64, 64], pools
    [1, 2, 3], MaxOut 1, dropout 0.1, no batch norm) is ``cnn2d`` with its defaults and dropout 0.1."""

    ORIGINAL = {"type": "cnn", "output_size": 10, "num_layers": 4, "channels": [1, 128, 64, 64],
                "kernel_size": [3, 3, 3], "pool_size": [1, 2, 2], "max_out": [1, 1, 4], "activation": "relu",
                "dropout": 0.3, "batch_norm": True}

    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.declare_original_defaults(CNNModel, kwargs)
        super().__init__(**kwargs)


class MLPModel(ClassificationModel):
    """orbit_transfer/configs/model/simple_2d.py MLPModel (batch norm by default: refused); the paper's student
    (784-512-128-32-10, dropout 0.1, no batch norm) is ``mlp`` with hidden sizes [512, 128, 32], no readout bias."""

    ORIGINAL = {"type": "mlp", "output_size": 10, "num_layers": 4, "layer_size": [28 * 28, 512, 128, 32],
                "activation": "relu", "dropout": 0.1, "batch_norm": True}

    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.declare_original_defaults(MLPModel, kwargs)
        super().__init__(**kwargs)


class TransferModel(ClassificationModel):
    """orbit_transfer/configs/model/simple_2d.py TransferModel: the learned orbit of the 2-D experiments,
    ``models.LearnedEquivariance`` (see ``ClassificationModel._learned_orbit``), which the compat
    ``EquivarianceTransfer`` regularization learns (``switch_teacher=True``) and transfers."""

    ORIGINAL = {"type": "equiv_transfer", "output_size": 10, "num_layers": 4, "kernel_size": 5, "group_size": 25}

    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.declare_original_defaults(TransferModel, kwargs)
        super().__init__(**kwargs)


#: orbit_transfer/models/mnist_1d.py's model types and the fields each one's builder reads (besides ``type``; the
#: ``simple_*`` types also read ``layers``)
_MNIST1D_FIELDS = {
    "fc_single": ("hidden_dim",),
    "fully_conv_single": ("channels", "kernel_size", "stride", "padding"),
    "simple_fully_conv": ("channels", "kernel_size", "stride", "padding"),
    "simple_fc": ("channels",),
}
#: what ``nntransfer.compat.orbit_transfer.models`` builds them with (it registers the types)
MNIST1D_BUILDER = "nntransfer.compat.orbit_transfer.models.classification_model_builder"
#: and the learned orbit
LEARNED_ORBIT_BUILDER = "nntransfer.compat.orbit_transfer.models.learned_orbit_builder"
#: the length of an MNIST-1D signal, which the original's ``input_size`` must match
MNIST1D_LENGTH = 40


class MNIST1DModelConfig(ClassificationModel):
    """orbit_transfer/configs/model/simple_1d.py: the MNIST-1D models of orbit_transfer/models/mnist_1d.py,
    built as the model types ``orbit_transfer-<type>`` (``nntransfer.compat.orbit_transfer.models``) with the
    fields the original builder read for that type (``layers`` too, which the recipes set); the learned orbit
    ``static_equivariance_transfer`` (``kernel_size``, ``group_size``, ``layers``) as
    ``models.StaticLearnedEquivariance``, which only the step loop of ``SimpleTrainerConfig`` trains and reads.
    Refused: values the original would have crashed on or ignored: ``input_size`` other than MNIST-1D's 40, ``num_classes`` other than 10 (the original's
    models have 10 outputs whatever it says), a ``dropout`` or ``get_intermediate_rep`` (unread by those
    models)."""

    ORIGINAL = {"type": "fc_single", "num_classes": 10, "input_size": 40, "hidden_dim": 400, "channels": 15,
                "stride": 1, "padding": 2, "kernel_size": 5, "group_size": 40}

    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.declare_original_defaults(MNIST1DModelConfig, kwargs)
        super().__init__(**kwargs)

    def translate(self, original: Dict[str, Any]) -> Dict[str, Any]:
        owner = type(self).__name__
        model_type = original.pop("type", "fc_single")
        if model_type == "static_equivariance_transfer":
            return self.learned_orbit(owner, original)
        if model_type not in _MNIST1D_FIELDS:
            raise Refused(owner, f"type={model_type!r} is no model type of orbit_transfer/models/mnist_1d.py "
                                 f"(its types: {', '.join(sorted(_MNIST1D_FIELDS))}, static_equivariance_transfer)")
        _take_common(owner, original)
        if original.pop("num_classes", MNIST_CLASSES) != MNIST_CLASSES:
            raise Refused(owner, "num_classes other than 10: the original's MNIST-1D models have 10 outputs whatever "
                                 "num_classes says")
        input_size = original.pop("input_size", MNIST1D_LENGTH)
        if input_size != MNIST1D_LENGTH:
            raise Refused(owner, f"input_size={input_size!r}: MNIST-1D signals have {MNIST1D_LENGTH} values")
        for name, unread in (("dropout", 0.0), ("get_intermediate_rep", {})):
            value = original.pop(name, unread)
            if value not in (unread, None, {}):
                raise Refused(owner, f"{name}={value!r}: orbit_transfer's MNIST-1D models do not read it")
        if model_type.startswith("simple_") and "layers" not in original:
            raise Refused(owner, f"type={model_type!r} without layers: the original builder reads config.layers, which "
                                 "MNIST1DModelConfig does not declare (set it, as the recipes do)")
        layers = original.get("layers", 2)
        if not model_type.startswith("simple_") and layers != 2:
            raise Refused(owner, f"type={model_type!r} with layers={original['layers']!r}: the original model has two "
                                 "layers whatever layers says")
        original.pop("layers", None)  # read by the simple_* types (below), and 2 like the single-layer types' own
        options = {name: original.pop(name) for name in _MNIST1D_FIELDS[model_type] if name in original}
        if model_type.startswith("simple_"):
            options["layers"] = layers
        for name in ("hidden_dim", "channels", "stride", "padding", "kernel_size", "group_size"):
            original.pop(name, None)  # the fields this type's original builder does not read
        refuse_leftovers(owner, original)
        for name, value in options.items():
            options[name] = integral(owner, name, value)
        return {"fn": MNIST1D_BUILDER, "type": MODEL_PREFIX + model_type, "options": options, "dropout": 0.0,
                "readout_bias": False, "batch_norm": False}

    @staticmethod
    def learned_orbit(owner: str, original: Dict[str, Any]) -> Dict[str, Any]:
        """The fields of ``StaticLearnedEquivariance(kernel_size, group_size, layers)``, as the original's
        model_fn read them (it read ``config.layers``, which the class does not declare)."""
        if "layers" not in original:
            raise Refused(owner, "type='static_equivariance_transfer' without layers: the original builder reads "
                                 "config.layers, which MNIST1DModelConfig does not declare (set it, as the recipes do)")
        _take_common(owner, original)
        for name, unread in (("dropout", 0.0), ("get_intermediate_rep", {})):
            value = original.pop(name, unread)
            if value not in (unread, None, {}):
                raise Refused(owner, f"{name}={value!r}: StaticLearnedEquivariance does not read it")
        options = {name: integral(owner, name, original.pop(name)) for name in ("kernel_size", "group_size", "layers")}
        for name in ("num_classes", "input_size", "hidden_dim", "channels", "stride", "padding"):
            original.pop(name, None)  # read by the classifiers' builders, not by the orbit's
        refuse_leftovers(owner, original)
        return {"fn": LEARNED_ORBIT_BUILDER, "type": LEARNED_ORBIT_TYPE, "options": options, "dropout": 0.0,
                "readout_bias": False, "batch_norm": False}


__all__ = ["ClassificationModel", "CNNModel", "MLPModel", "MNISTModel", "TransferModel", "MNIST1DModelConfig"]
