"""Model builders on real data: sklearn's 8x8 digits, upsampled where an architecture needs more pixels.

The loaders are plain DataLoaders in a ``DataLoaders`` dict with the ``DataInfo`` the dataset function
returns (or a plain dict, whose shapes the builder infers), so these tests do not build a data set."""

import copy
import functools
import importlib
import logging
import math
import uuid

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from nntransfer.configs import ClassificationModelConfig
from nntransfer.dataset.info import DataInfo, DataLoaders
from nntransfer.defaults import TASK_KEY
from nntransfer.models import (
    CoreReadoutModel,
    IntermediateLayerWrapper,
    LocallyConnected2d,
    build_model,
    check_model_config,
    classification_model_builder,
    data_shapes,
    model_spec,
    registered_types,
)
from nntransfer.models.utils import load_state_dict_leniently

TASK = TASK_KEY
# Smallest test image size per type family (LeNet-5 needs 12+, VGG's five poolings need 32, cnn2d's pools 12+,
# orbit_transfer's GCNN 10+, orbit_transfer's ViT a multiple of its 7x7 patches).
TEST_SIZE = {"lenet5": 16, "bias_transfer-lenet5": 16, "vgg": 32, "cnn2d": 16, "orbit_transfer-gcnn": 16,
             "orbit_transfer-vit": 28}


def size_for(model_type: str) -> int:
    return next((size for prefix, size in TEST_SIZE.items() if model_type.startswith(prefix)), 8)


@functools.lru_cache(maxsize=None)
def _digits():
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
    return images, torch.tensor(digits.target, dtype=torch.int64)


def digit_loaders(size=8, n_classes=10, channels=1, n=8, batch_size=2, info=True, signal=False):
    """{"train"/"validation"/"test": {TASK: DataLoader}} over the first ``n`` digits below ``n_classes``;
    a ``DataLoaders`` with its ``DataInfo`` unless ``info`` is False (then a plain dict). ``signal``: each
    digit's rows joined into one signal ``(channels, size * size)`` (for 1-D models)."""
    images, targets = _digits()
    keep = targets < n_classes
    x, y = images[keep][:n], targets[keep][:n]
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.repeat(1, channels, 1, 1)
    if signal:
        x = x.reshape(len(x), channels, size * size)
    loaders = {}
    for split in ("train", "validation", "test"):
        loaders[split] = {TASK: DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)}
    if info:
        return DataLoaders(loaders, DataInfo(n_classes=n_classes, input_shape=tuple(x.shape[1:])))
    return loaders


def first_batch(loaders):
    return next(iter(loaders["train"][TASK]))


def check_trains(model, loaders, n_classes):
    """Forward and backward on one batch: logits per class, a finite non-zero gradient for every parameter."""
    inputs, targets = first_batch(loaders)
    model.train()
    logits = model(inputs)
    assert logits.shape == (inputs.shape[0], n_classes)
    F.cross_entropy(logits, targets).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, f"{name} got a zero gradient"


# ---------------------------------------------------------------------------------------- every type


@pytest.mark.parametrize("model_type", registered_types())
def test_every_type_builds_through_its_fn_and_trains(model_type):
    config = ClassificationModelConfig(type=model_type)
    loaders = digit_loaders(size=size_for(model_type), n_classes=10, signal=model_spec(model_type).input_dims == (2,))
    # The path the tables take: nnfabrik's get_model resolves config.fn and calls it with the stored dict.
    module_name, _, function_name = config.fn.rpartition(".")
    model_fn = getattr(importlib.import_module(module_name), function_name)
    model = model_fn(dataloaders=loaders, seed=0, **config.to_dict())
    assert isinstance(model, CoreReadoutModel)
    assert isinstance(model.core, nn.Module) and isinstance(model.readout, nn.Module)
    assert model.model_type == model_type and model.n_classes == 10
    check_trains(model, loaders, 10)


