"""``nntransfer.compat.orbit_transfer``: the recipes of sinzlab/orbit_transfer_recipes (``_2021_09_24_aistats``) with
only ``from orbit_transfer.configs import *`` changed to ``from nntransfer.compat.orbit_transfer.configs import *``.

The eight module texts are in ``tests/fixtures/orbit_transfer_aistats`` (``.py.txt``, with that one line changed).
Each module loads whole; what the configs mean is compared with values read
from the original code (the repository path is named beside each).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mnist_files import digits28

from nntransfer.cli.main import main
from nntransfer.compat.orbit_transfer import configs as ot
from nntransfer.compat.orbit_transfer._translate import Refused
from nntransfer.recipes.loading import load_recipe

FIXTURES = Path(__file__).parent / "fixtures" / "orbit_transfer_aistats"
IMPORT_LINE = "from nntransfer.compat.orbit_transfer.configs import *"


def module_text(name: str) -> str:
    text = (FIXTURES / f"{name}.py.txt").read_text()
    assert IMPORT_LINE in text and "from orbit_transfer" not in text  # only the import line differs
    return text


# ---------------------------------------------------------------------- the eight modules


@pytest.mark.parametrize("name", sorted(path.name.removesuffix(".py.txt") for path in FIXTURES.glob("*.py.txt")))
def test_each_module_loads_whole(name, tmp_path):
    """Every module builds every chain it defines (none is refused at load; what each trains:
    tests/test_compat_orbit_transfer_step_loop.py for MNIST-1D, tests/test_compat_orbit_transfer_equivariance.py
    and below for the 2-D modules)."""
    recipe = tmp_path / f"{name}.py"
    recipe.write_text(module_text(name))
    chains = load_recipe(str(recipe)).transfer_experiments
    assert len(chains) >= 2 and all(len(chain) >= 1 for chain in chains.values())


# ---------------------------------------------------------------------- the chains of the 2-D modules that run


def cnn_linear_chains_that_run() -> str:
    """mnist_2d_cnn_linear.py cut to the chains that run here, each exactly as the module builds it: its
    classes, the teacher, the knowledge distillation, RDL and attention transfer chains, "MNIST Experiment
    Student" and "MNIST-C Experiment Student" (left out: the learned orbit's chains, which
    tests/test_compat_orbit_transfer_equivariance.py runs)."""
    text = module_text("mnist_2d_cnn_linear")
    head = text.split("########## Orbit #############")[0]
    transfer = "##### KD ##########" + text.split("##### KD ##########")[1]
    assert 'Description(name=f"MNIST-C Experiment Student", seed=seed)' in transfer
    return head + transfer


@pytest.mark.slow
def test_the_transfer_and_student_chains_of_mnist_2d_cnn_linear_check_and_train(aistats_mnist_dir, tmp_path, capsys):
    recipe = tmp_path / "cnn_linear.py"
    recipe.write_text(cnn_linear_chains_that_run())
    common = ["--data-dir", str(aistats_mnist_dir), "--workdir", str(tmp_path / "work"), "--device", "cpu", "--quiet"]
    # RDL with dist_measure="corr" crashed in the original: its four chains are refused before anything trains
    assert main(["run", str(recipe), "--dry-run", *common]) == 2
    refused = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(refused) == 4 and all("RDL (corr)" in line and "it trained only dist_measure='CKA'" in line
                                     for line in refused), refused
    chains = ["Translation Invariant Knowledge Distillation T=2.0", "Translation Invariant RDL (CKA) gamma:0.5",
              "Translation Invariant Attention Transfer gamma:0.5", "MNIST Experiment Student",
              "MNIST-C Experiment Student"]
    picked = [arg for chain in chains for arg in ("--chain", chain)]
    assert main(["run", str(recipe), "--dry-run", *picked, *common]) == 0
    assert "dry run, nothing trained or written" in capsys.readouterr().out
    assert main(["run", str(recipe), "--fast-dev-run", *picked, *common]) == 0
    assert "6 checked, 0 broke" in capsys.readouterr().out  # the teacher once, three students, two from scratch
    # the distillation chain trains for real (on 40 digits: until early stopping, as the module's trainer says)
    assert main(["run", str(recipe), "--chain", chains[0], *common]) == 0
    assert "2 trained, 0 failed" in capsys.readouterr().out


# ---------------------------------------------------------------------- what the configs mean


def recipe_namespace(name: str, cut: str) -> dict:
    """The classes a module defines (its text up to ``cut``), run as the module runs them."""
    namespace: dict = {}
    exec(compile(module_text(name).split(cut)[0], f"{name}.py", "exec"), namespace)
    return namespace


def test_mnist_1d_data_is_the_original_shift_protocol():
    # orbit_transfer/dataset/mnist_1d.py dataset_fn: valid_size of the training signals held out; training and
    # validation signals rolled by np.random.randint(0, train_shift) (exclusive), all by 0 for train_shift=0;
    # "test" rolled by train_shift .. 39, "test_all" by 0 .. 39; orbit_transfer/configs/dataset/mnist_1d.py:
    # train_shift=30 by default; simple_trainer.py: batches of SimpleTrainerConfig.batch_size=1000.
    ns = recipe_namespace("mnist_1d_shift", "for shift in")
    for shift, (low, high), unseen in ((np.float64(5.0), (0, 4), (5, 39)), (np.float64(0.0), (0, 0), (0, 39)),
                                       (np.float64(40.0), (0, 39), (0, 0)), (None, (0, 29), (30, 39))):
        data = ns["BaselineDataset"]() if shift is None else ns["BaselineDataset"](train_shift=shift)
        fields = data.to_dict()
        assert fields["dataset_cls"] == "MNIST1D" and fields["valid_size"] == 0.1 and fields["batch_size"] == 1000
        assert tuple(fields["dataset_kwargs"]["train_shift"]) == (low, high)
        assert fields["test_transforms"] == {
            "test_shift": {"transform": "circular_shift", "low": unseen[0], "high": unseen[1]},
            "test_all": {"transform": "circular_shift", "low": 0, "high": 39},
        }
    with pytest.raises(Refused, match="train_shift=2.5 is not a whole number"):
        ns["BaselineDataset"](train_shift=2.5)
    with pytest.raises(Refused, match="original=True"):
        ns["BaselineDataset"](original=True)


def _circular_conv(h, weight, padding):
    return torch.nn.functional.conv1d(torch.nn.functional.pad(h, (padding, padding), mode="circular"), weight)


def original_forward(kind: str, weights, x):
    """orbit_transfer/models/mnist_1d.py's forward of ``kind`` with the given weights (bias-free, in layer order)."""
    if kind in ("SimpleFullyConv", "FullyConv"):  # conv (circular, padding 2) + ReLU ..., conv to 10 maps, max
        h = x.view(-1, 1, x.shape[-1])
        for weight in weights[:-1]:
            h = _circular_conv(h, weight, 2).relu()
        return torch.max(_circular_conv(h, weights[-1], 2), dim=2)[0]
    if kind == "SimpleFC":  # linear_stack (ReLUs between), then linear
        h = x.flatten(1)
        for weight in weights[:-2]:
            h = (h @ weight.T).relu()
        return (h @ weights[-2].T) @ weights[-1].T
    assert kind == "FCSingleLayer"  # linear1, ReLU, linear2, reshape (B, 10, 40), max over the 40
    h2 = (x.flatten(1) @ weights[0].T).relu() @ weights[1].T
    return torch.max(h2.reshape(h2.shape[0], 10, -1), dim=2)[0]


