"""Orbit transfer: the circular convolutions of the learned orbit, the loss terms, learning the orbit from a
shift-invariant teacher, transferring it to a student, the configs and the model function."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nntransfer.configs.model.orbit import OrbitConfig
from nntransfer.configs.trainer.classification import ClassificationTrainerConfig
from nntransfer.configs.trainer.orbit import OrbitLearningMixin, OrbitTransferMixin
from nntransfer.defaults import TASK_KEY as TASK
from nntransfer.models.orbit import circular_convolution, learned_orbit_builder, shift_kernel
from nntransfer.trainer import classification_trainer, trainer_config_from_dict
from nntransfer.trainer.main_loop_modules import read_output
from nntransfer.trainer.main_loop_modules.orbit import (  # importing registers OrbitLearning, OrbitTransfer
    equivariance_loss,
    identity_loss,
    invertibility_loss,
    layer_equivariance,
    other_elements,
)

LENGTH, CLASSES = 16, 4


class LearningConfig(OrbitLearningMixin, ClassificationTrainerConfig):
    pass


class TransferConfig(OrbitTransferMixin, ClassificationTrainerConfig):
    pass


def signals(n, seed):
    """Four classes of random templates, each example circularly shifted anywhere, plus a little noise."""
    templates = torch.randn(CLASSES, LENGTH, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=generator)
    shifts = torch.randint(0, LENGTH, (n,), generator=generator)
    x = torch.stack([torch.roll(templates[c], int(s)) for c, s in zip(y, shifts)])
    return (x + 0.1 * torch.randn(n, LENGTH, generator=generator)).unsqueeze(1), y


def loaders(n_train=96):
    def loader(n, seed, shuffle=False):
        generator = torch.Generator().manual_seed(seed) if shuffle else None
        return {TASK: DataLoader(TensorDataset(*signals(n, seed)), batch_size=32, shuffle=shuffle, generator=generator)}

    return {"train": loader(n_train, 1, shuffle=True), "validation": loader(32, 2), "test": loader(32, 3)}


class InvariantNet(nn.Module):
    """Circular convolution, ReLU, global max over the length, linear: exactly shift invariant."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.core = nn.Sequential(nn.Conv1d(1, 8, 3, padding=1, padding_mode="circular", bias=False), nn.ReLU(),
                                  nn.AdaptiveMaxPool1d(1), nn.Flatten())
        self.readout = nn.Linear(8, CLASSES, bias=False)

    def forward(self, x):
        return self.readout(self.core(x))


