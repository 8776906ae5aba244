"""`StepCheck`: what a main-loop module's ``check_step`` sees of one step before anything of its recipe trains.

The preflight (``nntransfer.pipeline.validation``) builds, for every step still to train, the step's
student and teacher untrained from their configs on the CPU, takes a few examples of one batch of its
training data, and calls ``check_step(step)`` of every configured main-loop module. A module asks for the
outputs of the layers it reads with ``step.layer_outputs(role, paths, what)`` (an unknown path is reported
with the closest existing one) and reports anything else that cannot work with ``step.problem(line)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from nntransfer.models.intermediate import IntermediateLayerWrapper, resolve_layer
from nntransfer.trainer.main_loop_modules.base import OUTPUT, read_output


@dataclass
class PreviousStep:
    """What the previous step of the chain hands on, as its trainer config says (it may not have trained yet)."""

    hands_on_logits: bool = False  # compute_transfer_data
    hands_on_fisher: bool = False  # compute_fisher


@dataclass
class StepCheck:
    """One step as the preflight sees it.

    Attributes:
        config: the step's trainer config (its fields as attributes, mixin fields included).
        student: the model the step trains, untrained (for an orbit-learning step: the orbit).
        teacher: the step's teacher, untrained, built from its config for the step's data; None without one.
        inputs: a few examples of one batch of the step's training data.
        previous: what the previous step hands on; None for the first step of a chain.
        problems: one line per problem found so far.
    """

    config: Any
    student: Optional[nn.Module]
    teacher: Optional[nn.Module]
    inputs: Optional[torch.Tensor]
    previous: Optional[PreviousStep] = None
    problems: List[str] = field(default_factory=list)
    _outputs: Dict[Tuple[str, Tuple[str, ...]], Any] = field(default_factory=dict, repr=False)

    def problem(self, line: str) -> None:
        """Report one problem (one line; the preflight prefixes the step)."""
        if line not in self.problems:
            self.problems.append(line)

    def layer_outputs(self, role: str, paths: Sequence[str], what: str) -> Optional[Any]:
        """The output of ``role`` (``"student"`` or ``"teacher"``) on the batch, a ``ModelOutput`` with the
        outputs of ``paths`` (``output.layer(path)``); None when that model is missing, lacks one of the paths
        or does not run on the batch (each reported, naming ``what`` asked)."""
        model = self.student if role == "student" else self.teacher
        if model is None or self.inputs is None:
            return None
        wanted = tuple(dict.fromkeys(path for path in paths if path != OUTPUT))
        unknown = False
        for path in wanted:
            try:
                resolve_layer(model, path)
            except ValueError as err:
                self.problem(f"{what}: the {role}'s {err}")
                unknown = True
        if unknown:
            return None
        key = (role, wanted)
        if key not in self._outputs:
            wrapped = IntermediateLayerWrapper(model, {path: path for path in wanted}) if wanted else model
            try:
                with torch.no_grad():
                    self._outputs[key] = read_output(wrapped.eval()(self.inputs))
            except Exception as err:  # a model that cannot take the data: the message names it
                message = str(err).splitlines()[0] if str(err) else type(err).__name__
                self.problem(f"{what}: one batch of the step's data does not run through the {role}: {message}")
                self._outputs[key] = None
        return self._outputs[key]