def test_one_d_model_takes_signals_and_image_models_refuse_them():
    loaders = digit_loaders(signal=True, n_classes=10)
    assert loaders.info.input_shape == (1, 64)
    model = classification_model_builder(loaders, seed=0, **ClassificationModelConfig(type="conv1d", batch_norm=True).to_dict())
    assert model.input_shape == (1, 64)
    check_trains(model, loaders, 10)
    flat = classification_model_builder(loaders, seed=0, **ClassificationModelConfig(type="mlp").to_dict())
    check_trains(flat, loaders, 10)  # MLPs take any shape
    with pytest.raises(ValueError, match=r"^model type 'vgg11' takes inputs of shape \(C, H, W\), the data has \(1, 64\); types that take it: cnn1d_invariant, conv1d, lenet300-100, mlp(, orbit_transfer-[a-z_]+)*; "
                       r"a type of your own takes it when registered with input_dims=\(2,\) or without input_dims$"):
        classification_model_builder(loaders, seed=0, **ClassificationModelConfig(type="vgg11").to_dict())
    with pytest.raises(ValueError, match=r"^model type 'conv1d' takes inputs of shape \(C, L\)"):
        classification_model_builder(digit_loaders(), seed=0, **ClassificationModelConfig(type="conv1d").to_dict())


def test_a_new_model_type_with_options_of_its_own_leaves_every_other_key_unchanged():
    from nntransfer.models import register

    others = [ClassificationModelConfig(), ClassificationModelConfig(type="mlp", options={"hidden_sizes": [8]}),
              ClassificationModelConfig(type="resnet18", options={"stem_pool": True}, dropout=0.1)]
    keys = [config.get_key() for config in others]
    name = f"user_wide_{uuid.uuid4().hex[:8]}"
    widths = []

    @register(name, options={"width": 4, "act": "relu"}, choices={"act": ("relu", "tanh")})
    def build_wide(config, input_shape, n_classes):
        widths.append(config.options)  # every declared option, the defaults filled in
        core = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), config.options["width"]))
        return CoreReadoutModel(core, nn.Sequential(nn.Linear(config.options["width"], n_classes)), config.type,
                                input_shape, n_classes)

    assert [config.get_key() for config in others] == keys
    assert [type(config).from_dict(config.to_dict()).get_key() for config in others] == keys
    model = build_model(ClassificationModelConfig(type=name, options={"width": 6}), (1, 8, 8), 10, seed=0)
    assert model.core[1].out_features == 6 and widths[-1] == {"width": 6, "act": "relu"}
    build_model(ClassificationModelConfig(type=name), (1, 8, 8), 10, seed=0)
    assert widths[-1] == {"width": 4, "act": "relu"}
    with pytest.raises(ValueError, match=rf"^options: model type '{name}' has no option 'widht'; did you mean 'width'\?"):
        check_model_config(ClassificationModelConfig(type=name, options={"widht": 6}).to_dict())
    with pytest.raises(ValueError, match=rf"^options: model type '{name}' has no act 'tahn'; did you mean 'tanh'\?"):
        check_model_config(ClassificationModelConfig(type=name, options={"act": "tahn"}).to_dict())
    with pytest.raises(ValueError, match=r"'width' of model type .* expects a int"):
        build_model(ClassificationModelConfig(type=name, options={"width": "6"}), (1, 8, 8), 10, seed=0)


