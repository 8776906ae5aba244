"""``img_dataset_loader``: the dataset function ``ImageDatasetConfig.fn`` names (nnfabrik's signature)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from nntransfer.configs.dataset.image import ImageDatasetConfig
from nntransfer.dataset.augment import BatchTransform, normalize, to_float
from nntransfer.dataset.corrupted import load_corrupted
from nntransfer.dataset.info import DataInfo, DataLoaders
from nntransfer.dataset.memory import ArrayData, MemoryLoader, MemoryView, stack_examples
from nntransfer.dataset.registry import DatasetSpec, LoadRequest, get_dataset
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
from nntransfer.dataset.test_transforms import apply_named, check_test_transforms, resolve, split_seed
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
    check_test_transforms(config.get("test_transforms"))


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
        ``"test_rotated"``, ``"c_test": {corruption: {severity: loader}}`` and one split per
        ``test_transforms`` entry when configured; its ``info`` (a ``DataInfo``) has the number of
        classes, the input shape and the normalisation. Batches are float32 ``[B, *input_shape]`` inputs
        (``[B, C, H, W]`` for images) and int64 ``[B]`` targets. In-memory data sets give
        ``MemoryLoader``s (batches sliced and augmented whole, on the device the trainer sets), others
        ``DataLoader``s.
    """
    check_dataset_config(config)
    # a recipe subclass's own fields are carried, unused
    loaders = build_dataloaders(ImageDatasetConfig.from_dict(config, carry_unknown=True), seed, transfer_data)
    if return_data_info:
        return {task: {"n_classes": loaders.info.n_classes, "input_shape": loaders.info.input_shape}
                for task in loaders.info.task_keys}
    return loaders


img_dataset_loader.check_config = check_dataset_config


def build_dataloaders(
    config: ImageDatasetConfig, seed: int, transfer_data: Optional[Mapping[str, Any]] = None
) -> DataLoaders:
    """``img_dataset_loader`` for a config object.

    The path is chosen by what the data set's reader returns (see ``nntransfer.dataset.registry``):
    in memory (``ArrayData``, or a data set of arrays) with ``MemoryLoader``, or per example (PIL images)
    with ``DataLoader``. Indices, splits, filters, transfer data and the extra test sets are the same on
    both."""
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
    check_test_transforms(config.test_transforms)
    labels, n_classes = label_map(config.filter_classes, config.relabel_classes, data.n_classes)
    train_data, test_data = in_memory(data.train), in_memory(data.test)
    memory = train_data is not None and test_data is not None

    # Indices: class filter -> seeded split -> subset -> per-class cap. Sorted, so row i of the training
    # set is the i-th kept example in the data set's own order (what transfer_data rows refer to).
    train_targets = train_data.targets if memory else dataset_targets(data.train)
    train_idx, valid_idx = split_train_valid(
        filter_by_class(train_targets, config.filter_classes), config.valid_size, config.shuffle, seed
    )
    train_idx = take_fraction(train_idx, config.train_subset)
    if config.examples_per_class is not None:
        train_idx = take_per_class(train_idx, train_targets, config.examples_per_class)
    train_idx, valid_idx = np.sort(train_idx), np.sort(valid_idx)
    if len(valid_idx) == 0:
        logger.info("valid_size=%s: the validation loader is empty", config.valid_size)
    extras = table_rows(transfer_data, len(train_idx))

    if memory:
        loaders, info = _memory_loaders(config, spec, data, train_data, test_data, train_idx, valid_idx, labels,
                                        n_classes, extras, seed)
    else:
        loaders, info = _per_example_loaders(config, spec, data, train_idx, valid_idx, labels, n_classes, extras, seed)

    if config.add_corrupted_test:
        loaders["c_test"] = _corrupted_loaders(config, spec, data, info, labels, seed)
    logger.info(
        "%s (%s): %d train, %d validation, %d test examples, %d classes, inputs %s",
        spec.name, "in memory" if memory else "per example", len(train_idx), len(valid_idx),
        len(loaders["test"][TASK_KEY].dataset), n_classes, info.input_shape,
    )
    return DataLoaders(loaders, info, train_ids=train_idx)


