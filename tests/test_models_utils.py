"""Model utilities: freezing, resetting, eval mode per layer, ensemble buffers."""

import copy

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch.nn import functional as F

from nntransfer.configs import ClassificationModelConfig
from nntransfer.models import IntermediateLayerWrapper, build_model
from nntransfer.models.utils import (
    copy_to_ensemble_buffers,
    ensemble_members,
    freeze_params,
    load_state_dict_leniently,
    reset_params,
    restore_from_ensemble_buffers,
    select_parameters,
    set_bn_to_eval,
    set_dropout_to_eval,
)


@pytest.fixture(scope="module")
def digits():
    """Four real digits, 16x16, with their labels."""
    data = load_digits()
    x = torch.tensor(data.images[:4], dtype=torch.float32).unsqueeze(1) / 16.0
    return F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False), torch.tensor(data.target[:4])


def lenet(seed=0, **options):
    options = dict(dict(type="lenet5", batch_norm=True, dropout=0.5), **options)
    return build_model(ClassificationModelConfig(**options), (1, 16, 16), 10, seed=seed)


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(before, model):
    return {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}


# ---------------------------------------------------------------------------------------- freeze


def test_freeze_core_touches_exactly_the_core(digits):
    model = lenet()
    frozen = freeze_params(model, "core")
    core = [n for n, _ in model.named_parameters() if n.startswith("core.")]
    assert frozen == core
    assert all(not p.requires_grad for p in model.core.parameters())
    assert all(p.requires_grad for p in model.readout.parameters())
    F.cross_entropy(model(digits[0]), digits[1]).backward()
    assert all(p.grad is None for p in model.core.parameters())
    assert all(p.grad is not None for p in model.readout.parameters())


@pytest.mark.parametrize(
    "selector, expected",
    [
        ("all", None),
        ("readout", ["readout.fc1.weight", "readout.fc1.bias", "readout.fc2.weight", "readout.fc2.bias", "readout.fc3.weight", "readout.fc3.bias"]),
        (["readout.fc3.bias", "core.bn1"], ["core.bn1.weight", "core.bn1.bias", "readout.fc3.bias"]),
        ("core.layer2", ["core.layer2.weight", "core.layer2.bias"]),
    ],
)
def test_freeze_selectors(selector, expected):
    model = lenet()
    frozen = freeze_params(model, selector)
    expected = [n for n, _ in model.named_parameters()] if expected is None else expected
    assert frozen == expected
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == set(expected)


def test_selectors_do_not_match_name_prefixes_within_a_level():
    model = build_model(ClassificationModelConfig(type="mlp", options={"hidden_sizes": [8] * 11}), (1, 8, 8), 10, seed=0)
    assert select_parameters(model, "core.fc1") == ["core.fc1.weight", "core.fc1.bias"]  # not core.fc10/fc11


def test_unknown_selector_is_an_error():
    with pytest.raises(ValueError, match=r"freeze_params: .*no layer 'cor'.*did you mean 'core'"):
        freeze_params(lenet(), "cor")
    with pytest.raises(ValueError, match="reset_params"):
        reset_params(lenet(), ["readout.fc4"])
    with pytest.raises(ValueError, match="set_bn_to_eval"):
        set_bn_to_eval(lenet(), "core.bn9")


def test_freeze_works_through_the_wrapper():
    model = IntermediateLayerWrapper(lenet(), {"core": "core"})
    assert freeze_params(model, "readout.fc3") == ["readout.fc3.weight", "readout.fc3.bias"]
    assert not model.wrapped.readout.fc3.weight.requires_grad


# ---------------------------------------------------------------------------------------- reset


def test_reset_readout_touches_exactly_the_readout():
    model = lenet()
    before = snapshot(model)
    names = reset_params(model, "readout")
    assert names == [n for n, _ in model.named_parameters() if n.startswith("readout.")]
    assert changed(before, model) == set(names)