@pytest.mark.parametrize("module, cls, kind, shapes", [
    # the parameter shapes orbit_transfer/models/mnist_1d.py gives the recipes' settings (channels 15, kernel 5,
    # padding 2, layers 2; the pooling module's student hidden_dim=600)
    ("mnist_1d_shift", "TeacherModel", "SimpleFullyConv", [(15, 1, 5), (10, 15, 5)]),
    ("mnist_1d_shift", "StudentModel", "SimpleFC", [(600, 40), (400, 600), (10, 400)]),
    ("mnist_1d_with_pooling_shift", "TeacherModel", "FullyConv", [(15, 1, 5), (10, 15, 5)]),
    ("mnist_1d_with_pooling_shift", "StudentModel", "FCSingleLayer", [(600, 40), (400, 600)]),
])
def test_mnist_1d_models_compute_what_the_originals_compute(module, cls, kind, shapes):
    from nntransfer.compat.orbit_transfer.models import original_layers
    from nntransfer.configs import ClassificationModelConfig
    from nntransfer.models.builder import build_model

    ns = recipe_namespace(module, "class BaselineTrainer")
    config = ns[cls]()
    assert config.fn == "nntransfer.compat.orbit_transfer.models.classification_model_builder"
    model = build_model(ClassificationModelConfig.from_dict(config.to_dict()), (1, 40), 10, seed=3)
    weights = [parameter.detach() for parameter in model.parameters()]
    assert [tuple(weight.shape) for weight in weights] == shapes  # no biases anywhere, as the original's
    x = torch.randn(8, 1, 40, generator=torch.Generator().manual_seed(0))
    model.eval()
    assert torch.allclose(model(x), original_forward(kind, weights, x), atol=1e-5)
    # the original's representation layers (what its transfer methods read) are layers of this model
    modules = dict(model.named_modules())
    original = original_layers(config.type.split("-", 1)[1], config.options.get("layers", 2))
    assert original and all(path in modules for path in original.values())
    if kind in ("SimpleFullyConv", "FullyConv"):  # circular convolutions read out by a maximum: shift-invariant
        assert torch.allclose(model(x), model(torch.roll(x, 7, dims=-1)), atol=1e-5)


