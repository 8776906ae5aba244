"""Dataset loaders on the real scikit-learn digits and torchvision's FakeData: splits, filters,
transforms, sampling, transfer data, errors."""

import copy
import pickle
import time

import numpy as np
import pytest
import torch

from nntransfer.configs import ImageDatasetConfig
from nntransfer.dataset import (
    TASK_KEY,
    DataInfo,
    DataLoaders,
    DatasetSpec,
    LoadedData,
    NpyDataset,
    available_datasets,
    check_dataset_config,
    data_info,
    get_dataset,
    img_dataset_loader,
    register_dataset,
)
from nntransfer.dataset.augment import BatchTransform
from nntransfer.dataset.sources import DIGITS_TRAIN_SIZE, digits_arrays


def values(config):
    """What the run layer passes a dataset function: the fields plus the runtime options."""
    return {**config.to_dict(), **config.runtime_options()}


def build(seed=0, transfer_data=None, **kwargs):
    return img_dataset_loader(seed, transfer_data=transfer_data, **values(ImageDatasetConfig(**kwargs)))


def split_indices(loaders, split):
    return loaders[split][TASK_KEY].dataset.indices


def all_batches(loader):
    xs, ys = zip(*[(batch[0], batch[1]) for batch in loader])
    return torch.cat(xs), torch.cat(ys)


def one_line_error(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


# ---------------------------------------------------------------------- config


def test_config_defaults_fit_the_digits_quickstart():
    start = time.perf_counter()
    config = ImageDatasetConfig(dataset_cls="Digits")
    assert time.perf_counter() - start < 0.1
    assert (config.dataset_cls, config.batch_size, config.input_size) == ("Digits", 64, 8)
    assert config.fn == "nntransfer.dataset.img_dataset_loader"
    assert ImageDatasetConfig.from_dict(config.to_dict()) == config
    assert ImageDatasetConfig(batch_size=5).batch_size == 5


def test_a_subclass_keeps_its_own_defaults():
    class Cifar10Config(ImageDatasetConfig):
        def __init__(self, **kwargs):
            self.dataset_cls, self.input_size, self.batch_size = "CIFAR10", 32, 16
            super().__init__(**kwargs)

    config = Cifar10Config(input_size=24)
    assert (config.dataset_cls, config.input_size, config.batch_size) == ("CIFAR10", 24, 16)
    assert Cifar10Config.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"valid_size": 1.5}, r"valid_size must be a fraction in \[0, 1\]"),
        ({"valid_size": -0.1}, r"valid_size must be a fraction in \[0, 1\]"),
        ({"train_subset": 0.0}, r"train_subset must be a fraction in \(0, 1\]"),
        ({"data_repeats": 0}, "data_repeats must be at least 1"),
        ({"filter_classes": (5, 2)}, "filter_classes must be"),
        ({"filter_classes": [1]}, "filter_classes must be"),
        ({"examples_per_class": 0}, "examples_per_class must be a positive int"),
        ({"std": [0.0]}, "std must be positive"),
    ],
)
def test_config_rejects_bad_values_in_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match) as excinfo:
        ImageDatasetConfig(**kwargs)
    one_line_error(excinfo)


# ---------------------------------------------------------------------- the digits loaders


def test_every_loader_yields_batches_of_the_configured_shape_and_type():
    loaders = build(batch_size=32)
    assert set(loaders) == {"train", "validation", "test"}
    for split, tasks in loaders.items():
        loader = tasks[TASK_KEY]
        inputs, targets = next(iter(loader))
        assert inputs.shape == (32, 1, 8, 8) and inputs.dtype == torch.float32, split
        assert targets.shape == (32,) and targets.dtype == torch.int64, split
    assert loaders.info == DataInfo(n_classes=10, input_shape=(1, 8, 8), mean=(0.3053,), std=(0.3759,))
    n_train, n_valid = len(loaders["train"][TASK_KEY].dataset), len(loaders["validation"][TASK_KEY].dataset)
    assert (n_train, n_valid) == (1350, 150)  # floor(0.1 * 1500) held out
    assert len(loaders["test"][TASK_KEY].dataset) == 1797 - DIGITS_TRAIN_SIZE


