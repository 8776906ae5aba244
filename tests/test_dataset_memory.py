"""The in-memory path: batch augmentation statistics against torchvision's per-example transforms,
determinism, equality with the per-example path, array data of any shape reaching a 1-D model, named
test-time transforms and MNIST-1D."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.transforms import functional as TF

from nntransfer.configs import ClassificationModelConfig, ClassificationTrainerConfig, ImageDatasetConfig
from nntransfer.dataset import (
    TASK_KEY,
    ArrayData,
    DatasetSpec,
    LoadedData,
    MemoryLoader,
    NpyDataset,
    img_dataset_loader,
    register_dataset,
)
from nntransfer.dataset.augment import (
    BatchTransform,
    convert_channels,
    crop_offsets,
    random_crop,
    random_flip,
    random_rotation,
    rotate,
    rotation_angles,
)
from nntransfer.dataset.sources import DIGITS_TRAIN_SIZE, digits_arrays
from nntransfer.dataset.test_transforms import circular_shift, shift_examples
from nntransfer.models import classification_model_builder
from nntransfer.trainer import classification_trainer

N_DRAWS = 20000


def values(config):
    return {**config.to_dict(), **config.runtime_options()}


def build(seed=0, config_cls=ImageDatasetConfig, transfer_data=None, **kwargs):
    return img_dataset_loader(seed, transfer_data=transfer_data, **values(config_cls(**kwargs)))


def all_batches(loader):
    xs, ys = zip(*[(batch[0], batch[1]) for batch in loader])
    return torch.cat(xs), torch.cat(ys)


def marker_image(size=8):
    """A uint8 image whose pixels are all different (1..size*size): a crop's offset can be read off it."""
    return (torch.arange(size * size, dtype=torch.int64) + 1).reshape(1, 1, size, size).to(torch.uint8)


def offsets_of(crops, image, padding):
    """The (top, left) offset each crop of ``image`` (zero-padded by ``padding``) was taken at."""
    padded = torch.nn.functional.pad(image[0, 0], (padding,) * 4)
    size = image.shape[-1]
    found = []
    for crop in crops:
        crop = crop.reshape(size, size)
        hits = [(i, j) for i in range(2 * padding + 1) for j in range(2 * padding + 1)
                if torch.equal(padded[i:i + size, j:j + size], crop)]
        assert len(hits) == 1
        found.append(hits[0])
    return np.array(found)


def chi_square_uniform(counts):
    expected = counts.sum() / len(counts)
    return float(((counts - expected) ** 2 / expected).sum())


# ---------------------------------------------------------------------- augmentation statistics


@pytest.mark.slow
def test_crop_offsets_are_uniform_over_the_padded_range_like_torchvision():
    padding, n = 2, 4000
    image = marker_image()
    ours = offsets_of(random_crop(image.expand(n, -1, -1, -1), padding, torch.Generator().manual_seed(0)), image, padding)
    torch.manual_seed(0)  # torchvision draws from the global generator
    crop = transforms.RandomCrop(8, padding=padding)
    theirs = offsets_of(torch.stack([crop(image[0]) for _ in range(n)]), image, padding)
    for found in (ours, theirs):
        counts = np.bincount(found[:, 0] * 5 + found[:, 1], minlength=25)
        assert counts.min() > 0
        # 24 degrees of freedom: the 99.9 % quantile of chi-square is 51.2
        assert chi_square_uniform(counts) < 51.2
        assert found.min() == 0 and found.max() == 2 * padding
    # the two distributions agree: offsets' means and spreads within sampling error
    np.testing.assert_allclose(ours.mean(0), theirs.mean(0), atol=0.1)
    np.testing.assert_allclose(ours.std(0), theirs.std(0), atol=0.1)


def test_crop_offsets_of_many_draws_cover_every_offset_evenly():
    offsets = crop_offsets(N_DRAWS, 4, torch.Generator().manual_seed(1))
    for axis in (0, 1):
        counts = np.bincount(offsets[:, axis].numpy(), minlength=9)
        assert len(counts) == 9 and chi_square_uniform(counts) < 26.1  # 8 dof, 99.9 %


