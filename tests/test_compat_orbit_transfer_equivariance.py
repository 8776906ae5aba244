"""``nntransfer.compat.orbit_transfer``: the learned orbit of the 2-D experiments (``TransferModel`` and the
``EquivarianceTransfer`` regularization with ``switch_teacher``), as ``mnist_2d_cnn_linear.py`` and
``mnist_2d_cnn_linear_loss_ablation.py`` of sinzlab/orbit_transfer_recipes use it with only their import line
changed; what it computes is compared with the original code (orbit_transfer/models/learned_equiv.py,
orbit_transfer/trainer/main_loop_modules/equivariance_transfer.py, sinzlab/nntransfer trainer/trainer.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_compat_orbit_transfer import module_text, recipe_namespace
from torch import nn

from nntransfer.cli.main import main
from nntransfer.compat.orbit_transfer import equivariance as eq
from nntransfer.compat.orbit_transfer._translate import Refused
from nntransfer.compat.orbit_transfer.models import LearnedEquivariance, learned_orbit_builder
from nntransfer.recipes.loading import load_recipe
from nntransfer.trainer.main_loop_modules.base import BatchState, LoopContext

ORBIT_STEP = dict(freeze_bn="all", switch_teacher=True, main_objective="loss", maximize=False, deactivate_dropout=True)
LEARN = {"regularizer": "EquivarianceTransfer", "gamma": 1.0, "decay_gamma": False, "group_size": 25,
         "learn_equiv": True, "max_stacked_transform": 3, "id_between_filters": True, "id_factor": 10.0,
         "cut_input_grad": True, "clamp_input": True}
TRANSFER = {"regularizer": "EquivarianceTransfer", "gamma": 1.0, "decay_gamma": False, "group_size": 25,
            "learn_equiv": False, "max_stacked_transform": 3}


# ---------------------------------------------------------------------- the two modules, whole


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("name, refused, picked", [
    # the four RDL chains with dist_measure="corr" crashed in the original (test_compat_orbit_transfer.py)
    ("mnist_2d_cnn_linear", 4, ["Translation Invariant Equivariance Transfer (repititions:{n}, id_between_filters:True, "
                                "id_factor:10.0)".format(n=n) for n in (1, 2, 5)]),
    # the learned orbit's chains whose loss reaches no parameter of the orbit (only ce, or nothing): the original's
    # loss.backward() failed there
    ("mnist_2d_cnn_linear_loss_ablation", 2, [
        "Translation Invariant Equivariance Transfer (CUT first_layer_transform: False, id:10.0, equiv:1.0, inv:1.0, ce:1.0)",
        "Translation Invariant Equivariance Transfer (CUT first_layer_transform: False, id:0.0, equiv:1.0, inv:0.0, ce:0.0)",
        "Translation Invariant Equivariance Transfer (CUT first_layer_transform: False, id:0.0, equiv:0.0, inv:1.0, ce:1.0)"]),
])
def test_each_2d_module_passes_the_dry_run_and_the_fast_dev_run(name, refused, picked, aistats_mnist_dir, tmp_path, capsys):
    path = write(tmp_path, name, module_text(name))
    common = ["--data-dir", str(aistats_mnist_dir), "--workdir", str(tmp_path / "work"), "--device", "cpu", "--quiet"]
    assert main(["run", path, "--dry-run", *common]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == refused, errors
    assert all("RDL (corr)" in line or "no term of the loss reaches the orbit" in line for line in errors), errors
    chains = [arg for chain in picked for arg in ("--chain", chain)]
    assert main(["run", path, "--dry-run", *chains, *common]) == 0
    assert main(["run", path, "--fast-dev-run", *chains, *common]) == 0
    # the teacher once, then each chain's orbit and student
    assert f"{1 + 2 * len(picked)} checked, 0 broke" in capsys.readouterr().out
    assert not (tmp_path / "work").exists()


def test_the_rotation_module_runs_as_written_with_its_teacher_shared_by_every_seed(aistats_mnist_dir, tmp_path, capsys):
    """mnist_2d_rotation.py names its orbit chains with seeds 42, 43 and 44 (and, its loop variable left at 44,
    every other student chain with 44), all on the one teacher trained with seed 42: each step trains with its
    own Experiment's seed, the teacher once."""
    recipe = load_recipe(write(tmp_path, "rotation_loaded", module_text("mnist_2d_rotation")))
    orbit = {d.seed: chain for d, chain in recipe.transfer_experiments.items() if d.name.endswith("Transfer G: 4")}
    assert sorted(orbit) == [42, 43, 44]
    assert [[step.seed for step in chain] for _, chain in sorted(orbit.items())] == [[42, 42, 42], [42, 43, 43], [42, 44, 44]]
    assert len({chain.step_key(0)["seed"] for chain in orbit.values()}) == 1  # one teacher row
    kd = [d for d in recipe.transfer_experiments if "Knowledge Distillation" in d.name]
    assert {d.seed for d in kd} == {44} and all(recipe.transfer_experiments[d][0].seed == 42 for d in kd)
    path = write(tmp_path, "rotation", module_text("mnist_2d_rotation"))
    common = ["--data-dir", str(aistats_mnist_dir), "--workdir", str(tmp_path / "work"), "--device", "cpu", "--quiet"]
    assert main(["run", path, "--dry-run", *common]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 4 and all("RDL (corr)" in line for line in errors), errors
    picked = ["Rotation Invariant Equivariance Transfer G: 4", "Rotation Invariant Equivariance Transfer G: 25",
              "Rotation Invariant Knowledge Distillation T=2.0", "Rotation Invariant RDL (CKA) gamma:0.5",
              "Rotation Invariant Attention Transfer gamma:0.5", "MNIST Experiment Student"]
    chains = [arg for chain in picked for arg in ("--chain", chain)]
    assert main(["run", path, "--fast-dev-run", *chains, *common]) == 0
    # the teacher once, 2 orbits x 3 seeds x (learning, transfer), 3 students of seed 44, the student alone
    assert "17 checked, 0 broke" in capsys.readouterr().out
    assert not (tmp_path / "work").exists()


RESNET_VIT_ORBIT = "Translation Invariant Equivariance Transfer (repititions:3, id_between_filters:True, id_factor:10.0)"


def test_the_resnet_vit_module_passes_the_dry_run_and_the_fast_dev_run(aistats_mnist_dir, tmp_path, capsys):
    path = write(tmp_path, "resnet_vit", module_text("mnist_2d_resnet_vit"))
    common = ["--data-dir", str(aistats_mnist_dir), "--workdir", str(tmp_path / "work"), "--device", "cpu", "--quiet"]
    assert main(["run", path, "--dry-run", *common]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "RDL (corr)" in errors[0], errors  # as in the original, which crashed there
    chains = [RESNET_VIT_ORBIT, "Translation Invariant Knowledge Distillation T=5.0", "MNIST Experiment Student",
              "MNIST-C Experiment Student"]
    assert main(["run", path, "--fast-dev-run", *[a for c in chains for a in ("--chain", c)], *common]) == 0
    # the ResNet-18 teacher, the orbit learned on it, the ViT with the orbit, the ViT with KD, two ViTs alone
    assert "6 checked, 0 broke" in capsys.readouterr().out
    assert not (tmp_path / "work").exists()


def shrunk_cnn_linear() -> str:
    """mnist_2d_cnn_linear.py with its trainer at 2 epochs and its learned orbit's chains only."""
    text = module_text("mnist_2d_cnn_linear").replace("self.max_iter = 400", "self.max_iter = 2")
    return text.split("##### KD ##########")[0]


def shrunk_rotation() -> str:
    """mnist_2d_rotation.py with its trainer at 2 epochs, its learned orbit's chains only."""
    return module_text("mnist_2d_rotation").replace("self.max_iter = 200", "self.max_iter = 2").split("##### KD ##########")[0]


@pytest.mark.slow
@pytest.mark.parametrize("name, chain", [
    ("cnn_linear", "Translation Invariant Equivariance Transfer (repititions:2, id_between_filters:True, id_factor:10.0)"),
    ("rotation", "Rotation Invariant Equivariance Transfer G: 8"),
    ("resnet_vit", RESNET_VIT_ORBIT),  # its trainer trains one epoch as written
    ("loss_ablation", "Translation Invariant Equivariance Transfer (CUT first_layer_transform: False, id:0.0, equiv:1.0, "
                      "inv:0.0, ce:0.0)"),
])
def test_a_shrunk_learned_orbit_chain_trains_on_both_stores(name, chain, aistats_mnist_dir, tmp_path, db_prefix):
    import nntransfer

    text = {"cnn_linear": shrunk_cnn_linear, "rotation": shrunk_rotation,
            "resnet_vit": lambda: module_text("mnist_2d_resnet_vit"),
            "loss_ablation": lambda: module_text("mnist_2d_cnn_linear_loss_ablation").replace("self.max_iter = 400",
                                                                                                "self.max_iter = 2")}[name]()
    path = write(tmp_path, name, text)
    assert chain in [d.name for d in load_recipe(path).transfer_experiments]
    scores = {}
    for store in (f"local:{tmp_path / 'work'}", f"datajoint:{db_prefix}_mnist2d_{name}"):
        # the rotation chain named with seed 43: its teacher trains with seed 42, its orbit and student with 43
        rows = nntransfer.run(path, store=store, chains=[chain], seeds=[43] if name == "rotation" else None, progress=False,
                              runtime={"dataset": {"data_dir": str(aistats_mnist_dir)}, "trainer": {"device": "cpu"}})
        assert [row.state for row in rows] == ["done"] * 3, rows
        scores[store.split(":")[0]] = [row.score for row in rows]
    assert scores["datajoint"] == pytest.approx(scores["local"], rel=1e-5)  # same seed, same numbers
    teacher, orbit, student = scores["local"]
    # the teacher's and the student's validation accuracy; the orbit step's validation total loss (its objective)
    assert 0 <= teacher <= 100 and 0 <= student <= 100 and orbit > 0 and math.isfinite(orbit)


# ---------------------------------------------------------------------- what the configs mean


def test_the_orbit_and_its_two_steps_mean_the_originals():
    ns = recipe_namespace("mnist_2d_cnn_linear", "seed = 42")
    # models/learned_equiv.py equiv_builder: LearnedEquivariance(kernel_size, group_size, num_layers, output_size,
    # vit_input=config.vit_input, first_layer_transform=config.first_layer_transform); its config declared neither,
    # and sinzlab/nntransfer's BaseConfig read an undeclared field as None: no transform for the first layer
    orbit = ns["TransferModel"]().to_dict()
    assert orbit["fn"] == "nntransfer.compat.orbit_transfer.models.learned_orbit_builder"
    assert orbit["options"] == {"kernel_size": 5, "group_size": 25, "num_layers": 4, "output_size": 10,
                                "first_layer_transform": False}
    assert ns["TransferModel"](first_layer_transform=True).to_dict()["options"]["first_layer_transform"] is True
    # learning it: sinzlab/nntransfer trainer.py built the optimizer on student_model, then switched; its early
    # stopping restored the (frozen) network, never the orbit; main_objective "loss" was the loss that trains
    learn = ns["TransferTrainer"](**ORBIT_STEP, student_model=orbit, regularization=LEARN).to_dict()
    assert learn["main_loop_modules"] == ["nntransfer.compat.orbit_transfer.equivariance.EquivarianceTransfer"]
    assert (learn["objective"], learn["maximize"], learn["restore_best"], learn["restore_on_decay"]) == (
        "total_loss", False, False, False)
    assert learn["student_model"]["type"] == "orbit_transfer-equiv_transfer" and learn["freeze_bn"] is True
    # equivariance_transfer.py __init__: the keys it read and their defaults
    assert learn["regularization"] == {
        "regularizer": "EquivarianceTransfer", "gamma": 1.0, "learn_equiv": True, "group_size": 25, "ce_factor": 1.0,
        "equiv_factor": 1.0, "inv_factor": 1.0, "id_factor": 10.0, "id_between_filters": True,
        "max_stacked_transform": 3, "hinge_epsilon": 0.5, "mse_dist": False, "exclude_inv_from_id_loss": False,
        "inv_for_all_layers": False, "cut_input_grad": True, "clamp_input": True, "ramp_up": {}}
    transfer = ns["TransferTrainer"](student_model=ns["StudentModel"]().to_dict(), regularization=TRANSFER).to_dict()
    assert (transfer["objective"], transfer["restore_best"], "restore_on_decay" in transfer) == ("accuracy", True, False)
    assert transfer["regularization"]["learn_equiv"] is False and transfer["regularization"]["cut_input_grad"] is True


def original_resnet18() -> nn.Module:
    """sinzlab/nntransfer models/resnet.py ``ResNet`` for the recipe's ``MNISTModel(type="resnet18")``, restated on
    torchvision's ResNet (whose subclass it is): a 3x3 stride-1 stem without bias on one channel, no max pool
    (Identity), ``AvgPool2d(4)``, PyTorch's default initialisation (no ``advanced_init``), 10 classes."""
    import torchvision

    model = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [2, 2, 2, 2], num_classes=10)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool, model.avgpool = nn.Identity(), nn.AvgPool2d(4)
    return model


def test_the_resnet_vit_teacher_student_and_orbit_mean_the_originals():
    from nntransfer.compat.orbit_transfer.configs.model import resnet_layer_paths, vit_layer_paths
    from nntransfer.models.builder import classification_model_builder

    ns = recipe_namespace("mnist_2d_resnet_vit", "seed = 42")
    rep = {"conv1": "out.1", "layer1.1.conv2": "out.2", "layer2.1.conv2": "out.3", "layer3.1.conv2": "out.4",
           "layer4.1.conv2": "out.5", "fc": "out.6"}
    teacher = ns["TeacherModel"](get_intermediate_rep=rep).to_dict()
    assert (teacher["type"], teacher["batch_norm"], teacher["readout_bias"], teacher["dropout"]) == ("resnet18", True, True, 0.0)
    assert teacher["get_intermediate_rep"] == {"out.1": "core.stem.conv", "out.2": "core.layer1.1.conv2",
                                               "out.3": "core.layer2.1.conv2", "out.4": "core.layer3.1.conv2",
                                               "out.5": "core.layer4.1.conv2", "out.6": "readout.fc"}
    # the same network: every module of the original's has its place here; under the same weights, the same logits
    data = {"train": torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.rand(10, 1, 28, 28), torch.arange(10)))}
    ours = classification_model_builder(data, seed=0, **{**teacher, "get_intermediate_rep": {}})
    original = original_resnet18()
    paths = resnet_layer_paths("resnet18", stem_pool=False)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in original.parameters()) == 11_172_810
    state = {f"{paths[name.rpartition('.')[0]]}.{name.rpartition('.')[2]}": value for name, value in original.state_dict().items()}
    ours.load_state_dict(state, strict=True)
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(ours.eval()(x), original.eval()(x), atol=1e-5)
    for field, message in (({"advanced_init": True}, "advanced_init=True"), ({"core_stride": 2}, "core_stride=2"),
                           ({"max_pool_after_stem": True}, "AvgPool2d(4), which is no global average")):
        with pytest.raises(Refused, match=message.replace("(", r"\(").replace(")", r"\)")):
            ns["TeacherModel"](**field)
    # orbit_transfer/models/vit.py ViT (vit_builder without orig_vit): per-head width dim, no final norm,
    # mlp_head Linear-GELU-Linear; 901,770 parameters (against vit-pytorch's transformer: the test below)
    student_rep = {f"transformer.layers.{i}.1.fn.net.4": f"out.{k}" for k, i in enumerate((0, 1, 2, 3, 5), start=1)}
    student = ns["StudentModel"](get_intermediate_rep={**student_rep, "mlp_head.2": "out.6"}).to_dict()
    assert (student["type"], student["options"]) == ("orbit_transfer-vit", {"image_size": 28, "patch_size": 7, "dim": 64,
                                                                            "depth": 6, "heads": 8, "mlp_dim": 128})
    assert student["get_intermediate_rep"]["out.6"] == "readout.2"
    vit = classification_model_builder(data, seed=42, **{**student, "get_intermediate_rep": {}})
    assert sum(p.numel() for p in vit.parameters()) == 901_770
    names = {name for name, _ in vit.named_modules()}
    assert set(vit_layer_paths(6).values()) <= names
    attention = vit.core.transformer.layers[0][0].fn
    assert attention.to_qkv.out_features == 3 * 8 * 64 and attention.scale == 64 ** -0.5  # 8 heads, each 64 wide
    # the orbit of the transfer step reads the ViT's tokens (vit_input); its learning step the ResNet's maps
    orbit_options = ns["TransferModel"](spatial_transformer=False, num_layers=6, vit_input=True,
                                        first_layer_transform=True).to_dict()["options"]
    assert orbit_options == {"kernel_size": 5, "group_size": 25, "num_layers": 6, "output_size": 10,
                             "first_layer_transform": True, "vit_input": True}