def test_test_set_is_the_real_digits_data():
    images, labels = digits_arrays()
    loaders = build(apply_normalization=False, batch_size=297)
    inputs, targets = next(iter(loaders["test"][TASK_KEY]))
    np.testing.assert_array_equal(targets.numpy(), labels[DIGITS_TRAIN_SIZE:])
    np.testing.assert_allclose(inputs[:, 0].numpy() * 255, images[DIGITS_TRAIN_SIZE:], atol=1e-3)


def test_split_is_disjoint_complete_and_reproducible():
    a, b, other = build(seed=3), build(seed=3), build(seed=4)
    train, valid = split_indices(a, "train"), split_indices(a, "validation")
    assert not set(train) & set(valid)
    assert sorted(set(train) | set(valid)) == list(range(DIGITS_TRAIN_SIZE))
    np.testing.assert_array_equal(train, split_indices(b, "train"))
    np.testing.assert_array_equal(valid, split_indices(b, "validation"))
    assert set(valid) != set(split_indices(other, "validation"))


def test_unshuffled_split_holds_out_the_last_examples_in_order():
    loaders = build(shuffle=False, valid_size=0.2)
    np.testing.assert_array_equal(split_indices(loaders, "validation"), np.arange(1200, 1500))
    _, targets = all_batches(loaders["train"][TASK_KEY])
    np.testing.assert_array_equal(targets.numpy(), digits_arrays()[1][:1200])


def test_same_seed_gives_the_same_batch_order_and_epochs_differ():
    def epochs(loaders, n=2):
        loader = loaders["train"][TASK_KEY]
        return [torch.cat([y for _, y in loader]) for _ in range(n)]

    first, second = epochs(build(seed=7)), epochs(build(seed=7))
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    assert not torch.equal(first[0], first[1])
    assert not torch.equal(first[0], epochs(build(seed=8), 1)[0])


def test_data_info_for_nnfabrik():
    info = img_dataset_loader(0, return_data_info=True, **ImageDatasetConfig(convert_to_rgb=True).to_dict())
    assert info == {TASK_KEY: {"n_classes": 10, "input_shape": (3, 8, 8)}}


def test_valid_size_zero_gives_an_empty_validation_loader():
    loaders = build(valid_size=0.0)
    assert len(loaders["train"][TASK_KEY].dataset) == DIGITS_TRAIN_SIZE
    assert len(loaders["validation"][TASK_KEY].dataset) == 0


def test_valid_size_one_leaves_no_training_data():
    with pytest.raises(ValueError, match="leaves no training examples") as excinfo:
        build(valid_size=1.0)
    one_line_error(excinfo)


# ---------------------------------------------------------------------- subsets, repeats, filters


def test_train_subset_keeps_the_fraction_of_the_training_split():
    full, half = build(seed=1), build(seed=1, train_subset=0.5)
    full_train, half_train = split_indices(full, "train"), split_indices(half, "train")
    assert len(half_train) == 675 and set(half_train) <= set(full_train)
    np.testing.assert_array_equal(split_indices(half, "validation"), split_indices(full, "validation"))


def test_data_repeats_show_every_training_example_that_many_times_per_epoch():
    loaders = build(data_repeats=3, train_subset=0.1)
    loader = loaders["train"][TASK_KEY]
    n = len(loader.dataset)
    order = list(iter(loader.sampler))
    assert len(order) == 3 * n and np.bincount(order).tolist() == [3] * n
    _, targets = all_batches(loader)
    assert len(targets) == 3 * n


@pytest.mark.parametrize("relabel", [True, False])
def test_class_filter_keeps_exactly_the_range_in_every_split(relabel):
    labels = digits_arrays()[1]
    loaders = build(filter_classes=(2, 5), relabel_classes=relabel, valid_size=0.2)
    offset = 2 if relabel else 0
    expected_classes = set(range(2 - offset, 5 - offset))
    for split in ("train", "validation", "test"):
        _, targets = all_batches(loaders[split][TASK_KEY])
        assert set(targets.tolist()) == expected_classes, split
    assert loaders.info.n_classes == (3 if relabel else 10)
    n_train_valid = sum(len(loaders[s][TASK_KEY].dataset) for s in ("train", "validation"))
    assert n_train_valid == int(np.isin(labels[:DIGITS_TRAIN_SIZE], [2, 3, 4]).sum())
    _, test_targets = all_batches(loaders["test"][TASK_KEY])
    np.testing.assert_array_equal(
        test_targets.numpy() + offset, [y for y in labels[DIGITS_TRAIN_SIZE:] if 2 <= y < 5]
    )


