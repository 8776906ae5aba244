"""The rotation-equivariant group CNN ``gcnn`` (Nix et al. 2022's rotation teacher) and the rotated test sets.

Tiny sizes throughout: 1-channel images of 8 to 13 pixels and a few maps per layer."""

import importlib.util
import sys

import pytest
import torch
from torch import nn

from nntransfer.configs import ClassificationModelConfig, ClassificationTrainerConfig, ImageDatasetConfig
from nntransfer.dataset import img_dataset_loader
from nntransfer.dataset.test_transforms import apply_named, check_test_transforms
from nntransfer.defaults import TASK_KEY
from nntransfer.models import CoreReadoutModel, build_model, classification_model_builder, model_spec, registered_types
from nntransfer.models.group_cnn import GroupConv2d, LiftingConv2d, interpolation_matrix, rotate_group_maps
from nntransfer.models.intermediate import IntermediateLayerWrapper
from nntransfer.trainer import classification_trainer

TINY = {"channels": [3, 4], "kernel_sizes": [3, 3, 3]}


def escnn_works() -> bool:
    if importlib.util.find_spec("escnn") is None:
        return False
    try:
        import escnn.nn  # noqa: F401
    except ImportError:  # e.g. lie-learn's extension built for numpy 1 under numpy 2
        return False
    return True


needs_escnn = pytest.mark.skipif(not escnn_works(), reason="escnn is not installed or does not import (pip install 'nntransfer[escnn]')")


def gcnn(input_shape=(1, 12, 12), n_classes=5, seed=0, **options):
    config = ClassificationModelConfig(type="gcnn", options={**TINY, **options})
    return build_model(config, input_shape, n_classes, seed=seed)


def test_registered_with_the_original_p4_network_as_defaults():
    assert "gcnn" in registered_types()
    spec = model_spec("gcnn")
    assert spec.input_dims == (3,)
    assert spec.options == {"group_order": 4, "channels": [8, 32, 64], "kernel_sizes": [5, 3, 3, 3], "padding": 1,
                            "group_pool": "max", "backend": "torch"}
    model = build_model(ClassificationModelConfig(type="gcnn"), (1, 28, 28), 10, seed=0)
    assert model.core.conv1.weight.shape == (8, 1, 5, 5) and model.core.conv3.weight.shape == (64, 32, 4, 3, 3)
    assert model.readout.conv4.weight.shape == (10, 64, 4, 3, 3)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_output_shape_and_layer_paths():
    model = gcnn(group_order=8)
    assert isinstance(model, CoreReadoutModel)
    x = torch.rand(3, 1, 12, 12)
    assert model(x).shape == (3, 5)
    assert model.core(x).shape == (3, 4, 8, 3, 3)  # [B, C, N, H, W]: 12 -> conv 12 -> pool 6 -> conv 6 -> pool 3
    assert [name for name, _ in model.readout.named_children()] == ["conv3", "group_pool", "spatial_pool", "flatten"]
    wrapped = IntermediateLayerWrapper(model, {"readout": "readout", "pool1": "core.pool1"})
    extra, logits = wrapped(x)
    assert extra["readout"].shape == (3, 4, 8, 3, 3) and extra["pool1"].shape == (3, 3, 8, 6, 6)
    assert torch.equal(logits, model(x))


