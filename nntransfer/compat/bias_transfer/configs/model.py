"""``ClassificationModel`` (``bias_transfer/configs/model/classification.py``) and ``ModelConfig`` as the
recipes of bias_transfer meant them: bias_transfer's ``classification_model_builder``
(``bias_transfer/models/__init__.py``), which built the original nntransfer's models
(``nntransfer/models/lenet.py`` of sinzlab/nntransfer), mapped onto this library's model builder."""

from typing import Any, Dict

from nntransfer.compat.bias_transfer.configs._fields import refused, translated
from nntransfer.configs.model.classification import ClassificationModelConfig

#: the function that builds these configs (it registers the original LeNet-5 before building)
BUILDER = "nntransfer.compat.bias_transfer.models.classification_model_builder"
#: original model type -> this library's model type with the same layers
MAPPED_TYPES = {"lenet5": "bias_transfer-lenet5", "lenet300-100": "lenet300-100"}
#: the original LeNet-5's ``core_type`` values
CORE_TYPES = ("conv", "lc", "fc")

_RESNET_VGG = "it is read by bias_transfer's ResNet/VGG builders, which are not mapped"


def _core_type(value: Any, config: Any, memory: Dict[str, Any]) -> Dict[str, Any]:
    """The original ``core_type`` of LeNet-5 (``conv``, ``lc``: locally connected, ``fc``: fully connected);
    the original default ``conv`` sets nothing, so that every mapped type keeps its default layers."""
    if value not in CORE_TYPES:
        raise ValueError(f"{type(config).__name__}: core_type={value!r} is none of the original LeNet-5's cores {CORE_TYPES}")
    if value == "conv":
        return {}
    return {"options": {"core": value}}


class ClassificationModel(ClassificationModelConfig):
    """bias_transfer's ``ClassificationModel`` (fields and defaults of July 2021).

    The number of classes and the input shape come from the data here (the original read ``num_classes``,
    ``input_channels``, ``input_width`` and ``input_height``, which only its per-data-set subclasses such as
    ``CIFAR10Model`` set).

    ==============================================  =============================================================
    original field (default)                        here
    ==============================================  =============================================================
    type ("resnet50")                               ``lenet5`` -> type ``bias_transfer-lenet5`` (the original
                                                    LeNet-5), ``lenet300-100`` -> ``lenet300-100``; others refused
    core_type ("conv")                              LeNet-5: options ``core`` ``lc`` / ``fc``; ``conv`` sets nothing
    dropout (0.0)                                   dropout (LeNet-5: after every hidden layer, convolutions included)
    get_intermediate_rep ({})                       refused unless {} (the original layer paths are not mapped)
    conv_stem_kernel_size (3), conv_stem_padding    refused unless default: read by the ResNet/VGG builders only
    (1), conv_stem_stride (1), core_stride (1),
    max_pool_after_stem (False), advanced_init
    (False), zero_init_residual (False),
    adaptive_pooling (False), avg_pool (False),
    readout_type ("dense")
    noise_adv_classification, noise_adv_regression  refused unless default: no noise-adversarial readout here
    (False), num_noise_readout_layers (1),
    noise_sigmoid_output (False)
    pretrained (False), pretrained_path ("")        refused unless default: nothing is downloaded here
    add_buffer (())                                 refused unless default: no extra parameter buffers here
    ==============================================  =============================================================
    """

    fn = BUILDER

    ALIASES = {
        "core_type": translated("core_type", _core_type, "options",
                                "core_type is the original LeNet-5's core; here options={'core': ...}"),
        "get_intermediate_rep": refused("get_intermediate_rep", {}, "the original layer paths (conv1, fc1...) are not "
                                                                   "mapped; use nntransfer.configs.ClassificationModelConfig"),
        "conv_stem_kernel_size": refused("conv_stem_kernel_size", 3, _RESNET_VGG),
        "conv_stem_padding": refused("conv_stem_padding", 1, _RESNET_VGG),
        "conv_stem_stride": refused("conv_stem_stride", 1, _RESNET_VGG),
        "core_stride": refused("core_stride", 1, _RESNET_VGG),
        "max_pool_after_stem": refused("max_pool_after_stem", False, _RESNET_VGG),
        "advanced_init": refused("advanced_init", False, _RESNET_VGG),
        "zero_init_residual": refused("zero_init_residual", False, _RESNET_VGG),
        "adaptive_pooling": refused("adaptive_pooling", False, _RESNET_VGG),
        "avg_pool": refused("avg_pool", False, _RESNET_VGG),
        "readout_type": refused("readout_type", "dense", _RESNET_VGG),
        "noise_adv_classification": refused("noise_adv_classification", False, "no noise-adversarial readout here"),
        "noise_adv_regression": refused("noise_adv_regression", False, "no noise-adversarial readout here"),
        "num_noise_readout_layers": refused("num_noise_readout_layers", 1, "no noise-adversarial readout here"),
        "noise_sigmoid_output": refused("noise_sigmoid_output", False, "no noise-adversarial readout here"),
        "pretrained": refused("pretrained", False, "no pretrained weights are downloaded here"),
        "pretrained_path": refused("pretrained_path", "", "no pretrained weights are downloaded here"),
        "add_buffer": refused("add_buffer", (), "no extra parameter buffers here"),
    }

    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.set_defaults(type="resnet50", dropout=0.0)
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        if self.type not in MAPPED_TYPES:
            raise ValueError(
                f"{type(self).__name__}: type={self.type!r} cannot be kept here: of bias_transfer's model builder only "
                f"{', '.join(MAPPED_TYPES)} are mapped (use nntransfer.configs.ClassificationModelConfig)"
            )
        if self.options.get("core", "conv") != "conv" and self.type != "lenet5":
            raise ValueError(f"{type(self).__name__}: core_type={self.options['core']!r} is an option of lenet5 only")
        super().conditional_assignment()


class ModelConfig(ClassificationModel):
    """``ModelConfig`` of a bias_transfer recipe: the original nntransfer's base class (``dropout``,
    ``get_intermediate_rep``), which named no function; bias_transfer's builder built it, so it means
    ``ClassificationModel`` here."""