def test_class_range_outside_the_data_is_one_clear_error():
    with pytest.raises(ValueError, match=r"filter_classes=\(8, 12\) is outside Digits's classes") as excinfo:
        build(filter_classes=(8, 12))
    one_line_error(excinfo)


def test_examples_per_class_keeps_exactly_n_of_each_class():
    loaders = build(examples_per_class=7, seed=2)
    _, targets = all_batches(loaders["train"][TASK_KEY])
    assert np.bincount(targets.numpy()).tolist() == [7] * 10
    # drawn from the training split only, and reproducible
    assert not set(split_indices(loaders, "train")) & set(split_indices(loaders, "validation"))
    np.testing.assert_array_equal(split_indices(loaders, "train"), split_indices(build(examples_per_class=7, seed=2), "train"))


def test_examples_per_class_more_than_available_is_an_error():
    with pytest.raises(ValueError, match="examples_per_class=500 but class") as excinfo:
        build(examples_per_class=500)
    one_line_error(excinfo)


# ---------------------------------------------------------------------- transforms


def test_normalisation_gives_zero_mean_unit_std_and_can_be_switched_off():
    inputs, _ = all_batches(build()["train"][TASK_KEY])
    assert abs(inputs.mean().item()) < 0.02 and abs(inputs.std().item() - 1) < 0.02
    raw, _ = all_batches(build(apply_normalization=False)["train"][TASK_KEY])
    assert raw.min().item() == 0.0 and raw.max().item() == 1.0
    custom, _ = all_batches(build(mean=[0.5], std=[0.25])["train"][TASK_KEY])
    torch.testing.assert_close(custom, (raw - 0.5) / 0.25)


def test_mean_with_wrong_channel_count_is_an_error():
    with pytest.raises(ValueError, match="mean has 3 values but the images have 1 channels"):
        build(mean=[0.5, 0.5, 0.5], std=[0.2, 0.2, 0.2])


def test_resize_and_rgb_conversion_give_the_configured_shape():
    loaders = build(input_size=16, convert_to_rgb=True)
    for split in ("train", "validation", "test"):
        loader = loaders[split][TASK_KEY]
        inputs, _ = next(iter(loader))
        assert inputs.shape[1:] == (3, 16, 16) and loaders.info.input_shape == (3, 16, 16)
        assert torch.equal(inputs[:, 0], inputs[:, 1]) and torch.equal(inputs[:, 1], inputs[:, 2])


def test_augmentation_applies_to_the_training_split_only():
    kwargs = dict(augment_crop=True, crop_padding=2, augment_flip=True, augment_rotation=True, rotation_degrees=20.0)
    loaders = build(**kwargs)
    train = loaders["train"][TASK_KEY]
    assert train.dataset.transform.random
    assert train.dataset.transform == BatchTransform(1, False, 2, True, 20.0, (0.3053,), (0.3759,))
    for split in ("validation", "test"):
        assert not loaders[split][TASK_KEY].dataset.transform.random, split
    augmented, _ = next(iter(train))
    plain, _ = next(iter(build()["train"][TASK_KEY]))
    assert augmented.shape == plain.shape and not torch.equal(augmented, plain)


def test_augmented_batches_are_reproducible_with_workers():
    def first_batch():
        loaders = build(seed=5, augment_crop=True, augment_flip=True, num_workers=1, train_subset=0.05)
        return next(iter(loaders["train"][TASK_KEY]))

    (x1, y1), (x2, y2) = first_batch(), first_batch()
    assert torch.equal(y1, y2) and torch.equal(x1, x2)


def test_rotated_test_set_is_the_test_set_rotated():
    loaders = build(add_rotated_test=True, rotated_test_angle=90.0, apply_normalization=False)
    rotated, rotated_targets = all_batches(loaders["test_rotated"][TASK_KEY])
    plain, targets = all_batches(loaders["test"][TASK_KEY])
    assert torch.equal(rotated_targets, targets)
    assert torch.equal(rotated, torch.rot90(plain, 1, dims=(2, 3)))
    assert rotated.shape[1:] == loaders.info.input_shape == (1, 8, 8)


