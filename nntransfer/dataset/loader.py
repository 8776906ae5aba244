"""``img_dataset_loader``: the dataset function ``ImageDatasetConfig.fn`` names (nnfabrik's signature)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from nntransfer.configs.dataset.image import ImageDatasetConfig
from nntransfer.dataset.corrupted import load_corrupted
from nntransfer.dataset.info import DataInfo, DataLoaders
from nntransfer.dataset.registry import LoadRequest, get_dataset
from nntransfer.dataset.splits import (
    RepeatSampler,
    SplitView,
    check_class_range,
    dataset_targets,
    filter_by_class,
    label_map,
    split_train_valid,
    table_rows,
    take_fraction,
    take_per_class,
)
from nntransfer.dataset.transforms import build_transform, normalization_stats, output_channels
from nntransfer.defaults import TASK_KEY

logger = logging.getLogger(__name__)


def check_dataset_config(config: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` (one line) if ``config`` (``ImageDatasetConfig`` values) names a data set
    that is not registered, or ``dataset_kwargs`` its reader does not accept. The run layer calls it
    (as ``img_dataset_loader.check_config``) before anything is written or loaded."""
    if "dataset_cls" not in config:
        return
    try:
        spec = get_dataset(config["dataset_cls"])
    except ValueError as err:
        raise ValueError(f"dataset_cls: {err}") from None
    # the reader's options are names too: a misspelt one would otherwise surface only on a worker
    spec.resolve_options(config.get("dataset_kwargs") or {})


def img_dataset_loader(
    seed: int,
    transfer_data: Optional[Mapping[str, Any]] = None,
    return_data_info: bool = False,
    **config: Any,
) -> Dict[str, Any]:
    """Build the data loaders of an image classification data set.

    Args:
        seed: seeds the train/validation split and the order of the training batches.
        transfer_data: arrays from a previous transfer step, one row per training example (in the order
            of ``loaders["train"]["img_classification"].dataset``); the train loader then yields
            ``(inputs, targets, {name: rows})``.
        return_data_info: return only ``{TASK_KEY: {"n_classes": ..., "input_shape": ...}}`` (what
            nnfabrik's ``DataInfo`` tables ask for).
        **config: ``ImageDatasetConfig.to_dict()`` (runtime options such as ``data_dir`` included).

    Returns:
        A ``DataLoaders`` dict ``{"train": {TASK_KEY: loader}, "validation": {...}, "test": {...}}`` plus
        ``"test_rotated"`` and ``"c_test": {corruption: {severity: loader}}`` when configured; its
        ``info`` (a ``DataInfo``) has the number of classes, the input shape and the normalisation.
        Batches are float32 ``[B, C, H, W]`` inputs and int64 ``[B]`` targets.
    """
    check_dataset_config(config)
    loaders = build_dataloaders(ImageDatasetConfig.from_dict(config), seed, transfer_data)
    if return_data_info:
        return {task: {"n_classes": loaders.info.n_classes, "input_shape": loaders.info.input_shape}
                for task in loaders.info.task_keys}
    return loaders


img_dataset_loader.check_config = check_dataset_config


