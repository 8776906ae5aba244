"""Trainer config mixins: each adds the fields of one main-loop module and appends the module's name to
``main_loop_modules``. Compose them in front of a trainer config::

    class NoisyTrainerConfig(NoiseAugmentationMixin, ClassificationTrainerConfig):
        pass

    NoisyTrainerConfig(noise_std={0.1: 0.5, (0.2, 0.4): 0.25})  # half at std 0.1, a quarter in [0.2, 0.4], rest clean
"""

import functools
import math
from numbers import Real
from typing import Any, FrozenSet, Mapping

REP_CRITERIA = ("cosine", "mse")
KD_TEACHERS = ("teacher", "initial", "transfer_data")
RDL_DISTANCES = ("correlation", "euclidean")
MATCH_CRITERIA = ("l2", "cosine")
PARAM_REGULARISERS = ("l2sp", "ewc")


def check_noise_levels(owner: str, field: str, levels: Mapping[Any, float]) -> None:
    """Validate ``{level: fraction}``: a level is a number >= 0, ``None`` (clean) or a range ``(low, high)`` of
    finite numbers sampled once per batch; the fractions of the batch sum to at most 1 (the rest stays clean)."""
    for level, fraction in levels.items():
        if isinstance(level, (tuple, list)):
            ok = (len(level) == 2 and all(isinstance(v, Real) and math.isfinite(v) for v in level)
                  and 0 <= level[0] <= level[1])
        else:
            ok = level is None or (isinstance(level, Real) and level >= 0)
        if not ok:
            raise ValueError(
                f"{owner}.{field}: level {level!r} must be a number >= 0, None (clean) or a range (low, high)"
            )
        if not isinstance(fraction, Real) or not 0 <= fraction <= 1:
            raise ValueError(f"{owner}.{field}: fraction {fraction!r} of level {level!r} must be in [0, 1]")
    if sum(levels.values()) > 1 + 1e-9:
        raise ValueError(f"{owner}.{field}: the fractions sum to {sum(levels.values())}, more than 1")


def check_layer_map(owner: str, field: str, layers: Any) -> None:
    """Validate ``{student layer path: teacher layer path}``: a non-empty dict of non-empty strings."""
    ok = isinstance(layers, Mapping) and bool(layers) and all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in layers.items()
    )
    if not ok:
        raise ValueError(
            f"{owner}.{field} must be a non-empty dict {{student layer path: teacher layer path}}, e.g. "
            f"{{'core': 'core.2'}} ('output' = the logits, 'readout' = the readout's input), got {layers!r}"
        )


def check_weight(owner: str, field: str, value: Any) -> None:
    """Validate a loss weight: a finite number >= 0 (0 only logs the term)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value < float("inf"):
        raise ValueError(f"{owner}.{field} must be a finite number >= 0, got {value!r}")


def _check_one_noise(owner: str, std_field: str, snr_field: str, std: Mapping, snr: Mapping) -> None:
    if bool(std) == bool(snr):
        raise ValueError(f"{owner}: give exactly one of {std_field} or {snr_field} (a dict level -> fraction)")
    check_noise_levels(owner, std_field, std)
    check_noise_levels(owner, snr_field, snr)


class _DeclarationRecorder:
    """The end of a probe's MRO: records what a mixin's ``__init__`` declares, runs no validation."""

    def __init__(self, **kwargs: Any) -> None:
        pass

    def set_defaults(self, **defaults: Any) -> None:
        self.__dict__.update(defaults)


@functools.lru_cache(maxsize=None)  # a class's declarations do not change
def mixin_fields(mixin: type) -> FrozenSet[str]:
    """The fields ``mixin``'s ``__init__`` declares (by ``set_defaults`` or assignment)."""
    probe = type(f"Probe{mixin.__name__}", (mixin, _DeclarationRecorder), {})()
    return frozenset(probe.__dict__)


class TransferMethodMixin:
    """Base of the mixins of transfer methods (knowledge distillation, RDL, attention transfer, layer matching,
    CKA, L2-SP/EWC, orbit transfer): the fields such a mixin declares and the main-loop module it adds only
    mean something after a previous step. The analysis leaves them out when it looks for a step's
    from-scratch baseline; a new transfer method's mixin derives from this class to be left out too."""


class NoiseAugmentationMixin:
    """Gaussian noise on the training inputs (module ``NoiseAugmentation``).

    Fields:
        noise_std: {std in pixel units: fraction of the batch}; a key ``(low, high)`` samples the std
            uniformly once per batch; ``None`` means clean. Fractions sum to at most 1, the rest stays clean.
        noise_snr: the same by signal-to-noise ratio (power ratio per image) instead of std; give one of both.
        noise_in_evaluation: also add noise during validation, with the same noise on every evaluation.
    """

    INFINITE_FIELDS = ("noise_snr",)  # a signal-to-noise ratio of inf is a clean level

    def __init__(self, **kwargs):
        self.set_defaults(
            noise_std={"DEFAULT EMPTY": True},
            noise_snr={"DEFAULT EMPTY": True},
            noise_in_evaluation=True,
        )
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        super().conditional_assignment()
        _check_one_noise(type(self).__name__, "noise_std", "noise_snr", self.noise_std, self.noise_snr)
        self.add_main_loop_module("NoiseAugmentation")