# ---------------------------------------------------------------------- transfer data


def test_transfer_data_reaches_the_train_loader_aligned_with_the_examples():
    reference = build(seed=4, train_subset=0.2)
    train_set = reference["train"][TASK_KEY].dataset
    labels = np.array([train_set[i][1] for i in range(len(train_set))])
    soft = np.eye(10)[labels] * 0.9 + 0.01  # a teacher's soft labels, float64
    loaders = build(seed=4, train_subset=0.2, transfer_data={"soft_labels": soft, "label": labels})
    seen = 0
    for inputs, targets, extras in loaders["train"][TASK_KEY]:
        assert extras["soft_labels"].dtype == torch.float32 and extras["soft_labels"].shape == (len(targets), 10)
        assert torch.equal(extras["label"], targets)
        assert torch.equal(extras["soft_labels"].argmax(1), targets)
        seen += len(targets)
    assert seen == len(train_set)
    assert len(next(iter(loaders["validation"][TASK_KEY]))) == 2  # only the train loader carries extras


def test_transfer_data_from_read_only_arrays_loads_without_warnings(recwarn):
    # DataJoint hands blobs back as read-only arrays; torch warns when it wraps those without a copy.
    n = len(build(train_subset=0.02)["train"][TASK_KEY].dataset)
    soft = np.frombuffer(np.arange(n * 2, dtype=np.float32).tobytes(), dtype=np.float32).reshape(n, 2)
    assert not soft.flags.writeable
    loaders = build(train_subset=0.02, transfer_data={"soft": soft})
    rows = torch.cat([extras["soft"] for _, _, extras in loaders["train"][TASK_KEY]])
    assert sorted(rows[:, 0].tolist()) == soft[:, 0].tolist()
    assert not [w for w in recwarn if "not writable" in str(w.message)]
    with pytest.raises(ValueError, match=r"transfer_data\['meta'\] must be a numeric array, got dtype object"):
        build(train_subset=0.02, transfer_data={"meta": np.array([{"a": 1}] * n, dtype=object)})


def test_transfer_data_with_the_wrong_number_of_rows_is_an_error():
    with pytest.raises(ValueError, match=r"transfer_data\['soft'\] has 3 rows but the training set has 1350") as excinfo:
        build(transfer_data={"soft": np.zeros((3, 10))})
    one_line_error(excinfo)


# ---------------------------------------------------------------------- registry and FakeData


def test_unknown_data_set_name_lists_what_exists():
    with pytest.raises(ValueError, match=r"unknown data set 'MNSIT'; did you mean 'MNIST'\? \(available: .*Digits") as excinfo:
        build(dataset_cls="MNSIT")
    one_line_error(excinfo)
    assert {"Digits", "FakeData", "MNIST", "FashionMNIST", "CIFAR10", "CIFAR100", "SVHN", "TinyImageNet", "ImageNet"} <= set(
        available_datasets()
    )
    assert get_dataset("cifar10").name == "CIFAR10"


def test_fake_data_loaders():
    loaders = build(
        dataset_cls="FakeData", input_size=12, batch_size=8, valid_size=0.25, add_rotated_test=True,
        dataset_kwargs={"size": 40, "test_size": 16, "num_classes": 4, "channels": 3},
    )
    assert len(loaders["train"][TASK_KEY].dataset) == 30 and len(loaders["test"][TASK_KEY].dataset) == 16
    for split in ("train", "validation", "test", "test_rotated"):
        inputs, targets = next(iter(loaders[split][TASK_KEY]))
        assert inputs.shape == (8, 3, 12, 12) and inputs.dtype == torch.float32
        assert targets.dtype == torch.int64 and targets.max() < 4
    assert loaders.info.n_classes == 4
    gray = build(dataset_cls="FakeData", input_size=8, apply_grayscale=True, dataset_kwargs={"size": 20, "test_size": 4})
    assert next(iter(gray["test"][TASK_KEY]))[0].shape == (4, 1, 8, 8)


