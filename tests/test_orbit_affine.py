"""Affine orbits (``OrbitConfig(kind="affine")``, the rotation experiment of Nix, Sinz et al. 2022): learned
affine matrices applied by ``affine_grid``/``grid_sample`` (``align_corners=False``): the identity matrix is
the identity, the ``"rotation"`` init is ``torch.rot90`` at 90 degrees and its inverse element undoes it, the
layouts (images, conv maps, flat layers, logits, ``gcnn`` group maps), the state dict and config keys, the
refusals, the distinctness term on the elements, and a shrunk 3-step chain (``gcnn`` teacher -> affine orbit
-> MLP student) on digits."""

import logging

import pytest
import torch
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
from nntransfer.models.builder import build_model
from nntransfer.models.orbit import flat_to_chw, learned_orbit_builder, rotation_theta
from nntransfer.pipeline.local import LocalStore
from nntransfer.pipeline.store import DONE
from nntransfer.trainer import classification_trainer
from nntransfer.trainer.main_loop_modules.orbit import (  # importing registers the modules
    element_distinctness_loss,
    equivariance_loss,
)

SIDE, CLASSES = 7, 4
TINY_GCNN = {"channels": [4, 4, 4], "kernel_sizes": [3, 3, 3, 3]}


class LearnOrbit(OrbitLearningMixin, ClassificationTrainerConfig):
    pass


class UseOrbit(OrbitTransferMixin, ClassificationTrainerConfig):
    pass


def loaders(n=64, side=SIDE, seed=0, dims=2, batch_size=32):
    generator = torch.Generator().manual_seed(seed)
    shape = (n, 1, side, side) if dims == 2 else (n, 1, side)
    x, y = torch.rand(*shape, generator=generator), torch.randint(0, CLASSES, (n,), generator=generator)
    loader = {TASK: DataLoader(TensorDataset(x, y), batch_size=batch_size)}
    return {"train": loader, "validation": loader, "test": loader}


def affine(group_size=4, init="rotation", layers=None, seed=0, data=None, state_dict=None, **kwargs):
    config = OrbitConfig(kind="affine", input_dims=2, group_size=group_size, init=init, layers=layers or {"output": None}, **kwargs)
    return learned_orbit_builder(data or loaders(), seed, state_dict=state_dict, **config.to_dict())


def rotated(x, quarters):
    return torch.stack([torch.rot90(x[i], int(q), (-2, -1)) for i, q in enumerate(quarters)])


# ---------------------------------------------------------------------------------------- the transformations

@pytest.mark.parametrize("include_channels", [False, True])
def test_the_identity_matrix_is_the_identity_on_every_layout(include_channels):
    """``align_corners=False``: the identity's grid falls on pixel centres, so bilinear sampling is exact up to
    float rounding (odd and even sizes alike)."""
    orbit = affine(init="identity", layers={"output": None, "conv": None, "flat": [4, 4], "group": None},
                   include_channels=include_channels)
    g = torch.tensor([0, 1, 2, 3])
    for layer, x in [("input", torch.rand(4, 1, SIDE, SIDE)), ("conv", torch.randn(4, 3, 6, 6)), ("conv", torch.randn(4, 3, 5, 5)),
                     ("flat", torch.randn(4, 48)), ("conv", torch.randn(4, 50)), ("group", torch.randn(4, 2, 4, 3, 3)),
                     ("output", torch.randn(4, CLASSES))]:
        out = orbit.transform(x, g, layer)
        assert out.shape == x.shape and torch.allclose(out, x, atol=1e-5), (layer, tuple(x.shape))


@pytest.mark.parametrize("include_channels", [False, True])
def test_the_rotation_init_at_90_degrees_is_rot90_and_the_inverse_element_undoes_it(include_channels):
    orbit = affine(layers={"output": None, "hidden": None}, include_channels=include_channels)
    x, g = torch.randn(8, 2, SIDE, SIDE), torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    rho = orbit.transform(x, g, "input")
    assert torch.allclose(rho, rotated(x, g), atol=1e-5)  # element g: g quarter turns, as torch.rot90(x, g, (-2, -1))
    assert torch.allclose(orbit.transform(rho, orbit.inverse_index(g), "input"), x, atol=1e-5)
    maps = torch.randn(8, 3, 4, 4)  # a flat layer of 48 values is read as 3 maps of 4x4 (the fewest channels)
    assert torch.allclose(orbit.transform(maps.flatten(1), g, "hidden"), rotated(maps, g).flatten(1), atol=1e-5)
    logits = torch.randn(8, CLASSES)  # the logits of a rotation-invariant net: "output" starts as the identity
    assert torch.allclose(orbit.transform(logits, g, "output"), logits, atol=1e-5)
    expected = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
    assert torch.equal(rotation_theta(90.0), expected) and torch.equal(orbit.matrices("input")[1][:2, [0, 1, -1]], expected)


