"""A wrapper that also returns the outputs of named layers: ``(extra_outputs, output)``.

Main-loop modules that match or monitor representations read ``extra_outputs[name]``. Everything
else sees the wrapped model: the wrapper shares the wrapped model's tables of submodules, parameters
and buffers instead of holding it as a child, so ``state_dict`` keys, ``named_parameters``, ``.to()``
and ``.train()`` are exactly the wrapped model's, and weights move between wrapped and unwrapped models
without renaming. Other attributes (``n_classes``, ``input_shape``, methods) are forwarded.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Tuple

import torch
from torch import nn

from nntransfer.registry import did_you_mean

# Layer path meaning "the input of the readout" rather than the output of that module.
READOUT = "readout"


def resolve_layer(model: nn.Module, path: str, name: str = "") -> nn.Module:
    """The submodule at the dotted ``path``; ``ValueError`` naming the closest existing path otherwise."""
    try:
        return model.get_submodule(path)
    except AttributeError:
        existing = [p for p, _ in model.named_modules() if p]
        hint = did_you_mean(path, existing)
        label = f"get_intermediate_rep[{name!r}]: " if name else ""
        raise ValueError(
            f"{label}{type(model).__name__} has no layer {path!r}{hint} "
            f"(top-level layers: {', '.join(n for n, _ in model.named_children())})"
        ) from None


class IntermediateLayerWrapper(nn.Module):
    """Wraps ``model`` so that ``forward`` returns ``(extra_outputs, output)``.

    Args:
        model: the model to wrap (a wrapper is unwrapped first, its layers merged with ``layers``).
        layers: ``{name: layer path}``, kept as ``intermediate_layers``. ``"readout"`` captures the
            readout's *input* (the features it classifies); any other path captures that submodule's
            output, e.g. ``"core"``, ``"core.layer3"``, ``"readout.fc1"``.

    Captured tensors are clones taken right after the layer ran, so a later in-place operation in the
    wrapped model cannot change them; gradients flow through them as usual.
    """

    def __init__(self, model: nn.Module, layers: Mapping[str, str]):
        super().__init__()
        if isinstance(model, IntermediateLayerWrapper):
            layers = {**model.intermediate_layers, **layers}
            model = model.wrapped
        for name, path in layers.items():
            if not isinstance(name, str) or not isinstance(path, str):
                raise ValueError(f"get_intermediate_rep maps names to layer paths (strings), got {name!r}: {path!r}")
            resolve_layer(model, path, name)
        # Share, not copy: one set of modules, parameters and buffers seen through two objects.
        object.__setattr__(self, "wrapped", model)
        object.__setattr__(self, "_parameters", model._parameters)
        object.__setattr__(self, "_buffers", model._buffers)
        object.__setattr__(self, "_non_persistent_buffers_set", model._non_persistent_buffers_set)
        object.__setattr__(self, "_modules", model._modules)
        # Plain attribute (set past nn.Module.__setattr__), so a wrapped submodule named like it cannot clash.
        object.__setattr__(self, "intermediate_layers", dict(layers))
        self.training = model.training

    def forward(self, *args: Any, **kwargs: Any) -> Tuple[Dict[str, torch.Tensor], Any]:
        captured: Dict[str, torch.Tensor] = {}
        handles: List[torch.utils.hooks.RemovableHandle] = []

        def keep(name: str, value: Any) -> None:
            captured[name] = value.clone() if isinstance(value, torch.Tensor) else value

        # Hooks live only for this call, so the wrapped model used on its own is untouched.
        try:
            for name, path in self.intermediate_layers.items():
                module = self.wrapped.get_submodule(path)
                if path == READOUT:
                    handles.append(module.register_forward_pre_hook(lambda m, inputs, name=name: keep(name, inputs[0])))
                else:
                    handles.append(module.register_forward_hook(lambda m, inputs, output, name=name: keep(name, output)))
            output = self.wrapped(*args, **kwargs)
        finally:
            for handle in handles:
                handle.remove()
        missing = [name for name in self.intermediate_layers if name not in captured]
        if missing:
            raise RuntimeError(
                f"layers {[self.intermediate_layers[n] for n in missing]} did not run in the forward pass, so "
                f"{missing} could not be captured"
            )
        return captured, output

    def train(self, mode: bool = True) -> "IntermediateLayerWrapper":
        # The wrapped model's own flag matters if its forward reads self.training.
        self.wrapped.train(mode)
        self.training = mode
        return self

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            wrapped = self.__dict__.get("wrapped")
            if wrapped is None:
                raise
            return getattr(wrapped, name)

    def extra_repr(self) -> str:
        return f"wraps {type(self.wrapped).__name__}, layers={self.intermediate_layers}"
