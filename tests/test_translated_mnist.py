"""Translated MNIST as Nix, Sinz et al. (AISTATS 2022) use it: the ``translation`` test transform (MNIST-C's
``translate`` is ``low=3, high=3, random_sign=True``), its ``translate`` kernel, and the ``TranslatedMNIST``
data set (MNIST on a zero canvas, training examples moved once, seeded). MNIST cannot be downloaded here: a
small MNIST is written in the real IDX layout (scikit-learn's digits upscaled to 28x28) and read through the
real reader; a teacher -> student chain trains on it through ``nntransfer.run``."""


import pytest
import torch
from mnist_files import digits28, write_mnist

import nntransfer
from nntransfer.configs import (
    CKATransferMixin,
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Experiment,
    ImageDatasetConfig,
    TransferExperiment,
)
from nntransfer.dataset import TASK_KEY, img_dataset_loader
from nntransfer.dataset.augment import translate, translation_shifts
from nntransfer.dataset.test_transforms import apply_named, check_test_transforms
from nntransfer.pipeline.local import LocalStore
from nntransfer.pipeline.store import DONE

N_TRAIN, N_TEST = 40, 12
MNIST_C_TRANSLATE = {"transform": "translation", "low": 3, "high": 3, "random_sign": True}


@pytest.fixture
def mnist_dir(tmp_path):
    write_mnist(tmp_path, N_TRAIN, N_TEST)
    return tmp_path


def data_config(data_dir, canvas=40, train_shift=(-4, 4), shift_seed=0, **kwargs):
    kwargs.setdefault("test_transforms", {"test_translate": MNIST_C_TRANSLATE,
                                          "test_all": {"transform": "translation", "low": -6, "high": 6}})
    kwargs.setdefault("valid_size", 0.0)
    return ImageDatasetConfig(
        dataset_cls="TranslatedMNIST", input_size=canvas, batch_size=8, apply_normalization=False,
        dataset_kwargs={"canvas_size": canvas, "train_shift": train_shift, "shift_seed": shift_seed},
        data_dir=str(data_dir), **kwargs,
    )


def build(config, seed=0):
    return img_dataset_loader(seed, **config.to_dict(), **config.runtime_options())


def everything(loader):
    xs, ys = zip(*[(batch[0], batch[1]) for batch in loader])
    return torch.cat(xs), torch.cat(ys)


def centre(images, canvas):
    """uint8 [N, 28, 28] centred on a zero canvas, as float [N, 1, canvas, canvas] in [0, 1]."""
    before = (canvas - 28) // 2
    out = torch.zeros(len(images), 1, canvas, canvas)
    out[:, 0, before:before + 28, before:before + 28] = torch.from_numpy(images).float() / 255.0
    return out


def centre_of_mass(images):
    """(row, column) of each image's mass ``[N, C, H, W]`` -> ``[N, 2]``."""
    mass = images.sum(1).double()
    rows = torch.arange(mass.shape[1], dtype=torch.float64)[None, :, None]
    cols = torch.arange(mass.shape[2], dtype=torch.float64)[None, None, :]
    total = mass.sum((1, 2))
    return torch.stack([(mass * rows).sum((1, 2)) / total, (mass * cols).sum((1, 2)) / total], 1)


def found_shift(moved, original, low, high):
    """The one shift in low..high (both axes) that turns ``original`` [C, H, W] into ``moved``, or None."""
    hits = [(dy, dx) for dy in range(low, high + 1) for dx in range(low, high + 1)
            if torch.equal(translate(original[None], torch.tensor([[dy, dx]]))[0], moved)]
    return hits[0] if len(hits) == 1 else None


# ---------------------------------------------------------------------- the transform