def test_gcnn_group_maps_are_rotated_map_by_map():
    orbit = affine(layers={"output": None, "group": None})
    maps, g = torch.randn(4, 3, 4, 5, 5), torch.tensor([0, 1, 2, 3])  # [B, C, N, H, W]
    expected = torch.stack([torch.rot90(maps[i], int(q), (-2, -1)) for i, q in enumerate(g)])
    assert torch.allclose(orbit.transform(maps, g, "group"), expected, atol=1e-5)


def test_flat_layers_are_read_with_the_fewest_channels():
    assert flat_to_chw(torch.randn(2, 64)).shape == (2, 1, 8, 8)
    assert flat_to_chw(torch.randn(2, 32)).shape == (2, 2, 4, 4)
    assert flat_to_chw(torch.randn(2, 12)).shape == (2, 3, 2, 2)
    assert flat_to_chw(torch.randn(2, 13)).shape == (2, 13, 1, 1)  # the original floors 13 // 3 = 4 and mixes examples
    assert flat_to_chw(torch.randn(2, 48), (2, 2)).shape == (2, 12, 2, 2)


def test_translation_only_and_no_translation_variants():
    moved = affine(init="random", only_translation=True)
    assert torch.equal(moved.matrices("input")[:, :, :2], torch.eye(2).expand(4, 2, 2))
    assert moved.state_dict()["theta.input"].shape == (4, 2, 3)
    fixed = affine(init="random", prevent_translation=True)
    assert torch.equal(fixed.matrices("input")[:, :, 2], torch.zeros(4, 2))


def test_gaussian_transform_draws_around_theta_with_a_learned_std():
    orbit = affine(init="identity", gaussian_transform=True, gaussian_std_init=0.05)
    assert {name: tuple(v.shape) for name, v in orbit.state_dict().items()} == {
        "theta.input": (4, 2, 3), "theta.output": (4, 2, 3), "theta_std.input": (2, 3), "theta_std.output": (2, 3)}
    g = torch.zeros(256, dtype=torch.long)
    drawn = orbit.matrices("input", g)
    assert 0.03 < drawn.std(dim=0).mean().item() < 0.07 and torch.allclose(drawn.mean(dim=0), torch.eye(2, 3), atol=0.02)
    drawn.sum().backward()
    assert orbit.theta_std["input"].grad is not None
    assert torch.equal(orbit.matrices("input"), torch.eye(2, 3).expand(4, 2, 3))  # without g: the means


# ---------------------------------------------------------------------------------------- config, state, refusals

def test_state_dict_shapes_and_the_random_init_is_seeded():
    layers = {"output": None, "conv": None, "flat": [4, 4]}
    shapes = {name: tuple(v.shape) for name, v in affine(init="random", layers=layers).state_dict().items()}
    assert shapes == {"theta.input": (4, 2, 3), "theta.output": (4, 2, 3), "theta.conv": (4, 2, 3), "theta.flat": (4, 2, 3)}
    shapes = {name: tuple(v.shape) for name, v in affine(init="random", layers=layers, include_channels=True).state_dict().items()}
    assert set(shapes.values()) == {(4, 3, 4)}
    first = affine(init="random", seed=3).state_dict()["theta.input"]
    torch.manual_seed(123)  # the step's seed alone decides the init
    again, other = (affine(init="random", seed=seed).state_dict()["theta.input"] for seed in (3, 4))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert not torch.allclose(first[0], first[1])  # every element its own random rotation, translation, scale and shear
    rebuilt = affine(init="identity", seed=9, state_dict={"theta.input": first, "theta.output": first})
    assert torch.equal(rebuilt.matrices("input"), first)


