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
    (one kernel per group element and layer; see ``nntransfer.models.orbit.LearnedOrbit``).

    A chain learns it in a step whose trainer has ``OrbitLearningMixin`` (teacher: the previous step's
    network) and uses it, frozen, in a later step with ``OrbitTransferMixin`` (teacher: this step's model).

    Fields:
        group_size: number of group elements G; element g has the inverse (-g) mod G.
        kernel_size: length of every kernel; None: the full length of each representation (which can express
            every circular shift). A kernel longer than a layer's axis is cut to that length.
        layers: {layer name: length of the axis the representation acts on}; the value None is allowed for
            ``"output"`` only and means the number of classes. The input (name ``"input"``, the last axis of
            the data) is always included and must not be listed. The names are what the trainer mixins map
            network layer paths to (``orbit_layers_teacher``, ``orbit_student_layers``).
        init: ``"random"`` (every kernel entry N(0, 1/kernel length)), ``"identity"`` (every element starts as
            the identity) or ``"shift"`` (element g starts as the circular shift by round(g * L / G) on every
            layer of length L except ``"output"``, which starts as the identity: the exact group of a
            shift-invariant network, for checks and as an oracle).
        init_noise: std of Gaussian noise added to the ``"identity"``/``"shift"`` kernels (``"identity"``
            needs some: identical elements give the regulariser that separates them no gradient).
    """

    fn = "nntransfer.models.orbit.learned_orbit_builder"

    def __init__(self, **kwargs):
        self.set_defaults(
            group_size=40,
            kernel_size=None,
            layers={ORBIT_OUTPUT: None},
            init="random",
            init_noise=0.0,
        )
        super().__init__(**kwargs)

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
            if length is not None and not _positive_int(length):
                raise ValueError(f"{name}.layers[{layer!r}] must be a positive integer (or None for 'output'), got {length!r}")
        if self.init not in ORBIT_INITS:
            raise ValueError(f"{name}.init must be one of {ORBIT_INITS}, got {self.init!r}")
        if not isinstance(self.init_noise, Real) or isinstance(self.init_noise, bool) or self.init_noise < 0:
            raise ValueError(f"{name}.init_noise must be a number >= 0, got {self.init_noise!r}")