def test_reset_one_layer_with_its_statistics(digits):
    model = lenet()
    model.train()
    model(digits[0])  # moves the batch norm running statistics away from their initial values
    with torch.no_grad():
        for bn in (model.core.bn1, model.core.bn2):
            bn.weight.add_(0.5)
            bn.bias.add_(0.5)
    before = snapshot(model)
    names = reset_params(model, "core.bn1")
    assert names == ["core.bn1.weight", "core.bn1.bias"]
    # A whole batch norm layer: weight/bias back to 1/0 and its running statistics reset too.
    assert changed(before, model) == {f"core.bn1.{n}" for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    assert torch.all(model.core.bn1.running_mean == 0) and torch.all(model.core.bn1.weight == 1)


def test_reset_one_parameter_keeps_the_rest_of_its_layer():
    model = lenet()
    before = snapshot(model)
    assert reset_params(model, ["readout.fc3.bias", "core.layer1.weight"]) == ["core.layer1.weight", "readout.fc3.bias"]
    assert changed(before, model) == {"core.layer1.weight", "readout.fc3.bias"}


def test_reset_locally_connected_layers_and_seeded_reset():
    a, b = (lenet(options={"core_type": "locally_connected"}, batch_norm=False) for _ in range(2))
    before = snapshot(a)
    reset_params(a, "core", seed=11)
    reset_params(b, "core", seed=11)
    assert changed(before, a) == {n for n, _ in a.core.named_parameters(prefix="core")}
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_reset_all():
    model = lenet(batch_norm=False)
    before = snapshot(model)
    assert len(reset_params(model, "all")) == len(list(model.parameters()))
    assert changed(before, model) == set(before)


# ---------------------------------------------------------------------------------------- eval mode per layer


def test_set_bn_to_eval(digits):
    model = lenet()
    model.train()
    assert set_bn_to_eval(model, layers=["core.bn2"]) == ["core.bn2"]
    assert model.core.bn1.training and not model.core.bn2.training and model.readout.dropout1.training
    assert set_bn_to_eval(model) == ["core.bn1", "core.bn2"]
    stats = model.core.bn1.running_mean.clone()
    model(digits[0])
    assert torch.equal(stats, model.core.bn1.running_mean)  # eval mode: statistics are used, not updated
    model.train()
    assert model.core.bn1.training


def test_set_dropout_to_eval(digits):
    model = lenet()
    model.train()
    assert set_dropout_to_eval(model, "readout.dropout2") == ["readout.dropout2"]
    assert model.readout.dropout1.training and not model.readout.dropout2.training
    assert set_dropout_to_eval(model) == ["readout.dropout1", "readout.dropout2"]
    set_bn_to_eval(model)
    assert torch.equal(model(digits[0]), model(digits[0]))  # nothing random left in train mode
    assert model.training


# ---------------------------------------------------------------------------------------- ensemble buffers


def test_ensemble_buffers_round_trip():
    model = lenet()
    original = [p.detach().clone() for p in model.parameters()]
    names = copy_to_ensemble_buffers(model)
    assert names == [f"{n}_ensemble0" for n, _ in model.named_parameters()]
    assert "core.layer1.weight_ensemble0" in model.state_dict()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    copy_to_ensemble_buffers(model, member=1)
    assert ensemble_members(model) == [0, 1]
    restore_from_ensemble_buffers(model, member=0)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), original))
    restore_from_ensemble_buffers(model, member=1)
    assert all(torch.equal(p, q + 1.0) for p, q in zip(model.parameters(), original))
    with pytest.raises(ValueError, match=r"no ensemble buffers of member 2.*members stored: \[0, 1\]"):
        restore_from_ensemble_buffers(model, member=2)


def test_ensemble_buffers_travel_with_the_state_dict():
    source = lenet(seed=0)
    copy_to_ensemble_buffers(source)
    target = lenet(seed=1)
    report = load_state_dict_leniently(target, copy.deepcopy(source.state_dict()))
    assert report["unexpected"] == [] and report["missing"] == []
    assert ensemble_members(target) == [0]
    reset_params(target, "all", seed=3)
    restore_from_ensemble_buffers(target)
    assert all(torch.equal(p, q) for p, q in zip(target.parameters(), source.parameters()))


def test_ensemble_buffers_from_another_architecture_restore_what_could_not_be_loaded():
    # A 10-class model's ensemble copies go into a 5-class model with an extra hidden layer: the readout
    # copies do not fit and the new layer has none. Restoring must keep those at the model's own values
    # (not zeros, and no error), and give the transferred values everywhere else.
    source = build_model(ClassificationModelConfig(type="mlp", options={"hidden_sizes": [6]}), (1, 4, 4), 10, seed=0)
    copy_to_ensemble_buffers(source)
    target = build_model(ClassificationModelConfig(type="mlp", options={"hidden_sizes": [6, 3]}), (1, 4, 4), 5, seed=1)
    own = snapshot(target)
    report = load_state_dict_leniently(target, source.state_dict())
    assert "readout.fc.weight_ensemble0" in report["mismatched"]
    assert "core.fc2.weight_ensemble0" in report["missing"]  # reported, not silently created
    with torch.no_grad():
        for p in target.parameters():
            p.add_(1.0)
    restore_from_ensemble_buffers(target)
    state = target.state_dict()
    assert torch.equal(state["core.fc1.weight"], source.state_dict()["core.fc1.weight"])
    for name in ("readout.fc.weight", "readout.fc.bias", "core.fc2.weight", "core.fc2.bias"):
        assert torch.equal(state[name], own[name]), name


def test_lenient_loading_accepts_numpy_values_and_scalars():
    # What a database blob gives back: arrays, and numpy scalars for 0-d tensors (num_batches_tracked).
    source = lenet(seed=0)
    source.train()
    source(torch.randn(4, 1, 16, 16))
    blob = {k: (v.numpy()[()] if v.ndim == 0 else v.numpy()) for k, v in source.state_dict().items()}
    assert isinstance(blob["core.bn1.num_batches_tracked"], np.integer)
    target = lenet(seed=1)
    report = load_state_dict_leniently(target, blob)
    assert report["mismatched"] == [] and report["missing"] == [] and report["unexpected"] == []
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in target.state_dict().items())
