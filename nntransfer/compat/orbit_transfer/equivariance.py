"""orbit_transfer's learned orbit of the 2-D experiments (orbit_transfer/trainer/main_loop_modules/
equivariance_transfer.py with sinzlab/nntransfer's ``switch_teacher``), as one main-loop module of this library's
trainer: ``TransferMixin``'s ``regularization={"regularizer": "EquivarianceTransfer", ...}``.

The orbit is ``models.LearnedEquivariance`` (``TransferModel``; with ``spatial_transformer=True`` the affine
``models.AffineLearnedEquivariance`` of the rotation experiment). A chain has two such steps after the teacher's:

- **learning the orbit** (``learn_equiv=True``, ``switch_teacher=True``, ``deactivate_dropout=True``): the step's
  model is the trained network (the teacher here, frozen, in eval mode), ``student_model`` the orbit, which the
  optimizer trains and the step hands on. As the original switched the two, every batch runs the *network*;
- **transferring it** (``learn_equiv=False``): the step's model is the orbit (the teacher here, frozen),
  ``student_model`` the student network, trained.

Every batch, in training, validation and test alike (the original applied the module in all three)::

    g ~ U{0..G-1} per example; n ~ U{1..max_stacked_transform - 1} per batch (1 when max_stacked_transform is 1)
    rho_g x = orbit(x, g, layer 0, n times)             (and rho_h x, h != g, for the identity between examples)
    the network sees [x; rho_g x], clamped to [0, 1] (clamp_input) and detached (cut_input_grad)
    ce       = CE(network(rho_g x), y)                                               x ce_factor
    distance = MSE over all layers' values at once of orbit(phi_l(x), g, l, n) and phi_l(rho_g x)   x equiv_factor
    (learning only)
    inv      = MSE(x, orbit(rho_g x, -g, 0, n)) (+ the same on every layer: inv_for_all_layers)   x inv_factor
    identity = mean |cos| of the kernels' pairs (id_between_filters) or of rho_g x and rho_h x   x id_factor
    loss     = (1 - gamma) * CE(network(x), y) + gamma * (ce + distance + inv + identity)

each factor ramped linearly over its first R epochs where ``ramp_up`` names it (``{"equiv": R}``; the original
read the keys ``ce``, ``equiv``, ``inv``, ``id``, so the rotation recipe's ``{"equiv_factor": 10}`` ramped nothing).

``phi_l`` are the network's named outputs (``get_intermediate_rep``) in the order the network returns them, layer
``l`` = 1, 2, ...; the statistics are the network's on ``x``. Each term is logged as ``orbit_transfer_equiv_<term>``
and counts in the total loss, which the original's ``main_objective="loss"`` selects on (objective
``"total_loss"``). What differs, none of it what trains: outside training the elements come from a generator seeded
by the step's seed (the original drew them from the global random state), so validations compare like with like.

What the original could not run is refused before training by the chain check (``check_step``): a learning step
whose loss reaches no parameter of the orbit (``loss.backward()`` failed there), a network whose named outputs
the orbit cannot act on (another number of layers, maps smaller than the kernels' padding).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from nntransfer.compat.orbit_transfer.configs.trainer import RepresentationRegularizationMixin
from nntransfer.compat.orbit_transfer.models import AffineLearnedEquivariance, LearnedEquivariance
from nntransfer.trainer.main_loop_modules.base import MODEL, BatchState, LoopContext, MainLoopModule

# ---------------------------------------------------------------------------------------- the terms (pure)


def orbit_on_layers(orbit: Any, outputs: List[torch.Tensor], g: torch.Tensor, n: int) -> List[torch.Tensor]:
    """``orbit(phi_l, g, l, n)`` for the network's outputs ``phi_1, phi_2, ...`` (layer 0 is the input)."""
    return [orbit(output, g, layer + 1, n) for layer, output in enumerate(outputs)]


