"""`OrbitConfig`: the learned group representation of orbit transfer (Nix, Sinz et al., AISTATS 2022)."""

from numbers import Integral, Real

from nntransfer.configs.model.base import ModelConfig

#: values of ``OrbitConfig.init``
ORBIT_INITS = ("random", "identity", "shift", "rotation")
#: values of ``OrbitConfig.kind``: learned circular convolutions (the default) or learned affine maps
ORBIT_KINDS = ("convolution", "affine")
#: the inits each kind accepts
ORBIT_KIND_INITS = {"convolution": ("random", "identity", "shift"), "affine": ("random", "identity", "rotation")}
#: fields left out of ``OrbitConfig.to_dict`` (and so of the key) at these defaults
ORBIT_QUIET_DEFAULTS = {"input_dims": 1, "kind": "convolution", "include_channels": False, "only_translation": False,
                        "prevent_translation": False, "gaussian_transform": False, "gaussian_std_init": 0.1}
#: the layer name of the input representation (always present) and of the logits
ORBIT_INPUT = "input"
ORBIT_OUTPUT = "output"


def _positive_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool) and value > 0


class OrbitConfig(ModelConfig):
    """Settings of ``nntransfer.models.orbit.learned_orbit_builder``: a finite group of ``group_size``
    elements represented on the input and on named representations by learned circular convolutions
    (one kernel per group element and layer, 1-D or, on images and 2-D maps, 2-D) or, with ``kind="affine"``,
    by learned affine maps (one matrix per group element and layer); see ``nntransfer.models.orbit.LearnedOrbit``.

    A chain learns it in a step whose trainer has ``OrbitLearningMixin`` (teacher: the previous step's
    network) and uses it, frozen, in a later step with ``OrbitTransferMixin`` (teacher: this step's model).

    Fields:
        group_size: number of group elements G; element g has the inverse (-g) mod G.
        kernel_size: length of every kernel (K x K on a 2-D layer, like the original's ``kernel_size=5``); None:
            the full length (H x W) of each representation (which can express every circular shift). A kernel
            longer than a layer's axis is cut to that length.
        layers: {layer name: length of the axis the representation acts on, or a pair ``[H, W]`` for a 2-D
            layer (a conv map ``(C, H, W)``, a flat layer of C * H * W values, or ViT tokens of H * W
            positions)}; the value None is allowed for ``"output"`` only and means the number of classes
            (``"output"`` is 1-D). The input (name ``"input"``, the last axis of the data, or its last two with
            ``input_dims=2``) is always included and must not be listed. The names are what the trainer
            mixins map network layer paths to (``orbit_layers_teacher``, ``orbit_student_layers``).
        init: ``"random"`` (every kernel entry N(0, 1/kernel length)), ``"identity"`` (every element starts as
            the identity) or ``"shift"`` (element g starts as the circular shift by round(g * L / G) on every
            layer of length L, by ``nntransfer.models.orbit.shift_of_element`` on a 2-D layer, except ``"output"``,
            which starts as the identity: the exact group of a shift-invariant network, for checks and as an
            oracle).
        init_noise: std of Gaussian noise added to the ``"identity"``/``"shift"`` kernels (``"identity"``
            needs some: identical elements give the regulariser that separates them no gradient).
        input_dims: 1 (the group acts on the input's last axis, e.g. MNIST-1D) or 2 (on the last two axes of
            images ``(C, H, W)`` by 2-D circular convolutions with K x K kernels, as in the paper's 2-D MNIST
            experiments). Left out of ``to_dict`` (and so of the key) at its default 1, so that configs
            written before it existed keep their keys.
        kind: ``"convolution"`` (the default: learned circular convolutions, as above) or ``"affine"``: the
            paper's rotation experiment (sinzlab/orbit_transfer ``LearnedEquivarianceSTSimple``, a learned
            spatial transformer): on every layer each element is a learned affine matrix theta, 2 x 3 on the
            (H, W) plane, applied with ``F.affine_grid``/``F.grid_sample`` (bilinear, zero padding,
            ``align_corners=False``); see ``nntransfer.models.orbit.LearnedOrbit``. Needs ``input_dims=2``;
            ``kernel_size`` is not used. ``layers`` values are then None (the layout is read from the
            representation: a conv map ``(C, H, W)``, a group map ``(C, N, H, W)``, a flat layer read as
            ``(C, s, s)`` with the fewest channels C, as the original's ``reshape_flat_to_chw``; on
            ``"output"`` the logits) or ``[H, W]`` (checked; a flat layer is read as ``(C, H, W)``). Inits:
            ``"identity"`` (+ ``init_noise``), ``"random"`` (the original's ``random_transform_init``: a random
            rotation in [0, 360), translation in [-0.1, 0.1]^2, scale in [0.8, 1.2] and shears in [0, 15]
            degrees per element and layer) or ``"rotation"`` (element g rotates by 360 g / G degrees in the
            direction of ``torch.rot90(x, 1, (-2, -1))``, ``"output"`` the identity: the exact group of a
            rotation-invariant network, for checks and as an oracle; on ``gcnn`` group maps the spatial rotation
            only, since their exact action also shifts the group axis, which no affine map with zero padding does).
        include_channels: (``kind="affine"``) 3 x 4 matrices acting on (C, H, W) (the channels as a depth
            axis; on a group map ``(C, N, H, W)`` on (N, H, W), the C maps each), as the original's
            ``include_channels``.
        only_translation, prevent_translation: (``kind="affine"``) only the translation column is learned (the
            rest is the identity's), or the translation is fixed at zero; as in the original.
        gaussian_transform, gaussian_std_init: (``kind="affine"``) every application draws the matrix from
            N(theta_g, std^2) per entry, with a learned std per matrix entry and layer (``theta_std.<layer>``)
            starting at ``gaussian_std_init``; as the original's ``gaussian_transform`` (its ``bias`` is theta).
        ``kind``, ``include_channels``, ``only_translation``, ``prevent_translation``, ``gaussian_transform`` and
        ``gaussian_std_init`` are left out of ``to_dict`` at their defaults, like ``input_dims``.
    """

    fn = "nntransfer.models.orbit.learned_orbit_builder"

    def __init__(self, **kwargs):
        self.set_defaults(
            group_size=40,
            kernel_size=None,
            layers={ORBIT_OUTPUT: None},
            init="random",
            init_noise=0.0,
            input_dims=1,
            kind="convolution",
            include_channels=False,
            only_translation=False,
            prevent_translation=False,
            gaussian_transform=False,
            gaussian_std_init=0.1,
        )
        super().__init__(**kwargs)

    def to_dict(self):
        """All fields, except ``input_dims``, ``kind``, ``include_channels``, ``only_translation`` and
        ``prevent_translation`` at their defaults (``ORBIT_QUIET_DEFAULTS``): the keys of configs from before
        those fields existed stay as they were."""
        values = super().to_dict()
        for field, default in ORBIT_QUIET_DEFAULTS.items():
            if field in values and values[field] == default and type(values[field]) is type(default):
                del values[field]
        return values

    def conditional_assignment(self) -> None:
        super().conditional_assignment()
        name = type(self).__name__
        if not _positive_int(self.group_size) or self.group_size < 2:
            raise ValueError(f"{name}.group_size must be an integer of at least 2, got {self.group_size!r}")
        if self.kernel_size is not None and not _positive_int(self.kernel_size):
            raise ValueError(f"{name}.kernel_size must be None or a positive integer, got {self.kernel_size!r}")
        if self.kind not in ORBIT_KINDS:
            raise ValueError(f"{name}.kind must be one of {ORBIT_KINDS}, got {self.kind!r}")
        affine = self.kind == "affine"
        for field in ("include_channels", "only_translation", "prevent_translation", "gaussian_transform"):
            value = getattr(self, field)
            if not isinstance(value, bool):
                raise ValueError(f"{name}.{field} must be True or False, got {value!r}")
            if value and not affine:
                raise ValueError(f"{name}.{field} applies to kind='affine' only (kind is {self.kind!r})")
        std = self.gaussian_std_init
        if not isinstance(std, Real) or isinstance(std, bool) or not std >= 0 or std == float("inf"):
            raise ValueError(f"{name}.gaussian_std_init must be a finite number >= 0, got {std!r}")
        if self.only_translation and self.prevent_translation:
            raise ValueError(f"{name}: only_translation and prevent_translation exclude each other")
        for layer, length in self.layers.items():
            if affine and isinstance(layer, str) and layer and layer != ORBIT_INPUT:
                if length is None or (layer == ORBIT_OUTPUT and _positive_int(length)):
                    continue
                if layer != ORBIT_OUTPUT and isinstance(length, (list, tuple)) and len(length) == 2 and all(_positive_int(n) for n in length):
                    continue
                raise ValueError(f"{name}.layers[{layer!r}]: with kind='affine' a layer is None (its layout read from the representation) "
                                 f"or a pair [H, W] ('output': None or the number of classes), got {length!r}")
            if not isinstance(layer, str) or not layer:
                raise ValueError(f"{name}.layers: layer names must be non-empty strings, got {layer!r}")
            if layer == ORBIT_INPUT:
                raise ValueError(f"{name}.layers: 'input' is always included (its length comes from the data); do not list it")
            if length is None and layer != ORBIT_OUTPUT:
                raise ValueError(f"{name}.layers[{layer!r}]: give the length of the axis the group acts on (None only for 'output')")
            if isinstance(length, (list, tuple)):
                if layer == ORBIT_OUTPUT:
                    raise ValueError(f"{name}.layers['output'] is the logits: give None (the number of classes) or a length, got {length!r}")
                if len(length) != 2 or not all(_positive_int(n) for n in length):
                    raise ValueError(f"{name}.layers[{layer!r}]: a 2-D layer's size is a pair of positive integers [H, W], got {length!r}")
            elif length is not None and not _positive_int(length):
                raise ValueError(f"{name}.layers[{layer!r}] must be a positive integer, a pair [H, W] (or None for 'output'), got {length!r}")
        if self.input_dims not in (1, 2) or isinstance(self.input_dims, bool):
            raise ValueError(f"{name}.input_dims must be 1 (the input's last axis) or 2 (images: its last two axes), got {self.input_dims!r}")
        if affine and self.input_dims != 2:
            raise ValueError(f"{name}: kind='affine' acts on images (channels, height, width); set input_dims=2, got {self.input_dims!r}")
        inits = ORBIT_KIND_INITS.get(self.kind, ORBIT_INITS)
        if self.init not in inits:
            raise ValueError(f"{name}.init must be one of {inits} with kind={self.kind!r}, got {self.init!r}")
        if not isinstance(self.init_noise, Real) or isinstance(self.init_noise, bool) or self.init_noise < 0:
            raise ValueError(f"{name}.init_noise must be a number >= 0, got {self.init_noise!r}")