def test_a_type_registered_without_input_dims_takes_signals_and_a_declared_one_is_still_checked():
    """A user package written for 0.1 registers its own 1-D model without ``input_dims``: it builds on
    (1, 40) signals; a type that declares image inputs is still refused them, with the fix named."""
    from nntransfer.models import register

    def build_signal_net(config, input_shape, n_classes):
        core = nn.Sequential(nn.Conv1d(input_shape[0], 4, 3, padding=1), nn.ReLU(), nn.Flatten())
        return CoreReadoutModel(core, nn.Sequential(nn.Linear(4 * input_shape[-1], n_classes)), config.type, input_shape, n_classes)

    suffix = uuid.uuid4().hex[:8]
    register(f"user_signals_{suffix}", build_signal_net)
    register(f"user_images_{suffix}", build_signal_net, input_dims=(3,))
    signals = torch.randn(8, 1, 40)
    labels = torch.arange(8) % 4
    loader = DataLoader(TensorDataset(signals, labels), batch_size=4)
    loaders = DataLoaders({"train": {TASK: loader}, "validation": {TASK: loader}, "test": {TASK: loader}},
                          DataInfo(input_shape=(1, 40), n_classes=4))
    model = classification_model_builder(loaders, seed=0, **ClassificationModelConfig(type=f"user_signals_{suffix}").to_dict())
    assert model(signals).shape == (8, 4)
    assert model_spec(f"user_signals_{suffix}").input_dims is None
    with pytest.raises(ValueError, match=rf"^model type 'user_images_{suffix}' takes inputs of shape \(C, H, W\), the data has "
                       r"\(1, 40\); .* registered with input_dims=\(2,\) or without input_dims$"):
        classification_model_builder(loaders, seed=0, **ClassificationModelConfig(type=f"user_images_{suffix}").to_dict())


def test_type_list_is_what_the_issue_asks_for():
    expected = {"lenet5", "lenet300-100", "mlp", "resnet18", "resnet34", "resnet50", "vgg11", "vgg13", "vgg16", "vgg19"}
    assert expected <= set(registered_types())


@pytest.mark.parametrize(
    "options, size",
    [
        (dict(type="lenet5", options={"core_type": "locally_connected"}), 16),
        (dict(type="lenet5", options={"core_type": "fully_connected"}), 16),
        (dict(type="lenet5", options={"core_type": "locally_connected"}, batch_norm=True, dropout=0.2), 16),
        (dict(type="lenet300-100", batch_norm=True, dropout=0.5), 8),
        (dict(type="mlp", options={"hidden_sizes": [32, 16, 8]}, readout_bias=False), 8),
        (dict(type="resnet18", options={"stem_kernel": 7, "stem_stride": 2, "stem_padding": 3, "stem_pool": True}), 16),
        (dict(type="resnet18", batch_norm=False, dropout=0.1), 8),
        (dict(type="vgg11", batch_norm=True, options={"readout_type": "conv", "readout_hidden_size": 64}, dropout=0.5), 32),
        (dict(type="vgg11", options={"readout_type": "dense", "readout_hidden_size": 64}, weight_init="kaiming_normal"), 32),
    ],
    ids=lambda v: str(v),
)
def test_variants_train(options, size):
    loaders = digit_loaders(size=size, n_classes=10)
    model = classification_model_builder(loaders, seed=1, **ClassificationModelConfig(**options).to_dict())
    check_trains(model, loaders, 10)


def test_resnet50_on_32x32_rgb():
    loaders = digit_loaders(size=32, channels=3, n=2)
    model = classification_model_builder(loaders, seed=0, **ClassificationModelConfig(type="resnet50").to_dict())
    check_trains(model, loaders, 10)
    assert model.core.stem.conv.in_channels == 3
    assert model.readout.fc.in_features == 2048


def test_lenet5_cores_differ_only_in_weight_sharing_and_locality():
    def build(core_type):
        return build_model(ClassificationModelConfig(type="lenet5", options={"core_type": core_type}), (1, 16, 16), 10, seed=0)

    conv, local, dense = build("conv"), build("locally_connected"), build("fully_connected")
    assert isinstance(conv.core.layer1, nn.Conv2d)
    assert isinstance(local.core.layer1, LocallyConnected2d)
    assert not any(isinstance(m, (nn.Conv2d, LocallyConnected2d)) for m in dense.core.modules())
    # Same layout and names, so representations line up across cores; fewer shared weights, more parameters.
    x = first_batch(digit_loaders(size=16))[0]
    shapes = [m.core(x).shape for m in (conv, local, dense)]
    assert shapes[0] == shapes[1] == shapes[2] == (2, 16, 2, 2)
    counts = [sum(p.numel() for p in m.core.parameters()) for m in (conv, local, dense)]
    assert counts[0] < counts[1] < counts[2]
    assert [n for n, _ in conv.readout.named_parameters()] == [n for n, _ in dense.readout.named_parameters()]


