"""``classification_model_builder``: the nnfabrik model function of ``ClassificationModelConfig``."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional, Tuple

import torch
from torch import nn

from nntransfer.configs.model.classification import ClassificationModelConfig
from nntransfer.models.base import initialise_weights
from nntransfer.models.intermediate import IntermediateLayerWrapper
from nntransfer.models.registry import get
from nntransfer.models.utils import load_state_dict_leniently

logger = logging.getLogger(__name__)

TASK_KEY = "img_classification"


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
    """``(input_shape, n_classes)`` of a loader: its ``input_shape``/``n_classes`` attributes, else the
    shape of its first batch and the data set's ``classes`` or largest target."""
    input_shape = getattr(loader, "input_shape", None)
    if input_shape is None:
        batch = next(iter(loader))
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        input_shape = tuple(inputs.shape[1:])
    n_classes = getattr(loader, "n_classes", None)
    if n_classes is None:
        dataset = getattr(loader, "dataset", None)
        targets = getattr(dataset, "targets", None)
        if targets is None and isinstance(dataset, torch.utils.data.TensorDataset) and len(dataset.tensors) > 1:
            targets = dataset.tensors[1]
        if getattr(dataset, "classes", None) is not None:
            n_classes = len(dataset.classes)
        elif targets is not None and len(targets):
            n_classes = int(torch.as_tensor(targets).max()) + 1
        else:
            raise ValueError("cannot tell the number of classes: set n_classes on the train DataLoader")
    input_shape = tuple(int(n) for n in input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"image models need inputs of shape (channels, height, width), got {input_shape}")
    return input_shape, int(n_classes)


def _apply_overrides(config: ClassificationModelConfig, input_shape: Tuple[int, int, int]) -> Tuple[int, int, int]:
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
    weights depend only on the seed (the global random state is left as it was)."""
    builder = get(config.type)
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
        dataloaders: the dataset function's output; input shape and number of classes come from the
            train loader (see ``data_shapes``), unless the config overrides the input shape.
        seed: seeds the initial weights.
        state_dict: weights of a previous transfer step, loaded leniently (what does not fit is logged
            and skipped, see ``load_state_dict_leniently``).
        config: ``ClassificationModelConfig.to_dict()``.

    Returns the model: ``logits = model(images)``, or ``(extra_outputs, logits)`` when
    ``get_intermediate_rep`` is set.
    """
    model_config = ClassificationModelConfig.from_dict(config)
    input_shape, n_classes = data_shapes(train_loader(dataloaders))
    input_shape = _apply_overrides(model_config, input_shape)
    model = build_model(model_config, input_shape, n_classes, seed)
    logger.info(
        "built %s for inputs %s and %d classes (%d parameters)",
        model_config.type, input_shape, n_classes, sum(p.numel() for p in model.parameters()),
    )
    if state_dict is not None:
        load_state_dict_leniently(model, state_dict)
    return model