class OriginalViT(nn.Module):
    """orbit_transfer/models/vit.py ``ViT`` (what its ``vit_builder`` built), restated on the real transformer it
    imported, vit-pytorch's (0.20, of its time): its parameters in its order, its forward."""

    def __init__(self, *, image_size, patch_size, num_classes, dim, depth, heads, mlp_dim, channels):
        from vit_pytorch.vit import Transformer

        super().__init__()
        self.patch_size = patch_size
        self.pos_embedding = nn.Parameter(torch.randn(1, (image_size // patch_size) ** 2 + 1, dim))
        self.patch_to_embedding = nn.Linear(channels * patch_size ** 2, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.transformer = Transformer(dim, depth, heads, dim, mlp_dim)
        self.to_cls_token = nn.Identity()
        self.mlp_head = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, num_classes))

    def forward(self, img):
        from einops import rearrange

        p = self.patch_size
        x = self.patch_to_embedding(rearrange(img, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=p, p2=p))
        x = torch.cat((self.cls_token.expand(img.shape[0], -1, -1), x), dim=1)
        x += self.pos_embedding
        return self.mlp_head(self.to_cls_token(self.transformer(x)[:, 0]))


def test_the_vit_is_orbit_transfers_on_vit_pytorchs_transformer_with_its_names_draws_and_logits():
    from nntransfer.compat.orbit_transfer.configs.model import vit_layer_paths
    from nntransfer.models.builder import classification_model_builder

    ns = recipe_namespace("mnist_2d_resnet_vit", "seed = 42")
    student = ns["StudentModel"]().to_dict()
    data = {"train": torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.rand(10, 1, 28, 28), torch.arange(10)))}
    ours = classification_model_builder(data, seed=42, **student)
    torch.manual_seed(42)  # as orbit_transfer's classification_model_builder did before building
    original = OriginalViT(image_size=28, patch_size=7, num_classes=10, channels=1, dim=64, depth=6, heads=8, mlp_dim=128)
    paths = vit_layer_paths(6)
    renamed = {}
    for name, value in original.state_dict().items():
        module, _, leaf = name.rpartition(".")
        renamed[f"{paths[module]}.{leaf}" if module else f"core.{leaf}"] = value
    ours_state = ours.state_dict()
    assert set(renamed) == set(ours_state)  # every parameter of the original has its place, and nothing else
    assert all(torch.equal(renamed[name], ours_state[name]) for name in ours_state)  # one seed, the same draws
    x = torch.rand(5, 1, 28, 28)
    assert torch.allclose(ours(x), original(x), atol=1e-6)
    modules = dict(original.named_modules())
    assert all(path in modules for path in paths)  # the translated layer paths are the original's