def test_vgg_batch_norm_and_readouts():
    plain = build_model(ClassificationModelConfig(type="vgg16"), (1, 32, 32), 10, seed=0)
    with_bn = build_model(ClassificationModelConfig(type="vgg16", batch_norm=True, options={"readout_type": "conv"}), (1, 32, 32), 10, seed=0)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in with_bn.modules()) == 13
    assert sum(isinstance(m, nn.Conv2d) for m in plain.core.modules()) == 13
    assert not any(isinstance(m, nn.Linear) for m in with_bn.readout.modules())
    assert isinstance(plain.readout.fc1, nn.Linear)


def test_resnet_depths_and_defaults():
    depths = {"resnet18": 8, "resnet34": 16, "resnet50": 16}
    for model_type, blocks in depths.items():
        model = build_model(ClassificationModelConfig(type=model_type), (1, 8, 8), 10, seed=0)
        assert sum(len(getattr(model.core, f"layer{i}")) for i in range(1, 5)) == blocks
        assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # on by default for ResNets
    zero = build_model(ClassificationModelConfig(type="resnet18", options={"zero_init_residual": True}), (1, 8, 8), 10, seed=0)
    assert torch.all(zero.core.layer1[0].bn2.weight == 0)
    no_bn = build_model(ClassificationModelConfig(type="resnet18", batch_norm=False), (1, 8, 8), 10, seed=0)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in no_bn.modules())


# ---------------------------------------------------------------------------------------- data shapes and seeds


def test_input_shape_and_classes_come_from_the_data():
    model = classification_model_builder(digit_loaders(n_classes=5), seed=0, type="mlp")
    assert model.n_classes == 5 and model.input_shape == (1, 8, 8)
    assert model.readout.fc.out_features == 5 and model.core.fc1.in_features == 64


def test_data_info_gives_the_shapes_without_reading_a_batch():
    loaders = digit_loaders(size=8, n_classes=10)
    # the data info wins over what the batches would suggest (e.g. classes absent from a small sample)
    loaders = DataLoaders(loaders, DataInfo(n_classes=12, input_shape=(1, 8, 8)))
    model = classification_model_builder(loaders, seed=0, type="mlp")
    assert model.n_classes == 12 and model.readout.fc.out_features == 12


def test_loaders_without_data_info_are_peeked():
    loaders = digit_loaders(size=16, n_classes=7, channels=3, info=False)
    assert data_shapes(loaders["train"][TASK]) == ((3, 16, 16), 7)
    model = classification_model_builder(loaders, seed=0, type="mlp")
    assert model.n_classes == 7 and model.input_shape == (3, 16, 16)


def test_input_overrides():
    loaders = digit_loaders(size=8)
    model = classification_model_builder(loaders, seed=0, type="lenet5", input_size=[16, 20], input_channels=3)
    assert model.input_shape == (3, 16, 20)
    assert model(torch.zeros(2, 3, 16, 20)).shape == (2, 10)


def test_same_seed_same_weights_and_global_rng_untouched():
    config = ClassificationModelConfig(type="lenet5", options={"core_type": "locally_connected"}).to_dict()
    loaders = digit_loaders(size=16)
    rng = torch.get_rng_state()
    a = classification_model_builder(loaders, seed=3, **config).state_dict()
    b = classification_model_builder(loaders, seed=3, **config).state_dict()
    c = classification_model_builder(loaders, seed=4, **config).state_dict()
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["core.layer1.weight"], c["core.layer1.weight"])


