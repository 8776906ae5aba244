"""``classification_model_builder``: the nnfabrik model function of ``ClassificationModelConfig``."""

from __future__ import annotations

import copy
import logging
from typing import Any, Mapping, Optional, Tuple

import torch
from torch import nn

from nntransfer.configs.model.classification import ClassificationModelConfig
from nntransfer.dataset.info import data_info
from nntransfer.defaults import TASK_KEY
from nntransfer.models.base import WEIGHT_INITS, initialise_weights
from nntransfer.models.intermediate import IntermediateLayerWrapper
from nntransfer.models.registry import check_input_shape, get, model_spec
from nntransfer.models.utils import load_state_dict_leniently

logger = logging.getLogger(__name__)


def check_model_config(config: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` (one line) if ``config`` (``ClassificationModelConfig`` values) names a model
    type that is not registered, options that type does not declare (or values outside an option's
    choices), or an unknown ``weight_init``. The run layer calls it (as
    ``classification_model_builder.check_config``) before anything is written; fields that are absent are
    not checked."""
    model_type = config.get("type")
    if model_type is not None:
        try:
            get(model_type)
        except ValueError as err:
            raise ValueError(f"type: {err}") from None
        model_spec(model_type).resolve_options(config.get("options") or {})
    if "weight_init" in config:
        try:
            WEIGHT_INITS.get(config["weight_init"])
        except ValueError as err:
            raise ValueError(f"weight_init: {err}") from None


def train_loader(dataloaders: Mapping[str, Any]):
    """The training loader: ``dataloaders["train"]["img_classification"]`` (or the only train loader)."""
    if not isinstance(dataloaders, Mapping) or "train" not in dataloaders:
        raise ValueError("dataloaders must be a dict with a 'train' entry, as the dataset function returns it")
    train = dataloaders["train"]
    if not isinstance(train, Mapping):
        return train
    if TASK_KEY in train:
        return train[TASK_KEY]
    if len(train) == 1:
        return next(iter(train.values()))
    raise ValueError(f"dataloaders['train'] has no {TASK_KEY!r} loader; it has {sorted(train)}")


def data_shapes(loader) -> Tuple[Tuple[int, int, int], int]:
    """``(input_shape, n_classes)`` inferred from a loader without ``DataInfo``: the shape of its first
    batch (any number of dimensions), and the data set's ``classes`` or largest target."""
    batch = next(iter(loader))
    inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
    input_shape = tuple(int(n) for n in inputs.shape[1:])
    dataset = getattr(loader, "dataset", None)
    targets = getattr(dataset, "targets", None)
    if targets is None and isinstance(dataset, torch.utils.data.TensorDataset) and len(dataset.tensors) > 1:
        targets = dataset.tensors[1]
    if getattr(dataset, "classes", None) is not None:
        n_classes = len(dataset.classes)
    elif targets is not None and len(targets):
        n_classes = int(torch.as_tensor(targets).max()) + 1
    else:
        raise ValueError(
            "cannot tell the number of classes: pass nntransfer.dataset.DataLoaders(loaders, DataInfo(...)) "
            "or give the train data set a 'classes' or 'targets' attribute"
        )
    return input_shape, int(n_classes)


def input_shape_and_classes(dataloaders: Mapping[str, Any]) -> Tuple[Tuple[int, int, int], int]:
    """``(input_shape, n_classes)`` of the data: from ``dataloaders.info`` when the dataset function
    returned a ``DataLoaders``, else inferred from the train loader (``data_shapes``)."""
    info = data_info(dataloaders)
    if info is None:
        return data_shapes(train_loader(dataloaders))
    return info.input_shape, info.n_classes


def _apply_overrides(config: ClassificationModelConfig, input_shape: Tuple[int, ...]) -> Tuple[int, ...]:
    if len(input_shape) != 3:  # signals and other arrays: channels only
        if config.input_size is not None:
            raise ValueError(f"input_size overrides the image size; the data has inputs of shape {tuple(input_shape)}")
        if config.input_channels is not None:
            input_shape = (int(config.input_channels),) + tuple(input_shape[1:])
        return tuple(int(n) for n in input_shape)
    channels, height, width = input_shape
    if config.input_channels is not None:
        channels = config.input_channels
    if config.input_size is not None:
        size = config.input_size
        height, width = (size, size) if isinstance(size, int) else tuple(size)
    shape = (int(channels), int(height), int(width))
    if min(shape) < 1:
        raise ValueError(f"input shape {shape} is not a valid (channels, height, width)")
    return shape


def build_model(config: ClassificationModelConfig, input_shape: Tuple[int, int, int], n_classes: int, seed: Optional[int] = None) -> nn.Module:
    """The model ``config`` describes for ``input_shape`` and ``n_classes``; with ``seed`` its initial
    weights depend only on the seed (the global random state is left as it was). The names the config
    uses are checked first (``check_model_config``). The builder sees the config with every option of its
    type in ``config.options`` (the type's defaults filled in)."""
    check_model_config(config.to_dict())
    builder = get(config.type)
    check_input_shape(config.type, input_shape)
    config = copy.deepcopy(config).update(options=model_spec(config.type).resolve_options(config.options))
    if n_classes < 1:
        raise ValueError(f"n_classes must be positive, got {n_classes}")
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        model = builder(config, input_shape, n_classes)
        initialise_weights(model, config.weight_init)
    if config.get_intermediate_rep:
        model = IntermediateLayerWrapper(model, config.get_intermediate_rep)
    return model


def classification_model_builder(dataloaders: Mapping[str, Any], seed: Optional[int], state_dict: Optional[Mapping[str, Any]] = None, **config: Any) -> nn.Module:
    """Build the model of ``ClassificationModelConfig(**config)`` for the data in ``dataloaders``.

    Args:
        dataloaders: the dataset function's output; input shape and number of classes come from its
            ``info`` (or the train loader, see ``input_shape_and_classes``), unless the config overrides the input shape.
        seed: seeds the initial weights.
        state_dict: weights of a previous transfer step, loaded leniently (what does not fit is logged
            and skipped, see ``load_state_dict_leniently``).
        config: ``ClassificationModelConfig.to_dict()``.

    Returns the model: ``logits = model(images)``, or ``(extra_outputs, logits)`` when
    ``get_intermediate_rep`` is set.
    """
    model_config = ClassificationModelConfig.from_dict(config, carry_unknown=True)  # a recipe subclass's own fields: unused
    input_shape, n_classes = input_shape_and_classes(dataloaders)
    input_shape = _apply_overrides(model_config, input_shape)
    model = build_model(model_config, input_shape, n_classes, seed)
    logger.info(
        "built %s for inputs %s and %d classes (%d parameters)",
        model_config.type, input_shape, n_classes, sum(p.numel() for p in model.parameters()),
    )
    if state_dict is not None:
        load_state_dict_leniently(model, state_dict)
    return model


classification_model_builder.check_config = check_model_config