def test_on_vit_tokens_the_orbit_moves_all_but_the_last_token_as_a_map():
    # learned_equiv.py forward with vit_input: cls_token = x[:, -1:], the other tokens "b (h w) c -> b c h w",
    # the convolution, back to tokens, the set-aside token appended
    torch.manual_seed(0)
    on_tokens = LearnedEquivariance(5, 7, 6, 10, first_layer_transform=True, vit_input=True)
    on_maps = LearnedEquivariance(5, 7, 6, 10, first_layer_transform=True)
    on_maps.load_state_dict(on_tokens.state_dict())
    tokens, g = torch.randn(3, 17, 64), torch.tensor([0, 3, 6])
    for layer in (1, 3, 5):
        acted = on_tokens(tokens, g, layer, n=2)
        grid = tokens[:, :16].transpose(1, 2).reshape(3, 64, 4, 4)
        expected = on_maps(grid, g, layer, n=2).flatten(2).transpose(1, 2)
        assert torch.allclose(acted[:, :16], expected, atol=1e-6) and torch.equal(acted[:, 16], tokens[:, 16])
    logits = torch.randn(3, 10)
    assert torch.allclose(on_tokens(logits, g, 6), on_maps(logits, g, 6))  # the last layer: the logits, as without
    images = torch.rand(3, 1, 28, 28)
    assert torch.allclose(on_tokens(images, g, 0), on_maps(images, g, 0))  # the input: images, as without
    with pytest.raises(ValueError, match="15 is no square"):
        on_tokens(torch.randn(2, 16, 8), g[:2], 1)


