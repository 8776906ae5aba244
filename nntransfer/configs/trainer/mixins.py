"""Trainer config mixins: each adds the fields of one main-loop module and appends the module's name to
``main_loop_modules``. Compose them in front of a trainer config::

    class NoisyTrainerConfig(NoiseAugmentationMixin, ClassificationTrainerConfig):
        pass

    NoisyTrainerConfig(noise_std={0.1: 0.5, (0.2, 0.4): 0.25})  # half at std 0.1, a quarter in [0.2, 0.4], rest clean
"""

from numbers import Real
from typing import Any, Mapping

REP_CRITERIA = ("cosine", "mse")
KD_TEACHERS = ("initial", "transfer_data")


def check_noise_levels(owner: str, field: str, levels: Mapping[Any, float]) -> None:
    """Validate ``{level: fraction}``: a level is a number >= 0, ``None`` (clean) or a range ``(low, high)``
    sampled once per batch; the fractions of the batch sum to at most 1 (the rest stays clean)."""
    for level, fraction in levels.items():
        if isinstance(level, (tuple, list)):
            ok = len(level) == 2 and all(isinstance(v, Real) for v in level) and 0 <= level[0] <= level[1]
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


def _check_one_noise(owner: str, std_field: str, snr_field: str, std: Mapping, snr: Mapping) -> None:
    if bool(std) == bool(snr):
        raise ValueError(f"{owner}: give exactly one of {std_field} or {snr_field} (a dict level -> fraction)")
    check_noise_levels(owner, std_field, std)
    check_noise_levels(owner, snr_field, snr)


class NoiseAugmentationMixin:
    """Gaussian noise on the training inputs (module ``NoiseAugmentation``).

    Fields:
        noise_std: {std in pixel units: fraction of the batch}; a key ``(low, high)`` samples the std
            uniformly once per batch; ``None`` means clean. Fractions sum to at most 1, the rest stays clean.
        noise_snr: the same by signal-to-noise ratio (power ratio per image) instead of std; give one of both.
        noise_in_evaluation: also add noise during validation, with the same noise on every evaluation.
    """

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


class KnowledgeDistillationMixin:
    """Distil a teacher's logits into the trained model (module ``KnowledgeDistillation``): adds
    ``kd_weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))`` to the loss.

    Fields:
        kd_teacher: ``"initial"`` (a frozen copy of the model as the trainer received it, i.e. the previous
            transfer step) or ``"transfer_data"`` (the batch extras ``"logits"`` handed over by the previous step;
            set ``data_transfer=True``).
        kd_temperature: softmax temperature T.
        kd_weight: weight of the distillation term (the task loss keeps weight 1).
    """

    def __init__(self, **kwargs):
        self.set_defaults(
            kd_teacher="initial",
            kd_temperature=4.0,
            kd_weight=1.0,
        )
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        super().conditional_assignment()
        owner = type(self).__name__
        if self.kd_teacher not in KD_TEACHERS:
            raise ValueError(f"{owner}.kd_teacher must be one of {KD_TEACHERS}, got {self.kd_teacher!r}")
        if self.kd_teacher == "transfer_data" and not self.data_transfer:
            raise ValueError(f"{owner}: kd_teacher='transfer_data' needs data_transfer=True")
        if self.kd_temperature <= 0:
            raise ValueError(f"{owner}.kd_temperature must be positive, got {self.kd_temperature!r}")
        self.add_main_loop_module("KnowledgeDistillation")