@pytest.mark.parametrize("group_order, size, options", [
    (4, 12, {}),
    (4, 13, {"batch_norm": True}),  # odd sizes: 13 -> pool 7 -> pool 4
    (8, 11, {"group_pool": "mean"}),
    (8, 8, {"padding": 0, "kernel_sizes": [1, 3, 1]}),
])
def test_logits_are_invariant_to_rot90_of_the_input(group_order, size, options):
    bn = options.pop("batch_norm", None)
    config = ClassificationModelConfig(type="gcnn", batch_norm=bn, options={**TINY, "group_order": group_order, **options})
    model = build_model(config, (1, size, size), 5, seed=0)
    if bn:  # batch statistics of a training step, then evaluation with the running ones
        model(torch.rand(4, 1, size, size))
    model.eval()
    x = torch.rand(4, 1, size, size)
    logits = model(x)
    assert logits.abs().max() > 1e-3  # not trivially constant
    for quarters in (1, 2, 3):
        torch.testing.assert_close(model(torch.rot90(x, quarters, (-2, -1))), logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("group_order", [4, 8])
def test_layers_are_equivariant_rotating_maps_and_shifting_the_group_axis(group_order):
    torch.manual_seed(0)
    lift, conv = LiftingConv2d(2, 3, group_order, 5, 2), GroupConv2d(3, 2, group_order, 3, 1)
    x = torch.rand(2, 2, 9, 9)
    y = conv(torch.relu(lift(x)))
    for quarters in (1, 2, 3):
        turned = conv(torch.relu(lift(torch.rot90(x, quarters, (-2, -1)))))
        torch.testing.assert_close(turned, rotate_group_maps(y, quarters), rtol=1e-5, atol=1e-5)


def test_interpolated_filter_rotation_turns_as_rot90():
    w = torch.randn(5, 5, dtype=torch.float64)
    for degrees in (0, 90, 180, 270):
        rotated = (w.flatten() @ interpolation_matrix(5, degrees).T).view(5, 5)
        torch.testing.assert_close(rotated, torch.rot90(w, degrees // 90, (-2, -1)))
    matrix = interpolation_matrix(3, 45)  # the centre stays; every output pixel is a convex mix of inputs
    assert torch.equal(matrix[4], torch.eye(9, dtype=torch.float64)[4])
    assert (matrix >= 0).all() and (matrix.sum(1) <= 1 + 1e-12).all()


def test_weight_inits_reach_the_group_convolutions():
    config = ClassificationModelConfig(type="gcnn", weight_init="kaiming_normal", options=TINY)
    model = build_model(config, (1, 12, 12), 5, seed=0)
    assert model.core.conv2.fan_in == 3 * 4 * 3 * 3
    assert torch.equal(model.core.conv2.bias, torch.zeros(4))
    assert abs(model.core.conv2.weight.std().item() - (2 / model.core.conv2.fan_in) ** 0.5) < 0.1


@pytest.mark.parametrize("options, message", [
    ({"kernel_sizes": [3, 3]}, r"kernel_sizes needs 3 odd sizes"),
    ({"kernel_sizes": [3, 4, 3]}, r"kernel_sizes needs 3 odd sizes"),
    ({"group_order": 0}, r"group_order must be at least 1"),
    ({"group_pool": "avg"}, r"has no group_pool 'avg'"),
])
def test_bad_options_are_one_line(options, message):
    with pytest.raises(ValueError, match=message) as excinfo:
        gcnn(**options)
    assert "\n" not in str(excinfo.value)


def test_too_small_input_names_the_layer():
    with pytest.raises(ValueError, match=r"too small for model type 'gcnn': the feature map vanishes at conv2"):
        gcnn(input_shape=(1, 3, 3), padding=0)


def test_trains_a_step_on_digits_and_is_as_accurate_on_the_rotated_test_set():
    named = {"test_quarter_turns": {"transform": "random_rotation", "angles": [0, 90, 180, 270]}}
    loaders = img_dataset_loader(0, **ImageDatasetConfig(dataset_cls="Digits", batch_size=32, train_subset=0.5,
                                                         test_transforms=named).to_dict())
    config = ClassificationModelConfig(type="gcnn", options={"channels": [4, 8], "kernel_sizes": [3, 3, 3]})
    model = classification_model_builder(loaders, seed=0, **config.to_dict())
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer = ClassificationTrainerConfig(max_iter=1, lr=0.01, show_progress=False)
    _, output, state = classification_trainer(model, loaders, seed=0, **trainer.to_dict(), device="cpu")
    assert all(not torch.equal(p, before[name]) for name, p in model.named_parameters())
    final = output["final"]
    assert final["test"][TASK_KEY]["accuracy"] > 20  # 10 classes: well above chance after one epoch
    assert final["test_quarter_turns"][TASK_KEY]["accuracy"] == pytest.approx(final["test"][TASK_KEY]["accuracy"], abs=0.5)


def test_building_the_escnn_backend_without_escnn_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "escnn", None)  # import escnn raises ImportError
    with pytest.raises(ImportError) as excinfo:
        gcnn(backend="escnn")
    assert str(excinfo.value) == "model type 'gcnn' with backend 'escnn' needs escnn: pip install 'nntransfer[escnn]'"
    assert "gcnn" in registered_types() and gcnn()(torch.rand(1, 1, 12, 12)).shape == (1, 5)


@needs_escnn
@pytest.mark.parametrize("group_order", [4, 8])
def test_escnn_backend_is_invariant_trains_and_keeps_one_state_dict(group_order):
    model = gcnn(backend="escnn", group_order=group_order)
    x = torch.rand(4, 1, 13, 13)
    nn.functional.cross_entropy(model(x), torch.arange(4)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    keys = set(model.state_dict())
    model.eval()
    assert set(model.state_dict()) == keys
    logits = model(x)
    for quarters in (1, 2, 3):
        torch.testing.assert_close(model(torch.rot90(x, quarters, (-2, -1))), logits, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------- the rotated test sets


def test_random_rotation_turns_each_example_by_one_of_the_angles_reproducibly():
    x = torch.rand(64, 1, 7, 7)
    spec = {"transform": "random_rotation", "angles": [0, 90, 180, 270]}
    turned = apply_named("test_quarter_turns", spec, x)
    quarters = [next(k for k in range(4) if torch.equal(torch.rot90(x[i], k, (-2, -1)), turned[i])) for i in range(64)]
    assert set(quarters) == {0, 1, 2, 3}
    assert torch.equal(apply_named("test_quarter_turns", spec, x), turned)
    assert not torch.equal(apply_named("test_quarter_turns", {**spec, "seed": 1}, x), turned)


def test_random_rotation_in_a_range():
    x = torch.rand(16, 1, 9, 9)
    assert torch.equal(apply_named("t", {"transform": "random_rotation", "low": 0, "high": 0}, x), x)
    turned = apply_named("t", {"transform": "random_rotation", "low": -45, "high": 45}, x)
    assert turned.shape == x.shape and not torch.equal(turned, x)


@pytest.mark.parametrize("params, message", [
    ({}, "either angles"),
    ({"angles": [90], "low": 0, "high": 10}, "either angles"),
    ({"low": 0}, "either angles"),
    ({"angles": []}, "at least one angle"),
    ({"low": 10, "high": 0}, "low <= high"),
])
def test_random_rotation_refuses_unclear_parameters(params, message):
    check_test_transforms({"t": {"transform": "random_rotation", **params}})  # names and parameters are known
    with pytest.raises(ValueError, match=message):
        apply_named("t", {"transform": "random_rotation", **params}, torch.rand(2, 1, 5, 5))
