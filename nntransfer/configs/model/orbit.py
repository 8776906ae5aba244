"""`OrbitConfig`: the learned group representation of orbit transfer (Nix, Sinz et al., AISTATS 2022)."""

from numbers import Integral, Real

from nntransfer.configs.model.base import ModelConfig

#: values of ``OrbitConfig.init``
ORBIT_INITS = ("random", "identity", "shift")
#: the layer name of the input representation (always present) and of the logits
ORBIT_INPUT = "input"
ORBIT_OUTPUT = "output"


def _positive_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool) and value > 0


class OrbitConfig(ModelConfig):
    """Settings of ``nntransfer.models.orbit.learned_orbit_builder``: a finite group of ``group_size``
    elements represented on the input and on named representations by learned circular convolutions
    (one kernel per group element and layer, 1-D or, on images and 2-D maps, 2-D; see
    ``nntransfer.models.orbit.LearnedOrbit``).

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
        )
        super().__init__(**kwargs)

    def to_dict(self):
        """All fields, except ``input_dims`` at its default (1): the keys of configs from before the field
        existed stay as they were."""
        values = super().to_dict()
        if values.get("input_dims") == 1:
            del values["input_dims"]
        return values

    def conditional_assignment(self) -> None:
        super().conditional_assignment()
        name = type(self).__name__
        if not _positive_int(self.group_size) or self.group_size < 2:
            raise ValueError(f"{name}.group_size must be an integer of at least 2, got {self.group_size!r}")
        if self.kernel_size is not None and not _positive_int(self.kernel_size):
            raise ValueError(f"{name}.kernel_size must be None or a positive integer, got {self.kernel_size!r}")
        for layer, length in self.layers.items():
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
        if self.init not in ORBIT_INITS:
            raise ValueError(f"{name}.init must be one of {ORBIT_INITS}, got {self.init!r}")
        if not isinstance(self.init_noise, Real) or isinstance(self.init_noise, bool) or self.init_noise < 0:
            raise ValueError(f"{name}.init_noise must be a number >= 0, got {self.init_noise!r}")
