"""Orbit transfer on 2-D inputs (the paper's MNIST experiments): 2-D circular convolutions of the learned
orbit (one-hot kernels are ``torch.roll`` over (H, W), the centre is the identity), the layouts it reads (conv
maps, flat layers, ViT tokens), the config field ``input_dims`` (out of the key at its default), the 1-D
layout left as it was, and a shrunk 3-step chain (``cnn2d`` teacher -> orbit -> MLP student) on digits."""

import logging

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import nntransfer
from nntransfer.configs import (
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Experiment,
    ImageDatasetConfig,
    TransferExperiment,
)
from nntransfer.configs.base import make_hash
from nntransfer.configs.model.orbit import OrbitConfig
from nntransfer.configs.trainer.orbit import OrbitLearningMixin, OrbitTransferMixin
from nntransfer.defaults import TASK_KEY as TASK
from nntransfer.errors import ChainCheckError
from nntransfer.models.orbit import (
    LearnedOrbit,
    circular_convolution_2d,
    learned_orbit_builder,
    shift_kernel_2d,
    shift_of_element,
)
from nntransfer.pipeline.local import LocalStore
from nntransfer.pipeline.store import DONE
from nntransfer.trainer import classification_trainer
from nntransfer.trainer.main_loop_modules.orbit import equivariance_loss  # importing registers the modules

SIDE, CLASSES = 8, 4


class LearnOrbit(OrbitLearningMixin, ClassificationTrainerConfig):
    pass


class UseOrbit(OrbitTransferMixin, ClassificationTrainerConfig):
    pass


def images(n, seed):
    """Four classes of random 8x8 templates, each example circularly shifted anywhere, plus a little noise."""
    templates = torch.randn(CLASSES, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=generator)
    shifts = torch.randint(0, SIDE, (n, 2), generator=generator)
    x = torch.stack([torch.roll(templates[c], (int(s), int(t)), dims=(0, 1)) for c, (s, t) in zip(y, shifts)])
    return (x + 0.1 * torch.randn(n, SIDE, SIDE, generator=generator)).unsqueeze(1), y


def image_loaders(n_train=96):
    def loader(n, seed, shuffle=False):
        generator = torch.Generator().manual_seed(seed) if shuffle else None
        return {TASK: DataLoader(TensorDataset(*images(n, seed)), batch_size=32, shuffle=shuffle, generator=generator)}

    return {"train": loader(n_train, 1, shuffle=True), "validation": loader(32, 2), "test": loader(32, 3)}


def signal_loaders():
    x, y = torch.randn(32, 1, 16), torch.randint(0, CLASSES, (32,))
    loader = {TASK: DataLoader(TensorDataset(x, y), batch_size=16)}
    return {"train": loader, "validation": loader, "test": loader}


def orbit_2d(init="random", group_size=8, layers=None, seed=0, **kwargs):
    config = OrbitConfig(group_size=group_size, init=init, input_dims=2, layers=layers or {"output": None}, **kwargs)
    return learned_orbit_builder(image_loaders(), seed, **config.to_dict())


# ---------------------------------------------------------------------------------------- 2-D convolutions

@pytest.mark.parametrize("size", [(SIDE, SIDE), (5, 5), (3, 5)])
def test_one_hot_2d_kernels_are_rolls_over_height_and_width(size):
    x = torch.randn(6, 3, SIDE, SIDE)
    shifts = [(0, 0), (1, 0), (0, -1), (1, 2), (-1, -2), (-1, 1)]
    kernels = torch.stack([shift_kernel_2d(s, size) for s in shifts])
    expected = torch.stack([torch.roll(x[i], s, dims=(-2, -1)) for i, s in enumerate(shifts)])
    assert torch.allclose(circular_convolution_2d(x, kernels), expected, atol=1e-5)
    assert torch.allclose(circular_convolution_2d(x, shift_kernel_2d((0, 0), size)), x, atol=1e-5)  # the centre