def test_mnist_1d_model_fields_the_originals_could_not_have_meant_are_refused():
    ns = recipe_namespace("mnist_1d_with_pooling_shift", "class BaselineTrainer")
    with pytest.raises(Refused, match="static_equivariance_transfer' without layers"):
        ot.MNIST1DModelConfig(type="static_equivariance_transfer")
    with pytest.raises(Refused, match="input_size=50: MNIST-1D signals have 40 values"):
        ns["TeacherModel"](input_size=50)
    with pytest.raises(Refused, match="dropout=0.1: orbit_transfer's MNIST-1D models do not read it"):
        ns["StudentModel"](dropout=0.1)
    with pytest.raises(Refused, match="type='fully_conv_single' with layers=3: the original model has two layers"):
        ns["TeacherModel"](layers=3)
    with pytest.raises(Refused, match="type='simple_fc' without layers"):
        ot.MNIST1DModelConfig(type="simple_fc")
    with pytest.raises(Refused, match="type='cnn' is no model type of orbit_transfer/models/mnist_1d.py"):
        ot.MNIST1DModelConfig(type="cnn")


def test_an_mnist_1d_model_of_a_module_trains_on_its_data(tmp_path):
    # the module's data and model with this library's trainer (the original step loop: test_compat_orbit_transfer_step_loop)
    from nntransfer import run
    from nntransfer.configs import ClassificationTrainerConfig, Description, Experiment, TransferExperiment

    ns = recipe_namespace("mnist_1d_shift", "class BaselineTrainer")
    trainer = ClassificationTrainerConfig(max_iter=1, show_progress=False, device="cpu")
    chain = TransferExperiment([Experiment(ns["BaselineDataset"](train_shift=5), ns["StudentModel"](), trainer, seed=1)])
    rows = run({Description("mnist-1d student", 1): chain}, workdir=str(tmp_path / "work"), progress=False)
    assert [row.state for row in rows] == ["done"]


