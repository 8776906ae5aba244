"""Model utilities the trainer and the transfer steps use.

Selectors name parts of a model the way ``named_parameters``/``named_modules`` do: ``"all"``, a module
path (``"core"``, ``"readout"``, ``"core.layer1"``) meaning everything below it, or one parameter
(``"readout.fc3.bias"``). A string or a list of strings is accepted; a selector that names nothing is a
``ValueError``.
"""

from __future__ import annotations

import logging
import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from nntransfer.models.intermediate import resolve_layer

logger = logging.getLogger(__name__)

Selectors = Union[str, Sequence[str]]

ALL = "all"
# A parameter's ensemble copy is a buffer on the same module named "<parameter>_ensemble<member>".
_ENSEMBLE_KEY = re.compile(r"^(?P<param>.+)_ensemble(?P<member>\d+)$")


# ---------------------------------------------------------------------------------------- selectors


def _as_list(selectors: Optional[Selectors]) -> List[str]:
    if selectors is None:
        return []
    if isinstance(selectors, str):
        return [selectors]
    return list(selectors)


def _covers(selector: str, name: str) -> bool:
    """Whether ``selector`` selects the parameter or module path ``name``."""
    return selector == ALL or name == selector or name.startswith(selector + ".")


def _check_selectors(model: nn.Module, selectors: List[str], caller: str, parameters_too: bool = True) -> None:
    known = {path for path, _ in model.named_modules() if path}
    if parameters_too:
        known |= {name for name, _ in model.named_parameters()}
    for selector in selectors:
        if not isinstance(selector, str) or not selector:
            raise ValueError(f"{caller}: selectors are non-empty strings, got {selector!r}")
        if selector != ALL and selector not in known:
            try:
                resolve_layer(model, selector)
            except ValueError as err:
                raise ValueError(f"{caller}: {err}; selectors are 'all', a layer path or a parameter name") from None


def select_parameters(model: nn.Module, selectors: Selectors, caller: str = "select_parameters") -> List[str]:
    """Names of the parameters ``selectors`` select, in ``named_parameters`` order."""
    selectors = _as_list(selectors)
    _check_selectors(model, selectors, caller)
    return [name for name, _ in model.named_parameters() if any(_covers(s, name) for s in selectors)]


# ---------------------------------------------------------------------------------------- freezing and resetting


def freeze_params(model: nn.Module, to_freeze: Selectors) -> List[str]:
    """Stop gradients for the selected parameters (``requires_grad = False``); returns their names."""
    names = select_parameters(model, to_freeze, "freeze_params")
    parameters = dict(model.named_parameters())
    for name in names:
        parameters[name].requires_grad_(False)
    logger.info("froze %d parameter tensors selected by %s", len(names), _as_list(to_freeze))
    return names


@torch.no_grad()
def reset_params(model: nn.Module, to_reset: Selectors, seed: Optional[int] = None) -> List[str]:
    """Re-initialise the selected parameters with their layers' ``reset_parameters()``; returns their names.

    A selected layer is reset as a whole (batch norm running statistics included). A single selected
    parameter is reset alone: its layer is reset and the layer's other tensors are put back. With
    ``seed`` the new values are drawn from that seed without touching the global random state."""
    selectors = _as_list(to_reset)
    selected = set(select_parameters(model, selectors, "reset_params"))
    reset: List[str] = []
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        for path, module in model.named_modules():
            own = {_join(path, n): p for n, p in module.named_parameters(recurse=False)}
            if not any(n in selected for n in own):
                continue
            whole = any(_covers(s, path) for s in selectors) if path else ALL in selectors
            if not hasattr(module, "reset_parameters"):
                raise ValueError(
                    f"reset_params: cannot reset {path or 'the model'!r}: {type(module).__name__} has no reset_parameters()"
                )
            keep = {} if whole else {
                **{n: p.detach().clone() for n, p in own.items() if n not in selected},
                **{_join(path, n): b.detach().clone() for n, b in module.named_buffers(recurse=False)},
            }
            module.reset_parameters()
            current = {
                **{_join(path, n): p for n, p in module.named_parameters(recurse=False)},
                **{_join(path, n): b for n, b in module.named_buffers(recurse=False)},
            }
            for name, value in keep.items():
                current[name].copy_(value)
            reset += [n for n in own if n not in keep]
    logger.info("reset %d parameter tensors selected by %s", len(reset), selectors)
    return reset


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# ---------------------------------------------------------------------------------------- eval mode per layer


def _set_to_eval(model: nn.Module, kinds: tuple, layers: Optional[Selectors], caller: str) -> List[str]:
    selectors = _as_list(layers) if layers is not None else [ALL]
    _check_selectors(model, selectors, caller, parameters_too=False)
    switched = []
    for path, module in model.named_modules():
        if isinstance(module, kinds) and any(_covers(s, path) for s in selectors):
            module.eval()
            switched.append(path)
    return switched


def set_bn_to_eval(model: nn.Module, layers: Optional[Selectors] = None) -> List[str]:
    """Put batch norm layers (all, or those under ``layers``) in eval mode: they use and keep their
    running statistics. Call after ``model.train()``, which switches them back; returns their paths."""
    return _set_to_eval(model, (nn.modules.batchnorm._BatchNorm,), layers, "set_bn_to_eval")


