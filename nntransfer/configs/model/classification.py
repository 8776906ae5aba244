"""`ClassificationModelConfig`: the image classification models of ``nntransfer.models``."""

from typing import Any, Dict, Optional

from nntransfer.configs.base import DEFAULT_EMPTY
from nntransfer.configs.model.base import ModelConfig
from nntransfer.configs.original import Alias, input_size_alias


def _names_to_layers(value: Any, config: Any, memory: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The original ``get_intermediate_rep`` maps layer paths to output names (torchvision's
    ``return_layers``); today's maps output names to layer paths."""
    if not isinstance(value, dict) or not value or value.get(DEFAULT_EMPTY):
        return None
    by_name: Dict[Any, Any] = {}
    for layer, name in value.items():
        if name in by_name:
            raise ValueError(f"{type(config).__name__}.get_intermediate_rep (original form {{layer: name}}) gives "
                             f"the name {name!r} to both {by_name[name]!r} and {layer!r}")
        by_name[name] = layer
    return {"get_intermediate_rep": by_name}


#: 0.4.0's fields that are model types' options since 0.5.0: keyword -> (option, the built-in types that have it)
OPTION_KEYWORDS = {
    "core_type": ("core_type", "lenet5"),
    "mlp_hidden_sizes": ("hidden_sizes", "mlp"),
    "core_bias": ("core_bias", "mlp, lenet300-100, cnn1d_invariant"),
    "stem_kernel": ("stem_kernel", "resnet18/34/50"),
    "stem_stride": ("stem_stride", "resnet18/34/50"),
    "stem_padding": ("stem_padding", "resnet18/34/50"),
    "stem_pool": ("stem_pool", "resnet18/34/50"),
    "zero_init_residual": ("zero_init_residual", "resnet18/34/50"),
    "readout_type": ("readout_type", "vgg11/13/16/19"),
    "readout_hidden_size": ("readout_hidden_size", "vgg11/13/16/19"),
}


def _option_keyword(keyword: str, option: str, types: str) -> Alias:
    """``keyword=value`` (a field until 0.4.0) sets ``options[option]``; keywords of one call (or one
    construction) add up, on top of the options the config has."""

    def convert(value: Any, config: Any, memory: Dict[str, Any]) -> Dict[str, Any]:
        options = memory.get("options")
        if options is None:
            current = config.__dict__.get("options")
            options = dict(current) if isinstance(current, dict) and not current.get(DEFAULT_EMPTY) else {}
            memory["options"] = options
        options[option] = value
        return {"options": dict(options)}

    return Alias("options", convert=convert,
                 hint=f"{keyword!r} is an option of {types} since 0.5.0; use options={{{{{option!r}: ...}}}}")


class ClassificationModelConfig(ModelConfig):
    """Settings of ``nntransfer.models.classification_model_builder``.

    The number of classes and the input shape come from the data (the train loader's ``n_classes`` and
    ``input_shape``), so one config works across data sets.

    Fields:
        type: registered model type; see ``nntransfer.models.registered_types()``: ``lenet5``,
            ``lenet300-100``, ``mlp``, ``resnet18``/``resnet34``/``resnet50``, ``vgg11``/``vgg13``/``vgg16``/``vgg19``,
            ``cnn2d``, ``vit`` and ``gcnn`` (the 2-D models of Nix, Sinz et al., AISTATS 2022); for ``(C, L)`` signals ``conv1d`` and ``cnn1d_invariant`` (circular convolutions and a global
            max: exactly invariant to circular shifts).
        options: the model type's own options (``{}``: its defaults); only what is set here is hashed, so
            a new model type or option leaves every other config's key as it is. The built-in types' options
            (defaults; checked against ``nntransfer.models.model_spec(type).options`` before anything runs):

            - ``lenet5``: ``core_type`` (``"conv"``): layers of the core: ``conv`` (shared weights),
              ``locally_connected`` (same receptive fields, unshared weights) or ``fully_connected`` (dense
              layers with the conv layers' output sizes).
            - ``mlp``: ``hidden_sizes`` (``[512, 256]``): hidden layer widths; ``core_bias`` (True).
            - ``lenet300-100``, ``cnn1d_invariant``: ``core_bias`` (True): the hidden/conv layers have biases;
              False: bias-free, as in the MNIST-1D models of Nix, Sinz et al. (AISTATS 2022). Batch norm
              layers keep their shift parameters.
            - ``resnet18``/``resnet34``/``resnet50``: ``stem_kernel`` (3), ``stem_stride`` (1),
              ``stem_padding`` (1), ``stem_pool`` (False): the stem convolution and whether a 3x3/stride-2
              max pool follows it ((7, 2, 3, True) is the ImageNet stem); ``zero_init_residual`` (False):
              blocks start as identities (last batch norm scale 0).
            - ``vgg11``/``vgg13``/``vgg16``/``vgg19``: ``readout_type`` (``"dense"``: flatten, linear layers;
              ``"conv"``: the same layers as convolutions, the first spanning the whole feature map, the
              others 1x1); ``readout_hidden_size`` (512): width of the two hidden layers of the readout.
            - ``cnn2d``: ``channels`` ([128, 64, 64]), ``kernel_sizes`` ([3, 3, 3]), ``pool_sizes`` ([1, 2, 3]),
              ``padding`` (0), ``global_pool`` (``"avg"``), ``core_bias`` (True) (``nntransfer.models.paper2d``).
            - ``vit``: ``patch_size`` (7), ``num_layers`` (6), ``num_heads`` (8), ``hidden_dim`` (64), ``mlp_dim``
              (128), ``head`` (``"mlp"``), ``attention_dropout`` (0.0) (``nntransfer.models.vit``).
            - ``gcnn``: ``group_order`` (4), ``channels`` ([8, 32, 64]), ``kernel_sizes`` ([5, 3, 3, 3]),
              ``padding`` (1), ``group_pool`` (``"max"``), ``backend`` (``"torch"``) (``nntransfer.models.group_cnn``).
        input_size: build for this image size (int or ``[height, width]``) instead of the data's.
        input_channels: build for this many input channels instead of the data's.
        dropout: dropout probability after every hidden layer of the readout (LeNet-5, VGG dense/conv
            readout), after every hidden layer of the MLPs, and before the ResNet classifier; 0 means none.
        batch_norm: batch norm after every conv/hidden layer. ``None`` uses the architecture's usual
            choice: on for ResNets, off for everything else.
        readout_bias: the final classification layer has a bias.
        weight_init: ``default`` (PyTorch's), ``kaiming_normal`` or ``xavier_uniform`` for the weights of
            every conv/linear/locally connected layer (biases then start at 0).
        get_intermediate_rep: ``{name: layer path}``; when not empty the model returns
            ``(extra_outputs, logits)`` with ``extra_outputs[name]`` the output of that layer. ``core`` is
            the feature extractor's output, ``readout`` the classifier's input, anything else a dotted
            submodule path such as ``core.layer2``.

    Original nntransfer names (translated, with a ``DeprecationWarning``): ``input_width``/``input_height``
    (-> ``input_size = [height, width]``); in a config class that uses ``load_kwargs`` (the original idiom),
    ``get_intermediate_rep`` is given in the original's form ``{layer path: name}`` and stored reversed.
    The fields of 0.4.0 that are options now (``OPTION_KEYWORDS``: ``mlp_hidden_sizes=[64]``,
    ``core_bias=False``, ...) are still accepted as keywords and set the option (with a ``DeprecationWarning``);
    one call gives either them or ``options``.
    """

    fn = "nntransfer.models.classification_model_builder"

    #: the original nntransfer's names (``nntransfer.configs.original``: translated before hashing, with a warning)
    ALIASES = {
        "input_width": input_size_alias(1, square=False),
        "input_height": input_size_alias(0, square=False),
        "get_intermediate_rep": Alias(
            "get_intermediate_rep", convert=_names_to_layers, original_idiom=True,
            hint="in a class that uses load_kwargs, get_intermediate_rep is read in the original nntransfer's form "
                 "{{layer path: name}}; today's get_intermediate_rep is {{name: layer path}}"),
        **{keyword: _option_keyword(keyword, option, types) for keyword, (option, types) in OPTION_KEYWORDS.items()},
    }

    def __init__(self, **kwargs):
        self.set_defaults(
            type="lenet5",
            options={"DEFAULT EMPTY": True},
            input_size=None,
            input_channels=None,
            dropout=0.0,
            batch_norm=None,
            readout_bias=True,
            weight_init="default",
            get_intermediate_rep={"DEFAULT EMPTY": True},
        )
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        # Nothing is derived; catch bad values when the config is written, not hours later on a worker.
        # Names (type, weight_init) and the options are checked where the models implement them (the type
        # declares its options), by the run layer before anything is written.
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{type(self).__name__}.dropout must be in [0, 1), got {self.dropout!r}")
        bad_names = [name for name in self.options if not isinstance(name, str) or not name]
        if bad_names:
            raise ValueError(f"{type(self).__name__}.options: option names are non-empty strings, got {bad_names[0]!r}")
        size = self.input_size
        if size is not None and not (
            _positive_int(size) or (isinstance(size, (list, tuple)) and len(size) == 2 and all(map(_positive_int, size)))
        ):
            raise ValueError(f"{type(self).__name__}.input_size must be None, an int or [height, width], got {size!r}")
        if self.input_channels is not None and not _positive_int(self.input_channels):
            raise ValueError(f"{type(self).__name__}.input_channels must be None or a positive int, got {self.input_channels!r}")
        if self.batch_norm not in (None, True, False):
            raise ValueError(f"{type(self).__name__}.batch_norm must be None, True or False, got {self.batch_norm!r}")
        super().conditional_assignment()


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