def test_flip_rate_is_one_half_like_torchvision():
    image = marker_image()
    flipped = random_flip(image.expand(N_DRAWS, -1, -1, -1), torch.Generator().manual_seed(2))
    is_flipped = (flipped[:, 0, 0, 0] != image[0, 0, 0, 0]).float()
    assert torch.equal(flipped[is_flipped.bool()][0], image[0].flip(-1))
    assert abs(is_flipped.mean().item() - 0.5) < 0.015  # 4 standard errors
    torch.manual_seed(2)
    flip = transforms.RandomHorizontalFlip()
    theirs = np.mean([not torch.equal(flip(image[0]), image[0]) for _ in range(4000)])
    assert abs(theirs - 0.5) < 0.03 and abs(theirs - is_flipped.mean().item()) < 0.04


def test_rotation_angles_are_uniform_and_rotate_like_torchvision():
    angles = rotation_angles(N_DRAWS, 15.0, torch.Generator().manual_seed(3)).numpy()
    assert -15.0 <= angles.min() and angles.max() <= 15.0
    counts, _ = np.histogram(angles, bins=10, range=(-15, 15))
    assert chi_square_uniform(counts) < 27.9  # 9 dof, 99.9 %
    images = torch.randint(0, 256, (6, 3, 9, 13), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    for angle in (90.0, 33.0, -12.5):
        assert torch.equal(rotate(images, torch.full((6,), angle)), TF.rotate(images, angle))
    rotated = random_rotation(images.float(), 20.0, torch.Generator().manual_seed(5))
    assert rotated.shape == images.shape


def test_gray_conversion_is_bit_identical_to_pil():
    images = torch.randint(0, 256, (5, 3, 7, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(6))
    pil = torch.stack([torch.from_numpy(np.array(Image.fromarray(x.permute(1, 2, 0).numpy()).convert("L")))[None]
                       for x in images])
    assert torch.equal(convert_channels(images, 1), pil)
    rgb = convert_channels(images, 3, gray_rgb=True)
    assert rgb.shape == images.shape and torch.equal(rgb[:, 0], pil[:, 0]) and torch.equal(rgb[:, 2], pil[:, 0])


def test_batch_transform_is_a_function_of_its_generator():
    images = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))
    augment = BatchTransform(3, False, 2, True, 10.0, (0.5,) * 3, (0.25,) * 3)
    first = augment(images, torch.Generator().manual_seed(8))
    assert torch.equal(first, augment(images, torch.Generator().manual_seed(8)))
    assert not torch.equal(first, augment(images, torch.Generator().manual_seed(9)))
    plain = augment.without_augmentation()
    assert not plain.random and torch.equal(plain(images), (images.float() / 255 - 0.5) / 0.25)


# ---------------------------------------------------------------------- loaders


def test_every_built_in_small_data_set_takes_the_in_memory_path():
    loaders = build(dataset_cls="FakeData", input_size=8, dataset_kwargs={"size": 40, "test_size": 10})
    assert all(isinstance(loaders[s][TASK_KEY], MemoryLoader) for s in ("train", "validation", "test"))
    assert isinstance(build()["train"][TASK_KEY], MemoryLoader)  # Digits


def test_in_memory_batches_equal_the_per_example_path_without_augmentation():
    register_digits_per_example()
    for kwargs in ({}, {"filter_classes": (2, 7), "input_size": 12, "convert_to_rgb": True, "batch_size": 50}):
        memory = build(seed=3, **kwargs)
        per_example = build(seed=3, dataset_cls="DigitsPerExample", **kwargs)
        assert not isinstance(per_example["train"][TASK_KEY], MemoryLoader)
        assert memory.info == per_example.info
        for split in ("train", "validation", "test"):
            (x1, y1), (x2, y2) = all_batches(memory[split][TASK_KEY]), all_batches(per_example[split][TASK_KEY])
            assert torch.equal(y1, y2), split  # same examples in the same (seeded) order
            # resizing: torch's antialiased bilinear vs PIL's differ by rounding only
            tolerance = 0 if "input_size" not in kwargs else 3 / 255 / 0.3759
            assert (x1 - x2).abs().max().item() <= tolerance + 1e-6, split


def register_digits_per_example():
    images, labels = digits_arrays()
    n = DIGITS_TRAIN_SIZE
    register_dataset(DatasetSpec(
        "DigitsPerExample", lambda request: LoadedData(NpyDataset(images[:n], labels[:n]), NpyDataset(images[n:], labels[n:]), 10, 1),
        mean=(0.3053,), std=(0.3759,), image_size=8), overwrite=True)