def test_weight_init_options():
    def fc1(init, seed=0):
        return build_model(ClassificationModelConfig(type="mlp", weight_init=init, options={"hidden_sizes": [512]}), (1, 32, 32), 10, seed).core.fc1

    kaiming = fc1("kaiming_normal")
    assert abs(kaiming.weight.std().item() - (2 / 1024) ** 0.5) < 0.002
    assert torch.all(kaiming.bias == 0)
    xavier = fc1("xavier_uniform")
    assert abs(xavier.weight.abs().max().item() - (6 / (1024 + 512)) ** 0.5) < 1e-3
    assert torch.equal(fc1("xavier_uniform").weight, xavier.weight)
    assert not torch.equal(fc1("default").weight, kaiming.weight)


# ---------------------------------------------------------------------------------------- intermediate representations


def test_wrapper_returns_named_representations():
    layers = {"core": "core", "readout": "readout", "block": "core.layer2", "conv": "core.stem.conv"}
    loaders = digit_loaders(size=8)
    config = ClassificationModelConfig(type="resnet18", get_intermediate_rep=layers).to_dict()
    model = classification_model_builder(loaders, seed=0, **config)
    assert isinstance(model, IntermediateLayerWrapper)
    inputs, targets = first_batch(loaders)
    extra, logits = model(inputs)
    assert set(extra) == set(layers)
    assert extra["core"].shape == (2, 512, 1, 1)
    assert extra["readout"].shape == (2, 512, 1, 1)
    assert extra["block"].shape == (2, 128, 4, 4)
    assert extra["conv"].shape == (2, 64, 8, 8)
    assert logits.shape == (2, 10)
    # Same numbers as the plain model with the same seed.
    plain = classification_model_builder(loaders, seed=0, type="resnet18")
    plain.train()
    assert torch.allclose(plain(inputs), logits)
    # Gradients flow through a representation (representation matching trains on it).
    extra["block"].pow(2).mean().backward()
    assert model.core.layer1[0].conv1.weight.grad.abs().sum() > 0
    assert model.readout.fc.weight.grad is None


def test_wrapper_readout_input_is_the_classifier_features():
    model = build_model(
        ClassificationModelConfig(type="lenet5", get_intermediate_rep={"feat": "readout", "hidden": "readout.relu2"}),
        (1, 16, 16), 10, seed=0,
    )
    extra, logits = model(first_batch(digit_loaders(size=16))[0])
    assert extra["feat"].shape == (2, 16, 2, 2)
    assert extra["hidden"].shape == (2, 84)
    assert torch.allclose(model.readout.fc3(extra["hidden"]), logits)


def test_wrapper_behaves_like_the_wrapped_model():
    config = ClassificationModelConfig(type="lenet5", batch_norm=True)
    plain = build_model(config, (1, 16, 16), 10, seed=0)
    wrapped = IntermediateLayerWrapper(plain, {"core": "core"})
    assert wrapped.core is plain.core and wrapped.n_classes == 10 and wrapped.input_shape == (1, 16, 16)
    assert list(wrapped.state_dict()) == list(plain.state_dict())
    assert [n for n, _ in wrapped.named_parameters()] == [n for n, _ in plain.named_parameters()]
    wrapped.eval()
    assert not plain.training and not plain.core.bn1.training
    wrapped.train()
    assert plain.training and plain.core.bn1.training
    wrapped.to(torch.float64)
    assert plain.core.layer1.weight.dtype == torch.float64 and plain.core.bn1.running_mean.dtype == torch.float64
    wrapped.to(torch.float32)

    # Weights move between wrapped and unwrapped models with strict loading: the keys are the same.
    other = build_model(ClassificationModelConfig(type="lenet5", batch_norm=True, get_intermediate_rep={"c": "core"}), (1, 16, 16), 10, seed=5)
    plain.load_state_dict(other.state_dict())
    other.load_state_dict(build_model(config, (1, 16, 16), 10, seed=7).state_dict())

    twin = copy.deepcopy(wrapped)
    assert twin.core is not plain.core and twin.core is twin.wrapped.core
    twin.core.layer1.weight.data.zero_()
    assert plain.core.layer1.weight.abs().sum() > 0

    # Wrapping a wrapper merges the layers instead of nesting the outputs.
    both = IntermediateLayerWrapper(wrapped, {"pool": "core.pool1"})
    extra, logits = both(torch.zeros(2, 1, 16, 16))
    assert set(extra) == {"core", "pool"} and logits.shape == (2, 10)