def test_translate_moves_a_real_digit_by_exactly_the_given_pixels():
    images = centre(digits28(4)[0], 40)
    shifts = torch.tensor([[0, 0], [3, -2], [-5, 6], [1, 1]])
    moved = translate(images, shifts)
    for image, out, (dy, dx) in zip(images, moved, shifts.tolist()):
        expected = torch.zeros_like(image)
        expected[:, max(dy, 0):40 + min(dy, 0), max(dx, 0):40 + min(dx, 0)] = image[:, max(-dy, 0):40 - max(dy, 0), max(-dx, 0):40 - max(dx, 0)]
        assert torch.equal(out, expected)
    torch.testing.assert_close(centre_of_mass(moved) - centre_of_mass(images), shifts.double())
    # pixels pushed off a 28x28 image are lost (zero fill); circular rolls them round
    small = torch.from_numpy(digits28(1)[0]).float()[:, None] / 255
    cut = translate(small, torch.tensor([[0, 20]]))
    assert cut.sum() < small.sum() and torch.equal(cut[..., :20], torch.zeros_like(cut[..., :20]))
    assert torch.equal(translate(small, torch.tensor([[0, 20]]), circular=True), torch.roll(small, 20, dims=-1))


def test_the_translation_test_set_moves_each_digit_by_its_drawn_amount_mnist_c_style():
    images = centre(digits28(12)[0], 28)
    check_test_transforms({"test_translate": MNIST_C_TRANSLATE})
    moved = apply_named("test_translate", MNIST_C_TRANSLATE, images)
    shifts = [found_shift(out, image, -3, 3) for out, image in zip(moved, images)]
    assert all(s is not None and abs(s[0]) == 3 and abs(s[1]) == 3 for s in shifts), shifts  # MNIST-C: 3 px on both axes
    assert {s[0] for s in shifts} == {-3, 3} and {s[1] for s in shifts} == {-3, 3}  # both signs drawn
    assert torch.equal(apply_named("test_translate", MNIST_C_TRANSLATE, images), moved)  # seeded by the set's name
    again = apply_named("test_translate", dict(MNIST_C_TRANSLATE, seed=1), images)
    assert not torch.equal(again, moved)


def test_translation_parameters_are_checked_before_anything_runs():
    with pytest.raises(ValueError, match=r"^test_transforms\['t'\] \(translation\) takes no parameter 'max_shift'"):
        check_test_transforms({"t": {"transform": "translation", "max_shift": 3}})
    with pytest.raises(ValueError, match=r"^translation needs low <= high, got low=3, high=-3$"):
        apply_named("t", {"transform": "translation", "low": 3, "high": -3}, torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"^translation needs images \[N, C, H, W\]"):
        apply_named("t", {"transform": "translation", "low": 0, "high": 1}, torch.zeros(2, 1, 40))


def test_shifts_stay_within_their_range_and_cover_it():
    shifts = translation_shifts(2000, -4, 4, torch.Generator().manual_seed(0))
    assert shifts.min() == -4 and shifts.max() == 4 and set(shifts.flatten().tolist()) == set(range(-4, 5))


# ---------------------------------------------------------------------- the data set


def test_translated_mnist_moves_training_digits_within_train_shift_and_keeps_test_centred(mnist_dir):
    loaders = build(data_config(mnist_dir))
    x_train, y_train = digits28(N_TRAIN)
    x_test, y_test = digits28(N_TEST, start=N_TRAIN)
    assert loaders.info.input_shape == (1, 40, 40)
    train_set = loaders["train"][TASK_KEY].dataset  # in the data set's order (the loader shuffles)
    order = train_set.indices
    inputs = torch.stack([train_set[i][0] for i in range(len(train_set))])
    targets = torch.tensor([int(train_set[i][1]) for i in range(len(train_set))])
    assert inputs.shape == (N_TRAIN, 1, 40, 40) and torch.equal(targets, torch.from_numpy(y_train[order]))
    originals = centre(x_train[order], 40)
    shifts = [found_shift(out, image, -4, 4) for out, image in zip(inputs, originals)]
    assert all(s is not None for s in shifts)  # every training digit moved by a shift within train_shift
    assert len(set(shifts)) > 10  # drawn per example
    test_inputs, test_targets = everything(loaders["test"][TASK_KEY])
    assert torch.equal(test_inputs, centre(x_test, 40)) and torch.equal(test_targets, torch.from_numpy(y_test))
    translated, _ = everything(loaders["test_translate"][TASK_KEY])
    assert all(found_shift(out, image, -3, 3) in {(-3, -3), (-3, 3), (3, -3), (3, 3)} for out, image in zip(translated, test_inputs))
    full, _ = everything(loaders["test_all"][TASK_KEY])
    full_shifts = [found_shift(out, image, -6, 6) for out, image in zip(full, test_inputs)]
    assert all(s is not None for s in full_shifts) and max(max(map(abs, s)) for s in full_shifts) > 4  # beyond training