def test_both_paths_train_to_the_same_numbers_and_hand_on_the_same_data():
    register_digits_per_example()
    kwargs = dict(seed=1, filter_classes=(0, 5), train_subset=0.3, batch_size=32)
    rows = len(build(**kwargs)["train"][TASK_KEY].dataset)
    soft = np.random.default_rng(0).random((rows, 5)).astype(np.float32)
    model = ClassificationModelConfig(type="lenet300-100")
    trainer = ClassificationTrainerConfig(max_iter=2, lr=0.003, show_progress=False, compute_transfer_data=True)
    results = []
    for dataset_cls in ("Digits", "DigitsPerExample"):
        loaders = build(dataset_cls=dataset_cls, transfer_data={"soft": soft}, **kwargs)
        extras = torch.cat([batch[2]["soft"] for batch in loaders["train"][TASK_KEY]])
        assert sorted(map(tuple, extras.tolist())) == sorted(map(tuple, soft.tolist()))  # every row once
        net = classification_model_builder(loaders, seed=1, **model.to_dict())
        results.append(classification_trainer(net, loaders, seed=1, **trainer.to_dict(), device="cpu"))
    (score1, out1, state1), (score2, out2, state2) = results
    assert score1 == score2 and out1["final"] == out2["final"]
    np.testing.assert_array_equal(out1["transfer_data"]["logits"], out2["transfer_data"]["logits"])
    assert all(torch.equal(state1[k], state2[k]) for k in state1)


def test_augmented_epochs_are_reproducible_and_differ_from_each_other():
    def epochs(seed):
        loader = build(seed=seed, augment_crop=True, crop_padding=2, augment_flip=True, train_subset=0.1)["train"][TASK_KEY]
        return [all_batches(loader) for _ in range(2)]

    (a1, b1), (a2, b2) = epochs(5), epochs(5)
    assert torch.equal(a1[0], a2[0]) and torch.equal(b1[0], b2[0]) and torch.equal(a1[1], a2[1])
    assert not torch.equal(a1[0], b1[0])  # the next epoch draws other crops
    assert not torch.equal(epochs(6)[0][0], a1[0])


def test_resuming_from_the_generator_state_repeats_the_epoch():
    loader = build(seed=1, augment_crop=True, augment_rotation=True, train_subset=0.1)["train"][TASK_KEY]
    all_batches(loader)
    state = loader.generator.get_state()
    second = all_batches(loader)
    loader.generator.set_state(state)
    again = all_batches(loader)
    assert torch.equal(second[0], again[0]) and torch.equal(second[1], again[1])


def test_unaugmented_training_examples_and_transfer_data_on_the_in_memory_path():
    kwargs = dict(seed=2, augment_crop=True, augment_flip=True, train_subset=0.2)
    rows = build(**kwargs)["train"][TASK_KEY].dataset.targets
    loaders = build(**kwargs, transfer_data={"label": rows, "row": np.arange(len(rows))})
    train = loaders["train"][TASK_KEY]
    for _, targets, extras in train:  # augmented batches carry the rows of their examples
        assert torch.equal(extras["label"], targets)
    plain = train.unaugmented_dataset
    assert len(plain) == len(train.dataset) and not plain.transform.random
    np.testing.assert_array_equal(plain.indices, train.dataset.indices)
    inputs, _ = all_batches(MemoryLoader(plain, 64, torch.Generator()))
    test_like = loaders["validation"][TASK_KEY].dataset.transform
    assert torch.equal(inputs[:3], test_like(plain.data.inputs[torch.as_tensor(plain.indices[:3])]))


def test_loaders_follow_the_device_the_trainer_sets():
    loader = build(augment_flip=True, train_subset=0.1)["train"][TASK_KEY]
    inputs, targets = next(iter(loader.set_device("cpu")))
    assert inputs.device.type == "cpu" and targets.dtype == torch.int64 and inputs.dtype == torch.float32


# ---------------------------------------------------------------------- array data of any shape


class Signals(Dataset):
    """Items ``(numpy array (1, 40), label)``: a registered source of signals (the label is where the bump is)."""

    def __init__(self, n, seed):
        rng = np.random.default_rng(seed)
        self.targets = rng.integers(0, 4, n)
        self.x = rng.normal(0, 0.1, (n, 1, 40)).astype(np.float32)
        for i, label in enumerate(self.targets):
            self.x[i, 0, label * 10:label * 10 + 5] += 2.0

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.x[i], int(self.targets[i])


def register_signals():
    train, test = Signals(200, 0), Signals(40, 1)
    register_dataset(DatasetSpec("Signals", lambda request: LoadedData(train, test, n_classes=4), mean=None, std=None,
                                 image_size=None), overwrite=True)
    return train, test