def test_config_keys_of_existing_configs_are_unchanged():
    assert make_hash(OrbitConfig().to_dict()) == "66a4faeb94ed940b0102fc072959dae8"  # as before input_dims and kind existed
    config = OrbitConfig(group_size=4, kernel_size=5, layers={"output": None, "hidden": 16}, init="shift", init_noise=0.1)
    assert make_hash(config.to_dict()) == "9e8a9afb6d503613e74d8a2c111a45c9"
    for field in ("kind", "include_channels", "only_translation", "prevent_translation", "gaussian_transform", "gaussian_std_init"):
        assert field not in config.to_dict()
    assert "orbit_identity_between" not in LearnOrbit().to_dict()
    assert LearnOrbit(orbit_identity_between="elements").to_dict()["orbit_identity_between"] == "elements"
    config = OrbitConfig(kind="affine", input_dims=2, include_channels=True, init="rotation")
    assert config.to_dict()["kind"] == "affine" and config.to_dict()["include_channels"] is True
    assert OrbitConfig.from_dict(config.to_dict()) == config
    assert config.get_key() != OrbitConfig(input_dims=2).get_key()


def test_what_cannot_apply_is_refused_in_one_line():
    for kwargs, message in [
        ({"kind": "affine"}, "kind='affine' acts on images .*set input_dims=2"),
        ({"kind": "affine", "input_dims": 2, "init": "shift"}, r"init must be one of \('random', 'identity', 'rotation'\)"),
        ({"init": "rotation"}, "init must be one of .* with kind='convolution'"),
        ({"include_channels": True}, "applies to kind='affine' only"),
        ({"kind": "affine", "input_dims": 2, "only_translation": True, "prevent_translation": True}, "exclude each other"),
        ({"kind": "affine", "input_dims": 2, "layers": {"output": None, "hidden": 16}}, r"a layer is None .* or a pair \[H, W\]"),
        ({"kind": "rotation"}, "kind must be one of"),
        ({"gaussian_transform": True}, "applies to kind='affine' only"),
        ({"kind": "affine", "input_dims": 2, "gaussian_std_init": -1.0}, "gaussian_std_init must be a finite number"),
    ]:
        with pytest.raises(ValueError, match=message) as info:
            OrbitConfig(**kwargs)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"acts on images \(channels, height, width\); the data has inputs of shape \(1, 16\)"):
        affine(data=loaders(side=16, dims=1))
    orbit = affine(layers={"output": None, "map": [4, 4]})
    for x, layer, message in [(torch.randn(4, 1, 16), "input", "the input must be images"),
                              (torch.randn(4, 17, 8), "map", "none of these"),
                              (torch.randn(4, 2, 5, 5), "map", "its maps are 4x4"),
                              (torch.randn(4, 20), "map", "not a multiple of 4x4"),
                              (torch.randn(4, CLASSES + 1), "output", f"it has {CLASSES} logits")]:
        with pytest.raises(ValueError, match=message) as info:
            orbit.transform(x, 0, layer)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="has matrices, not kernels"):
        orbit.kernel("input")


def test_distinctness_between_elements():
    rotations = torch.stack([rotation_theta(90.0 * g) for g in range(4)])
    assert element_distinctness_loss(rotations).item() == 0.0  # quarter turns are far apart
    same = torch.eye(2, 3).expand(4, 2, 3).clone().requires_grad_()
    loss = element_distinctness_loss(same + 0.01 * torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(0)))
    assert loss.item() > 10
    loss.backward()
    assert torch.isfinite(same.grad).all() and same.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------- learning from a gcnn

def tiny_gcnn(side=SIDE, seed=0):
    return build_model(ClassificationModelConfig(type="gcnn", options=TINY_GCNN), (1, side, side), CLASSES, seed=seed)


def per_epoch(output, name, mode="Training"):
    log = output["tracker"]["log"][mode][TASK]
    return [value / n for value, n in zip(log[name][1:], log["normalization"][1:])]