def test_the_same_config_and_seed_give_the_same_data_and_another_shift_seed_other_shifts(mnist_dir):
    first, second = build(data_config(mnist_dir)), build(data_config(mnist_dir))
    for split in ("train", "test", "test_translate", "test_all"):
        assert torch.equal(everything(first[split][TASK_KEY])[0], everything(second[split][TASK_KEY])[0]), split
    other = build(data_config(mnist_dir, shift_seed=1))
    assert not torch.equal(everything(other["train"][TASK_KEY])[0], everything(first["train"][TASK_KEY])[0])
    plain = build(data_config(mnist_dir, canvas=28, train_shift=(0, 0), test_transforms={}))
    assert torch.equal(everything(plain["test"][TASK_KEY])[0], centre(digits28(N_TEST, start=N_TRAIN)[0], 28))


@pytest.mark.parametrize("changes, message", [
    (dict(input_size=28), r"^TranslatedMNIST with canvas_size=40 needs input_size=40 \(got 28\): shifts are in canvas pixels"),
    (dict(dataset_kwargs={"canvas_size": 40, "train_shift": (4, -4)}), r"^TranslatedMNIST train_shift must be \(low, high\)"),
    (dict(dataset_kwargs={"canvas_size": 20}, input_size=20), r"^TranslatedMNIST canvas_size must be an int of at least 28"),
    (dict(dataset_kwargs={"canvas_size": 40, "train_shift": (-40, 0)}), r"^TranslatedMNIST train_shift \(-40, 0\) moves digits off"),
    (dict(dataset_kwargs={"canvas": 40}), r"TranslatedMNIST does not accept dataset_kwargs \['canvas'\].*did you mean 'canvas_size'"),
], ids=["input_size", "range", "canvas", "off", "typo"])
def test_settings_that_cannot_work_fail_in_one_line(mnist_dir, changes, message):
    fields = data_config(mnist_dir).to_dict()
    fields.update(changes)
    config = ImageDatasetConfig(**{k: v for k, v in fields.items() if k != "data_dir"}, data_dir=str(mnist_dir))
    with pytest.raises(ValueError, match=message) as caught:
        build(config)
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------------- a chain through nntransfer.run


class CKATrainer(CKATransferMixin, ClassificationTrainerConfig):
    pass


def test_a_cnn2d_teacher_and_a_vit_student_train_on_translated_mnist_through_run(mnist_dir, tmp_path):
    data = data_config(mnist_dir, canvas=28, train_shift=(-2, 2), valid_size=0.25)
    teacher = Experiment(data, ClassificationModelConfig(type="cnn2d", dropout=0.1, options={"channels": [8, 8, 8]}),
                         ClassificationTrainerConfig(max_iter=1, show_progress=False), seed=1, comment="teacher")
    vit = ClassificationModelConfig(type="vit", options={"num_layers": 1, "num_heads": 2, "hidden_dim": 8, "mlp_dim": 16})
    student = Experiment(data, vit, CKATrainer(teacher="previous", start_from_previous=False, cka_layers={"readout": "readout"},
                                               max_iter=1, early_stopping=False, show_progress=False), seed=1, comment="student")
    chain = TransferExperiment([teacher, student])
    rows = nntransfer.run(chain, store=f"local:{tmp_path / 'work'}", progress=False)
    assert {row.state for row in rows} == {DONE}
    output = LocalStore(tmp_path / "work").load(chain.step_key(1)).output
    assert {"test", "test_translate", "test_all"} <= set(output["final"])
    for split in ("test", "test_translate", "test_all"):
        assert 0.0 <= output["final"][split][TASK_KEY]["accuracy"] <= 100.0
    assert "cka" in output["tracker"]["log"]["Training"][TASK_KEY]
