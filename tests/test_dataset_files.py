"""Data sets read from disk: tiny files written here in torchvision's layouts (MNIST idx, CIFAR pickles,
SVHN .mat, image folders) and the -C layouts of corrupted test sets. Pixels are the real digits."""

import pickle

import numpy as np
import pytest
import torch
import torchvision
from mnist_files import write_idx
from PIL import Image

from nntransfer.configs import ImageDatasetConfig
from nntransfer.dataset import TASK_KEY, NpyDataset, img_dataset_loader, load_corrupted
from nntransfer.dataset.sources import digits_arrays


def build(data_dir, seed=0, **kwargs):
    kwargs.setdefault("batch_size", 4)
    config = ImageDatasetConfig(data_dir=str(data_dir), **kwargs)
    # the run layer passes the fields and the runtime options (data_dir is one)
    return img_dataset_loader(seed, **config.to_dict(), **config.runtime_options())


def all_batches(loader):
    xs, ys = zip(*[(batch[0], batch[1]) for batch in loader])
    return torch.cat(xs), torch.cat(ys)


def digits(n, size, channels=1, start=0):
    """``n`` real digits as uint8 images [n, size, size] (or [n, size, size, 3]) and their labels."""
    images, labels = digits_arrays()
    images = images[start : start + n]
    scale = size // 8
    images = np.kron(images, np.ones((scale, scale), dtype=np.uint8))
    pad = size - images.shape[1]
    images = np.pad(images, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2)))
    if channels == 3:  # colour them so the channels differ
        images = np.stack([images, images // 2, 255 - images], axis=-1)
    return images.astype(np.uint8), labels[start : start + n].astype(np.int64)


def as_uint8(inputs):
    """Unnormalised float tensors [B, C, H, W] back to uint8 [B, H, W, C]."""
    return torch.round(inputs * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


# ---------------------------------------------------------------------- writers of the on-disk formats


def write_mnist(root, name="MNIST", n_train=40, n_test=12):
    raw = root / name / "raw"
    raw.mkdir(parents=True)
    (x_train, y_train), (x_test, y_test) = digits(n_train, 28), digits(n_test, 28, start=n_train)
    write_idx(raw / "train-images-idx3-ubyte", x_train)
    write_idx(raw / "train-labels-idx1-ubyte", y_train)
    write_idx(raw / "t10k-images-idx3-ubyte", x_test)
    write_idx(raw / "t10k-labels-idx1-ubyte", y_test)
    return x_train, y_train, x_test, y_test


def write_cifar(root, hundred=False, per_batch=8, n_test=10):
    """CIFAR python-pickle batches: dict(data=[n, 3072] uint8 in CHW order, labels=[...])."""
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    label_key = "fine_labels" if hundred else "labels"
    names = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    n_train = per_batch * len(names)
    x, y = digits(n_train + n_test, 32, channels=3)
    if hundred:
        y = y * 10 + 3  # labels beyond 10
    for i, name in enumerate(names + ["test"] if hundred else names + ["test_batch"]):
        rows = slice(i * per_batch, (i + 1) * per_batch) if i < len(names) else slice(n_train, n_train + n_test)
        entry = {"data": x[rows].transpose(0, 3, 1, 2).reshape(-1, 3072), label_key: y[rows].tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    with open(folder / ("meta" if hundred else "batches.meta"), "wb") as f:
        pickle.dump({"fine_label_names" if hundred else "label_names": [str(c) for c in range(100 if hundred else 10)]}, f)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def write_svhn(root, n_train=20, n_test=8):
    from scipy.io import savemat

    x, y = digits(n_train + n_test, 32, channels=3)
    stored = np.where(y == 0, 10, y)  # SVHN stores the digit 0 as label 10
    savemat(root / "train_32x32.mat", {"X": x[:n_train].transpose(1, 2, 3, 0), "y": stored[:n_train, None]})
    savemat(root / "test_32x32.mat", {"X": x[n_train:].transpose(1, 2, 3, 0), "y": stored[n_train:, None]})
    return x[n_train:], y[n_train:]


def write_images(folder, images, suffix=".png"):
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"img_{i}{suffix}")


WNIDS = ["n01443537", "n01629819", "n01641577"]


def write_tiny_imagenet(root, per_class=4):
    base = root / "tiny-imagenet-200"
    x, _ = digits(per_class * len(WNIDS) + 6, 64, channels=3)
    for c, wnid in enumerate(WNIDS):
        write_images(base / "train" / wnid / "images", x[c * per_class : (c + 1) * per_class])
    val_images = x[-6:]
    val_labels = [2, 0, 1, 2, 0, 1]
    write_images(base / "val" / "images", val_images)
    lines = [f"img_{i}.png\t{WNIDS[c]}\t0\t0\t63\t63" for i, c in enumerate(val_labels)]
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return val_images, val_labels


# ---------------------------------------------------------------------- torchvision layouts


@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST"])
def test_mnist_from_the_raw_idx_layout(tmp_path, name):
    x_train, y_train, x_test, y_test = write_mnist(tmp_path, name)
    loaders = build(tmp_path, dataset_cls=name, input_size=28, valid_size=0.25, apply_normalization=False)
    assert len(loaders["train"][TASK_KEY].dataset) == 30 and len(loaders["validation"][TASK_KEY].dataset) == 10
    inputs, targets = all_batches(loaders["test"][TASK_KEY])
    assert inputs.shape == (12, 1, 28, 28) and targets.dtype == torch.int64
    np.testing.assert_array_equal(as_uint8(inputs)[..., 0], x_test)
    np.testing.assert_array_equal(targets.numpy(), y_test)
    train_set = loaders["train"][TASK_KEY].dataset
    np.testing.assert_array_equal([train_set[i][1] for i in range(len(train_set))], y_train[train_set.indices])


def test_mnist_normalised_and_resized(tmp_path):
    write_mnist(tmp_path)
    loaders = build(tmp_path, dataset_cls="MNIST", input_size=16, convert_to_rgb=True)
    inputs, _ = next(iter(loaders["train"][TASK_KEY]))
    assert inputs.shape == (4, 3, 16, 16)
    assert inputs.min().item() == pytest.approx((0 - 0.1307) / 0.3081, abs=1e-4)


def test_missing_torchvision_files_name_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError) as excinfo:
        build(tmp_path, dataset_cls="MNIST")
    message = str(excinfo.value)
    assert "\n" not in message
    assert str(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte") in message and "download=True" in message
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py/data_batch_1"):
        build(tmp_path, dataset_cls="CIFAR10")
    with pytest.raises(FileNotFoundError, match="tiny-imagenet-200/train") as excinfo:
        build(tmp_path, dataset_cls="TinyImageNet")
    assert "download=True" not in str(excinfo.value)  # nothing to download from


def test_download_when_asked_fills_the_torchvision_layout(tmp_path, monkeypatch):
    def fake_download(self):  # stands in for the network: writes what torchvision would unpack
        write_mnist(tmp_path)

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", fake_download)
    loaders = build(tmp_path, dataset_cls="MNIST", download=True, input_size=28)
    assert next(iter(loaders["test"][TASK_KEY]))[0].shape == (4, 1, 28, 28)


def test_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    def no_network(self):
        raise RuntimeError("Error downloading:\nName or service not known")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", no_network)
    with pytest.raises(FileNotFoundError, match="MNIST could not be downloaded .*place the files there") as excinfo:
        build(tmp_path, dataset_cls="MNIST", download=True)
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_from_the_python_pickle_layout(tmp_path, hundred):
    x_train, y_train, x_test, y_test = write_cifar(tmp_path, hundred)
    name = "CIFAR100" if hundred else "CIFAR10"
    loaders = build(tmp_path, dataset_cls=name, input_size=32, apply_normalization=False, valid_size=0.0)
    inputs, targets = all_batches(loaders["test"][TASK_KEY])
    np.testing.assert_array_equal(as_uint8(inputs), x_test)
    np.testing.assert_array_equal(targets.numpy(), y_test)
    train_inputs, _ = all_batches(build(tmp_path, dataset_cls=name, input_size=32, apply_normalization=False, valid_size=0.0, shuffle=False)["train"][TASK_KEY])
    np.testing.assert_array_equal(as_uint8(train_inputs), x_train)
    assert loaders.info.n_classes == (100 if hundred else 10)


def test_cifar_grayscale_and_default_normalisation(tmp_path):
    write_cifar(tmp_path)
    loaders = build(tmp_path, dataset_cls="CIFAR10", input_size=8, apply_grayscale=True, valid_size=0.0)
    inputs, _ = all_batches(loaders["train"][TASK_KEY])
    assert inputs.shape == (40, 1, 8, 8) and loaders.info.input_shape == (1, 8, 8)
    raw, _ = all_batches(build(tmp_path, dataset_cls="CIFAR10", input_size=8, apply_grayscale=True, valid_size=0.0, apply_normalization=False)["train"][TASK_KEY])
    gray_mean = 0.299 * 0.4914 + 0.587 * 0.4822 + 0.114 * 0.4465
    gray_std = 0.299 * 0.2470 + 0.587 * 0.2435 + 0.114 * 0.2616
    torch.testing.assert_close(inputs, (raw - gray_mean) / gray_std)


def test_svhn_from_the_mat_layout_maps_label_10_to_0(tmp_path):
    x_test, y_test = write_svhn(tmp_path)
    loaders = build(tmp_path, dataset_cls="SVHN", input_size=32, apply_normalization=False)
    inputs, targets = all_batches(loaders["test"][TASK_KEY])
    assert 0 in targets.tolist() and 10 not in targets.tolist()
    np.testing.assert_array_equal(targets.numpy(), y_test)
    np.testing.assert_array_equal(as_uint8(inputs), x_test)


def test_tiny_imagenet_folders_with_validation_annotations(tmp_path):
    val_images, val_labels = write_tiny_imagenet(tmp_path)
    loaders = build(tmp_path, dataset_cls="TinyImageNet", input_size=16, augment_crop=True, augment_flip=True, valid_size=0.25)
    assert len(loaders["train"][TASK_KEY].dataset) == 9 and loaders.info.n_classes == 3
    for split in ("train", "validation", "test"):
        inputs, targets = next(iter(loaders[split][TASK_KEY]))
        assert inputs.shape[1:] == (3, 16, 16) and inputs.dtype == torch.float32 and targets.dtype == torch.int64
    _, targets = all_batches(loaders["test"][TASK_KEY])
    assert targets.tolist() == val_labels
    raw = build(tmp_path, dataset_cls="TinyImageNet", input_size=64, apply_normalization=False)
    inputs, _ = all_batches(raw["test"][TASK_KEY])
    np.testing.assert_array_equal(as_uint8(inputs), val_images)


def test_tiny_imagenet_annotation_of_an_unknown_class_is_one_clear_error(tmp_path):
    write_tiny_imagenet(tmp_path)
    annotations = tmp_path / "tiny-imagenet-200" / "val" / "val_annotations.txt"
    annotations.write_text(annotations.read_text() + "img_0.png\tn99999999\t0\t0\t63\t63\n")
    with pytest.raises(ValueError, match=r"val_annotations.txt.*'n99999999'.*no folder in .*train") as excinfo:
        build(tmp_path, dataset_cls="TinyImageNet", input_size=16)
    assert "\n" not in str(excinfo.value)


def test_imagenet_folders_number_validation_classes_like_training(tmp_path):
    x, _ = digits(9, 24, channels=3)
    for c, wnid in enumerate(WNIDS):
        write_images(tmp_path / "ImageNet" / "train" / wnid, x[3 * c : 3 * c + 3], suffix=".JPEG")
    write_images(tmp_path / "ImageNet" / "val" / WNIDS[2], x[:2], suffix=".JPEG")  # classes 0, 1 absent
    loaders = build(tmp_path, dataset_cls="ImageNet", input_size=16)
    inputs, targets = all_batches(loaders["test"][TASK_KEY])
    assert inputs.shape == (2, 3, 16, 16) and targets.tolist() == [2, 2]
    assert loaders.info.n_classes == 3
    transforms = [type(t).__name__ for t in loaders["test"][TASK_KEY].dataset.transform.transforms]
    assert "CenterCrop" in transforms


# ---------------------------------------------------------------------- corrupted test sets


def write_cifar_c(folder, severities=5, per_severity=6, corruptions=("fog", "gaussian_noise")):
    folder.mkdir(parents=True)
    x, y = digits(per_severity, 32, channels=3)
    written = {}
    for k, corruption in enumerate(corruptions):
        stacked = np.concatenate([np.clip(x.astype(int) + 10 * s + k, 0, 255) for s in range(1, severities + 1)]).astype(np.uint8)
        np.save(folder / f"{corruption}.npy", stacked)
        written[corruption] = stacked
    np.save(folder / "labels.npy", np.tile(y, severities).astype(np.uint8))
    return written, y


def test_cifar10_c_style_files_give_one_loader_per_corruption_and_severity(tmp_path):
    write_cifar(tmp_path)
    written, labels = write_cifar_c(tmp_path / "CIFAR-10-C")
    loaders = build(tmp_path, dataset_cls="CIFAR10", input_size=32, apply_normalization=False, add_corrupted_test=True)
    assert set(loaders["c_test"]) == {"fog", "gaussian_noise"}
    for corruption, by_severity in loaders["c_test"].items():
        assert sorted(by_severity) == [1, 2, 3, 4, 5]
        for severity, loader in by_severity.items():
            inputs, targets = all_batches(loader)
            assert inputs.shape == (6, 3, 32, 32) and inputs.dtype == torch.float32
            assert targets.dtype == torch.int64 and targets.tolist() == labels.tolist()
            np.testing.assert_array_equal(as_uint8(inputs), written[corruption][(severity - 1) * 6 : severity * 6])
            assert inputs.shape[1:] == loaders.info.input_shape and loaders.info.n_classes == 10


def test_corrupted_selection_filter_and_transforms(tmp_path):
    write_cifar(tmp_path)
    write_cifar_c(tmp_path / "elsewhere")
    loaders = build(
        tmp_path, dataset_cls="CIFAR10", input_size=8, add_corrupted_test=True,
        corrupted_data_dir=str(tmp_path / "elsewhere"), corruptions=["fog"], corruption_severities=[2, 5],
        filter_classes=(0, 3),
    )
    assert list(loaders["c_test"]) == ["fog"] and sorted(loaders["c_test"]["fog"]) == [2, 5]
    _, labels = digits(6, 32)
    inputs, targets = all_batches(loaders["c_test"]["fog"][5])
    assert inputs.shape[1:] == (3, 8, 8)
    assert targets.tolist() == [y for y in labels if y < 3]
    assert loaders.info.n_classes == 3


def test_corrupted_images_of_another_size_are_resized_to_input_size(tmp_path):
    # e.g. a -C folder written at another resolution than the clean data set: the loader must still
    # give the input_shape it announces, like every other split.
    folder = tmp_path / "c16"
    folder.mkdir()
    x, y = digits(6, 16)
    np.save(folder / "fog.npy", x)
    np.save(folder / "labels.npy", y)
    loaders = build(
        tmp_path, add_corrupted_test=True, corrupted_data_dir=str(folder), stacked_severities=1,
        apply_normalization=False,
    )
    loader = loaders["c_test"]["fog"][1]
    inputs, targets = all_batches(loader)
    assert loaders.info.input_shape == (1, 8, 8) and inputs.shape == (6, 1, 8, 8)
    assert targets.tolist() == y.tolist()
    shrunk = np.stack([np.asarray(Image.fromarray(image).resize((8, 8), Image.BILINEAR)) for image in x])
    np.testing.assert_array_equal(as_uint8(inputs)[..., 0], shrunk)


def test_mnist_c_style_folders(tmp_path):
    write_mnist(tmp_path)
    for corruption in ("shot_noise", "zigzag"):
        x, y = digits(5, 28, start=100)
        (tmp_path / "mnist_c" / corruption).mkdir(parents=True)
        np.save(tmp_path / "mnist_c" / corruption / "test_images.npy", (255 - x)[..., None])
        np.save(tmp_path / "mnist_c" / corruption / "test_labels.npy", y)
    loaders = build(tmp_path, dataset_cls="MNIST", input_size=28, apply_normalization=False, add_corrupted_test=True)
    assert set(loaders["c_test"]) == {"shot_noise", "zigzag"} and list(loaders["c_test"]["zigzag"]) == [1]
    inputs, targets = all_batches(loaders["c_test"]["zigzag"][1])
    assert inputs.shape == (5, 1, 28, 28) and targets.tolist() == y.tolist()
    np.testing.assert_array_equal(as_uint8(inputs)[..., 0], 255 - x)


def test_imagenet_c_style_folders(tmp_path):
    write_tiny_imagenet(tmp_path)
    x, _ = digits(4, 64, channels=3)
    for severity in (1, 3):
        write_images(tmp_path / "Tiny-ImageNet-C" / "blur" / str(severity) / WNIDS[1], x[:2])
        write_images(tmp_path / "Tiny-ImageNet-C" / "blur" / str(severity) / WNIDS[2], x[2:])
    loaders = build(tmp_path, dataset_cls="TinyImageNet", input_size=16, add_corrupted_test=True)
    assert sorted(loaders["c_test"]["blur"]) == [1, 3]
    inputs, targets = all_batches(loaders["c_test"]["blur"][3])
    assert inputs.shape == (4, 3, 16, 16) and targets.tolist() == [1, 1, 2, 2]


def test_missing_corrupted_folder_is_one_clear_error(tmp_path):
    write_cifar(tmp_path)
    with pytest.raises(FileNotFoundError) as excinfo:
        build(tmp_path, dataset_cls="CIFAR10", add_corrupted_test=True)
    message = str(excinfo.value)
    assert "\n" not in message and str(tmp_path / "CIFAR-10-C") in message and "corrupted_data_dir" in message
    with pytest.raises(ValueError, match="Digits has no standard corrupted-data folder; set corrupted_data_dir"):
        build(tmp_path, add_corrupted_test=True)


def test_corrupted_errors_name_what_was_found(tmp_path):
    write_cifar_c(tmp_path / "c", severities=2)
    with pytest.raises(ValueError, match=r"corruptions \['snow'\] not found in .*; found: fog, gaussian_noise"):
        load_corrupted(tmp_path / "c", corruptions=["snow"], stacked_severities=2)
    with pytest.raises(ValueError, match=r"severities \[3\] not found for corruption 'fog'"):
        load_corrupted(tmp_path / "c", severities=[3], stacked_severities=2)
    with pytest.raises(ValueError, match="not a multiple of stacked_severities=5"):
        load_corrupted(tmp_path / "c", stacked_severities=5)  # 12 rows per file
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no corrupted test sets in"):
        load_corrupted(tmp_path / "empty")


# ---------------------------------------------------------------------- NpyDataset


def test_npy_dataset_from_files_and_arrays(tmp_path):
    x, y = digits(6, 8, channels=3)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    from_files = NpyDataset(tmp_path / "x.npy", tmp_path / "y.npy")
    image, label = from_files[4]
    assert image.mode == "RGB" and label == int(y[4]) and np.array_equal(np.asarray(image), x[4])
    floats = NpyDataset(x[..., 0] / 255.0, y)
    assert floats.channels == 1 and np.array_equal(np.asarray(floats[2][0]), x[2, ..., 0])
    with pytest.raises(ValueError, match="has 6 images but 5 labels"):
        NpyDataset(x, y[:5])
    with pytest.raises(ValueError, match=r"shape \[N, H, W\] or \[N, H, W, 1\|3\]"):
        NpyDataset(np.zeros((2, 4, 4, 2)), [0, 1])
    with pytest.raises(FileNotFoundError, match="images file .*missing.npy does not exist"):
        NpyDataset(tmp_path / "missing.npy", y)


def test_a_crafted_cifar_batch_cannot_run_code(tmp_path):
    from nntransfer.dataset.sources import read_cifar_batches

    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({"data": Payload(), "labels": [0]}, f)
    with pytest.raises(ValueError, match="is not a CIFAR batch file .*may not name"):
        read_cifar_batches(tmp_path, ["data_batch_1"])
    assert not marker.exists()