def test_mnist_2d_models_data_and_trainer_mean_the_originals():
    ns = recipe_namespace("mnist_2d_cnn_linear", "seed = 42")
    # orbit_transfer/models/cnn.py CNN: Conv2d(bias) -> MaxOut(1) -> ReLU -> MaxPool2d(1, 2, 3) -> Dropout(0.1) per
    # block, AdaptiveAvgPool2d(1), Flatten, Linear(64, 10, bias); layers.0/5/10 the convolutions, layers.17 the logits
    teacher = ns["TeacherModel"](get_intermediate_rep={"layers.0": "out.1", "layers.5": "out.2", "layers.10": "out.3",
                                                       "layers.17": "out.4"}).to_dict()
    assert teacher["type"] == "cnn2d" and teacher["dropout"] == 0.1 and not teacher["batch_norm"]
    assert teacher["options"] == {"channels": [128, 64, 64], "kernel_sizes": [3, 3, 3], "pool_sizes": [1, 2, 3],
                                  "padding": 0, "global_pool": "avg", "core_bias": True}
    assert teacher["readout_bias"] is True
    assert teacher["get_intermediate_rep"] == {"out.1": "core.conv1", "out.2": "core.conv2", "out.3": "core.conv3",
                                               "out.4": "readout.fc"}
    # orbit_transfer/models/mlp.py MLP: Flatten, Linear(bias) -> ReLU -> Dropout(0.1) for 784-512-128-32, then
    # Linear(32, 10, bias=False); layers.1/4/7 the hidden linear layers, layers.10 the logits
    student = ns["StudentModel"](get_intermediate_rep={"layers.1": "out.1", "layers.4": "out.2", "layers.7": "out.3",
                                                       "layers.10": "out.4"}).to_dict()
    assert student["type"] == "mlp" and student["options"] == {"hidden_sizes": [512, 128, 32], "core_bias": True}
    assert student["dropout"] == 0.1 and student["readout_bias"] is False and not student["batch_norm"]
    assert student["get_intermediate_rep"] == {"out.1": "core.fc1", "out.2": "core.fc2", "out.3": "core.fc3",
                                               "out.4": "readout.fc"}
    # orbit_transfer/configs/dataset/mnist.py MNIST (28x28, no augmentation, no normalisation); sinzlab/nntransfer
    # dataset/img_dataset_loader.py add_rotated_test: DiscreteRotateTransform([0, 90, 180, 270]) on the test set
    data = ns["BaselineDataset"]().to_dict()
    assert data["dataset_cls"] == "MNIST" and data["input_size"] == 28 and data["batch_size"] == 64
    assert not data["apply_normalization"] and not (data["augment_crop"] or data["augment_flip"])
    assert data["add_corrupted_test"] is True and data["valid_size"] == 0.1
    assert data["test_transforms"] == {"test_rot90s": {"transform": "random_rotation", "angles": [0, 90, 180, 270]}}
    # sinzlab/nntransfer trainer/trainer.py prepare_lr_schedule: Adam(amsgrad=False, lr=3e-4, weight_decay=2e-9),
    # "adaptive" = ReduceLROnPlateau(factor=lr_decay, patience, threshold, min_lr=1e-5); accuracy, maximised
    trainer = ns["BaselineTrainer"]().to_dict()
    assert trainer["optimizer"] == "Adam" and trainer["lr"] == 0.0003
    assert trainer["optimizer_options"] == {"amsgrad": False, "weight_decay": 2e-9}
    assert trainer["scheduler"] == "plateau"
    assert trainer["scheduler_options"] == {"factor": 0.8, "patience": 20, "threshold": 0.0, "min_lr": 1e-5}
    assert (trainer["max_iter"], trainer["lr_warmup"], trainer["patience"], trainer["lr_decay_steps"]) == (400, 20, 20, 5)
    assert trainer["objective"] == "accuracy" and trainer["maximize"] is True and trainer["main_loop_modules"] == []
    assert trainer["loss_functions"] == {"img_classification": "CrossEntropyLoss"}
    # the transfer step's student: sinzlab/nntransfer's student_model form, kept (the step's model is the teacher)
    transfer = ns["TransferTrainer"](student_model=ns["StudentModel"]().to_dict()).to_dict()
    assert transfer["student_model"]["type"] == "mlp" and transfer["main_loop_modules"] == []


def test_a_regularizer_or_decay_the_original_lacked_is_refused_saying_so():
    ns = recipe_namespace("mnist_2d_cnn_linear", "seed = 42")
    with pytest.raises(Refused, match="'regularizer': 'Mixup'.*no regularizer of orbit_transfer's main-loop modules"):
        ns["TransferTrainer"](regularization={"regularizer": "Mixup", "gamma": 1.0})
    with pytest.raises(Refused, match="decay_gamma=True \\(KnowledgeDistillation\\)"):
        ns["TransferTrainer"](regularization={"regularizer": "KnowledgeDistillation", "decay_gamma": True})