def test_fake_data_rejects_unknown_options():
    with pytest.raises(ValueError, match=r"FakeData does not accept dataset_kwargs \['sizes'\]; it accepts: "):
        build(dataset_cls="FakeData", dataset_kwargs={"sizes": 3})


def test_register_a_custom_data_set():
    rng = np.random.default_rng(0)

    def reader(request):
        images = rng.integers(0, 256, size=(30, 6, 6, 3), dtype=np.uint8)
        labels = np.arange(30) % 3
        return LoadedData(train=NpyDataset(images[:20], labels[:20]), test=NpyDataset(images[20:], labels[20:]), n_classes=3, channels=3)

    register_dataset(DatasetSpec("TinyCustom", reader, mean=(0.5,) * 3, std=(0.3,) * 3, image_size=6), overwrite=True)
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(DatasetSpec("TinyCustom", reader, mean=(0.5,), std=(0.3,), image_size=6))
    loaders = build(dataset_cls="TinyCustom", input_size=6, batch_size=4)
    assert next(iter(loaders["test"][TASK_KEY]))[0].shape == (4, 3, 6, 6)


def test_loaders_come_with_their_data_info():
    loaders = img_dataset_loader(1, **ImageDatasetConfig(mean=(0.5,), std=(0.25,)).to_dict())
    assert isinstance(loaders, DataLoaders) and isinstance(loaders, dict)
    assert loaders.info == DataInfo(n_classes=10, input_shape=(1, 8, 8), mean=(0.5,), std=(0.25,), task_keys=(TASK_KEY,))
    assert loaders.info.mean is not None and data_info(loaders) is loaders.info
    plain = img_dataset_loader(1, **ImageDatasetConfig(apply_normalization=False).to_dict())
    assert plain.info.mean is None and plain.info.std is None
    assert data_info(dict(plain)) is None  # a plain dict carries no info


def test_data_info_round_trips_and_survives_pickling():
    info = DataInfo(n_classes=3, input_shape=[1, 8, 8], mean=[0.5], std=[0.25])
    assert info.input_shape == (1, 8, 8) and info.mean == (0.5,)  # lists (e.g. from JSON) become tuples
    assert DataInfo.from_dict(info.to_dict()) == info
    assert info.to_dict() == {"n_classes": 3, "input_shape": (1, 8, 8), "mean": (0.5,), "std": (0.25,),
                              "task_keys": (TASK_KEY,)}
    with pytest.raises(ValueError, match="no field"):
        DataInfo.from_dict({**info.to_dict(), "classes": 3})
    with pytest.raises(ValueError, match="set together"):
        DataInfo(n_classes=3, input_shape=(1, 8, 8), mean=(0.5,))
    loaders = DataLoaders({"train": {TASK_KEY: [1, 2]}}, info)
    for copied in (pickle.loads(pickle.dumps(loaders)), copy.deepcopy(loaders)):
        assert copied == loaders and copied.info == info


def test_checker_rejects_an_unknown_data_set_in_one_line():
    check_dataset_config(ImageDatasetConfig(dataset_cls="FakeData").to_dict())
    assert img_dataset_loader.check_config is check_dataset_config
    with pytest.raises(ValueError, match=r"^dataset_cls: unknown data set 'CIFAR01'; did you mean 'CIFAR10'\? \(available: .*MNIST") as excinfo:
        check_dataset_config({"dataset_cls": "CIFAR01"})
    one_line_error(excinfo)
    with pytest.raises(ValueError, match=r"FakeData does not accept dataset_kwargs \['sizes'\]; .*did you mean 'size'\?"):
        check_dataset_config({"dataset_cls": "FakeData", "dataset_kwargs": {"sizes": 3}})


def test_train_loader_offers_its_examples_without_augmentation():
    config = ImageDatasetConfig(augment_rotation=True, rotation_degrees=45.0, augment_crop=True, crop_padding=2)
    train = img_dataset_loader(1, **config.to_dict())["train"][TASK_KEY]
    plain = train.unaugmented_dataset
    assert len(plain) == len(train.dataset)
    first = [plain[i][0] for i in range(3)]
    again = [plain[i][0] for i in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))  # no random transform
    assert [plain[i][1] for i in range(5)] == [train.dataset[i][1] for i in range(5)]  # same rows, same labels