@pytest.mark.parametrize("change, message", [
    ({"switch_teacher": False}, "learn_equiv=True needs switch_teacher=True"),
    ({"deactivate_dropout": False}, "without deactivate_dropout=True: the original ran the frozen network with its dropout"),
    ({"regularization": {**LEARN, "transform_factor": 1.0}}, "transform_factor=1.0 (EquivarianceTransfer): the original's"),
    ({"regularization": {**LEARN, "id_between_transforms": True}}, "id_between_transforms=True"),
    ({"regularization": {**TRANSFER}}, "switch_teacher=True is mapped only for learning the orbit"),
])
def test_what_the_original_could_not_run_or_that_is_not_mapped_is_one_line(change, message):
    ns = recipe_namespace("mnist_2d_cnn_linear", "seed = 42")
    settings = {**ORBIT_STEP, "student_model": ns["TransferModel"]().to_dict(), "regularization": LEARN, **change}
    with pytest.raises(Refused) as caught:
        ns["TransferTrainer"](**settings)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(Refused, match="deactivate_dropout=True without switch_teacher=True"):
        ns["TransferTrainer"](deactivate_dropout=True)


def test_ramp_up_ramps_the_factors_the_original_ramped(caplog, monkeypatch):
    # equivariance_transfer.py pre_epoch: for name in ("ce", "inv", "id", "equiv", "transform"): a factor whose name
    # is a key of ramp_up is final / R * epoch up to epoch R; mnist_2d_rotation.py's keys "equiv_factor" and
    # "inv_factor" are no such name: they ramped nothing
    from nntransfer.compat.orbit_transfer import _translate

    ns = recipe_namespace("mnist_2d_cnn_linear", "seed = 42")
    orbit = ns["TransferModel"]().to_dict()
    monkeypatch.setattr(_translate, "_warned", set())  # each warning is given once per process
    with caplog.at_level("WARNING"):
        config = ns["TransferTrainer"](**ORBIT_STEP, student_model=orbit, regularization={
            **LEARN, "ramp_up": {"equiv": 4, "equiv_factor": 10, "inv_factor": 10}}).to_dict()
    assert "ramp_up {'equiv_factor': 10, 'inv_factor': 10} ramps nothing" in caplog.text
    settings = config["regularization"]
    assert settings["ramp_up"] == {"equiv": 4}
    assert [eq.ramped_factors(settings, epoch)["equiv_factor"] for epoch in (0, 1, 4, 5)] == [0.0, 0.25, 1.0, 1.0]
    assert eq.ramped_factors(settings, 1)["id_factor"] == 10.0