def test_representation_regularizers_keep_the_keys_the_original_read(caplog, monkeypatch):
    # representation.py: loss += gamma * sum over the student's named outputs; knowledge_distillation.py reads
    # softmax_temp, attention_transfer.py vit_input, rdl.py dist_measure and use_arctanh
    from nntransfer.compat.orbit_transfer import _translate

    monkeypatch.setattr(_translate, "_warned", set())  # each warning is given once per process
    ns = recipe_namespace("mnist_2d_cnn_linear", "seed = 42")
    student = ns["StudentModel"](get_intermediate_rep={"layers.10": "out.4"}).to_dict()
    with caplog.at_level("WARNING"):
        attention = ns["TransferTrainer"](student_model=student, regularization={
            "regularizer": "AttentionTransfer", "gamma": 0.5, "decay_alpha": False}).to_dict()
    assert "regularization['decay_alpha']=False is read by nothing in orbit_transfer's AttentionTransfer" in caplog.text
    assert attention["regularization"] == {"regularizer": "AttentionTransfer", "gamma": 0.5}
    assert attention["main_loop_modules"] == ["nntransfer.compat.orbit_transfer.representation.RepresentationRegularization"]
    kd = ns["TransferTrainer"](student_model=student, regularization={
        "regularizer": "KnowledgeDistillation", "gamma": 1, "decay_gamma": False, "softmax_temp": 2}).to_dict()
    assert kd["regularization"] == {"regularizer": "KnowledgeDistillation", "gamma": 1.0, "softmax_temp": 2.0}
    rdl = ns["TransferTrainer"](student_model=student, regularization={"regularizer": "RDL", "dist_measure": "CKA"})
    assert rdl.regularization == {"regularizer": "RDL", "gamma": 0.5, "dist_measure": "CKA", "use_arctanh": False}


def test_representation_distances_are_the_originals():
    from nntransfer.compat.orbit_transfer import representation as rep

    rng = np.random.default_rng(1)
    s, t = rng.normal(size=(5, 10)), rng.normal(size=(5, 1, 10))  # the teacher's squeezed, as the original did
    p_t = np.exp(t[:, 0] / 2) / np.exp(t[:, 0] / 2).sum(1, keepdims=True)
    p_s = np.exp(s / 2) / np.exp(s / 2).sum(1, keepdims=True)
    kd = (p_t * (np.log(p_t) - np.log(p_s))).sum() / 5 * 4
    assert float(rep.distillation_distance(torch.tensor(s), torch.tensor(t), 2.0)) == pytest.approx(kd, rel=1e-9)
    # attention: a flat 128 is 2 channels of 8 x 8; the teacher's 16 x 16 map taken at every second row and column
    flat, conv = rng.normal(size=(3, 128)), rng.normal(size=(3, 4, 16, 16))
    a_s = (flat.reshape(3, 2, 8, 8) ** 2).sum(1).reshape(3, -1)
    a_t = (conv ** 2).sum(1)[:, ::2, ::2].reshape(3, -1)
    a_s, a_t = a_s / np.linalg.norm(a_s, axis=1, keepdims=True), a_t / np.linalg.norm(a_t, axis=1, keepdims=True)
    attention = rep.attention_distance(torch.tensor(flat), torch.tensor(conv))
    assert float(attention) == pytest.approx(((a_s - a_t) ** 2).mean(), rel=1e-9)
    # RDL "CKA": the linear CKA itself, which the original added to the loss
    x, y = rng.normal(size=(6, 7)), rng.normal(size=(6, 3, 2))
    h = np.eye(6) - 1 / 6
    kx, ky = h @ x @ x.T @ h, h @ y.reshape(6, -1) @ y.reshape(6, -1).T @ h
    cka = (kx * ky).sum() / np.sqrt((kx * kx).sum() * (ky * ky).sum())
    assert float(rep.cka_similarity(torch.tensor(x), torch.tensor(y))) == pytest.approx(cka, rel=1e-9)


def test_original_defaults_and_manual_scheduler():
    # sinzlab/nntransfer configs/trainer/base.py: scheduler="manual" = MultiStepLR(lr_milestones, gamma=lr_decay)
    trainer = ot.Classification(patience=5, lr_milestones=(3, 6)).to_dict()
    assert trainer["scheduler"] == "multistep" and trainer["scheduler_options"] == {"milestones": [3, 6], "gamma": 0.8}
    assert trainer["lr"] == 0.0003 and trainer["max_iter"] == 100 and trainer["lr_decay_steps"] == 1
    assert ot.Classification(patience=5).to_dict()["scheduler"] is None
    with pytest.raises(Refused, match="patience=None"):
        ot.Classification()
    with pytest.raises(Refused, match="switch_teacher=True is mapped only for learning the orbit"):
        type("T", (ot.TransferMixin, ot.Classification), {})(patience=5, switch_teacher=True)
    # orbit_transfer/configs/model/simple_2d.py: CNNModel's own defaults (MaxOut 4) and MLPModel's (batch norm)
    with pytest.raises(Refused, match="MaxOut over more than one channel"):
        ot.CNNModel()
    with pytest.raises(Refused, match="normalises after the activation"):
        ot.MLPModel()
    with pytest.raises(Refused, match="only_translation=True .the affine orbit's translations only. is not mapped"):
        ot.TransferModel(spatial_transformer=True, only_translation=True)
    with pytest.raises(Refused, match="get_intermediate_rep layer 'layers.99'"):
        ot.MLPModel(batch_norm=False, get_intermediate_rep={"layers.99": "out"})


