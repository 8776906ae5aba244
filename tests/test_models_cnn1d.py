"""The two models of the MNIST-1D experiments of Nix, Sinz et al. (AISTATS 2022): the shift-invariant
teacher ``cnn1d_invariant`` and the bias-free MLP student (``mlp`` with the option ``core_bias=False``)."""

import pytest
import torch
from torch import nn

from nntransfer.configs import ClassificationModelConfig, ClassificationTrainerConfig, MNIST1DConfig
from nntransfer.defaults import TASK_KEY
from nntransfer.models import build_model, classification_model_builder, model_spec, registered_types
from nntransfer.models.cnn1d import CNN1D_CHANNELS, CNN1D_KERNEL, CNN1D_LAYERS

SIGNAL = (1, 40)
TEACHER = dict(type="cnn1d_invariant", options={"core_bias": False}, readout_bias=False)
STUDENT = dict(type="mlp", options={"hidden_sizes": [600, 400], "core_bias": False}, readout_bias=False)


def build(shape=SIGNAL, n_classes=10, seed=0, **options):
    return build_model(ClassificationModelConfig(**options), shape, n_classes, seed=seed)


def bias_parameters(model):
    return [name for name, _ in model.named_parameters() if name.rsplit(".", 1)[-1] == "bias"]


def assert_shift_invariant(model, x, atol):
    model.eval()
    with torch.no_grad():
        reference = model(x)
        for k in range(x.shape[-1]):
            torch.testing.assert_close(model(torch.roll(x, k, -1)), reference, rtol=0, atol=atol, msg=f"shift {k}")


# ---------------------------------------------------------------------------------------- the teacher


def test_teacher_is_registered_for_signals_with_the_documented_layers():
    assert "cnn1d_invariant" in registered_types()
    assert model_spec("cnn1d_invariant").input_dims == (2,)
    model = build(**TEACHER)
    names = [name for name, _ in model.core.named_children()]
    expected = [f"{kind}{i}" for i in range(1, CNN1D_LAYERS + 1) for kind in ("conv", "relu")] + ["pool", "flatten"]
    assert names == expected
    for i in range(1, CNN1D_LAYERS + 1):
        conv = getattr(model.core, f"conv{i}")
        assert isinstance(conv, nn.Conv1d) and conv.padding_mode == "circular"
        assert conv.stride == (1,) and conv.kernel_size == (CNN1D_KERNEL,) and conv.out_channels == CNN1D_CHANNELS
    assert model.core(torch.zeros(3, *SIGNAL)).shape == (3, CNN1D_CHANNELS)
    assert model(torch.zeros(3, *SIGNAL)).shape == (3, 10)


@pytest.mark.parametrize(
    "options",
    [TEACHER, dict(type="cnn1d_invariant"), dict(type="cnn1d_invariant", batch_norm=True, dropout=0.3)],
    ids=["bias_free", "with_biases", "batch_norm_dropout"],
)
def test_teacher_is_exactly_invariant_to_every_circular_shift(options):
    model = build(**options)
    if options.get("batch_norm"):  # give batch norm statistics that are not the identity
        model.train()
        with torch.no_grad():
            model(torch.randn(64, *SIGNAL) * 3 + 1)
    x = torch.randn(8, *SIGNAL, generator=torch.Generator().manual_seed(1))
    assert_shift_invariant(model, x, atol=1e-5)
    # ... and not trivially: different signals give different logits
    assert not torch.allclose(model(x[:1]), model(x[1:2]))
    assert_shift_invariant(model.double(), x.double(), atol=1e-12)


def test_the_invariance_check_fails_for_a_model_that_is_not_invariant():
    model = build(type="conv1d")  # zero padding and strides: not shift invariant
    with pytest.raises(AssertionError):
        assert_shift_invariant(model, torch.randn(8, *SIGNAL, generator=torch.Generator().manual_seed(1)), atol=1e-5)


def test_teacher_without_biases_has_none_and_the_expected_size():
    model = build(**TEACHER)
    assert bias_parameters(model) == []
    weights = CNN1D_CHANNELS * CNN1D_KERNEL + (CNN1D_LAYERS - 1) * CNN1D_CHANNELS**2 * CNN1D_KERNEL + CNN1D_CHANNELS * 10
    assert sum(p.numel() for p in model.parameters()) == weights
    with_biases = build(type="cnn1d_invariant")
    assert bias_parameters(with_biases) == [f"core.conv{i}.bias" for i in range(1, CNN1D_LAYERS + 1)] + ["readout.fc.bias"]