def test_the_rotation_teacher_and_orbit_mean_the_originals(caplog, monkeypatch):
    from nntransfer.compat.orbit_transfer import _translate

    monkeypatch.setattr(_translate, "_warned", set())  # each warning is given once per process
    ns = recipe_namespace("mnist_2d_rotation", "seed = 42")
    # models/group_cnn.py gcnn_builder read small and output_size only; the CNN fields of the recipe's class are
    # dropped loudly; the layer names are the original's (pool1 before its ReLU; flatten: the logits)
    with caplog.at_level("WARNING"):
        teacher = ns["TeacherModel"](type="gcnn", small=False, large_filters=False, get_intermediate_rep={
            "pool1": "out.1", "pool2": "out.2", "pool3": "out.3", "flatten": "out.4"}).to_dict()
    assert "dropout=0.1, batch_norm=False read by nothing in orbit_transfer's gcnn builder" in caplog.text
    assert (teacher["type"], teacher["options"]) == ("orbit_transfer-gcnn", {"small": False})
    assert teacher["get_intermediate_rep"] == {"out.1": "core.pool1", "out.2": "core.pool2", "out.3": "core.pool3",
                                               "out.4": "readout.flatten"}
    # models/learned_equiv.py equiv_builder with spatial_transformer: LearnedEquivarianceSTSimple(num_layers,
    # group_size, only_translation, prevent_translation, include_channels, ...)
    orbit = ns["TransferModel"](spatial_transformer=True, only_translation=False, prevent_translation=False,
                                include_channels=True, num_layers=4, group_size=8).to_dict()
    assert (orbit["type"], orbit["options"]) == ("orbit_transfer-equiv_transfer_affine",
                                                 {"group_size": 8, "num_layers": 4, "include_channels": True})
    with pytest.raises(Refused, match="random_transform_init=True"):
        ns["TransferModel"](spatial_transformer=True, random_transform_init=True)


