"""Orbit transfer (Nix, Sinz et al., AISTATS 2022): `OrbitLearning` learns a group representation under which
a frozen teacher is equivariant; `OrbitTransfer` trains a student on the orbits of that representation and
to be equivariant in the same way. The loss terms are the pure functions below; the group representation
is ``nntransfer.models.orbit.LearnedOrbit``; the settings are ``nntransfer.configs.trainer.orbit``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from nntransfer.configs.trainer.orbit import OrbitLearningMixin, OrbitTransferMixin
from nntransfer.models.orbit import INPUT, LearnedOrbit
from nntransfer.trainer.main_loop_modules.base import (
    MODEL,
    OUTPUT,
    BatchState,
    LoopContext,
    MainLoopModule,
    ModelOutput,
    read_output,
)
from nntransfer.trainer.main_loop_modules.registry import register

# ---------------------------------------------------------------------------------------- loss terms

def equivariance_loss(phi_rho_x: torch.Tensor, rho_phi_x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between phi(rho_g x) and rho_g phi(x) (over all entries)."""
    return F.mse_loss(phi_rho_x.float().flatten(1), rho_phi_x.float().flatten(1))


def invertibility_loss(x: torch.Tensor, rho_inverse_rho_x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between rho_{-g} rho_g x and x."""
    return F.mse_loss(rho_inverse_rho_x.float().flatten(1), x.float().flatten(1))


def identity_loss(rho_g_x: torch.Tensor, rho_h_x: torch.Tensor) -> torch.Tensor:
    """Mean |cosine similarity| of rho_g x and rho_h x (g != h): 0 when the two transformed examples are
    orthogonal, 1 when one is a multiple of the other (e.g. both elements act as the identity)."""
    return F.cosine_similarity(rho_g_x.float().flatten(1), rho_h_x.float().flatten(1), dim=1, eps=1e-8).abs().mean()


def element_distinctness_loss(parameters: torch.Tensor, epsilon: float = 1.0, scale: float = 10.0) -> torch.Tensor:
    """Distinctness between the G elements themselves (``parameters``: one row per element, e.g. affine
    matrices (G, 2, 3) or kernels): with u_g the L2-normalised flattened rows, the mean over pairs g < h of
    ``(scale * max(0, epsilon - |u_g - u_h|^2))^2`` (0 once every pair is at least ``epsilon`` apart; the
    original's ``id_between_filters`` with ``mse_dist`` and ``hinge_epsilon``, on the input's elements)."""
    u = F.normalize(parameters.float().flatten(1), dim=1)
    first, second = torch.triu_indices(u.shape[0], u.shape[0], offset=1, device=u.device)
    distance = (u[first] - u[second]).pow(2).sum(dim=1)
    return (scale * (epsilon - distance).clamp(min=0)).pow(2).mean()


def other_elements(g: torch.Tensor, group_size: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One element h != g per entry of ``g``, uniform over the other G - 1."""
    offset = torch.randint(1, group_size, g.shape, device=g.device, generator=generator)
    return torch.remainder(g + offset, group_size)


def layer_equivariance(orbit: LearnedOrbit, layers: Mapping[str, str], clean: ModelOutput, transformed: ModelOutput,
                       g: torch.Tensor) -> torch.Tensor:
    """Sum over ``layers`` ({network layer path: orbit layer}) of ``equivariance_loss(phi_l(rho_g x),
    rho_g phi_l(x))``; ``clean``/``transformed``: the network's outputs on x and on rho_g x."""
    total = torch.zeros((), device=g.device)
    for path, layer in layers.items():
        rep = clean.layer(path)
        total = total + equivariance_loss(transformed.layer(path), orbit.transform(rep, g, layer))
    return total


def _bare(model: Any) -> Any:
    """The model inside a layer-capturing wrapper (the orbit itself)."""
    return getattr(model, "wrapped", model)


def _check_orbit(orbit: Any, owner: str, role: str, layers: Mapping[str, str], field: str) -> LearnedOrbit:
    orbit = _bare(orbit)
    if not isinstance(orbit, LearnedOrbit):
        raise ValueError(f"{owner} needs {role} to be a LearnedOrbit (model config OrbitConfig), got {type(orbit).__name__}")
    missing = sorted(set(layers.values()) - set(orbit.layers))
    if missing:
        raise ValueError(f"{field} names orbit layers {missing} the orbit lacks; it has {orbit.layers} (OrbitConfig.layers)")
    return orbit


def _check_orbit_lengths(step: Any, orbit: LearnedOrbit, role: str, layers: Mapping[str, str], what: str) -> None:
    """Report (``step.problem``) each layer of the ``role`` network whose output on the step's batch the
    orbit layer mapped to it cannot act on (another length), and inputs the orbit cannot transform."""
    try:
        if step.inputs is not None:
            orbit.transform(step.inputs, 0, INPUT)
    except ValueError as err:
        step.problem(f"{what}: the step's inputs {tuple(step.inputs.shape[1:])}: {err}")
    outputs = step.layer_outputs(role, list(layers), what)
    if outputs is None:
        return
    for path, layer in layers.items():
        try:
            orbit.transform(outputs.layer(path), 0, layer)
        except ValueError as err:
            step.problem(f"{what}: the {role}'s layer {path!r} for orbit layer {layer!r}: {err}")


# ---------------------------------------------------------------------------------------- learning the orbit

class TeacherOnOrbit(nn.Module):
    """For one batch: the teacher on x and on rho_g x (and rho_h x for the identity term). ``forward``
    returns the teacher's output on rho_g x and keeps in ``record`` what ``OrbitLearning`` needs.
    The orbit is not a child module (it is the trainer's model)."""

    def __init__(self, teacher: nn.Module, orbit: LearnedOrbit, g: torch.Tensor, h: Optional[torch.Tensor]) -> None:
        super().__init__()
        object.__setattr__(self, "teacher", teacher)
        object.__setattr__(self, "orbit", orbit)
        self.g, self.h = g, h
        self.record: Dict[str, Any] = {}

    def forward(self, x: torch.Tensor) -> ModelOutput:
        rho_g_x = self.orbit.transform(x, self.g, INPUT)
        with torch.no_grad():  # the teacher is frozen and x is data: no gradient to anything
            clean = read_output(self.teacher(x))
        transformed = read_output(self.teacher(rho_g_x))  # gradients flow through the frozen teacher into rho
        rho_h_x = self.orbit.transform(x, self.h, INPUT) if self.h is not None else None
        self.record = {"x": x, "rho_g_x": rho_g_x, "rho_h_x": rho_h_x, "clean": clean, "transformed": transformed}
        return transformed


@register
class OrbitLearning(MainLoopModule):
    """Learn the orbit: the step's model is the ``LearnedOrbit``, the teacher the frozen network. Every
    forward pass (all modes) runs the teacher on rho_g x, so the task loss is the label-preserving
    cross-entropy (the task loss scaled by ``orbit_ce_weight``) and the accuracy the teacher's on transformed
    inputs; training and validation add the terms ``orbit_equivariance``, ``orbit_invertibility`` and
    ``orbit_identity`` (``OrbitLearningMixin``)."""

    config_mixin = OrbitLearningMixin
    needs_teacher = MODEL

    def __init__(self, context: LoopContext) -> None:
        super().__init__(context)
        c = self.config
        self.layers = dict(c.orbit_layers_teacher)
        self.orbit = _check_orbit(context.model, "OrbitLearning", "the step's model", self.layers, "orbit_layers_teacher")
        self.weights = {"orbit_equivariance": float(c.orbit_equivariance_weight),
                        "orbit_invertibility": float(c.orbit_invertibility_weight),
                        "orbit_identity": float(c.orbit_identity_weight)}
        self.generator: Optional[torch.Generator] = None

    @classmethod
    def teacher_layers(cls, config: Any) -> List[str]:
        return [path for path in config.orbit_layers_teacher if path != OUTPUT]

    @classmethod
    def check_step(cls, step):
        """The step's model is an orbit with the layers ``orbit_layers_teacher`` names, each as long as the
        teacher's layer it acts on."""
        super().check_step(step)
        layers = dict(step.config.orbit_layers_teacher)
        try:
            orbit = _check_orbit(step.student, "OrbitLearning", "the step's model", layers, "orbit_layers_teacher")
        except ValueError as err:
            step.problem(str(err))
            return
        _check_orbit_lengths(step, orbit, "teacher", layers, "OrbitLearning (orbit_layers_teacher)")

    def pre_epoch(self, mode: str) -> None:
        """Outside training, elements come from a generator seeded by the step's seed."""
        self.generator = None
        if mode != "Training":
            self.generator = torch.Generator(device=self.context.device).manual_seed(self.context.seed)

    def pre_forward(self, state: BatchState) -> None:
        """Draw g (and h != g) per example; the model of this pass is the teacher on rho_g x."""
        G = self.orbit.group_size
        g = torch.randint(0, G, (state.inputs.shape[0],), device=state.inputs.device, generator=self.generator)
        between_examples = self.config.orbit_identity_between == "examples"
        h = other_elements(g, G, self.generator) if self.weights["orbit_identity"] and between_examples else None
        state.model = TeacherOnOrbit(self.context.teacher, self.orbit, g, h)

    def terms(self, record: Mapping[str, Any], g: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The unweighted orbit terms of one batch."""
        orbit = self.orbit
        terms = {"orbit_equivariance": layer_equivariance(orbit, self.layers, record["clean"], record["transformed"], g)}
        inverse = orbit.inverse_index(g)
        inv = invertibility_loss(record["x"], orbit.transform(record["rho_g_x"], inverse, INPUT))
        if self.config.orbit_invertibility_all_layers:
            for path, layer in self.layers.items():
                rep = record["clean"].layer(path)
                inv = inv + invertibility_loss(rep, orbit.transform(orbit.transform(rep, g, layer), inverse, layer))
        terms["orbit_invertibility"] = inv
        if record["rho_h_x"] is not None:
            terms["orbit_identity"] = identity_loss(record["rho_g_x"], record["rho_h_x"])
        elif self.weights["orbit_identity"] and self.config.orbit_identity_between == "elements":
            terms["orbit_identity"] = element_distinctness_loss(orbit.element_parameters(INPUT))
        return terms

    def post_forward(self, state: BatchState) -> None:
        """Scale the task loss by ``orbit_ce_weight``; add the weighted orbit terms (not in the final evaluation)."""
        state.scale_task_loss(self.config.orbit_ce_weight)
        if state.mode == "Test":
            return
        for name, value in self.terms(state.model.record, state.model.g).items():
            state.add_loss(name, value, self.weights[name])


# ---------------------------------------------------------------------------------------- transferring it

@register
class OrbitTransfer(MainLoopModule):
    """Train a student on the orbits of a learned group: the teacher is the frozen ``LearnedOrbit``. In
    training the batch becomes ``[x; rho_g x]``; ``post_forward`` adds the terms ``orbit_equivariance`` (at the
    mapped student layers) and ``orbit_ce`` (the cross-entropy on ``rho_g x``), then keeps the clean half for
    the task loss and the statistics (``OrbitTransferMixin``). Validation and test see the plain student."""

    config_mixin = OrbitTransferMixin
    needs_teacher = MODEL

    def __init__(self, context: LoopContext) -> None:
        super().__init__(context)
        c = self.config
        self.layers = dict(c.orbit_student_layers)
        self.orbit = _check_orbit(context.teacher, "OrbitTransfer", "the teacher (the previous step's model)",
                                  self.layers, "orbit_student_layers")
        self.g: Optional[torch.Tensor] = None

    @classmethod
    def student_layers(cls, config: Any) -> List[str]:
        return [path for path in config.orbit_student_layers if path != OUTPUT]

    @classmethod
    def check_step(cls, step):
        """The teacher is the orbit of an orbit-learning step before this one, with the layers
        ``orbit_student_layers`` names, each as long as the student's layer it acts on."""
        super().check_step(step)
        if step.teacher is None:
            return
        layers = dict(step.config.orbit_student_layers)
        try:
            orbit = _check_orbit(step.teacher, "OrbitTransfer", "the teacher (the previous step's model)", layers,
                                 "orbit_student_layers")
        except ValueError as err:
            orbit_step = "" if isinstance(step.teacher, LearnedOrbit) else "; put an orbit-learning step (OrbitLearning) right before this one"
            step.problem(f"{err}{orbit_step}")
            return
        _check_orbit_lengths(step, orbit, "student", layers, "OrbitTransfer (orbit_student_layers)")

    def pre_forward(self, state: BatchState) -> None:
        """Append rho_g x, one random g per example (training only)."""
        if not state.training:
            return
        self.g = self.orbit.sample(state.inputs.shape[0], device=state.inputs.device)
        with torch.no_grad():
            transformed = self.orbit.transform(state.inputs, self.g, INPUT)
        state.stack_inputs(transformed)

    def post_forward(self, state: BatchState) -> None:
        """Equivariance at the mapped layers + cross-entropy on rho_g x; keep the clean half."""
        if not state.training:
            return
        n = state.targets.shape[0]
        clean, transformed = state.output.rows(0, n), state.output.rows(n)
        equivariance = layer_equivariance(self.orbit, self.layers, clean, transformed, self.g)
        ce = self.context.task_loss(transformed.logits, state.targets, state.task)
        state.add_loss("orbit_equivariance", equivariance, self.config.orbit_equivariance_weight)
        state.add_loss("orbit_ce", ce, self.config.orbit_ce_weight)
        state.output, state.inputs, state.copies = clean, state.inputs[:n], state.copies - 1