def equivariance_distance(rho_phi: List[torch.Tensor], phi_rho: List[torch.Tensor]) -> torch.Tensor:
    """The MSE between the two lists' values, every layer flattened and concatenated (large layers weigh more)."""
    return F.mse_loss(torch.cat([x.flatten(1) for x in rho_phi], dim=1), torch.cat([x.flatten(1) for x in phi_rho], dim=1))


def invertibility_distance(orbit: Any, x: torch.Tensor, rho_g_x: torch.Tensor, g: torch.Tensor,
                           n: int, layer: int = 0) -> torch.Tensor:
    """The MSE between ``x`` and ``orbit(rho_g x, -g)`` on layer ``layer``."""
    return F.mse_loss(x.squeeze(), orbit(rho_g_x, -g, layer, n).squeeze())


def squared_distances(rows: torch.Tensor) -> torch.Tensor:
    """``[i, j]``: ``|rows_i - rows_j|²``."""
    norms = rows.pow(2).sum(1)
    return norms.view(-1, 1) + norms.view(1, -1) - 2.0 * rows @ rows.T


def kernel_identity(kernels: torch.Tensor, mse_dist: bool = False, hinge_epsilon: float = 0.5,
                    exclude_inverse: bool = False) -> torch.Tensor:
    """How alike the G elements' kernels are (the original's ``id_between_filters``), over the pairs g < h of the
    L2-normalised flattened kernels u: the mean |u_g · u_h|; with ``mse_dist``, of ``(10·max(0, eps - |u_g -
    u_h|²))²`` (``hinge_epsilon`` eps; 0: of |u_g - u_h|² itself). ``exclude_inverse`` leaves out the pairs (g, -g)
    (not with the hinge, as there)."""
    u = F.normalize(kernels.flatten(1), dim=1)
    G = u.shape[0]
    pairs = G * (G - 1) / 2
    matrix = squared_distances(u) if mse_dist else u @ u.T
    if mse_dist and hinge_epsilon:
        return torch.triu(((hinge_epsilon - matrix).clamp(min=0) * 10) ** 2, diagonal=1).sum() / pairs
    matrix = torch.triu(matrix, diagonal=1)
    if exclude_inverse:
        index = torch.arange(G, device=u.device)
        keep = torch.ones_like(matrix)
        keep[index, (-index) % G] = 0
        matrix = matrix * keep
        pairs -= G // 2
    return matrix.abs().sum() / pairs


def example_identity(rho_g_x: torch.Tensor, rho_h_x: torch.Tensor) -> torch.Tensor:
    """The mean |cosine similarity| of rho_g x and rho_h x (h != g) per example."""
    return F.cosine_similarity(rho_h_x.flatten(1), rho_g_x.flatten(1), dim=1, eps=1e-8).abs().mean()


def sample_elements(b: int, settings: Dict[str, Any], generator: Optional[torch.Generator]) -> Tuple[torch.Tensor, Optional[torch.Tensor], int]:
    """``g`` per example, ``h != g`` per example where the identity term compares examples (else None), and ``n``."""
    G = int(settings["group_size"])
    g = torch.randint(0, G, (b,), generator=generator)
    stacked = int(settings["max_stacked_transform"])
    n = int(torch.randint(1, stacked, (1,), generator=generator)) if stacked > 1 else 1
    h = None
    if settings["learn_equiv"] and not settings["id_between_filters"]:
        h = (g + torch.randint(1, G, (b,), generator=generator)) % G
        if settings["exclude_inv_from_id_loss"]:
            h = torch.where(h == (-g) % G, h + 1, h)
    return g, h, n


#: the learned orbits (``TransferModel``; ``spatial_transformer=True``: the affine one)
ORBITS = (LearnedEquivariance, AffineLearnedEquivariance)
#: the factors and the keys of ``ramp_up`` that ramp them
RAMPED = {"ce_factor": "ce", "equiv_factor": "equiv", "inv_factor": "inv", "id_factor": "id"}