def test_array_data_of_shape_1_by_40_reaches_a_1d_model_unchanged():
    train, test = register_signals()
    loaders = build(dataset_cls="Signals", valid_size=0.2, shuffle=False, batch_size=16)
    assert loaders.info.input_shape == (1, 40) and loaders.info.mean is None
    inputs, targets = all_batches(loaders["test"][TASK_KEY])
    assert torch.equal(inputs, torch.from_numpy(test.x)) and targets.tolist() == test.targets.tolist()
    first, _ = next(iter(loaders["train"][TASK_KEY]))
    assert first.shape[1:] == (1, 40)
    model = classification_model_builder(loaders, seed=0, **ClassificationModelConfig(type="conv1d").to_dict())
    assert model.input_shape == (1, 40)
    seen = []
    model.core.register_forward_hook(lambda module, args, output: seen.append(args[0].shape))
    trainer = ClassificationTrainerConfig(max_iter=4, lr=0.01, show_progress=False, device="cpu")
    score, output, _ = classification_trainer(model, loaders, seed=0, **trainer.to_dict(), device="cpu")
    assert seen and all(shape[1:] == (1, 40) for shape in seen)
    assert output["final"]["test"][TASK_KEY]["accuracy"] > 60  # chance is 25 %


def test_image_models_reject_signals_in_one_line():
    register_signals()
    loaders = build(dataset_cls="Signals")
    with pytest.raises(ValueError, match=r"^model type 'lenet5' takes inputs of shape \(C, H, W\), the data has \(1, 40\)"):
        classification_model_builder(loaders, seed=0, **ClassificationModelConfig(type="lenet5").to_dict())


def test_augmentation_of_signals_is_a_clear_error():
    register_signals()
    with pytest.raises(ValueError, match=r"arrays of shape \(1, 40\): crop, flip and rotation need \(C, H, W\)"):
        build(dataset_cls="Signals", augment_flip=True)


def test_non_square_arrays_keep_their_shape():
    images = np.random.default_rng(0).random((30, 3, 6, 10)).astype(np.float32)
    data = ArrayData.from_arrays(images, np.arange(30) % 3)
    register_dataset(DatasetSpec("Wide", lambda request: LoadedData(data, data, n_classes=3), mean=None, std=None,
                                 image_size=None), overwrite=True)
    loaders = build(dataset_cls="Wide", augment_crop=True, crop_padding=1, augment_flip=True)
    inputs, _ = next(iter(loaders["train"][TASK_KEY]))
    assert inputs.shape[1:] == (3, 6, 10) == loaders.info.input_shape


# ---------------------------------------------------------------------- named test-time transforms


def test_circular_shift_draws_one_amount_per_example_in_range():
    x = torch.arange(40, dtype=torch.float32).repeat(500, 1, 1)  # [500, 1, 40]
    shifted = circular_shift(x, torch.Generator().manual_seed(0), low=30, high=39)
    amounts = (shifted[:, 0, 0] != 0) * (40 - shifted[:, 0, 0])  # where 0 went
    assert amounts.min() >= 30 and amounts.max() <= 39 and len(set(amounts.tolist())) == 10
    assert torch.equal(shift_examples(x[:2], torch.tensor([1, 0])), torch.stack([x[0].roll(1, -1), x[1]]))


def test_named_test_sets_are_evaluated_and_reported_under_their_names():
    named = {
        "test_shift": {"transform": "circular_shift", "low": 1, "high": 3},
        "test_noise": {"transform": "gaussian_noise", "std": 0.2, "clip": True},
        "test_turned": {"transform": "rotation", "angle": 90.0},
    }
    loaders = build(test_transforms=named, apply_normalization=False)
    plain, targets = all_batches(loaders["test"][TASK_KEY])
    turned, turned_targets = all_batches(loaders["test_turned"][TASK_KEY])
    assert torch.equal(turned, torch.rot90(plain, 1, dims=(2, 3))) and torch.equal(turned_targets, targets)
    noisy, _ = all_batches(loaders["test_noise"][TASK_KEY])
    assert 0.1 < (noisy - plain).std().item() < 0.2 and noisy.min() >= 0 and noisy.max() <= 1
    assert torch.equal(noisy, all_batches(build(test_transforms=named, apply_normalization=False)["test_noise"][TASK_KEY])[0])
    model = classification_model_builder(loaders, seed=0, **ClassificationModelConfig(type="lenet300-100").to_dict())
    trainer = ClassificationTrainerConfig(max_iter=1, lr=0.003, show_progress=False)
    _, output, _ = classification_trainer(model, loaders, seed=0, **trainer.to_dict(), device="cpu")
    assert set(named) <= set(output["final"])
    assert output["final"]["test_turned"][TASK_KEY]["accuracy"] < output["final"]["test"][TASK_KEY]["accuracy"]