def test_mnist_c_as_training_data_is_its_translate_images_tested_on_mnist(aistats_mnist_dir, tmp_path):
    # orbit_transfer/dataset/torchvision_loader.py: dataset_cls="MNIST-C" trains on mnist_c/translate/train_images.npy
    # (validation from the same images) and tests on torchvision's MNIST test split
    from nntransfer.compat.orbit_transfer.simple_trainer import split_arrays
    from nntransfer.pipeline.step import resolve_function

    config = ot.MNIST(dataset_cls="MNIST-C", valid_size=0.25, batch_size=8).to_dict()
    assert config["dataset_cls"] == "MNIST-C"
    loaders = resolve_function(config.pop("fn"))(seed=1, data_dir=str(aistats_mnist_dir), **config)
    moved = np.load(aistats_mnist_dir / "mnist_c" / "translate" / "train_images.npy")[..., 0]
    x_train, _ = split_arrays(loaders["train"])
    x_val, _ = split_arrays(loaders["validation"])
    assert (len(x_train), len(x_val)) == (30, 10)
    seen = sorted(tuple(np.round(x.numpy().ravel() * 255).astype(int)) for x in torch.cat([x_train, x_val]))
    assert seen == sorted(tuple(x.ravel().astype(int)) for x in moved)  # every MNIST-C training image, once
    x_test, y_test = split_arrays(loaders["test"])
    assert torch.allclose(x_test[:, 0], torch.tensor(digits28(20, start=40)[0] / 255.0, dtype=torch.float32))
    assert torch.equal(y_test, torch.tensor(digits28(20, start=40)[1]))
    empty = tmp_path / "no_mnist_c"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="MNIST-C \\(translate\\).*train_images.npy"):
        resolve_function(ot.MNIST(dataset_cls="MNIST-C").fn)(seed=1, data_dir=str(empty),
                                                               **{k: v for k, v in config.items()})


@pytest.mark.parametrize("mode", ["Training", "Validation"])
def test_representation_regularizers_weigh_the_task_loss_one_minus_gamma_in_every_mode(mode):
    # orbit_transfer/trainer/img_classification_trainer.py compute_loss: loss += criterion(outputs, targets) *
    # (1 - gamma) of the first main-loop module with a gamma, in every mode; the distance only in training
    from types import SimpleNamespace

    from nntransfer.compat.orbit_transfer.representation import RepresentationRegularization, distillation_distance
    from nntransfer.trainer.main_loop_modules.base import BatchState, LoopContext, ModelOutput

    settings = {"regularizer": "KnowledgeDistillation", "gamma": 0.3, "softmax_temp": 2.0}
    context = LoopContext(config=SimpleNamespace(regularization=settings), device=torch.device("cpu"), seed=0,
                          model=torch.nn.Identity())
    module = RepresentationRegularization(context)
    student, teacher = torch.randn(4, 10), torch.randn(4, 10)
    state = BatchState(mode, "img_classification", torch.zeros(4, 1), torch.zeros(4, dtype=torch.long), {}, None)
    state.output, state.teacher_output = ModelOutput(student, {"out.4": student}), ModelOutput(teacher, {"out.4": teacher})
    module.post_forward(state)
    assert state.task_loss_weight == pytest.approx(0.7)
    if mode == "Training":
        term = state.losses["orbit_transfer_KnowledgeDistillation"]
        assert term.weight == 0.3 and term.value.item() == pytest.approx(distillation_distance(student, teacher, 2.0).item())
    else:
        assert not state.losses