def test_the_identity_orbit_is_the_identity_on_every_layout():
    orbit = LearnedOrbit(4, {"input": (SIDE, SIDE), "map": (4, 4), "output": CLASSES}, kernel_size=3, init="identity")
    assert orbit.kernel("input").shape == (4, 3, 3) and orbit.kernel("output").shape == (4, 3)
    g = torch.tensor([0, 1, 2, 3])
    for layer, x in [("input", torch.randn(4, 1, SIDE, SIDE)), ("map", torch.randn(4, 5, 4, 4)), ("map", torch.randn(4, 32)),
                     ("map", torch.randn(4, 17, 6)), ("output", torch.randn(4, CLASSES))]:
        assert torch.allclose(orbit.transform(x, g, layer), x, atol=1e-5), (layer, x.shape)


def test_flat_layers_and_vit_tokens_are_read_as_maps():
    orbit = LearnedOrbit(3, {"input": (SIDE, SIDE), "map": (4, 4)}, init="shift")
    g = torch.tensor([0, 1, 2])
    shifts = [shift_of_element(int(e), 3, (4, 4)) for e in g]
    maps = torch.randn(3, 2, 4, 4)
    rolled = torch.stack([torch.roll(maps[i], s, dims=(-2, -1)) for i, s in enumerate(shifts)])
    assert torch.allclose(orbit.transform(maps, g, "map"), rolled, atol=1e-5)
    assert torch.allclose(orbit.transform(maps.flatten(1), g, "map"), rolled.flatten(1), atol=1e-5)
    tokens = torch.cat([torch.randn(3, 1, 2), maps.flatten(2).transpose(1, 2)], dim=1)  # (B, 1 + 16, D), class token first
    out = orbit.transform(tokens, g, "map")
    assert torch.equal(out[:, :1], tokens[:, :1])
    assert torch.allclose(out[:, 1:], rolled.flatten(2).transpose(1, 2), atol=1e-5)
    with pytest.raises(ValueError, match=r"acts on maps of 4x4 .*got a representation of shape \(3, 2, 5, 5\)"):
        orbit.transform(torch.randn(3, 2, 5, 5), g, "map")
    with pytest.raises(ValueError, match="multiple of 16"):
        orbit.transform(torch.randn(3, 20), g, "map")


def test_shift_orbit_on_images_rolls_and_its_inverse_element_undoes_it():
    G = 4
    orbit = orbit_2d(init="shift", group_size=G)
    x = images(G, 5)[0]
    g = torch.arange(G)
    shifts = [shift_of_element(e, G, (SIDE, SIDE)) for e in range(G)]
    assert len(set(shifts)) == G and shifts[0] == (0, 0)
    rho = orbit.transform(x, g, "input")
    assert torch.allclose(rho, torch.stack([torch.roll(x[e], shifts[e], dims=(-2, -1)) for e in range(G)]), atol=1e-5)
    assert torch.allclose(orbit.transform(rho, orbit.inverse_index(g), "input"), x, atol=1e-5)
    for G in (8, 25, 40):  # distinct shifts; element (-g) mod G starts as the inverse of element g
        shifts = [shift_of_element(e, G, (SIDE, SIDE)) for e in range(G)]
        assert len(set(shifts)) == G
        assert all(((a + c) % SIDE, (b + d) % SIDE) == (0, 0) for e, (a, b) in enumerate(shifts) for c, d in [shifts[-e % G]])


# ---------------------------------------------------------------------------------------- config and layout