def test_the_group_cnn_has_the_originals_layers_and_its_convolutions_turn_with_the_input():
    from nntransfer.compat.orbit_transfer.models import build_gcnn
    from nntransfer.models.group_cnn import rotate_group_maps

    model = build_gcnn(SimpleNamespace(type="orbit_transfer-gcnn", options={"small": False}), (1, 28, 28), 10)
    # group_cnn.py GCNN: ConvZ2P4(1, 8, 5), ConvP4(8, 32, 3), ConvP4(32, 64, 3), ConvP4(64, 10, 3), with biases;
    # 28 -> 26 -> pool 13 -> 13 -> pool 6 (the odd row and column dropped) -> 6 -> pool 3 -> 3 -> max, mean: 10
    assert sum(p.numel() for p in model.parameters()) == (8 * 25 + 8) + (32 * 8 * 4 * 9 + 32) + (64 * 32 * 4 * 9 + 64) + (
        10 * 64 * 4 * 9 + 10)
    assert tuple(model.core.conv2.weight.shape) == (32, 8, 4, 3, 3) and model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    features = {}
    model.core.pool1.register_forward_hook(lambda module, args, out: features.setdefault("pool1", out))
    model(torch.rand(1, 1, 28, 28))
    assert tuple(features["pool1"].shape) == (1, 8, 4, 13, 13) and float(features["pool1"].min()) < 0  # before its ReLU
    # its P4 convolutions turn with their input: rotating the input by r quarter turns rotates the P4 maps by r
    lifting, group = model.core.conv1, model.core.conv2
    x = torch.rand(2, 1, 11, 11)
    for r in (1, 2, 3):
        turned = group(lifting(torch.rot90(x, r, (2, 3))))
        assert torch.allclose(rotate_group_maps(turned, -r), group(lifting(x)), atol=1e-5)


# ---------------------------------------------------------------------- the orbit