def build_dataloaders(
    config: ImageDatasetConfig, seed: int, transfer_data: Optional[Mapping[str, Any]] = None
) -> DataLoaders:
    """``img_dataset_loader`` for a config object."""
    spec = get_dataset(config.dataset_cls)
    data = spec.load(
        LoadRequest(
            data_dir=Path(config.data_dir).expanduser(),
            download=bool(config.download),
            input_size=int(config.input_size),
            options=spec.resolve_options(config.dataset_kwargs),
        )
    )
    check_class_range(config.filter_classes, data.n_classes, spec.name)
    labels, n_classes = label_map(config.filter_classes, config.relabel_classes, data.n_classes)

    # Indices: class filter -> seeded split -> subset -> per-class cap. Sorted, so row i of the training
    # set is the i-th kept example in the data set's own order (what transfer_data rows refer to).
    train_targets = dataset_targets(data.train)
    train_idx, valid_idx = split_train_valid(
        filter_by_class(train_targets, config.filter_classes), config.valid_size, config.shuffle, seed
    )
    train_idx = take_fraction(train_idx, config.train_subset)
    if config.examples_per_class is not None:
        train_idx = take_per_class(train_idx, train_targets, config.examples_per_class)
    train_idx, valid_idx = np.sort(train_idx), np.sort(valid_idx)
    if len(valid_idx) == 0:
        logger.info("valid_size=%s: the validation loader is empty", config.valid_size)

    channels = output_channels(config, data.channels)
    mean, std = normalization_stats(config, spec.mean, spec.std, channels)
    native_size = data.image_size if data.image_size is not None else spec.image_size
    info = DataInfo(
        n_classes=n_classes,
        input_shape=(channels, config.input_size, config.input_size),
        # the normalisation, so that the trainer can add noise in pixel units (None: not normalised)
        mean=tuple(mean) if config.apply_normalization else None,
        std=tuple(std) if config.apply_normalization else None,
        task_keys=(TASK_KEY,),
    )

    def transform(train: bool = False, rotate: Optional[float] = None):
        return build_transform(config, native_size, channels, mean, std, train=train, rotate=rotate)

    def make_loader(dataset: Dataset, train: bool = False) -> DataLoader:
        generator = torch.Generator()
        generator.manual_seed(int(seed))
        sampler = None
        if train:
            sampler = RepeatSampler(len(dataset), config.data_repeats, config.shuffle, generator)
        return DataLoader(
            dataset,
            batch_size=config.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=config.num_workers,
            pin_memory=config.pin_memory,
            generator=generator,  # also seeds the workers' random augmentation
        )

    def filtered_view(base: Dataset, image_transform) -> SplitView:
        return SplitView(base, filter_by_class(dataset_targets(base), config.filter_classes), image_transform, labels)

    extras = table_rows(transfer_data, len(train_idx))
    test = filtered_view(data.test, transform())
    loaders: Dict[str, Any] = {
        "train": {TASK_KEY: make_loader(SplitView(data.train, train_idx, transform(train=True), labels, extras), True)},
        "validation": {TASK_KEY: make_loader(SplitView(data.train, valid_idx, transform(), labels))},
        "test": {TASK_KEY: make_loader(test)},
    }
    # The training examples in the same order without augmentation: what a trainer evaluates to hand
    # data (e.g. soft labels) to the next transfer step, row i for training example i.
    loaders["train"][TASK_KEY].unaugmented_dataset = SplitView(data.train, train_idx, transform(), labels)
    if config.add_rotated_test:
        rotated = SplitView(data.test, test.indices, transform(rotate=config.rotated_test_angle), labels)
        loaders["test_rotated"] = {TASK_KEY: make_loader(rotated)}
    if config.add_corrupted_test:
        root = config.corrupted_data_dir
        if root is None:
            if spec.corrupted_folder is None:
                raise ValueError(
                    f"{spec.name} has no standard corrupted-data folder; set corrupted_data_dir to its -C folder"
                )
            root = Path(config.data_dir).expanduser() / spec.corrupted_folder
        corrupted = load_corrupted(
            Path(root).expanduser(),
            config.corruptions,
            config.corruption_severities,
            config.stacked_severities,
            data.class_to_idx,
        )
        loaders["c_test"] = {
            name: {severity: make_loader(filtered_view(ds, transform())) for severity, ds in by_severity.items()}
            for name, by_severity in corrupted.items()
        }
    logger.info(
        "%s: %d train, %d validation, %d test examples, %d classes, inputs %s",
        spec.name, len(train_idx), len(valid_idx), len(loaders["test"][TASK_KEY].dataset), n_classes,
        info.input_shape,
    )
    return DataLoaders(loaders, info)