def set_dropout_to_eval(model: nn.Module, layers: Optional[Selectors] = None) -> List[str]:
    """Put dropout layers (all, or those under ``layers``) in eval mode (no dropping). Call after
    ``model.train()``; returns their paths."""
    return _set_to_eval(model, (nn.modules.dropout._DropoutNd,), layers, "set_dropout_to_eval")


# ---------------------------------------------------------------------------------------- ensemble buffers


def _owner(model: nn.Module, name: str):
    path, _, leaf = name.rpartition(".")
    return model.get_submodule(path), leaf


@torch.no_grad()
def copy_to_ensemble_buffers(model: nn.Module, member: int = 0) -> List[str]:
    """Store a copy of every parameter as buffer ``<parameter>_ensemble<member>`` beside it.

    Buffers are part of ``state_dict``, so the copies are saved, checkpointed and handed to the next
    transfer step with the model (``load_state_dict_leniently`` recreates them). Returns buffer names."""
    if not isinstance(member, int) or member < 0:
        raise ValueError(f"ensemble member must be a non-negative int, got {member!r}")
    names = []
    for name, param in list(model.named_parameters()):
        module, leaf = _owner(model, name)
        module.register_buffer(f"{leaf}_ensemble{member}", param.detach().clone())
        names.append(f"{name}_ensemble{member}")
    return names


@torch.no_grad()
def restore_from_ensemble_buffers(model: nn.Module, member: int = 0) -> List[str]:
    """Copy buffer ``<parameter>_ensemble<member>`` back into every parameter; returns parameter names."""
    buffers = dict(model.named_buffers())
    parameters = dict(model.named_parameters())
    missing = [n for n in parameters if f"{n}_ensemble{member}" not in buffers]
    if missing:
        available = ensemble_members(model)
        raise ValueError(
            f"no ensemble buffers of member {member} for {missing[:3]}{' ...' if len(missing) > 3 else ''}; "
            f"members stored: {available or 'none'} (call copy_to_ensemble_buffers first)"
        )
    for name, param in parameters.items():
        param.copy_(buffers[f"{name}_ensemble{member}"])
    return list(parameters)


def ensemble_members(model: nn.Module) -> List[int]:
    """Members whose copies ``copy_to_ensemble_buffers`` stored in ``model``, sorted."""
    parameters = dict(model.named_parameters())
    members = set()
    for name, _ in model.named_buffers():
        match = _ENSEMBLE_KEY.match(name)
        if match and match["param"] in parameters:
            members.add(int(match["member"]))
    return sorted(members)


# ---------------------------------------------------------------------------------------- lenient loading


def _add_missing_ensemble_buffers(model: nn.Module, keys: Iterable[str]) -> None:
    """Give the model a buffer for every ensemble member the state dict holds copies of, for *every*
    parameter, holding the parameter's current value. Loading then overwrites the copies that fit; the
    others (a new readout, a new layer) restore to the model's own values instead of zeros or an error."""
    parameters = dict(model.named_parameters())
    existing = dict(model.named_buffers())
    members = set()
    for key in keys:
        match = _ENSEMBLE_KEY.match(key)
        if match and match["param"] in parameters:
            members.add(match["member"])
    for member in sorted(members):
        for name, param in parameters.items():
            if f"{name}_ensemble{member}" not in existing:
                module, leaf = _owner(model, name)
                module.register_buffer(f"{leaf}_ensemble{member}", param.detach().clone())


def _shape_list(names: List[str], limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


@torch.no_grad()
def load_state_dict_leniently(model: nn.Module, state_dict: Mapping[str, object]) -> Dict[str, List[str]]:
    """Load what fits of ``state_dict`` (e.g. a previous transfer step's) into ``model``.

    Entries whose key the model lacks or whose shape differs (a readout for another number of classes)
    are skipped, and model tensors the state dict lacks keep their values; all three are logged.
    Returns ``{"loaded", "missing", "mismatched", "unexpected"}``, lists of keys."""
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
    _add_missing_ensemble_buffers(model, state_dict.keys())
    own = model.state_dict()
    usable, mismatched, unexpected, details = {}, [], [], []
    for key, value in state_dict.items():
        # database blobs hand back numpy arrays, and numpy scalars for 0-d tensors (num_batches_tracked)
        value = torch.as_tensor(value) if isinstance(value, (np.ndarray, np.generic)) else value
        if key not in own:
            unexpected.append(key)
        elif not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(own[key].shape):
            mismatched.append(key)
            details.append(f"{key} {tuple(getattr(value, 'shape', ()))} -> {tuple(own[key].shape)}")
        else:
            usable[key] = value
    missing = [key for key in own if key not in usable and key not in mismatched]
    model.load_state_dict(usable, strict=False)

    partial = bool(mismatched or missing or unexpected)  # a partial load is worth a WARNING: say what it took
    logger.log(logging.WARNING if partial else logging.INFO, "loaded %d of the model's %d state tensors from the given "
               "state dict%s", len(usable), len(own), f": {_shape_list(list(usable))}" if partial else "")
    if mismatched:
        logger.warning("skipped (shape differs, state dict -> model): %s", _shape_list(details))
    if missing:
        logger.warning("not in the state dict, kept at their initial values: %s", _shape_list(missing))
    if unexpected:
        logger.warning("not in the model, ignored: %s", _shape_list(unexpected))
    return {"loaded": list(usable), "missing": missing, "mismatched": mismatched, "unexpected": unexpected}