def ramped_factors(settings: Dict[str, Any], epoch: int) -> Dict[str, float]:
    """The factors of an epoch: a factor whose ``ramp_up`` key names R epochs is ``factor · epoch / R`` up to
    epoch R (the original's linear ramp), the others as set."""
    ramp = settings.get("ramp_up") or {}
    factors = {}
    for name, key in RAMPED.items():
        final = float(settings[name])
        factors[name] = final / ramp[key] * epoch if key in ramp and epoch <= ramp[key] else final
    return factors


def _bare(model: Any) -> Any:
    """The model inside a layer-capturing wrapper."""
    return getattr(model, "wrapped", model)


# ---------------------------------------------------------------------------------------- the module


class EquivarianceTransfer(MainLoopModule):
    """The original's ``EquivarianceTransfer`` (module docstring): learning the orbit under which the frozen
    network is equivariant, or training a student on the orbit's transformed inputs and equivariance."""

    config_mixin = RepresentationRegularizationMixin
    needs_teacher = MODEL

    def __init__(self, context: LoopContext) -> None:
        super().__init__(context)
        self.settings: Dict[str, Any] = dict(self.config.regularization)
        self.learn = bool(self.settings["learn_equiv"])
        self.orbit = _bare(context.model if self.learn else context.teacher)
        self.network = context.teacher if self.learn else None  # learning: the frozen network runs every batch
        self.gamma = float(self.settings["gamma"])
        self.generator: Optional[torch.Generator] = None
        self.batch: Dict[str, Any] = {}
        self.factors = ramped_factors(self.settings, 0)

    def pre_epoch(self, mode: str) -> None:
        """The epoch's factors (``ramp_up``); outside training, elements come from a generator seeded by the step's
        seed."""
        self.factors = ramped_factors(self.settings, self.context.epoch)
        self.generator = None if mode == "Training" else torch.Generator().manual_seed(self.context.seed)

    def pre_forward(self, state: BatchState) -> None:
        """Draw the elements, transform the batch, stack ``[x; rho_g x]``; learning: the network runs."""
        s, x = self.settings, state.inputs
        b = x.shape[0]
        g, h, n = sample_elements(b, s, self.generator)
        g = g.to(x.device)
        with torch.set_grad_enabled(self.learn and torch.is_grad_enabled()):
            if h is not None:
                both = self.orbit(torch.cat([x, x]), torch.cat([g, h.to(x.device)]), 0, n)
                rho_g_x, rho_h_x = both[:b], both[b:]
            else:
                rho_g_x, rho_h_x = self.orbit(x, g, 0, n), None
        self.batch = {"x": x, "rho_g_x": rho_g_x, "rho_h_x": rho_h_x, "g": g, "n": n, "b": b}
        state.stack_inputs(rho_g_x)
        if s["clamp_input"]:
            state.inputs = state.inputs.clamp(min=0, max=1)
        if s["cut_input_grad"]:
            state.inputs = state.inputs.detach()
        if self.learn:
            state.model = self.network

    def terms(self, state: BatchState) -> Dict[str, Tuple[torch.Tensor, float]]:
        """The unweighted terms of the batch, each with its factor."""
        s, f, batch = self.settings, self.factors, self.batch
        b, g, n = batch["b"], batch["g"], batch["n"]
        outputs = list(state.output.layers.values())
        clean, transformed = [o[:b] for o in outputs], [o[b:] for o in outputs]
        terms: Dict[str, Tuple[torch.Tensor, float]] = {}
        if f["ce_factor"]:
            terms["ce"] = (F.cross_entropy(state.output.logits.flatten(1)[b:], state.targets), f["ce_factor"])
        # the orbit on the network's layers: for the distance, and for the invertibility on every layer
        needed = f["equiv_factor"] or (self.learn and f["inv_factor"] and s["inv_for_all_layers"])
        rho_phi = orbit_on_layers(self.orbit, clean, g, n) if needed else []
        if f["equiv_factor"]:
            terms["distance"] = (equivariance_distance(rho_phi, transformed), f["equiv_factor"])
        if not self.learn:
            return terms
        if f["inv_factor"]:
            inv = invertibility_distance(self.orbit, batch["x"], batch["rho_g_x"], g, n)
            if s["inv_for_all_layers"]:
                for layer, (phi, rho) in enumerate(zip(clean, rho_phi)):
                    inv = inv + invertibility_distance(self.orbit, phi, rho, g, n, layer + 1)
            terms["inv"] = (inv, f["inv_factor"])
        if f["id_factor"]:
            if s["id_between_filters"]:
                identity = kernel_identity(self.orbit.element_parameters(), s["mse_dist"], s["hinge_epsilon"],
                                           s["exclude_inv_from_id_loss"])
            else:
                identity = example_identity(batch["rho_g_x"], batch["rho_h_x"])
            terms["identity"] = (identity, f["id_factor"])
        return terms

    def post_forward(self, state: BatchState) -> None:
        """Add ``gamma * factor * term`` for each term, keep the network's output on ``x``, weigh its CE by
        ``1 - gamma``."""
        for name, (value, factor) in self.terms(state).items():
            state.add_loss(f"orbit_transfer_equiv_{name}", value, self.gamma * float(factor))
        b = self.batch["b"]
        state.output, state.inputs, state.copies = state.output.rows(0, b), state.inputs[:b], state.copies - 1
        state.scale_task_loss(1.0 - self.gamma)
        self.batch = {}

    @classmethod
    def check_step(cls, step) -> None:
        """The orbit is where the mode needs it, the loss of a learning step reaches it, and it acts on the
        network's named outputs (as many as it has layers) and on the step's inputs."""
        settings = step.config.regularization
        learn = bool(settings.get("learn_equiv"))
        if step.teacher is None:
            step.problem("EquivarianceTransfer needs a teacher: set student_model (the step's model is then the "
                         "teacher), as the recipes do")
            return
        orbit, role = (_bare(step.student), "student") if learn else (_bare(step.teacher), "teacher")
        network = "teacher" if learn else "student"
        if not isinstance(orbit, ORBITS):
            where = ("student_model (the orbit the step learns; the step's model is the network)" if learn else
                     "the step's model (the orbit an earlier step learned; student_model is the network)")
            step.problem(f"EquivarianceTransfer with learn_equiv={learn}: {where} must be a TransferModel, got "
                         f"{type(orbit).__name__}")
            return
        if learn and not (settings["equiv_factor"] or settings["inv_factor"] or settings["id_factor"]
                          or (settings["ce_factor"] and not settings["cut_input_grad"])):
            step.problem("EquivarianceTransfer learning the orbit: no term of the loss reaches the orbit (equiv_factor, "
                         "inv_factor and id_factor are 0, and ce_factor's gradient is cut by cut_input_grad); the "
                         "original's loss.backward() failed there")
            return
        outputs = step.layer_outputs(network, [], "EquivarianceTransfer")
        if outputs is None:
            return
        layers = list(outputs.layers.items())
        expected = orbit.n_layers
        if len(layers) != expected:
            step.problem(f"EquivarianceTransfer: the {network} names {len(layers)} outputs (get_intermediate_rep: "
                         f"{[name for name, _ in layers]}), the orbit acts on {expected} layers (TransferModel "
                         "num_layers); the original paired them in order")
            return
        g = torch.zeros(1, dtype=torch.long)
        try:
            with torch.no_grad():
                if step.inputs is not None:
                    orbit(step.inputs[:1], g, 0)
                for layer, (_, value) in enumerate(layers):
                    orbit(value[:1], g, layer + 1)
        except (ValueError, RuntimeError) as err:
            step.problem(f"EquivarianceTransfer: the orbit cannot act on the {network}'s outputs: "
                         f"{str(err).splitlines()[0]}")


#: the name recipes' configs list in ``main_loop_modules`` (a dotted path: a worker imports it from a table row)
MODULE_PATH = f"{__name__}.EquivarianceTransfer"

__all__ = ["EquivarianceTransfer", "ORBITS", "ramped_factors", "orbit_on_layers", "equivariance_distance", "invertibility_distance",
           "kernel_identity", "example_identity", "sample_elements", "squared_distances"]