def one_hot_kernels(shifts, size: int = 5) -> torch.Tensor:
    """Kernels that shift an image by (dy, dx) (circular cross-correlation reads x[i + dy, j + dx])."""
    kernels = torch.zeros(len(shifts), size, size)
    for g, (dy, dx) in enumerate(shifts):
        kernels[g, size // 2 + dy, size // 2 + dx] = 1.0
    return kernels


def shift_orbit(num_layers: int = 2) -> LearnedEquivariance:
    """A 2-layer orbit (no first-layer transform) of shifts whose last map sends every kernel to the identity on
    the logits (a 1-D kernel of 10, one at its centre, index 4 under the (4, 5) circular padding)."""
    orbit = LearnedEquivariance(5, 4, num_layers, 10, first_layer_transform=False)
    with torch.no_grad():
        orbit.kernels.copy_(one_hot_kernels([(0, 0), (0, 1), (2, -1), (0, -1)]))
        last = orbit.layer_transforms[-1]
        last.weight.zero_()
        last.bias.zero_()
        last.bias[4] = 1.0
    return orbit


def test_the_orbit_has_the_originals_parameters_and_acts_by_circular_convolution():
    # learned_equiv.py: kernels [G, k, k]; num_layers - 1 (output layer) - 1 (no first-layer transform) maps k² -> k²,
    # then k² -> output_size; the same draws from the seed as the original builder (torch.manual_seed(seed) first)
    built = learned_orbit_builder({}, seed=3, type="orbit_transfer-equiv_transfer", options={
        "kernel_size": 5, "group_size": 25, "num_layers": 4, "output_size": 10, "first_layer_transform": False})
    assert [(n, tuple(p.shape)) for n, p in built.named_parameters()] == [
        ("kernels", (25, 5, 5)), ("layer_transforms.0.weight", (25, 25)), ("layer_transforms.0.bias", (25,)),
        ("layer_transforms.1.weight", (25, 25)), ("layer_transforms.1.bias", (25,)),
        ("layer_transforms.2.weight", (10, 25)), ("layer_transforms.2.bias", (10,))]
    torch.manual_seed(3)
    assert torch.equal(built.kernels, torch.randn(25, 5, 5))
    assert len(LearnedEquivariance(5, 25, 4, 10, first_layer_transform=True).layer_transforms) == 4

    orbit = shift_orbit()
    x = torch.rand(4, 2, 9, 9)
    g = torch.tensor([0, 1, 2, 3])
    moved = orbit(x, g, 0)
    for i, (dy, dx) in enumerate([(0, 0), (0, 1), (2, -1), (0, -1)]):
        assert torch.allclose(moved[i], torch.roll(x[i], shifts=(-dy, -dx), dims=(-2, -1)), atol=1e-6)
    assert torch.allclose(orbit(x, g, 0, 2)[2], torch.roll(x[2], shifts=(-4, 2), dims=(-2, -1)), atol=1e-6)  # n = 2
    # layer 1 without a first-layer transform: the input's kernels; a flat output acts as the smallest square maps
    flat = torch.rand(4, 2 * 16)
    assert torch.allclose(orbit(flat, g, 1)[1], torch.roll(flat[1].reshape(2, 4, 4), -1, dims=-1).flatten(), atol=1e-6)
    logits = torch.rand(4, 10)
    assert torch.allclose(orbit(logits, g, 2), logits, atol=1e-6)  # the last layer: 1-D over the logits
    with pytest.raises(ValueError, match="last \\(the 10 logits\\)"):
        orbit(torch.rand(4, 12), g, 2)
    with pytest.raises(ValueError, match="smaller than the circular padding"):
        orbit(torch.rand(4, 3, 1, 1), g, 1)


def test_the_terms_are_the_originals():
    rng = np.random.default_rng(0)
    kernels = rng.normal(size=(6, 3, 3))
    u = kernels.reshape(6, -1)
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    pairs = [(i, j) for i in range(6) for j in range(i + 1, 6)]
    cosine = np.mean([abs(u[i] @ u[j]) for i, j in pairs])
    assert eq.kernel_identity(torch.tensor(kernels)).item() == pytest.approx(cosine)
    hinge = np.mean([(10 * max(0.0, 0.5 - np.sum((u[i] - u[j]) ** 2))) ** 2 for i, j in pairs])
    assert eq.kernel_identity(torch.tensor(kernels), mse_dist=True).item() == pytest.approx(hinge, abs=1e-9)
    # exclude_inv_from_id_loss: the pairs (g, -g mod G) leave the sum and G // 2 pairs the normalisation
    kept = [(i, j) for i, j in pairs if j != (-i) % 6]
    assert eq.kernel_identity(torch.tensor(kernels), exclude_inverse=True).item() == pytest.approx(
        sum(abs(u[i] @ u[j]) for i, j in kept) / (len(pairs) - 3))
    # the equivariance distance: one MSE over all layers' values at once
    a, b = [torch.rand(3, 4), torch.rand(3, 2, 2, 2)], [torch.rand(3, 4), torch.rand(3, 2, 2, 2)]
    total = ((a[0] - b[0]) ** 2).sum() + ((a[1] - b[1]) ** 2).sum()
    assert eq.equivariance_distance(a, b).item() == pytest.approx(total.item() / (3 * 12))
    x, y = torch.rand(5, 8), torch.rand(5, 8)
    assert eq.example_identity(x, y).item() == pytest.approx(F.cosine_similarity(x, y).abs().mean().item())
    # n from 1 to max_stacked_transform - 1 (torch.randint's bound is exclusive), h != g
    settings = {"group_size": 4, "max_stacked_transform": 3, "learn_equiv": True, "id_between_filters": False,
                "exclude_inv_from_id_loss": False}
    generator = torch.Generator().manual_seed(0)
    draws = [eq.sample_elements(64, settings, generator) for _ in range(20)]
    assert {n for _, _, n in draws} == {1, 2} and all(bool((g != h).all()) for g, h, _ in draws)


class CircularNet(nn.Module):
    """A circular convolution, global average pooling and a linear readout: equivariant to shifts on its first
    layer, invariant on its logits; returns its named outputs as the original's IntermediateLayerGetter did."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1, padding_mode="circular")
        self.fc = nn.Linear(3, 10)

    def forward(self, x):
        features = self.conv(x)
        logits = self.fc(features.mean(dim=(2, 3)))
        return {"out.1": features, "out.2": logits}, logits


def run_hooks(module: eq.EquivarianceTransfer, mode: str, x: torch.Tensor, y: torch.Tensor, student=None):
    module.mode = mode
    module.pre_epoch(mode)
    state = BatchState(mode, "img_classification", x, y, {}, student)
    module.pre_forward(state)
    from nntransfer.trainer.main_loop_modules.base import read_output
    state.output = read_output(state.model(state.inputs))
    module.post_forward(state)
    return state


@pytest.mark.parametrize("mode", ["Training", "Validation", "Test"])
def test_learning_the_orbit_runs_the_frozen_network_on_both_halves(mode):
    torch.manual_seed(0)
    network, orbit = CircularNet().eval(), shift_orbit()
    regularization = {**eq_defaults(), "group_size": 4, "learn_equiv": True, "id_between_filters": True}
    context = LoopContext(config=SimpleNamespace(regularization=regularization), device=torch.device("cpu"), seed=0,
                          model=orbit, teacher=network)
    module = eq.EquivarianceTransfer(context)
    x, y = torch.rand(6, 1, 8, 8), torch.randint(0, 10, (6,))
    state = run_hooks(module, mode, x, y, student=orbit)
    # the network is equivariant under the shift orbit (its logits invariant): no distance, CE on rho_g x = CE on x
    terms = {name: term for name, term in state.losses.items()}
    assert terms["orbit_transfer_equiv_distance"].value.item() == pytest.approx(0.0, abs=1e-10)
    assert terms["orbit_transfer_equiv_ce"].value.item() == pytest.approx(F.cross_entropy(network(x)[1], y).item(), rel=1e-5)
    assert terms["orbit_transfer_equiv_identity"].value.item() == pytest.approx(
        eq.kernel_identity(orbit.kernels).item())
    assert {name: term.weight for name, term in terms.items()} == {
        "orbit_transfer_equiv_ce": 1.0, "orbit_transfer_equiv_distance": 1.0, "orbit_transfer_equiv_inv": 1.0,
        "orbit_transfer_equiv_identity": 1.0}
    assert state.task_loss_weight == 0.0  # gamma = 1: (1 - gamma) * CE(network(x))
    assert state.output.logits.shape[0] == 6 and state.copies == 1 and torch.equal(state.inputs, x)


def eq_defaults():
    from nntransfer.compat.orbit_transfer.configs.trainer import EQUIVARIANCE_KEYS

    return {"regularizer": "EquivarianceTransfer", "gamma": 1.0, **EQUIVARIANCE_KEYS}


def test_transferring_the_orbit_trains_the_student_on_clamped_detached_transformed_inputs():
    torch.manual_seed(0)
    orbit = shift_orbit()
    with torch.no_grad():
        orbit.kernels.mul_(3.0)  # rho_g x = 3 x (shifted): clamped to [0, 1] before the student sees it
    for p in orbit.parameters():
        p.requires_grad_(False)
    regularization = {**eq_defaults(), "group_size": 4, "learn_equiv": False, "gamma": 0.25}
    student = CircularNet()
    context = LoopContext(config=SimpleNamespace(regularization=regularization), device=torch.device("cpu"), seed=0,
                          model=student, teacher=orbit)
    module = eq.EquivarianceTransfer(context)
    seen = []
    x, y = torch.rand(6, 1, 8, 8), torch.randint(0, 10, (6,))

    def recording(inputs):
        seen.append(inputs)
        return student(inputs)

    module.mode = "Training"
    module.pre_epoch("Training")
    state = BatchState("Training", "img_classification", x, y, {}, recording)
    module.pre_forward(state)
    g = module.batch["g"]
    from nntransfer.trainer.main_loop_modules.base import read_output
    state.output = read_output(state.model(state.inputs))
    module.post_forward(state)
    inputs = seen[0]
    assert torch.equal(inputs[:6], x) and not inputs.requires_grad
    expected = torch.clamp(orbit(x, g, 0), 0, 1)
    assert torch.allclose(inputs[6:], expected) and float(inputs.max()) <= 1.0
    assert set(state.losses) == {"orbit_transfer_equiv_ce", "orbit_transfer_equiv_distance"}  # no inv/identity
    assert all(term.weight == 0.25 for term in state.losses.values()) and state.task_loss_weight == 0.75


def test_the_chain_check_names_what_the_original_could_not_pair(aistats_mnist_dir, tmp_path, capsys):
    text = shrunk_cnn_linear().replace('"layers.10": "out.4",\n                    }', '}')  # the student: 3 outputs
    path = write(tmp_path, "cnn_linear", text)
    common = ["--data-dir", str(aistats_mnist_dir), "--workdir", str(tmp_path / "work"), "--device", "cpu", "--quiet"]
    assert main(["run", path, "--dry-run", "--chain",
                 "Translation Invariant Equivariance Transfer (repititions:1, id_between_filters:True, id_factor:1.0)",
                 *common]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "the student names 3 outputs" in errors[0] and "acts on 4 layers" in errors[0], errors


def test_the_affine_orbit_starts_as_the_identity_and_turns_what_it_is_given():
    from nntransfer.compat.orbit_transfer.models import AffineLearnedEquivariance

    # learned_equiv.py LearnedEquivarianceSTSimple: theta [num_layers + 1, G, 12] (include_channels), every element
    # the identity unless random_transform_init; affine_grid + grid_sample with torch's defaults
    orbit = AffineLearnedEquivariance(group_size=4, num_layers=4, include_channels=True)
    assert tuple(orbit.theta.shape) == (5, 4, 12) and torch.equal(orbit.theta[2, 3], torch.eye(3, 4).flatten())
    g = torch.tensor([0, 1, 2])
    image, maps, flat, logits = torch.rand(3, 1, 28, 28), torch.rand(3, 8, 4, 13, 13), torch.rand(3, 512), torch.rand(3, 10)
    assert torch.allclose(orbit(image, g, 0), image, atol=1e-5)
    assert torch.allclose(orbit(maps, g, 1), maps, atol=1e-5)  # P4 maps: volumes (rotation axis, height, width)
    assert torch.allclose(orbit(flat, g, 2), flat.reshape(3, 2, 16, 16), atol=1e-5)  # flat: [B, 1, c, s, s] -> [B, c, s, s]
    assert torch.allclose(orbit(logits, g, 4), logits.reshape(3, 1, 10, 1), atol=1e-5)
    plane = AffineLearnedEquivariance(group_size=2, num_layers=1, include_channels=False)
    with torch.no_grad():
        plane.theta[0, 1] = torch.tensor([0.0, -1.0, 0.0, 1.0, 0.0, 0.0])  # a quarter turn of the sampling grid
    turned = plane(image[:2], torch.tensor([0, 1]), 0)
    assert torch.allclose(turned[0], image[0], atol=1e-5)
    assert any(torch.allclose(turned[1], torch.rot90(image[1], k, (1, 2)), atol=1e-5) for k in (1, 3))
    assert eq.kernel_identity(orbit.element_parameters(), mse_dist=True, hinge_epsilon=1.0).item() == pytest.approx(100.0)