def test_the_rotation_orbit_is_exact_for_a_gcnn_and_learning_from_random_lowers_the_equivariance_term():
    """The gcnn's logits are invariant to quarter turns: the ``"rotation"`` orbit (identity on ``"output"``) has
    no equivariance error; from the random affine init, 6 epochs of 8 batches lower it (seeds 1-3 of the orbit:
    to 20-40 % of the first epoch's)."""
    teacher = tiny_gcnn().eval()
    exact = affine(layers={"output": None})
    x, g = torch.rand(8, 1, SIDE, SIDE), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    with torch.no_grad():
        logits = teacher(x)
        assert equivariance_loss(teacher(exact.transform(x, g)), exact.transform(logits, g, "output")).item() < 1e-10

    cfg = LearnOrbit(max_iter=6, lr=0.03, orbit_invertibility_weight=1.0, orbit_identity_between="elements",
                     show_progress=False, show_epoch_progress=False)
    model = affine(init="random", layers={"output": None}, seed=1)
    before = model.matrices("input").detach().clone()
    values = {**cfg.to_dict(), **cfg.runtime_options()}
    _, output, _ = classification_trainer(model, loaders(batch_size=8), 1, teacher_model=teacher, **values)
    equivariance = per_epoch(output, "orbit_equivariance")
    logging.getLogger(__name__).info("orbit_equivariance per epoch: %s", equivariance)
    assert len(equivariance) == 6 and equivariance[-1] < 0.6 * equivariance[0], equivariance
    assert "orbit_identity" in output["tracker"]["log"]["Training"][TASK]
    assert not torch.equal(model.matrices("input").detach(), before)


# ---------------------------------------------------------------------------------------- a shrunk 3-step chain

DIGITS = ImageDatasetConfig(dataset_cls="Digits", train_subset=0.25, batch_size=64)
TEACHER = ClassificationModelConfig(type="gcnn", options=TINY_GCNN)
STUDENT = ClassificationModelConfig(type="mlp", options={"hidden_sizes": [64]})
ORBIT = OrbitConfig(kind="affine", input_dims=2, group_size=4, init="random", layers={"output": None, "conv": None, "hidden": None})


def quick(cls=ClassificationTrainerConfig, **kwargs):
    return cls(max_iter=1, show_progress=False, show_epoch_progress=False, **kwargs)


def test_a_gcnn_teacher_affine_orbit_and_mlp_student_chain_runs(tmp_path):
    assert tiny_gcnn(side=8)(torch.rand(2, 1, 8, 8)).shape == (2, CLASSES)  # the tiny gcnn builds on 8x8
    chain = TransferExperiment([
        Experiment(DIGITS, TEACHER, quick(), seed=1, comment="teacher"),
        Experiment(DIGITS, ORBIT, quick(LearnOrbit, orbit_layers_teacher={"core.relu1": "conv", "output": "output"},
                                        orbit_identity_between="elements", orbit_invertibility_all_layers=True), seed=1,
                   comment="orbit"),
        Experiment(DIGITS, STUDENT, quick(UseOrbit, orbit_student_layers={"core.relu1": "hidden", "output": "output"}), seed=1,
                   comment="student"),
    ])
    rows = nntransfer.run(chain, workdir=str(tmp_path / "work"), progress=False)
    assert [row.state for row in rows] == [DONE] * 3
    store = LocalStore(tmp_path / "work")
    shapes = {name: tuple(v.shape) for name, v in store.load_weights(chain.step_key(1)).items()}
    assert shapes == {"theta.input": (4, 2, 3), "theta.output": (4, 2, 3), "theta.conv": (4, 2, 3), "theta.hidden": (4, 2, 3)}
    orbit_log = store.load(chain.step_key(1)).output["tracker"]["log"]["Training"][TASK]
    assert {"orbit_equivariance", "orbit_invertibility", "orbit_identity"} <= set(orbit_log)
    log = store.load(chain.step_key(2)).output["tracker"]["log"]["Training"][TASK]
    assert "orbit_equivariance" in log and "orbit_ce" in log


def test_a_chain_whose_student_layer_does_not_fit_the_affine_orbit_is_refused_before_training(tmp_path):
    chain = TransferExperiment([
        Experiment(DIGITS, TEACHER, quick(), seed=1, comment="teacher"),
        Experiment(DIGITS, OrbitConfig(kind="affine", input_dims=2, group_size=4, layers={"output": None, "hidden": [5, 5]}),
                   quick(LearnOrbit), seed=1, comment="orbit"),
        Experiment(DIGITS, STUDENT, quick(UseOrbit, orbit_student_layers={"core.relu1": "hidden", "output": "output"}), seed=1,
                   comment="student"),
    ])
    with pytest.raises(ChainCheckError, match=r"affine orbit layer .hidden. .*not a multiple of 5x5"):
        nntransfer.run(chain, workdir=str(tmp_path / "work"), progress=False)
    assert not (tmp_path / "work" / "steps").exists() or not any((tmp_path / "work" / "steps").iterdir())