# ---------------------------------------------------------------------------------------- transfer of weights


def test_ten_class_state_dict_loads_into_five_class_model(caplog):
    config = ClassificationModelConfig(type="lenet5", transfer=True).to_dict()
    source = classification_model_builder(digit_loaders(size=16, n_classes=10), seed=0, **config)
    fresh = classification_model_builder(digit_loaders(size=16, n_classes=5), seed=1, **config)
    with caplog.at_level(logging.WARNING, logger="nntransfer.models.utils"):
        target = classification_model_builder(digit_loaders(size=16, n_classes=5), seed=1, state_dict=source.state_dict(), **config)
    assert "readout.fc3.weight" in caplog.text and "readout.fc3.bias" in caplog.text
    assert target.n_classes == 5
    skipped = {"readout.fc3.weight", "readout.fc3.bias"}
    for key, value in target.state_dict().items():
        expected = fresh.state_dict()[key] if key in skipped else source.state_dict()[key]
        assert torch.equal(value, expected), key

    report = load_state_dict_leniently(copy.deepcopy(fresh), source.state_dict())
    assert sorted(report["mismatched"]) == sorted(skipped)
    assert report["missing"] == [] and report["unexpected"] == []
    assert len(report["loaded"]) == len(source.state_dict()) - 2


def test_transfer_between_core_types_keeps_only_what_fits():
    conv = build_model(ClassificationModelConfig(type="lenet5", batch_norm=True), (1, 16, 16), 10, seed=0)
    local = build_model(ClassificationModelConfig(type="lenet5", options={"core_type": "locally_connected"}, batch_norm=True), (1, 16, 16), 10, seed=1)
    report = load_state_dict_leniently(local, conv.state_dict())
    assert set(report["mismatched"]) == {"core.layer1.weight", "core.layer1.bias", "core.layer2.weight", "core.layer2.bias"}
    assert torch.equal(local.readout.fc1.weight, conv.readout.fc1.weight)
    assert torch.equal(local.core.bn1.weight, conv.core.bn1.weight)


def test_lenient_loading_reports_missing_and_unexpected(caplog):
    model = build_model(ClassificationModelConfig(type="mlp", options={"hidden_sizes": [16]}), (1, 8, 8), 10, seed=0)
    state = {k: v.numpy() for k, v in model.state_dict().items() if not k.startswith("readout")}
    state["core.fc9.weight"] = torch.zeros(3)
    other = build_model(ClassificationModelConfig(type="mlp", options={"hidden_sizes": [16]}), (1, 8, 8), 10, seed=1)
    with caplog.at_level(logging.WARNING, logger="nntransfer.models.utils"):
        report = load_state_dict_leniently(other, state)
    assert report["missing"] == ["readout.fc.weight", "readout.fc.bias"]
    assert report["unexpected"] == ["core.fc9.weight"]
    assert torch.equal(other.core.fc1.weight, model.core.fc1.weight)
    assert "core.fc9.weight" in caplog.text and "readout.fc.bias" in caplog.text


# ---------------------------------------------------------------------------------------- clear errors


def test_unknown_type_lists_registered_types():
    with pytest.raises(ValueError, match=r"unknown model type 'resnet99'.*resnet18.*vgg19"):
        classification_model_builder(digit_loaders(), seed=0, type="resnet99")


