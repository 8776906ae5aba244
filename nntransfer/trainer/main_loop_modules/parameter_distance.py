"""`ParameterDistance`: keep the parameters of a fine-tuning step near its starting point.

``"l2sp"`` (Li et al., 2018, L2-SP): ``alpha / 2 * sum ||w - w0||^2``; ``"ewc"`` (Kirkpatrick et al., 2017,
elastic weight consolidation): ``lambda / 2 * sum F * (w - w0)^2`` with the diagonal Fisher information F
of the previous step (``nntransfer.trainer.fisher``). w0 are the parameters as the trainer received them
(the previous step's weights), copied before the trainer resets or freezes anything.
"""

from __future__ import annotations

import logging
from typing import Dict, Mapping, Optional

import torch

from nntransfer.configs.trainer.mixins import ParameterDistanceMixin
from nntransfer.models.utils import select_parameters
from nntransfer.trainer.main_loop_modules.base import BatchState, LoopContext, MainLoopModule
from nntransfer.trainer.main_loop_modules.registry import register

logger = logging.getLogger(__name__)

Tensors = Mapping[str, torch.Tensor]


def _check_names(params: Tensors, reference: Tensors, caller: str) -> None:
    missing = sorted(set(reference) - set(params))
    if missing:
        raise ValueError(f"{caller}: the parameters lack {missing[:5]} of the reference; pass the same names in both")


def l2sp_penalty(params: Tensors, reference: Tensors) -> torch.Tensor:
    """``1/2 * sum ||w - w0||^2`` over the parameters named in ``reference`` ({name: w0}); ``params``
    maps the same names to the current values (e.g. ``dict(model.named_parameters())``)."""
    _check_names(params, reference, "l2sp_penalty")
    terms = [(params[name].float() - w0.float()).pow(2).sum() for name, w0 in reference.items()]
    if not terms:
        return torch.zeros(())
    return 0.5 * torch.stack(terms).sum()


def ewc_penalty(params: Tensors, reference: Tensors, fisher: Tensors) -> torch.Tensor:
    """``1/2 * sum F * (w - w0)^2`` over the parameters named in ``reference``, with the diagonal Fisher
    information ``fisher`` ({name: F}, same shapes)."""
    _check_names(params, reference, "ewc_penalty")
    missing = sorted(set(reference) - set(fisher))
    if missing:
        raise ValueError(f"ewc_penalty: the Fisher information lacks {missing[:5]}; pass one for every reference parameter")
    terms = [(fisher[name].float() * (params[name].float() - w0.float()).pow(2)).sum() for name, w0 in reference.items()]
    if not terms:
        return torch.zeros(())
    return 0.5 * torch.stack(terms).sum()


@register
class ParameterDistance(MainLoopModule):
    """In training adds the term ``param_reg``: ``l2sp_penalty`` or ``ewc_penalty`` (weight ``param_reg_weight``)
    on every batch, over the parameters as the trainer received them except those the trainer resets
    (``reset``), those ``param_reg_exclude`` selects and those frozen (``freeze``: they cannot move).
    EWC needs the Fisher information of the previous step (``context.fisher``).

    Attributes:
        reference: {parameter name: w0} of the regularised parameters.
        fisher: {parameter name: F} of the same parameters (EWC), else None.
    """

    config_mixin = ParameterDistanceMixin

    def __init__(self, context: LoopContext) -> None:
        super().__init__(context)
        c = self.config
        model = context.model  # not yet reset or frozen: the modules are built first
        excluded = set()
        for field in ("reset", "param_reg_exclude"):
            if getattr(c, field):
                excluded |= set(select_parameters(model, getattr(c, field), f"ParameterDistance ({field})"))
        self.reference: Dict[str, torch.Tensor] = {
            name: p.detach().clone() for name, p in model.named_parameters() if name not in excluded
        }
        if not self.reference:
            raise ValueError("ParameterDistance: reset and param_reg_exclude exclude every parameter; "
                             "nothing is left to regularise (shrink param_reg_exclude)")
        self.fisher: Optional[Dict[str, torch.Tensor]] = None
        if c.param_reg == "ewc":
            self.fisher = self._fisher_of(context.fisher)
        self.params: Optional[Dict[str, torch.Tensor]] = None

    def _fisher_of(self, fisher: Optional[Tensors]) -> Dict[str, torch.Tensor]:
        """The Fisher information of the regularised parameters; parameters it lacks are not regularised."""
        if fisher is None:
            raise ValueError("ParameterDistance with param_reg='ewc' needs the Fisher information of the previous "
                             "step: set compute_fisher=True in the previous step's trainer config")
        lacking = [name for name in self.reference if name not in fisher]
        if len(lacking) == len(self.reference):
            raise ValueError(f"ParameterDistance: the Fisher information names none of the regularised parameters "
                             f"(it has {sorted(fisher)[:5]}...); the previous step must train the same architecture")
        if lacking:
            logger.warning("ParameterDistance: no Fisher information for %s (not trained in the previous step); "
                           "they are not regularised", lacking)
            for name in lacking:
                del self.reference[name]
        for name, w0 in self.reference.items():
            if tuple(fisher[name].shape) != tuple(w0.shape):
                raise ValueError(f"ParameterDistance: the Fisher information of {name} has shape {tuple(fisher[name].shape)}, "
                                 f"the parameter {tuple(w0.shape)}; exclude it with param_reg_exclude")
        return {name: fisher[name].to(device=w0.device, dtype=torch.float32) for name, w0 in self.reference.items()}

    @classmethod
    def check_step(cls, step):
        """EWC needs the Fisher information the previous step hands on."""
        if step.config.param_reg == "ewc" and (step.previous is None or not step.previous.hands_on_fisher):
            step.problem("ParameterDistance with param_reg='ewc' needs the Fisher information of the previous step: "
                         "set compute_fisher=True in the previous step's trainer config")

    def pre_epoch(self, mode: str) -> None:
        """Before the first training epoch, find the trained parameters."""
        if self.params is None and mode == "Training":
            current = dict(self.context.model.named_parameters())
            frozen = [name for name in self.reference if not current[name].requires_grad]
            for name in frozen:
                del self.reference[name]
                if self.fisher is not None:
                    del self.fisher[name]
            if frozen:
                logger.info("ParameterDistance: %d frozen parameter tensors are not regularised", len(frozen))
            self.params = {name: current[name] for name in self.reference}

    def penalty(self) -> torch.Tensor:
        """The unweighted penalty at the current parameters."""
        params = self.params if self.params is not None else dict(self.context.model.named_parameters())
        if self.fisher is not None:
            return ewc_penalty(params, self.reference, self.fisher)
        return l2sp_penalty(params, self.reference)

    def post_forward(self, state: BatchState) -> None:
        """Add the weighted penalty (training only)."""
        if state.training and self.reference:
            state.add_loss("param_reg", self.penalty().to(self.context.device), self.config.param_reg_weight)
