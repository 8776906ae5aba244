"""A search space over the settings of one chain of a recipe, declared in Python beside the recipe::

    # my_recipe/kd_search.py
    from nntransfer.search import Choice, LogUniform, SearchSpace, Uniform

    space = SearchSpace(
        chain="KD",                                            # a chain of the recipe, by its name
        params={
            ("student", "trainer", "lr"): LogUniform(1e-4, 1e-2),   # (step index or comment, role, field)
            (1, "trainer", "kd_weight"): Uniform(0.0, 1.0),
            (1, "trainer", "kd_temperature"): Choice([1, 2, 4, 8]),
        },
        objective="validation accuracy",                       # SPLIT MEASURE of the chain's last step
        direction="maximize",
        sampler="tpe",                                         # tpe, random or grid
        pruner="median",                                       # optional: stop hopeless trials early
    )

A trial is the chain with those fields set (:meth:`SearchSpace.trial_chain`): an ordinary chain whose
unchanged steps are the same steps as the recipe's (stored once, reused by every trial). Everything a space
says is checked against the chain before anything trains (:meth:`SearchSpace.check`), one line per problem.
"""

from __future__ import annotations

import copy
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from nntransfer.analysis.results import own_comments
from nntransfer.configs.transfer_experiment import TransferExperiment
from nntransfer.registry import did_you_mean

__all__ = ["Uniform", "LogUniform", "IntRange", "Choice", "SearchSpace", "SAMPLERS", "PRUNERS", "DIRECTIONS", "ROLES"]

SAMPLERS = ("tpe", "random", "grid")
#: ``pruner`` name -> Optuna's pruner class (by name, so that importing this module does not import Optuna)
PRUNERS = {"median": "MedianPruner", "percentile": "PercentilePruner", "successive_halving": "SuccessiveHalvingPruner",
           "hyperband": "HyperbandPruner"}  # fmt: skip