def test_named_test_sets_on_the_per_example_path():
    images, labels = digits_arrays()
    register_dataset(DatasetSpec(
        "DigitsFiles", lambda request: LoadedData(NpyDataset(images[:100], labels[:100]), NpyDataset(images[100:140], labels[100:140]), 10, 1),
        mean=(0.3053,), std=(0.3759,), image_size=8), overwrite=True)
    named = {"test_turned": {"transform": "rotation", "angle": 90.0}}
    per_example = build(dataset_cls="DigitsFiles", test_transforms=named)
    plain, _ = all_batches(per_example["test"][TASK_KEY])
    turned, _ = all_batches(per_example["test_turned"][TASK_KEY])
    background = -0.3053 / 0.3759  # a rotated-in corner is black, normalised
    torch.testing.assert_close(turned, torch.rot90(plain, 1, dims=(2, 3)))
    assert turned.min().item() >= background - 1e-6


def test_unknown_test_transform_or_parameter_is_one_line():
    with pytest.raises(ValueError, match=r"test_transforms\['t'\]: unknown test transform 'rotate'; did you mean 'rotation'\?"):
        build(test_transforms={"t": {"transform": "rotate", "angle": 3}})
    with pytest.raises(ValueError, match=r"test_transforms\['t'\] \(rotation\) takes no parameter 'degrees' \(it takes: angle, seed\)"):
        build(test_transforms={"t": {"transform": "rotation", "degrees": 3}})
    with pytest.raises(ValueError, match="cannot name a split"):
        ImageDatasetConfig(test_transforms={"validation": {"transform": "rotation", "angle": 3}})


# ---------------------------------------------------------------------- MNIST-1D


@pytest.mark.slow
def test_mnist1d_splits_follow_the_shift_protocol():
    pytest.importorskip("mnist1d")
    from nntransfer.configs.dataset import MNIST1DConfig
    from nntransfer.dataset.sources import mnist1d_arrays

    loaders = build(config_cls=MNIST1DConfig, seed=1)
    sizes = {split: len(loaders[split][TASK_KEY].dataset) for split in loaders}
    assert sizes == {"train": 3600, "validation": 400, "test": 1000, "test_seen": 1000, "test_unseen": 1000, "test_all": 1000}
    assert loaders.info.input_shape == (1, 40) and loaders.info.n_classes == 10
    x, y, x_test, y_test = mnist1d_arrays(5000, 42)
    test, test_targets = all_batches(loaders["test"][TASK_KEY])
    assert torch.equal(test, torch.from_numpy(np.array(x_test))) and test_targets.tolist() == y_test.tolist()

    def shifts(split, reference):
        """The circular shift of each example relative to ``reference`` (rows in the same order)."""
        batch, _ = all_batches(loaders[split][TASK_KEY])
        rolled = torch.stack([reference.roll(k, -1) for k in range(40)], 1)  # [N, 40, 1, 40]
        match = (rolled - batch[:, None]).abs().amax((2, 3)) < 1e-6
        assert match.any(1).all(), split
        return match.float().argmax(1)

    reference = torch.from_numpy(np.array(x_test))
    for split, (low, high) in {"test_seen": (0, 29), "test_unseen": (30, 39), "test_all": (0, 39)}.items():
        found = shifts(split, reference)
        assert found.min() >= low and found.max() <= high and len(found.unique()) == high - low + 1, split
    train_view = loaders["train"][TASK_KEY].dataset
    train_shifts = shifts_of_training(train_view, torch.from_numpy(np.array(x)))
    assert train_shifts.min() == 0 and train_shifts.max() == 29


def shifts_of_training(view, unshifted):
    inputs = view.data.inputs[torch.as_tensor(view.indices)]
    reference = unshifted[torch.as_tensor(view.indices)]
    rolled = torch.stack([reference.roll(k, -1) for k in range(40)], 1)
    match = (rolled - inputs[:, None]).abs().amax((2, 3)) < 1e-6
    assert match.any(1).all()
    return match.float().argmax(1)