@pytest.mark.parametrize(
    "options, size, message",
    [
        (dict(type="vgg11"), 16, r"too small for model type 'vgg11'.*block5"),
        (dict(type="lenet5"), 8, r"too small for model type 'lenet5'"),
        (dict(type="lenet5", options={"core_type": "locally_connected"}), 8, r"too small for model type 'lenet5'"),
        (dict(type="resnet18", options={"stem_kernel": 11, "stem_padding": 0}), 8, r"does not fit model type 'resnet18'"),
    ],
)
def test_impossible_input_size(options, size, message):
    with pytest.raises(ValueError, match=message):
        classification_model_builder(digit_loaders(size=size), seed=0, **options)


def test_bad_layer_path_names_the_closest():
    with pytest.raises(ValueError, match=r"no layer 'core.layr2'.*did you mean 'core.layer2'"):
        classification_model_builder(digit_loaders(), seed=0, type="resnet18", get_intermediate_rep={"x": "core.layr2"})


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(type="resnet18", options={"core_type": "locally_connected"}),
         r"'resnet18' has no option 'core_type'.*'core_type' is an option of lenet5"),
        (dict(type="lenet5", options={"core_type": "conv", "readout_type": "conv"}), r"'lenet5' has no option 'readout_type'"),
        (dict(type="mlp", options={"hidden_sizes": [0]}), r"positive integers"),
        (dict(type="mlp", options={"hidden_sizes": 8}), r"'hidden_sizes' of model type 'mlp' expects a list"),
        (dict(type="resnet18", options={"stem_stride": 0}), r"'stem_stride' of model type 'resnet18' must be at least 1"),
        (dict(type="vgg11", options={"readout_hidden_size": 0}), r"'readout_hidden_size' of model type 'vgg11' must be at least 1"),
        (dict(type="mlp", weight_init="he"), r"weight_init: unknown weight_init 'he' \(available: default, kaiming_normal, xavier_uniform\)"),
        (dict(type="mlp", dropout=1.5), r"dropout must be in"),
        (dict(type="mlp", input_size="big"), r"input_size must be None, an int or \[height, width\]"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        classification_model_builder(digit_loaders(), seed=0, **options)


def test_dataloaders_without_train_split():
    with pytest.raises(ValueError, match="'train' entry"):
        classification_model_builder({"test": {}}, seed=0, type="mlp")


# ---------------------------------------------------------------------------------------- the checker


def test_checker_accepts_every_default_and_is_attached_to_the_builder():
    assert classification_model_builder.check_config is check_model_config
    for model_type in registered_types():
        check_model_config(ClassificationModelConfig(type=model_type).to_dict())
    check_model_config({})  # absent fields are not checked


@pytest.mark.parametrize(
    "values, message",
    [
        ({"type": "resnet81"}, r"^type: unknown model type 'resnet81'; did you mean 'resnet18'\? \(available: .*vgg19.*\)"),
        ({"type": "lenet5", "options": {"core_type": "locally_conected"}},
         r"^options: model type 'lenet5' has no core_type 'locally_conected'; did you mean 'locally_connected'\? "
         r"\(available: conv, locally_connected, fully_connected\)"),
        ({"type": "resnet18", "options": {"core_type": "fully_connected"}},
         r"^options: model type 'resnet18' has no option 'core_type' \(its options: stem_kernel, stem_padding, stem_pool, "
         r"stem_stride, zero_init_residual\); 'core_type' is an option of lenet5$"),
        ({"type": "vgg11", "options": {"readout_type": "dens"}}, r"^options: .* did you mean 'dense'\? \(available: dense, conv\)"),
        ({"type": "mlp", "options": {"hiden_sizes": [8]}},
         r"^options: model type 'mlp' has no option 'hiden_sizes'; did you mean 'hidden_sizes'\? \(its options: core_bias, hidden_sizes\)$"),
        ({"type": "mlp", "weight_init": "kaiming"}, r"^weight_init: unknown weight_init 'kaiming'; did you mean 'kaiming_normal'\?"),
    ],
)
def test_checker_names_the_field_the_value_the_closest_and_what_exists(values, message):
    with pytest.raises(ValueError, match=message) as excinfo:
        check_model_config(values)
    assert "\n" not in str(excinfo.value)