DIRECTIONS = ("maximize", "minimize")
ROLES = ("dataset", "model", "trainer")
Step = Union[int, str]
Param = Tuple[Step, str, str]


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly from [low, high]."""

    low: float
    high: float

    def check(self, name: str) -> None:
        _check_range(name, self.low, self.high, float)

    def describe(self) -> Dict[str, Any]:
        return {"uniform": [float(self.low), float(self.high)]}


@dataclass(frozen=True)
class LogUniform:
    """A positive float drawn uniformly on a log scale from [low, high] (learning rates, weight decays)."""

    low: float
    high: float

    def check(self, name: str) -> None:
        _check_range(name, self.low, self.high, float)
        if self.low <= 0:
            raise ValueError(f"{name}: LogUniform needs a positive lower bound, got {self.low}")

    def describe(self) -> Dict[str, Any]:
        return {"log_uniform": [float(self.low), float(self.high)]}


@dataclass(frozen=True)
class IntRange:
    """A whole number drawn from low..high (both included), every ``step``-th."""

    low: int
    high: int
    step: int = 1

    def check(self, name: str) -> None:
        _check_range(name, self.low, self.high, int)
        if not isinstance(self.step, int) or isinstance(self.step, bool) or self.step < 1:
            raise ValueError(f"{name}: IntRange's step must be a whole number of at least 1, got {self.step!r}")

    def describe(self) -> Dict[str, Any]:
        return {"int": [int(self.low), int(self.high), int(self.step)]}


@dataclass(frozen=True)
class Choice:
    """One of a few values (numbers, strings, booleans, None)."""

    values: Sequence[Any]

    def check(self, name: str) -> None:
        values = list(self.values) if isinstance(self.values, (list, tuple)) else None
        if not values:
            raise ValueError(f"{name}: Choice needs a non-empty list of values, got {self.values!r}")
        for value in values:
            if not (value is None or isinstance(value, (bool, str)) or (isinstance(value, numbers.Real) and math.isfinite(value))):
                raise ValueError(f"{name}: a Choice holds numbers, strings, booleans or None, not {value!r}")
        if len(set(map(repr, values))) != len(values):
            raise ValueError(f"{name}: Choice lists a value twice: {values!r}")

    def describe(self) -> Dict[str, Any]:
        return {"choice": list(self.values)}


Distribution = Union[Uniform, LogUniform, IntRange, Choice]


def _check_range(name: str, low: Any, high: Any, kind: type) -> None:
    for bound in (low, high):
        if isinstance(bound, bool) or not isinstance(bound, numbers.Real) or not math.isfinite(bound):
            raise ValueError(f"{name}: a range needs two finite numbers, got {low!r} and {high!r}")
        if kind is int and not isinstance(bound, numbers.Integral):
            raise ValueError(f"{name}: IntRange needs whole numbers, got {low!r} and {high!r}")
    if not low < high:
        raise ValueError(f"{name}: the lower bound must be below the upper one, got {low!r} and {high!r}")


@dataclass
class SearchSpace:
    """What to search (see the module docstring): ``chain`` (a chain name of the recipe; may be left out
    when the recipe has one), ``params`` ((step, role, field) -> a distribution; step by index or by
    comment), the ``objective`` (``"SPLIT MEASURE"`` of the chain's last step, as its final evaluation names
    them: ``validation accuracy`` by default; a test split only when named), its ``direction``, the
    ``sampler`` and its ``seed``; optionally a ``pruner`` (off by default: one of :data:`PRUNERS`, with
    Optuna's ``pruner_options``) that stops a trial whose validation curve is hopeless next to the
    others' at the same epoch; it needs a validation objective, the one measure tracked every epoch."""

    params: Mapping[Param, Distribution]
    chain: str = ""
    objective: str = "validation accuracy"
    direction: str = "maximize"
    sampler: str = "tpe"
    seed: int = 0
    pruner: Optional[str] = None
    pruner_options: Mapping[str, Any] = field(default_factory=dict)
    name: str = field(default="", compare=False)  # where it was loaded from, for messages

    # ------------------------------------------------------------------ checks

    def check(self, chain: TransferExperiment) -> None:
        """One line for the first thing that does not fit ``chain``: a step, role or field it lacks, a
        distribution of the wrong kind for the field, a bad objective, direction or sampler."""
        if not isinstance(self.params, Mapping) or not self.params:
            raise ValueError("a search space needs params: {(step, role, field): distribution, ...}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {self.direction!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, not {self.sampler!r}{did_you_mean(str(self.sampler), SAMPLERS)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"the sampler's seed must be a whole number, not {self.seed!r}")
        self.split_and_measure()
        self.build_pruner()
        for param, distribution in self.params.items():
            name = self.param_name(param)
            if not isinstance(distribution, (Uniform, LogUniform, IntRange, Choice)):
                raise ValueError(f"{name}: {distribution!r} is not a distribution (Uniform, LogUniform, IntRange, Choice)")
            distribution.check(name)
            index = self.step_index(chain, param)
            config = getattr(chain[index], param[1])
            current = getattr(config, param[2])
            _check_kind(name, current, distribution)
        if self.sampler == "grid" and not all(isinstance(d, (Choice, IntRange)) for d in self.params.values()):
            raise ValueError("the grid sampler needs Choice or IntRange params: a continuous range has no grid")

    def split_and_measure(self) -> Tuple[str, str]:
        words = str(self.objective).split()
        if len(words) != 2:
            raise ValueError(f"the objective is 'SPLIT MEASURE' (e.g. 'validation accuracy'), not {self.objective!r}")
        return words[0], words[1]

    def build_pruner(self) -> Any:
        """Optuna's pruner (None without one); a name it lacks, options that do not fit, or an objective not
        on the validation split are one line."""
        if self.pruner is None:
            if self.pruner_options:
                raise ValueError("pruner_options without a pruner: name one of " + ", ".join(PRUNERS))
            return None
        if self.pruner not in PRUNERS:
            raise ValueError(f"pruner must be one of {', '.join(PRUNERS)} (or None), not {self.pruner!r}"
                             f"{did_you_mean(str(self.pruner), list(PRUNERS))}")  # fmt: skip
        split, measure = self.split_and_measure()
        if split != "validation":
            raise ValueError(f"a pruner compares trials by their validation curves: the objective must be 'validation {measure}', "
                             f"not {self.objective!r}")  # fmt: skip
        if not isinstance(self.pruner_options, Mapping):
            raise ValueError(f"pruner_options is a dict of {PRUNERS[self.pruner]}'s arguments, not {self.pruner_options!r}")
        import optuna

        cls = getattr(optuna.pruners, PRUNERS[self.pruner])
        try:
            return cls(**dict(self.pruner_options))
        except (TypeError, ValueError) as err:
            raise ValueError(f"pruner_options {dict(self.pruner_options)} do not fit optuna.pruners.{cls.__name__}: {err}") from None

    @staticmethod
    def param_name(param: Any) -> str:
        if not (isinstance(param, tuple) and len(param) == 3):
            raise ValueError(f"a searched setting is (step index or comment, role, field), not {param!r}")
        return f"step {param[0]!r} {param[1]}.{param[2]}"

    def step_index(self, chain: TransferExperiment, param: Param) -> int:
        """The index of the step ``param`` names (by index or comment); checks its role and field."""
        step, role, name = param
        comments = own_comments(chain)  # a step's own comment ("fine-tune"), or the chain's up to it ("pre-train -> fine-tune")
        if step not in comments:
            comments = [experiment.comment for experiment in chain]
        if isinstance(step, bool) or not isinstance(step, (int, str)):
            raise ValueError(f"{self.param_name(param)}: a step is an index or a comment, not {step!r}")
        if isinstance(step, int):
            if not 0 <= step < len(chain):
                raise ValueError(f"{self.param_name(param)}: the chain has steps 0..{len(chain) - 1}")
            index = step
        else:
            matches = [i for i, comment in enumerate(comments) if comment == step]
            if len(matches) != 1:
                found = "no step" if not matches else f"{len(matches)} steps"
                raise ValueError(f"{self.param_name(param)}: {found} of the chain has the comment {step!r}"
                                 f"{did_you_mean(step, own_comments(chain))}; its steps: {', '.join(map(repr, own_comments(chain)))}")  # fmt: skip
            index = matches[0]
        if role not in ROLES:
            raise ValueError(f"{self.param_name(param)}: the role is one of {', '.join(ROLES)}, not {role!r}")
        config = getattr(chain[index], role)
        if name not in config.field_names():
            raise ValueError(f"{self.param_name(param)}: {type(config).__name__} has no field {name!r}"
                             f"{did_you_mean(str(name), config.field_names())}")  # fmt: skip
        return index

    # ------------------------------------------------------------------ trials

    def keys(self) -> List[str]:
        """The name of each searched setting as a trial records it: ``STEP/ROLE/FIELD``."""
        return [f"{step}/{role}/{name}" for step, role, name in self.params]

    def trial_chain(self, chain: TransferExperiment, values: Mapping[str, Any]) -> TransferExperiment:
        """``chain`` with the searched fields set to ``values`` (keyed as :meth:`keys`): a new chain, the
        recipe's untouched."""
        settings: List[Dict[str, Dict[str, Any]]] = [{} for _ in range(len(chain))]
        for (param, key) in zip(self.params, self.keys()):
            settings[self.step_index(chain, param)].setdefault(param[1], {})[param[2]] = values[key]
        return copy.deepcopy(chain).update(settings)

    def describe(self) -> Dict[str, Any]:
        """What makes two spaces the same search (stored with the study): params, objective, direction,
        sampler, and the pruner when there is one."""
        described = {
            "params": {key: distribution.describe() for key, distribution in zip(self.keys(), self.params.values())},
            "objective": self.objective, "direction": self.direction, "sampler": self.sampler, "seed": self.seed,
        }  # fmt: skip
        if self.pruner is not None:
            described["pruner"] = {self.pruner: dict(self.pruner_options)}
        return described


def _check_kind(name: str, current: Any, distribution: Distribution) -> None:
    """A range fits a numeric field (IntRange an integer one); a Choice fits any field."""
    if isinstance(distribution, Choice):
        return
    numeric = isinstance(current, numbers.Real) and not isinstance(current, bool)
    if isinstance(distribution, IntRange) and not (isinstance(current, numbers.Integral) and numeric):
        raise ValueError(f"{name}: IntRange needs a whole-number field; its value is {current!r}")
    if not numeric and current is not None:
        raise ValueError(f"{name}: a {type(distribution).__name__} range needs a numeric field; its value is {current!r}")