def test_teacher_refuses_images_and_signals_shorter_than_its_padding():
    with pytest.raises(ValueError, match=r"^model type 'cnn1d_invariant' takes inputs of shape \(C, L\)"):
        classification_model_builder(
            {"train": {TASK_KEY: torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1])))}},
            seed=0, **ClassificationModelConfig(type="cnn1d_invariant").to_dict(),
        )
    with pytest.raises(ValueError, match="too small for model type 'cnn1d_invariant'"):
        build(shape=(1, 1), **TEACHER)
    assert build(shape=(3, 2), **TEACHER)(torch.randn(2, 3, 2)).shape == (2, 10)


# ---------------------------------------------------------------------------------------- the student


def test_paper_mlp_has_268000_weights_and_no_biases():
    model = build(**STUDENT)
    assert bias_parameters(model) == []
    assert sum(p.numel() for p in model.parameters()) == 40 * 600 + 600 * 400 + 400 * 10 == 268000
    assert model(torch.zeros(2, *SIGNAL)).shape == (2, 10)


def test_core_bias_defaults_to_true_and_is_honoured_by_the_mlps():
    assert all(model_spec(t).options["core_bias"] is True for t in ("mlp", "lenet300-100", "cnn1d_invariant"))
    with_biases = build(type="mlp", options={"hidden_sizes": [600, 400]})
    assert bias_parameters(with_biases) == ["core.fc1.bias", "core.fc2.bias", "readout.fc.bias"]
    assert sum(p.numel() for p in with_biases.parameters()) == 268000 + 600 + 400 + 10
    lenet = build(type="lenet300-100", options={"core_bias": False})
    assert bias_parameters(lenet) == ["readout.fc.bias"]
    assert bias_parameters(build(type="lenet300-100", options={"core_bias": False}, readout_bias=False)) == []
    # batch norm keeps its shift parameters (documented)
    assert bias_parameters(build(type="mlp", options={"hidden_sizes": [8], "core_bias": False}, readout_bias=False,
                                 batch_norm=True)) == ["core.bn1.bias"]


def test_core_bias_must_be_a_bool_and_is_refused_by_types_without_it():
    # not "no", 0/1 or None either: they would build the same model under another hash
    for value in ("no", 0, None):
        with pytest.raises(ValueError, match=r"'core_bias' of model type 'mlp' expects a bool"):
            build(type="mlp", options={"core_bias": value})
    with pytest.raises(ValueError, match=r"model type 'lenet5' has no option 'core_bias'"):
        build(shape=(1, 16, 16), type="lenet5", options={"core_bias": False})


@pytest.mark.parametrize("options", [TEACHER, STUDENT], ids=["teacher", "student"])
def test_bias_free_models_take_every_weight_init(options):
    for weight_init in ("kaiming_normal", "xavier_uniform"):
        model = build(weight_init=weight_init, **options)
        assert bias_parameters(model) == [] and torch.isfinite(model(torch.randn(2, *SIGNAL))).all()


# ---------------------------------------------------------------------------------------- on MNIST-1D


@pytest.fixture(scope="module")
def mnist1d_loaders():
    pytest.importorskip("mnist1d")
    from nntransfer.dataset import img_dataset_loader

    # 500 generated examples: 400 for training (40 of them validation), 100 for the test splits
    config = MNIST1DConfig(batch_size=50, dataset_kwargs={"num_samples": 500})
    return img_dataset_loader(seed=0, **config.to_dict(), **config.runtime_options())


@pytest.mark.parametrize("options", [TEACHER, STUDENT], ids=["teacher", "student"])
def test_trains_one_epoch_on_mnist1d_through_the_builders(mnist1d_loaders, options):
    from nntransfer.trainer import classification_trainer

    assert mnist1d_loaders.info.input_shape == SIGNAL and mnist1d_loaders.info.n_classes == 10
    model = classification_model_builder(mnist1d_loaders, seed=0, **ClassificationModelConfig(**options).to_dict())
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer = ClassificationTrainerConfig(max_iter=1, lr=0.003, early_stopping=False, show_progress=False)
    score, output, state = classification_trainer(model, mnist1d_loaders, seed=0, **trainer.to_dict(), device="cpu")
    final = output["final"]
    for split in ("test_seen", "test_unseen", "test_all"):
        assert 0 <= final[split][TASK_KEY]["accuracy"] <= 100
    assert all(not torch.equal(before[name], p) for name, p in model.named_parameters()), "every weight trained"
    if options["type"] == "cnn1d_invariant":  # the shifted test sets are the same signals: same results
        seen, unseen, every = (final[split][TASK_KEY] for split in ("test_seen", "test_unseen", "test_all"))
        assert seen["accuracy"] == unseen["accuracy"] == every["accuracy"] == final["test"][TASK_KEY]["accuracy"]
        assert seen["loss"] == pytest.approx(unseen["loss"], abs=1e-5) and seen["loss"] == pytest.approx(every["loss"], abs=1e-5)