def test_the_1d_layout_and_keys_are_unchanged():
    assert make_hash(OrbitConfig().to_dict()) == "66a4faeb94ed940b0102fc072959dae8"  # as before input_dims existed
    config = OrbitConfig(group_size=4, kernel_size=5, layers={"output": None, "hidden": 16}, init="shift", init_noise=0.1)
    assert make_hash(config.to_dict()) == "9e8a9afb6d503613e74d8a2c111a45c9"
    assert "input_dims" not in config.to_dict() and OrbitConfig.from_dict(config.to_dict()) == config
    shapes = {name: tuple(v.shape) for name, v in learned_orbit_builder(signal_loaders(), 0, **config.to_dict()).state_dict().items()}
    assert shapes == {"kernels.input": (4, 5), "kernels.output": (4, 4), "kernels.hidden": (4, 5)}
    # images without input_dims=2: the group acts on their last axis, as before
    shapes = {name: tuple(v.shape) for name, v in learned_orbit_builder(image_loaders(), 0, **config.to_dict()).state_dict().items()}
    assert shapes["kernels.input"] == (4, 5)


def test_2d_config_keys_layout_and_checks():
    config = OrbitConfig(group_size=4, kernel_size=5, input_dims=2, layers={"output": None, "conv": [4, 4], "flat": 16})
    assert config.to_dict()["input_dims"] == 2 and OrbitConfig.from_dict(config.to_dict()) == config
    assert config.get_key() != OrbitConfig(group_size=4, kernel_size=5, layers=config.layers).get_key()
    state = learned_orbit_builder(image_loaders(), 0, **config.to_dict()).state_dict()
    assert {name: tuple(v.shape) for name, v in state.items()} == {
        "kernels.input": (4, 5, 5), "kernels.output": (4, 4), "kernels.conv": (4, 4, 4), "kernels.flat": (4, 5)}
    big = learned_orbit_builder(image_loaders(), 0, **OrbitConfig(group_size=4, kernel_size=9, input_dims=2).to_dict())
    assert big.kernel("input").shape == (4, SIDE, SIDE)  # cut to the image, like 1-D kernels to their axis
    for kwargs, message in [
        ({"input_dims": 3}, "input_dims must be 1"),
        ({"input_dims": 2, "layers": {"output": [2, 2]}}, r"layers\['output'\] is the logits"),
        ({"input_dims": 2, "layers": {"output": None, "conv": [4, 0]}}, "pair of positive integers"),
        ({"input_dims": 2, "layers": {"output": None, "conv": [4, 4, 4]}}, "pair of positive integers"),
    ]:
        with pytest.raises(ValueError, match=message):
            OrbitConfig(**kwargs)
    with pytest.raises(ValueError, match=r"input_dims=2 acts on images \(channels, height, width\); the data has inputs of shape \(1, 16\)"):
        learned_orbit_builder(signal_loaders(), 0, **OrbitConfig(input_dims=2).to_dict())


# ---------------------------------------------------------------------------------------- learning on images

