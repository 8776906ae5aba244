"""Trainer config mixins of orbit transfer (Nix, Sinz et al., AISTATS 2022): learn a group representation
under which a teacher is equivariant (``OrbitLearningMixin``), then train a student on its orbits and to be
equivariant in the same way (``OrbitTransferMixin``). A chain of three steps::

    step 0: the teacher network                       (any ClassificationTrainerConfig)
    step 1: model OrbitConfig(...), trainer class OrbitLearning(OrbitLearningMixin, ClassificationTrainerConfig)
    step 2: the student's model config,  trainer class Transfer(OrbitTransferMixin, ClassificationTrainerConfig)

Both mixins default to ``teacher="previous"`` and ``start_from_previous=False`` (the step's model is new, the
previous step's model is the teacher) and refuse other values.
"""

import math
from numbers import Real
from typing import Mapping

from nntransfer.configs.trainer.mixins import TransferMethodMixin

#: the layer path / orbit layer name of the logits
ORBIT_OUTPUT = "output"
#: values of ``OrbitLearningMixin.orbit_identity_between``
ORBIT_IDENTITY_BETWEEN = ("examples", "elements")


def _check_weight(owner: str, field: str, value) -> None:
    if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{owner}.{field} must be a finite number >= 0, got {value!r}")


def _check_layer_map(owner: str, field: str, layers: Mapping) -> None:
    if not layers:
        raise ValueError(f"{owner}.{field} is empty: map at least one layer path to an orbit layer, e.g. {{'output': 'output'}}")
    for path, layer in layers.items():
        if not isinstance(path, str) or not path or not isinstance(layer, str) or not layer:
            raise ValueError(f"{owner}.{field} maps layer paths to orbit layer names (non-empty strings), got {path!r}: {layer!r}")
        if layer == "input":
            raise ValueError(f"{owner}.{field}[{path!r}]: the orbit layer 'input' acts on the data, not on a network layer")


def _check_chain(config, owner: str) -> None:
    if config.teacher != "previous":
        raise ValueError(f"{owner}: the previous step's model is the teacher; set teacher='previous', got {config.teacher!r}")
    if config.start_from_previous:
        raise ValueError(f"{owner}: this step's model is new, not the previous step's; set start_from_previous=False")