def in_memory(split: Any) -> Optional[ArrayData]:
    """``split`` as ``ArrayData`` if it can take the in-memory path (it is one, or a data set of arrays)."""
    if isinstance(split, ArrayData):
        return split
    return stack_examples(split)


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``: one per loader, as the per-example path has."""
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return generator


def resize_images(data: ArrayData, size: int) -> ArrayData:
    """Images resized to ``size`` x ``size`` (bilinear with antialiasing, like PIL's ``Resize``), kept uint8."""
    if data.inputs.shape[-2:] == (size, size):
        return data
    values = data.inputs.float()
    resized = torch.nn.functional.interpolate(values, size=(size, size), mode="bilinear", antialias=True,
                                              align_corners=False)
    if data.inputs.dtype == torch.uint8:
        resized = resized.round_().clamp_(0, 255).to(torch.uint8)
    return ArrayData(resized, data.targets, image=True)


def _memory_transform(config: ImageDatasetConfig, data: ArrayData, spec: DatasetSpec):
    """``(training BatchTransform, input shape, (mean, std))`` of in-memory data; ``(None, None)``: not
    normalised. Array data (not images) keeps its shape and channels; colour modes are an error for it,
    and so are crop, flip and rotation unless it is ``(C, H, W)``."""
    shape = data.example_shape
    augments = config.augment_crop or config.augment_flip or config.augment_rotation
    if data.image:
        channels = output_channels(config, data.channels)
        gray_rgb = bool(config.apply_grayscale and channels == 3)
        input_shape = (channels, config.input_size, config.input_size)
    else:
        if config.apply_grayscale or config.convert_to_rgb:
            raise ValueError(f"{spec.name} holds arrays of shape {shape}, not images: set apply_grayscale and convert_to_rgb to False")
        if augments and len(shape) != 3:
            raise ValueError(f"{spec.name} holds arrays of shape {shape}: crop, flip and rotation need (C, H, W); switch them off")
        channels, gray_rgb, input_shape = None, False, shape
    stat_channels = channels if channels is not None else (shape[0] if shape else 1)
    mean, std = normalization_stats(config, spec.mean, spec.std, stat_channels)
    normalise = config.apply_normalization and mean is not None
    transform = BatchTransform(
        channels=channels,
        gray_rgb=gray_rgb,
        crop_padding=int(config.crop_padding) if config.augment_crop else None,
        flip=bool(config.augment_flip),
        rotation_degrees=float(config.rotation_degrees) if config.augment_rotation else None,
        mean=tuple(mean) if normalise else None,
        std=tuple(std) if normalise else None,
    )
    return transform, input_shape, (mean, std) if normalise else (None, None)


def _named_test_sets(config: ImageDatasetConfig) -> Dict[str, Dict[str, Any]]:
    """The extra test sets: ``test_transforms`` plus "test_rotated" when ``add_rotated_test``."""
    named = dict(config.test_transforms or {})
    if config.add_rotated_test:
        named["test_rotated"] = {"transform": "rotation", "angle": float(config.rotated_test_angle)}
    return named


def _memory_loaders(config, spec, data, train_data, test_data, train_idx, valid_idx, labels, n_classes, extras, seed):
    """The loaders of the in-memory path: images resized once (uint8), every split a ``MemoryLoader``
    over rows of one tensor; named test sets are transformed once, here, from the test split."""
    if train_data.image:
        train_data = resize_images(train_data, config.input_size)
        test_data = resize_images(test_data, config.input_size)
    train_transform, input_shape, (mean, std) = _memory_transform(config, train_data, spec)
    plain = train_transform.without_augmentation()
    info = DataInfo(n_classes=n_classes, input_shape=input_shape, mean=mean, std=std, task_keys=(TASK_KEY,))

    def make_loader(view: MemoryView, train: bool = False) -> MemoryLoader:
        return MemoryLoader(view, config.batch_size, seeded_generator(seed), train=train,
                            repeats=config.data_repeats, shuffle=config.shuffle)

    test_idx = filter_by_class(test_data.targets, config.filter_classes)
    train_loader = make_loader(MemoryView(train_data, train_idx, train_transform, labels, extras), train=True)
    train_loader.unaugmented_dataset = MemoryView(train_data, train_idx, plain, labels)
    loaders: Dict[str, Any] = {
        "train": {TASK_KEY: train_loader},
        "validation": {TASK_KEY: make_loader(MemoryView(train_data, valid_idx, plain, labels))},
        "test": {TASK_KEY: make_loader(MemoryView(test_data, test_idx, plain, labels))},
    }
    for name, entry in _named_test_sets(config).items():
        values = apply_named(name, entry, to_float(test_data.inputs[torch.as_tensor(test_idx)]))
        transformed = ArrayData(values, test_data.targets[test_idx], image=test_data.image)
        loaders[name] = {TASK_KEY: make_loader(MemoryView(transformed, np.arange(len(test_idx)), plain, labels))}
    return loaders, info


class NamedTestView(Dataset):
    """A test set of the per-example path with a named test-time transform: item ``i`` is transformed with
    a generator seeded by the set's seed and ``i``, then normalised."""

    def __init__(self, base: SplitView, name: str, entry: Mapping[str, Any], mean, std) -> None:
        self.base, self.name, self.entry = base, name, dict(entry)
        self.fn = resolve(name, entry)
        self.seed = split_seed(name, entry)
        self.mean, self.std = mean, std
        self.indices, self.targets = base.indices, getattr(base, "targets", None)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        image, label = self.base[i]
        image = self.fn(image[None], torch.Generator().manual_seed(self.seed * 1_000_003 + int(i)))[0]
        if self.mean is not None:
            image = normalize(image[None], self.mean, self.std)[0]
        return image, label


def _per_example_loaders(config, spec, data, train_idx, valid_idx, labels, n_classes, extras, seed):
    """The loaders of the per-example path: ``DataLoader``s over ``SplitView``s with PIL transforms."""
    channels = output_channels(config, data.channels if data.channels is not None else 3)
    mean, std = normalization_stats(config, spec.mean, spec.std, channels)
    normalise = config.apply_normalization and mean is not None
    native_size = data.image_size if data.image_size is not None else spec.image_size
    info = DataInfo(
        n_classes=n_classes,
        input_shape=(channels, config.input_size, config.input_size),
        # the normalisation, so that the trainer can add noise in pixel units (None: not normalised)
        mean=tuple(mean) if normalise else None,
        std=tuple(std) if normalise else None,
        task_keys=(TASK_KEY,),
    )

    def transform(train: bool = False, rotate: Optional[float] = None, normalize: bool = True):
        return build_transform(config, native_size, channels, mean, std, train=train, rotate=rotate,
                               normalize=normalize)

    def make_loader(dataset: Dataset, train: bool = False) -> DataLoader:
        return _data_loader(config, dataset, seed, train)

    extras_view = SplitView(data.train, train_idx, transform(train=True), labels, extras)
    test = SplitView(data.test, filter_by_class(dataset_targets(data.test), config.filter_classes), transform(), labels)
    loaders: Dict[str, Any] = {
        "train": {TASK_KEY: make_loader(extras_view, True)},
        "validation": {TASK_KEY: make_loader(SplitView(data.train, valid_idx, transform(), labels))},
        "test": {TASK_KEY: make_loader(test)},
    }
    # The training examples in the same order without augmentation: what a trainer evaluates to hand
    # data (e.g. soft labels) to the next transfer step, row i for training example i.
    loaders["train"][TASK_KEY].unaugmented_dataset = SplitView(data.train, train_idx, transform(), labels)
    if config.add_rotated_test:
        rotated = SplitView(data.test, test.indices, transform(rotate=config.rotated_test_angle), labels)
        loaders["test_rotated"] = {TASK_KEY: make_loader(rotated)}
    for name, entry in (config.test_transforms or {}).items():
        raw = SplitView(data.test, test.indices, transform(normalize=False), labels)
        view = NamedTestView(raw, name, entry, mean if normalise else None, std if normalise else None)
        loaders[name] = {TASK_KEY: make_loader(view)}
    return loaders, info


def _data_loader(config: ImageDatasetConfig, dataset: Dataset, seed: int, train: bool = False) -> DataLoader:
    """A ``DataLoader`` of the per-example path; the training one samples with a seeded ``RepeatSampler``."""
    generator = seeded_generator(seed)
    sampler = RepeatSampler(len(dataset), config.data_repeats, config.shuffle, generator) if train else None
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=config.num_workers,
        pin_memory=config.pin_memory,
        generator=generator,  # also seeds the workers' random augmentation
    )


def _corrupted_loaders(config, spec, data, info: DataInfo, labels, seed) -> Dict[str, Dict[int, DataLoader]]:
    """``{corruption: {severity: loader}}``: corrupted test sets are read per example on both paths
    (memory-mapped ``.npy`` files or image folders), transformed like the test set."""
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
    if len(info.input_shape) != 3:
        raise ValueError(f"{spec.name} holds arrays of shape {info.input_shape}: corrupted test sets need images")
    channels = info.input_shape[0]
    native_size = data.image_size if data.image_size is not None else spec.image_size
    transform = build_transform(config, native_size, channels, info.mean, info.std, train=False)

    def view(dataset: Dataset) -> SplitView:
        return SplitView(dataset, filter_by_class(dataset_targets(dataset), config.filter_classes), transform, labels)

    return {
        name: {severity: _data_loader(config, view(ds), seed) for severity, ds in by_severity.items()}
        for name, by_severity in corrupted.items()
    }