class RepresentationMatchingMixin:
    """Match clean and noisy representations (module ``RepresentationMatching``): every training batch is
    paired with a noisy copy; the distance between the two representations of the chosen layers is added
    to the loss and logged as ``rep_matching``.

    Fields:
        rep_matching_layers: names of the model's extra outputs to match (the model must be built to
            return ``(extra_outputs, logits)``).
        rep_matching_criterion: ``"cosine"`` (1 - cosine similarity) or ``"mse"``.
        rep_matching_lambda: weight of the matching loss.
        rep_matching_weights: {layer: fixed weight} (default 1 for every layer).
        rep_matching_learned_weights: learn one weight per layer instead (uncertainty weighting:
            ``exp(-s) * d + s`` with a trained ``s`` per layer).
        rep_matching_noise_std, rep_matching_noise_snr: noise of the noisy copy, as in ``NoiseAugmentationMixin``.
    """

    INFINITE_FIELDS = ("rep_matching_noise_snr",)  # a signal-to-noise ratio of inf is a clean level

    def __init__(self, **kwargs):
        self.set_defaults(
            rep_matching_layers=[],
            rep_matching_criterion="cosine",
            rep_matching_lambda=1.0,
            rep_matching_weights={"DEFAULT EMPTY": True},
            rep_matching_learned_weights=False,
            rep_matching_noise_std={"DEFAULT EMPTY": True},
            rep_matching_noise_snr={"DEFAULT EMPTY": True},
        )
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        super().conditional_assignment()
        owner = type(self).__name__
        if not self.rep_matching_layers:
            raise ValueError(f"{owner}.rep_matching_layers is empty: name the model outputs to match, e.g. ['core']")
        if self.rep_matching_criterion not in REP_CRITERIA:
            raise ValueError(f"{owner}.rep_matching_criterion must be one of {REP_CRITERIA}")
        unknown = set(self.rep_matching_weights) - set(self.rep_matching_layers)
        if unknown:
            raise ValueError(f"{owner}.rep_matching_weights names layers not in rep_matching_layers: {sorted(unknown)}")
        _check_one_noise(
            owner, "rep_matching_noise_std", "rep_matching_noise_snr", self.rep_matching_noise_std, self.rep_matching_noise_snr
        )
        self.add_main_loop_module("RepresentationMatching")


class RepresentationMonitorMixin:
    """Log statistics of intermediate representations (module ``RepresentationMonitor``): per layer the
    mean activation, its standard deviation and the fraction of zeros (``<layer>_mean``, ``_std``, ``_sparsity``).

    Fields:
        rep_monitor_layers: names of the model's extra outputs; empty = all of them.
        rep_monitor_in_training: also monitor during training (always during validation).
    """

    def __init__(self, **kwargs):
        self.set_defaults(
            rep_monitor_layers=[],
            rep_monitor_in_training=False,
        )
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        super().conditional_assignment()
        self.add_main_loop_module("RepresentationMonitor")


class KnowledgeDistillationMixin(TransferMethodMixin):
    """Distil a teacher's logits into the trained model (module ``KnowledgeDistillation``; Hinton et al.,
    2015). In training the loss is ``(1 - kd_weight) * task loss + kd_weight * T^2 * KL(softmax(teacher / T)
    || softmax(student / T))``; in evaluation the task loss alone (weight 1). The distillation term is
    logged as ``distillation``.

    Fields:
        kd_teacher: where the teacher's logits come from:
            ``"teacher"`` (default): the step's teacher (``teacher="previous"``: the previous step's trained
            model, of any architecture), run on exactly the batch the student sees (online distillation);
            ``"initial"``: a frozen copy of the model as the trainer received it (the previous transfer
            step's weights, copied before any reset);
            ``"transfer_data"``: the batch extras ``"logits"`` handed over by the previous step (that step sets
            ``compute_transfer_data=True``, this one ``data_transfer=True``).
        kd_temperature: softmax temperature T (> 0).
        kd_weight: gamma in [0, 1], the weight of the distillation term; the task loss gets ``1 - gamma``
            (gamma = 1: distillation alone).
    """

    def __init__(self, **kwargs):
        self.set_defaults(
            kd_teacher="teacher",
            kd_temperature=4.0,
            kd_weight=0.5,
        )
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        super().conditional_assignment()
        owner = type(self).__name__
        if self.kd_teacher not in KD_TEACHERS:
            raise ValueError(f"{owner}.kd_teacher must be one of {KD_TEACHERS}, got {self.kd_teacher!r}")
        if self.kd_teacher == "transfer_data" and not self.data_transfer:
            raise ValueError(f"{owner}: kd_teacher='transfer_data' needs data_transfer=True")
        if isinstance(self.kd_temperature, bool) or not isinstance(self.kd_temperature, Real) or self.kd_temperature <= 0:
            raise ValueError(f"{owner}.kd_temperature must be positive, got {self.kd_temperature!r}")
        if isinstance(self.kd_weight, bool) or not isinstance(self.kd_weight, Real) or not 0 <= self.kd_weight <= 1:
            raise ValueError(
                f"{owner}.kd_weight is gamma in [0, 1] (loss = (1 - gamma) * task + gamma * distillation), "
                f"got {self.kd_weight!r}"
            )
        self.add_main_loop_module("KnowledgeDistillation")


