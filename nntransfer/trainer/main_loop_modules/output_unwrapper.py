"""`OutputUnwrapper`: reduces a model's ``(extra_outputs, logits)`` to ``logits``; always the last module."""

from typing import Any

from nntransfer.trainer.main_loop_modules.base import MainLoopModule
from nntransfer.trainer.main_loop_modules.registry import register


def unwrap_output(outputs: Any) -> Any:
    """The logits of a model output: the last element of a tuple/list, else the output itself."""
    if isinstance(outputs, (tuple, list)):
        return outputs[-1]
    return outputs


@register
class OutputUnwrapper(MainLoopModule):
    """Models with intermediate representations return ``(extra_outputs, logits)``; the loss needs logits.
    The trainer runs this module after all others, so they still see the extra outputs."""

    def post_forward(self, outputs, loss, targets, **shared_memory):
        """Replace the outputs by the logits."""
        return unwrap_output(outputs), loss, targets