class InvariantNet2d(nn.Module):
    """Circular 2-D convolution, ReLU, global max over positions, linear: exactly translation invariant."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.core = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, padding_mode="circular", bias=False), nn.ReLU(),
                                  nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.readout = nn.Linear(8, CLASSES, bias=False)

    def forward(self, x):
        return self.readout(self.core(x))


def per_epoch(output, name, mode="Training"):
    log = output["tracker"]["log"][mode][TASK]
    return [value / n for value, n in zip(log[name][1:], log["normalization"][1:])]


def test_learning_a_2d_orbit_from_an_invariant_teacher_lowers_the_equivariance_term():
    """With a teacher exactly invariant to (circular) translations, the shift orbit has no equivariance
    error at a conv map, and learning from random kernels lowers it."""
    teacher = InvariantNet2d()
    layers = {"core.1": "map", "output": "output"}
    exact = orbit_2d(init="shift", group_size=8, layers={"output": None, "map": [SIDE, SIDE]})
    x = images(16, 7)[0]
    g = exact.sample(16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        phi = teacher.core[:2]
        assert equivariance_loss(phi(exact.transform(x, g, "input")), exact.transform(phi(x), g, "map")).item() < 1e-8
        assert torch.allclose(teacher(exact.transform(x, g, "input")), teacher(x), atol=1e-5)

    cfg = LearnOrbit(max_iter=6, show_progress=False, show_epoch_progress=False, orbit_layers_teacher=layers)
    model = orbit_2d(group_size=8, kernel_size=3, layers={"output": None, "map": [SIDE, SIDE]})
    before = model.kernel("input").detach().clone()
    values = {**cfg.to_dict(), **cfg.runtime_options()}
    _, output, _ = classification_trainer(model, image_loaders(), 1, teacher_model=teacher, **values)
    equivariance = per_epoch(output, "orbit_equivariance")
    logging.getLogger(__name__).info("orbit_equivariance per epoch: %s", equivariance)
    assert len(equivariance) == 6 and equivariance[-1] < 0.8 * equivariance[0], equivariance
    assert not torch.equal(model.kernel("input").detach(), before)


# ---------------------------------------------------------------------------------------- a shrunk 3-step chain

DIGITS = ImageDatasetConfig(dataset_cls="Digits", train_subset=0.25, batch_size=64)
TEACHER = ClassificationModelConfig(type="cnn2d", options={"channels": [4, 4], "kernel_sizes": [3, 3], "pool_sizes": [1, 1],
                                                             "padding": 1, "global_pool": "max"})
STUDENT = ClassificationModelConfig(type="mlp", options={"hidden_sizes": [64]})
ORBIT = OrbitConfig(group_size=4, kernel_size=5, input_dims=2, layers={"output": None, "conv": [SIDE, SIDE], "hidden": [SIDE, SIDE]})


def quick(cls=ClassificationTrainerConfig, **kwargs):
    return cls(max_iter=1, show_progress=False, show_epoch_progress=False, **kwargs)


def test_a_cnn2d_teacher_orbit_and_mlp_student_chain_runs(tmp_path):
    chain = TransferExperiment([
        Experiment(DIGITS, TEACHER, quick(), seed=1, comment="teacher"),
        Experiment(DIGITS, ORBIT, quick(LearnOrbit, orbit_layers_teacher={"core.relu1": "conv", "output": "output"}), seed=1,
                   comment="orbit"),
        Experiment(DIGITS, STUDENT, quick(UseOrbit, orbit_student_layers={"core.relu1": "hidden", "output": "output"}), seed=1,
                   comment="student"),
    ])
    rows = nntransfer.run(chain, workdir=str(tmp_path / "work"), progress=False)
    assert [row.state for row in rows] == [DONE] * 3
    store = LocalStore(tmp_path / "work")
    shapes = {name: tuple(v.shape) for name, v in store.load_weights(chain.step_key(1)).items()}
    assert shapes == {"kernels.input": (4, 5, 5), "kernels.output": (4, 5), "kernels.conv": (4, 5, 5), "kernels.hidden": (4, 5, 5)}
    log = store.load(chain.step_key(2)).output["tracker"]["log"]["Training"][TASK]
    assert "orbit_equivariance" in log and "orbit_ce" in log


def test_a_chain_whose_student_layer_does_not_fit_the_2d_orbit_is_refused_before_training(tmp_path):
    chain = TransferExperiment([
        Experiment(DIGITS, TEACHER, quick(), seed=1, comment="teacher"),
        Experiment(DIGITS, OrbitConfig(group_size=4, input_dims=2, layers={"output": None, "hidden": [5, 5]}), quick(LearnOrbit),
                   seed=1, comment="orbit"),
        Experiment(DIGITS, STUDENT, quick(UseOrbit, orbit_student_layers={"core.relu1": "hidden", "output": "output"}), seed=1,
                   comment="student"),
    ])
    with pytest.raises(ChainCheckError, match=r"orbit layer .hidden. acts on maps of 5x5"):
        nntransfer.run(chain, workdir=str(tmp_path / "work"), progress=False)
    assert not (tmp_path / "work" / "steps").exists() or not any((tmp_path / "work" / "steps").iterdir())