class RDLMixin(TransferMethodMixin):
    """Representational distance learning (module ``RDL``; McClure & Kriegeskorte, 2016): per pair of
    layers, the representational dissimilarity matrix (RDM) of the batch in the student is pulled towards
    the teacher's: ``rdl_weight * mean over pairs of mean((RDM_student - RDM_teacher)^2)`` over the
    RDMs' upper triangles. Only the geometry is compared, so the layers may differ in size and kind
    (e.g. an MLP student and a conv teacher). Needs the step's teacher (``teacher="previous"``); logged
    as ``rdl``.

    Fields:
        rdl_layers: {student layer path: teacher layer path} (dotted submodule paths; ``"readout"`` = the
            readout's input, ``"output"`` = the logits); at least one pair.
        rdl_weight: weight of the RDL term (>= 0).
        rdl_distance: dissimilarity of two examples: ``"correlation"`` (1 - Pearson correlation of their
            flattened representations) or ``"euclidean"`` (Euclidean distance, divided by the mean over
            the batch's pairs so that representations of different scale compare).
    """

    def __init__(self, **kwargs):
        self.set_defaults(
            rdl_layers={"DEFAULT EMPTY": True},
            rdl_weight=1.0,
            rdl_distance="correlation",
        )
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        super().conditional_assignment()
        owner = type(self).__name__
        check_layer_map(owner, "rdl_layers", self.rdl_layers)
        check_weight(owner, "rdl_weight", self.rdl_weight)
        if self.rdl_distance not in RDL_DISTANCES:
            raise ValueError(f"{owner}.rdl_distance must be one of {RDL_DISTANCES}, got {self.rdl_distance!r}")
        self.add_main_loop_module("RDL")


class AttentionTransferMixin(TransferMethodMixin):
    """Attention transfer (module ``AttentionTransfer``; Zagoruyko & Komodakis, 2017): per pair of layers
    the spatial attention map of the student (mean over channels of ``|a|^p``, flattened, L2-normalised)
    is pulled towards the teacher's: ``at_weight / 2 * mean over pairs of (mean over the batch of
    ||Q_s - Q_t||_2) / L`` with L the number of positions of the map (the paper's beta = 1000 "divided by
    the number of elements in attention map and batch size"). A flat student layer (B, D) is read as
    (B, D / L, L) channel-major, like a flattened conv map, with L the teacher map's positions. Needs the
    step's teacher (``teacher="previous"``); logged as ``attention_transfer``.

    Fields:
        at_layers: {student layer path: teacher layer path}, layers with maps of equal spatial size (or a
            flat student layer whose size is a multiple of the teacher map's positions); at least one pair.
        at_weight: beta (>= 0), 1000 as in the paper.
        at_p: the exponent p of the attention map (> 0), 2 as in the paper.
    """

    def __init__(self, **kwargs):
        self.set_defaults(
            at_layers={"DEFAULT EMPTY": True},
            at_weight=1000.0,
            at_p=2.0,
        )
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        super().conditional_assignment()
        owner = type(self).__name__
        check_layer_map(owner, "at_layers", self.at_layers)
        check_weight(owner, "at_weight", self.at_weight)
        if isinstance(self.at_p, bool) or not isinstance(self.at_p, Real) or not 0 < self.at_p < float("inf"):
            raise ValueError(f"{owner}.at_p must be a positive number (the paper uses 2), got {self.at_p!r}")
        self.add_main_loop_module("AttentionTransfer")


