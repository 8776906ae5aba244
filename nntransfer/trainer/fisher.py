"""The diagonal Fisher information of a trained model, which a step hands on for EWC (Kirkpatrick et al., 2017).

The empirical Fisher: for every parameter the mean over the training examples of the squared gradient of
the loss of that example, ``F_i = E[(d loss / d w_i)^2]``, estimated in one pass over the batches as
the mean over batches of ``batch size * (batch-mean gradient)^2`` (for independent per-example gradients
around a minimum this has the same expectation as the per-example squares, at a batch's cost).
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, Tuple

import torch
from torch import nn

from nntransfer.trainer.main_loop_modules.base import read_output

#: names of the handed-on Fisher arrays: ``"fisher/<parameter name>"``
FISHER_PREFIX = "fisher/"


def diagonal_fisher(
    model: nn.Module, batches: Iterable[Tuple[torch.Tensor, torch.Tensor]], loss_fn: Callable[..., torch.Tensor]
) -> Dict[str, torch.Tensor]:
    """``{parameter name: Fisher diagonal}`` of ``model`` (evaluated in eval mode, the model's modes and
    gradients restored after) over ``batches`` of ``(inputs, targets)``; only trainable parameters."""
    was_training = model.training
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    saved_grads = [p.grad for _, p in named]
    sums = {name: torch.zeros_like(p) for name, p in named}
    n_batches = 0
    model.eval()
    try:
        for inputs, targets in batches:
            for _, p in named:
                p.grad = None
            loss = loss_fn(read_output(model(inputs)).logits, targets)
            loss.backward()
            n = int(targets.shape[0])
            for name, p in named:
                if p.grad is not None:
                    sums[name] += (p.grad.detach() ** 2) * n
            n_batches += 1
    finally:
        for (_, p), grad in zip(named, saved_grads):
            p.grad = grad
        model.train(was_training)
    if not n_batches:
        raise ValueError("cannot estimate the Fisher information on an empty training set")
    return {name: total / n_batches for name, total in sums.items()}