class Mlp(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.core = nn.Sequential(nn.Flatten(), nn.Linear(LENGTH, 32), nn.ReLU())
        self.readout = nn.Linear(32, CLASSES)

    def forward(self, x):
        return self.readout(self.core(x))


def run(cfg, model, teacher, data=None, seed=1):
    values = {**cfg.to_dict(), **cfg.runtime_options()}
    return classification_trainer(model, data or loaders(), seed, teacher_model=teacher, **values)


def per_epoch(output, name, mode="Training"):
    """The epoch means of a logged term (epoch 0, the initial entry, left out)."""
    log = output["tracker"]["log"][mode][TASK]
    return [value / n for value, n in zip(log[name][1:], log["normalization"][1:])]


def orbit(init="random", group_size=8, layers=None, seed=0, **kwargs):
    config = OrbitConfig(group_size=group_size, init=init, layers=layers or {"output": None}, **kwargs)
    return learned_orbit_builder(loaders(), seed, **config.to_dict())


# ---------------------------------------------------------------------------------------- pure functions

@pytest.mark.parametrize("size", [LENGTH, 5])
def test_circular_convolution_with_a_one_hot_kernel_is_a_roll(size):
    x = torch.randn(6, 3, LENGTH)
    shifts = [0, 1, -1, 2, -2, 1]
    kernels = torch.stack([shift_kernel(s, size) for s in shifts])
    expected = torch.stack([torch.roll(x[i], s, dims=-1) for i, s in enumerate(shifts)])
    assert torch.allclose(circular_convolution(x, kernels), expected, atol=1e-5)
    # one kernel for the whole batch, on a flat (B, L) representation
    assert torch.allclose(circular_convolution(x[:, 0], shift_kernel(2, size)), torch.roll(x[:, 0], 2, -1), atol=1e-5)
    # a spread kernel is a weighted sum of rolls
    spread = torch.tensor([0.5, 0.25] + [0.0] * (size - 2))
    weighted = 0.5 * torch.roll(x, -(size // 2), -1) + 0.25 * torch.roll(x, 1 - size // 2, -1)
    assert torch.allclose(circular_convolution(x, spread), weighted, atol=1e-5)


def test_shift_orbit_rolls_and_its_inverse_element_undoes_it():
    model = orbit("shift", group_size=8)
    x = torch.randn(8, 1, LENGTH)
    g = torch.arange(8)
    rolled = torch.stack([torch.roll(x[i], 2 * i, -1) for i in range(8)])  # g * L / G = 2g
    assert torch.allclose(model.transform(x, g), rolled, atol=1e-5)
    assert torch.equal(model.inverse_index(g), torch.tensor([0, 7, 6, 5, 4, 3, 2, 1]))
    back = model.transform(model.transform(x, g), model.inverse_index(g))
    assert torch.allclose(back, x, atol=1e-5)
    assert invertibility_loss(x, back).item() == pytest.approx(0, abs=1e-8)
    # logits: the identity for every element
    logits = torch.randn(8, CLASSES)
    assert torch.allclose(model.transform(logits, g, "output"), logits, atol=1e-5)
    # a random orbit is not invertible
    random = orbit("random", group_size=8)
    assert invertibility_loss(x, random.transform(random.transform(x, g), random.inverse_index(g))).item() > 0.1


def test_flattened_channel_maps_and_wrong_lengths():
    model = orbit("shift", group_size=8, layers={"output": None, "features": LENGTH})
    maps = torch.randn(4, 3, LENGTH)
    g = torch.tensor([1, 2, 3, 4])
    flat = model.transform(maps.flatten(1), g, "features")
    assert flat.shape == (4, 3 * LENGTH)
    assert torch.allclose(flat.reshape(4, 3, LENGTH), model.transform(maps, g, "features"), atol=1e-6)
    with pytest.raises(ValueError, match="axis of length 16"):
        model.transform(torch.randn(4, 7), g, "features")
    with pytest.raises(ValueError, match="no layer 'hidden'"):
        model.transform(maps, g, "hidden")


def test_equivariance_loss_is_zero_for_an_exactly_equivariant_pair_only():
    teacher = InvariantNet().eval()
    x = torch.randn(8, 1, LENGTH)
    g = torch.arange(8)
    layers = {"core.1": "features", "output": "output"}  # the conv maps (B, 8, L) and the logits
    from nntransfer.models.intermediate import IntermediateLayerWrapper

    wrapped = IntermediateLayerWrapper(teacher, {"core.1": "core.1"})
    exact = orbit("shift", group_size=8, layers={"output": None, "features": LENGTH})
    with torch.no_grad():
        loss = layer_equivariance(exact, layers, read_output(wrapped(x)), read_output(wrapped(exact.transform(x, g))), g)
        assert loss.item() == pytest.approx(0, abs=1e-8)
        noisy = orbit("shift", group_size=8, layers={"output": None, "features": LENGTH}, init_noise=0.3)
        outputs = read_output(wrapped(x)), read_output(wrapped(noisy.transform(x, g)))
        assert layer_equivariance(noisy, layers, *outputs, g).item() > 1e-3
    assert equivariance_loss(torch.ones(2, 3), torch.zeros(2, 3)).item() == 1.0


def test_identity_loss_and_other_elements():
    x = torch.randn(5, 1, LENGTH)
    assert identity_loss(x, 3 * x).item() == pytest.approx(1)
    assert identity_loss(x, -x).item() == pytest.approx(1)
    a, b = torch.zeros(1, 4), torch.zeros(1, 4)
    a[0, 0], b[0, 1] = 1.0, 1.0
    assert identity_loss(a, b).item() == pytest.approx(0)
    g = torch.randint(0, 5, (1000,), generator=torch.Generator().manual_seed(0))
    h = other_elements(g, 5, torch.Generator().manual_seed(1))
    assert (h != g).all() and set(h.tolist()) == set(range(5))


# ---------------------------------------------------------------------------------------- model function

def test_builder_is_deterministic_by_seed_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = orbit(seed=5, layers={"output": None, "features": 12})
    assert torch.equal(torch.rand(1), expected_next)
    second, other = orbit(seed=5, layers={"output": None, "features": 12}), orbit(seed=6, layers={"output": None, "features": 12})
    assert first.lengths == {"input": LENGTH, "output": CLASSES, "features": 12}
    assert all(torch.equal(first.state_dict()[k], second.state_dict()[k]) for k in first.state_dict())
    assert not torch.equal(first.kernel("input"), other.kernel("input"))
    assert first.kernel("input").shape == (8, LENGTH)
    assert orbit(kernel_size=5).kernel("input").shape == (8, 5)
    assert orbit(kernel_size=64).kernel("output").shape == (8, CLASSES)  # cut to the axis


def test_state_dict_round_trip_through_the_model_function():
    trained = orbit(seed=1, layers={"output": None, "core.relu2": LENGTH})
    with torch.no_grad():
        trained.kernel("input").add_(1.0)
    assert "kernels.core__relu2" in trained.state_dict()
    config = OrbitConfig(group_size=8, layers={"output": None, "core.relu2": LENGTH})
    rebuilt = learned_orbit_builder(loaders(), 2, state_dict=trained.state_dict(), **config.to_dict())
    assert all(torch.equal(trained.state_dict()[k], rebuilt.state_dict()[k]) for k in trained.state_dict())
    x, g = torch.randn(3, 1, LENGTH), torch.tensor([0, 3, 7])
    assert torch.equal(rebuilt.transform(x, g), trained.transform(x, g))
    with pytest.raises(ValueError, match="do not fit"):
        learned_orbit_builder(loaders(), 2, state_dict=trained.state_dict(), **OrbitConfig(group_size=4).to_dict())


def test_forward_draws_an_element_per_example():
    model = orbit("shift", group_size=8)
    x = torch.randn(4, 1, LENGTH)
    torch.manual_seed(0)
    out = model(x)
    torch.manual_seed(0)
    g = model.sample(4)
    assert torch.allclose(out, model.transform(x, g), atol=1e-6)
    assert torch.allclose(model(x, torch.zeros(4, dtype=torch.long)), x, atol=1e-5)


# ---------------------------------------------------------------------------------------- configs

def test_orbit_config_checks_and_json_round_trip():
    config = OrbitConfig(layers={"output": None, "core.relu1": 40}, kernel_size=9)
    assert OrbitConfig.from_json(config.to_json()) == config
    learned_orbit_builder.check_config(config.to_dict())
    bad = [
        (dict(group_size=1), "group_size"),
        (dict(kernel_size=0), "kernel_size"),
        (dict(layers={"input": 40}), "always included"),
        (dict(layers={"hidden": None}), "None only for 'output'"),
        (dict(layers={"hidden": -3}), "positive integer"),
        (dict(init="gold"), "init must be one of"),
        (dict(init_noise=-1.0), "init_noise"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            OrbitConfig(**kwargs)


def test_trainer_mixins_default_check_and_add_their_module_once():
    learning = LearningConfig()
    assert learning.main_loop_modules == ["OrbitLearning"]
    assert (learning.teacher, learning.start_from_previous, learning.lr, learning.early_stopping) == ("previous", False, 0.01, False)
    learning.update(orbit_identity_weight=0.5)
    assert learning.main_loop_modules == ["OrbitLearning"]
    assert type(trainer_config_from_dict(learning.to_dict())).__mro__[1] is OrbitLearningMixin
    transfer = TransferConfig()
    assert transfer.main_loop_modules == ["OrbitTransfer"] and transfer.orbit_student_layers == {"output": "output"}
    for cls, kwargs, message in [
        (LearningConfig, dict(teacher=None), "teacher='previous'"),
        (LearningConfig, dict(start_from_previous=True), "start_from_previous=False"),
        (LearningConfig, dict(orbit_layers_teacher={}), "is empty"),
        (LearningConfig, dict(orbit_layers_teacher={"core": "input"}), "acts on the data"),
        (LearningConfig, dict(orbit_invertibility_weight=-1.0), "orbit_invertibility_weight"),
        (TransferConfig, dict(orbit_ce_weight=float("nan")), "orbit_ce_weight"),
        (TransferConfig, dict(orbit_student_layers={"core": 3}), "non-empty strings"),
        (TransferConfig, dict(teacher=None), "teacher='previous'"),
    ]:
        with pytest.raises(ValueError, match=message):
            cls(**kwargs)


def test_modules_refuse_what_does_not_fit():
    cfg = LearningConfig(max_iter=1, show_progress=False)
    with pytest.raises(ValueError, match="needs the step's model to be a LearnedOrbit"):
        run(cfg, Mlp(), InvariantNet())
    with pytest.raises(ValueError, match=r"orbit layers \['hidden'\] the orbit lacks"):
        run(LearningConfig(max_iter=1, show_progress=False, orbit_layers_teacher={"core.1": "hidden"}), orbit(), InvariantNet())
    with pytest.raises(ValueError, match="need\\(s\\) a teacher"):
        run(TransferConfig(max_iter=1, show_progress=False), Mlp(), None)
    with pytest.raises(ValueError, match="needs the teacher"):
        run(TransferConfig(max_iter=1, show_progress=False), Mlp(), InvariantNet())


# ---------------------------------------------------------------------------------------- training

def test_learning_the_orbit_lowers_its_terms_and_leaves_the_teacher_alone():
    teacher = InvariantNet()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    model = orbit("random", group_size=8, layers={"output": None, "features": LENGTH})
    start = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = LearningConfig(max_iter=10, lr=0.03, show_progress=False, orbit_layers_teacher={"output": "output", "core.1": "features"})
    score, output, state = run(cfg, model, teacher)
    equivariance, invertibility = per_epoch(output, "orbit_equivariance"), per_epoch(output, "orbit_invertibility")
    assert equivariance[-1] < 0.5 * equivariance[0]
    assert invertibility[-1] < 0.2 * invertibility[0]
    assert len(per_epoch(output, "orbit_identity", "Validation")) == 10
    assert set(state) == set(start) and not torch.equal(state["kernels.input"], start["kernels.input"])
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    # the statistics are the teacher's on transformed inputs: per example, not per doubled batch
    assert per_epoch(output, "accuracy")[-1] >= 0 and output["tracker"]["log"]["Training"][TASK]["normalization"][1] == 96
    assert set(output["final"]) == {"validation", "test"}


def test_transferring_the_orbit_makes_the_student_equivariant():
    exact = orbit("shift", group_size=8)
    runs = {}
    for weight in (1.0, 0.0):  # the logits grow while the student learns, and with them the unweighted term
        cfg = TransferConfig(max_iter=8, lr=0.01, show_progress=False, orbit_equivariance_weight=weight)
        runs[weight] = run(cfg, Mlp(), exact)[1]
    assert per_epoch(runs[1.0], "orbit_equivariance")[-1] < 0.5 * per_epoch(runs[0.0], "orbit_equivariance")[-1]
    output = runs[1.0]
    assert per_epoch(output, "orbit_ce")[-1] < 0.8 * per_epoch(output, "orbit_ce")[0]
    assert per_epoch(output, "accuracy")[-1] > 60  # chance: 25 %
    # statistics of the clean half only; the orbit stayed frozen
    assert output["tracker"]["log"]["Training"][TASK]["normalization"][1] == 96
    assert torch.allclose(exact.transform(torch.eye(LENGTH).unsqueeze(1), 1), torch.roll(torch.eye(LENGTH), 2, -1).unsqueeze(1), atol=1e-5)


def test_transfer_at_a_hidden_layer_wraps_the_student():
    student, exact = Mlp(), orbit("shift", group_size=8, layers={"output": None, "hidden": 32})
    cfg = TransferConfig(max_iter=1, show_progress=False, orbit_student_layers={"output": "output", "core.2": "hidden"})
    _, output, state = run(cfg, student, exact)
    assert per_epoch(output, "orbit_equivariance")[0] > 0
    assert set(state) == set(Mlp().state_dict())  # the layer wrapper adds no keys