class LayerMatchingMixin(TransferMethodMixin):
    """Direct matching of layers or outputs (module ``LayerMatching``): per pair of layers the student's
    representation is pulled towards the teacher's, ``match_weight * mean over pairs of the distance``
    (e.g. ``{"output": "output"}`` matches the logits, as in logit regression). The two layers of a pair
    must hold the same number of values per example (they are compared flattened). Needs the step's
    teacher (``teacher="previous"``); logged as ``layer_matching``.

    Fields:
        match_layers: {student layer path: teacher layer path}; at least one pair.
        match_criterion: ``"l2"`` (mean squared error) or ``"cosine"`` (1 - cosine similarity per example).
        match_weight: weight of the matching term (>= 0).
    """

    def __init__(self, **kwargs):
        self.set_defaults(
            match_layers={"DEFAULT EMPTY": True},
            match_criterion="l2",
            match_weight=1.0,
        )
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        super().conditional_assignment()
        owner = type(self).__name__
        check_layer_map(owner, "match_layers", self.match_layers)
        check_weight(owner, "match_weight", self.match_weight)
        if self.match_criterion not in MATCH_CRITERIA:
            raise ValueError(f"{owner}.match_criterion must be one of {MATCH_CRITERIA}, got {self.match_criterion!r}")
        self.add_main_loop_module("LayerMatching")


class CKATransferMixin(TransferMethodMixin):
    """Representation matching by linear centered kernel alignment (module ``CKATransfer``; Kornblith et
    al., 2019, as Nix et al., 2022 compare it with RDL and attention transfer): per pair of layers the
    student is trained to represent the batch like the teacher, up to rotations and scale, by adding
    ``cka_weight * mean over pairs of (1 - linear CKA(student layer, teacher layer))``. CKA compares the
    batch's centred Gram matrices, so the two layers may differ in width and kind (an MLP layer against a
    conv map). Needs the step's teacher (``teacher="previous"``); logged as ``cka`` (in [0, 1], 0 when the
    two representations agree up to an orthogonal transform and a scale).

    The original (orbit_transfer's ``cka_forward``) trains ``(1 - gamma) * CE + gamma * (-sum of CKA)``; that
    is ``cka_weight = gamma / (1 - gamma)`` here with the learning rate times ``1 - gamma`` (its gamma 0.5 is
    ``cka_weight`` 1 at half the learning rate), the layers averaged instead of summed.

    Fields:
        cka_layers: {student layer path: teacher layer path} (``"readout"`` = the readout's input,
            ``"output"`` = the logits); at least one pair.
        cka_weight: weight of the CKA term (>= 0).
    """

    def __init__(self, **kwargs):
        self.set_defaults(
            cka_layers={"DEFAULT EMPTY": True},
            cka_weight=1.0,
        )
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        super().conditional_assignment()
        owner = type(self).__name__
        check_layer_map(owner, "cka_layers", self.cka_layers)
        check_weight(owner, "cka_weight", self.cka_weight)
        self.add_main_loop_module("CKATransfer")


class ParameterDistanceMixin(TransferMethodMixin):
    """Keep fine-tuned parameters near the starting point w0, the weights the step starts from (module
    ``ParameterDistance``): ``"l2sp"`` adds ``param_reg_weight / 2 * sum ||w - w0||^2`` (L2-SP, Li et al.,
    2018), ``"ewc"`` adds ``param_reg_weight / 2 * sum F * (w - w0)^2`` with the diagonal Fisher information
    F of the previous step (elastic weight consolidation, Kirkpatrick et al., 2017; that step sets
    ``compute_fisher=True``). Parameters the trainer resets (``reset``) or that ``param_reg_exclude``
    selects are not regularised. Logged as ``param_reg``.

    Fields:
        param_reg: ``"l2sp"`` or ``"ewc"``.
        param_reg_weight: alpha (L2-SP) or lambda (EWC), >= 0. The Fisher information is small (squared
            gradients), so EWC usually needs a much larger weight than L2-SP.
        param_reg_exclude: selectors (``nntransfer.models.utils``: a module path, a parameter name or
            "all") of parameters not to regularise, by default the readout (a new task's head).
    """

    def __init__(self, **kwargs):
        self.set_defaults(
            param_reg="l2sp",
            param_reg_weight=0.01,
            param_reg_exclude=["readout"],
        )
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        super().conditional_assignment()
        owner = type(self).__name__
        if self.param_reg not in PARAM_REGULARISERS:
            raise ValueError(f"{owner}.param_reg must be one of {PARAM_REGULARISERS}, got {self.param_reg!r}")
        check_weight(owner, "param_reg_weight", self.param_reg_weight)
        if isinstance(self.param_reg_exclude, str) or not all(isinstance(s, str) and s for s in self.param_reg_exclude):
            raise ValueError(
                f"{owner}.param_reg_exclude must be a list of selectors (layer paths or parameter names), "
                f"e.g. ['readout'], got {self.param_reg_exclude!r}"
            )
        if not self.start_from_previous:
            raise ValueError(f"{owner}: param_reg pulls towards the weights the step starts from; set start_from_previous=True")
        self.add_main_loop_module("ParameterDistance")