class OrbitLearningMixin(TransferMethodMixin):
    """Learn the orbit (module ``OrbitLearning``): the step's model is a ``LearnedOrbit`` (``OrbitConfig``),
    its teacher the frozen network of the previous step. Every example gets a random group element g and
    another h != g; the loss is

        orbit_ce_weight * CE(teacher(rho_g x), y)                      (the task loss: labels are preserved)
      + orbit_equivariance_weight * sum_layers MSE(teacher_l(rho_g x), rho_g teacher_l(x))
      + orbit_invertibility_weight * MSE(rho_{-g} rho_g x, x)          (+ the same on every mapped layer)
      + orbit_identity_weight * mean |cos(rho_g x, rho_h x)|           (elements differ from each other)

    (with ``orbit_identity_between="elements"`` the last term is instead computed on the elements themselves,
    ``nntransfer.trainer.main_loop_modules.orbit.element_distinctness_loss`` of the input's matrices or kernels)

    and the step's accuracy is the teacher's on transformed inputs (also in validation and the final
    evaluation, with elements drawn from a generator seeded by the trainer's seed). The terms are logged as
    ``orbit_equivariance``, ``orbit_invertibility`` and ``orbit_identity`` (Training and Validation).

    Fields:
        orbit_layers_teacher: {teacher layer path: orbit layer name}; ``"output"`` is the logits, other paths
            are dotted submodule paths (e.g. ``"core.relu2"``); every name must be a layer of the orbit.
        orbit_equivariance_weight, orbit_invertibility_weight, orbit_identity_weight, orbit_ce_weight: the
            weights above (>= 0).
        orbit_invertibility_all_layers: also ask rho_{-g} rho_g = identity on the mapped layers.
        orbit_identity_between: ``"examples"`` (the default: |cos| between rho_g x and rho_h x, h != g drawn per
            example) or ``"elements"``: a hinge on the squared distances between the G elements' normalised
            input parameters (affine matrices or kernels), as the original's ``id_between_filters`` with
            ``mse_dist`` and ``hinge_epsilon=1`` (the paper's rotation recipe). Left out of ``to_dict`` (and so
            of the key) at its default.

    Defaults changed for this step: ``teacher="previous"``, ``start_from_previous=False``, ``lr=0.01`` (the
    kernels; at 0.001 they stay diffuse for tens of epochs), and ``early_stopping=False`` with
    ``restore_best=False`` (the validation accuracy does not measure the orbit terms, so the step runs
    ``max_iter`` epochs and keeps the last state); pass them, or assign them in a recipe's class (even one the
    mixin is put in front of, ``class X(OrbitLearningMixin, Base)``), to override. On MNIST-1D (G = 40, full-length
    kernels, the shift-invariant CNN as teacher) 10-20 epochs learn near-one-hot kernels, i.e. shifts,
    with rho_{-g} the inverse of rho_g; a weaker invertibility weight (1-3) leaves the pairs unmatched.
    With an affine orbit (``OrbitConfig(kind="affine")``, the paper's rotation experiment with a ``gcnn``
    teacher) every term acts through the orbit's ``transform`` as well; the paper's recipe (sinzlab/
    orbit_transfer_recipes ``_2021_09_24_aistats/mnist_2d_rotation.py``) used ``include_channels=True`` and
    ``orbit_identity_between="elements"``.
    """

    def __init__(self, **kwargs):
        self.set_defaults(
            orbit_layers_teacher={ORBIT_OUTPUT: ORBIT_OUTPUT},
            orbit_equivariance_weight=1.0,
            orbit_invertibility_weight=10.0,
            orbit_identity_weight=1.0,
            orbit_ce_weight=1.0,
            orbit_invertibility_all_layers=False,
            orbit_identity_between="examples",
            teacher="previous",
            start_from_previous=False,
            lr=0.01,
            early_stopping=False,
            restore_best=False,
        )
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        super().conditional_assignment()
        owner = type(self).__name__
        _check_chain(self, owner)
        _check_layer_map(owner, "orbit_layers_teacher", self.orbit_layers_teacher)
        for field in ("orbit_equivariance_weight", "orbit_invertibility_weight", "orbit_identity_weight", "orbit_ce_weight"):
            _check_weight(owner, field, getattr(self, field))
        if self.orbit_identity_between not in ORBIT_IDENTITY_BETWEEN:
            raise ValueError(f"{owner}.orbit_identity_between must be one of {ORBIT_IDENTITY_BETWEEN}, got {self.orbit_identity_between!r}")
        self.add_main_loop_module("OrbitLearning")

    def to_dict(self):
        """All fields, except ``orbit_identity_between`` at its default (``"examples"``): the keys of configs
        from before the field existed stay as they were."""
        values = super().to_dict()
        if values.get("orbit_identity_between") == "examples":
            del values["orbit_identity_between"]
        return values


class OrbitTransferMixin(TransferMethodMixin):
    """Transfer the orbit (module ``OrbitTransfer``): the teacher is the frozen ``LearnedOrbit`` of the
    previous step. In training every batch is doubled, ``[x; rho_g x]`` with one random g per example, and

        orbit_equivariance_weight * sum_layers MSE(student_l(rho_g x), rho_g student_l(x))
      + orbit_ce_weight * CE(student(rho_g x), y)

    is added to the task loss on ``x``; the statistics are those of the clean half. Validation and test
    see the plain student. Logged as ``orbit_equivariance`` and ``orbit_ce`` (Training).

    Fields:
        orbit_student_layers: {student layer path: orbit layer name}; ``"output"`` (the logits) maps to the
            orbit's ``"output"`` by default; a hidden layer maps to an orbit layer of its width.
        orbit_equivariance_weight, orbit_ce_weight: the weights above (>= 0). For the MNIST-1D MLP student
            (100 epochs, lr 0.003) weights 0.1, 0.3 and 1 gave the same unseen-shift accuracy within a few
            points; either term alone did worse (seed 1, unseen shifts: both 84 %, no equivariance term
            77 %, no cross-entropy on rho_g x 71 %, a plain MLP 14 %).

    Defaults changed for this step: ``teacher="previous"``, ``start_from_previous=False``.
    """

    def __init__(self, **kwargs):
        self.set_defaults(
            orbit_student_layers={ORBIT_OUTPUT: ORBIT_OUTPUT},
            orbit_equivariance_weight=1.0,
            orbit_ce_weight=1.0,
            teacher="previous",
            start_from_previous=False,
        )
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        super().conditional_assignment()
        owner = type(self).__name__
        _check_chain(self, owner)
        _check_layer_map(owner, "orbit_student_layers", self.orbit_student_layers)
        for field in ("orbit_equivariance_weight", "orbit_ce_weight"):
            _check_weight(owner, field, getattr(self, field))
        self.add_main_loop_module("OrbitTransfer")
