"""CKA transfer (Nix et al., 2022 compare it with KD, RDL and attention transfer): the pure ``linear_cka``
against its defining properties and a plain numpy HSIC implementation, the mixin's fields and checks, the
preflight's refusals, and a real teacher -> student chain on scikit-learn's digits through ``nntransfer.run``."""

import logging

import numpy as np
import pytest
import torch
from test_trainer import TinyNet, train
from torch import nn

import nntransfer
from nntransfer.configs import (
    CKATransferMixin,
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Experiment,
    ImageDatasetConfig,
    TransferExperiment,
)
from nntransfer.dataset.loader import img_dataset_loader
from nntransfer.errors import ChainCheckError
from nntransfer.models.builder import build_model
from nntransfer.models.intermediate import IntermediateLayerWrapper
from nntransfer.pipeline.local import LocalStore
from nntransfer.pipeline.store import DONE
from nntransfer.trainer import trainer_config_from_dict
from nntransfer.trainer.main_loop_modules import MODULES
from nntransfer.trainer.main_loop_modules.chain_check import StepCheck
from nntransfer.trainer.main_loop_modules.cka import CKATransfer, cka_loss, linear_cka

TASK = "img_classification"


class CKATrainer(CKATransferMixin, ClassificationTrainerConfig):
    pass


def numpy_cka(x, y):
    """Linear CKA by its definition (Kornblith et al., 2019): HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with
    HSIC(K, L) = trace(K H L H) / (n - 1)^2, K = X X^T and L = Y Y^T of the uncentred, flattened examples."""
    x, y = np.asarray(x, dtype=np.float64).reshape(len(x), -1), np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n

    def hsic(k, l_):
        return np.trace(k @ h @ l_ @ h) / (n - 1) ** 2

    k, l_ = x @ x.T, y @ y.T
    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def orthogonal(d, seed):
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


# ---------------------------------------------------------------------- the pure function


def test_cka_of_a_representation_with_itself_is_one_and_it_is_symmetric_and_in_0_1():
    torch.manual_seed(0)
    x, y = torch.randn(32, 3, 4, 4), torch.randn(32, 7)  # a conv map and a flat layer of another width
    assert linear_cka(x, x).item() == pytest.approx(1.0, abs=1e-6)
    assert linear_cka(x, x.flatten(1)).item() == pytest.approx(1.0, abs=1e-6)  # examples are flattened
    assert linear_cka(x, y).item() == pytest.approx(linear_cka(y, x).item(), rel=1e-6)
    assert 0.0 < linear_cka(x, y).item() < 1.0
    assert cka_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)


def test_cka_is_invariant_to_orthogonal_transforms_scaling_and_translation_of_either_side():
    torch.manual_seed(1)
    x, y = torch.randn(40, 12, dtype=torch.float64), torch.randn(40, 9, dtype=torch.float64)
    reference = linear_cka(x, y).item()
    qx, qy = orthogonal(12, 1), orthogonal(9, 2)
    assert linear_cka(x @ qx, y).item() == pytest.approx(reference, rel=1e-9)
    assert linear_cka(x, y @ qy).item() == pytest.approx(reference, rel=1e-9)
    assert linear_cka(7.5 * x, 0.01 * y).item() == pytest.approx(reference, rel=1e-9)
    assert linear_cka(x + 3.0, y - torch.randn(9, dtype=torch.float64)).item() == pytest.approx(reference, rel=1e-9)
    assert linear_cka(x, x @ qx * 4.0).item() == pytest.approx(1.0, rel=1e-9)


def test_cka_is_not_invariant_to_an_arbitrary_invertible_linear_map():
    torch.manual_seed(2)
    x, y = torch.randn(40, 12, dtype=torch.float64), torch.randn(40, 9, dtype=torch.float64)
    stretch = torch.diag(torch.logspace(-2, 2, 12, dtype=torch.float64)) @ orthogonal(12, 3)  # invertible
    assert torch.linalg.matrix_rank(stretch).item() == 12
    assert linear_cka(x, x @ stretch).item() < 0.9
    assert abs(linear_cka(x @ stretch, y).item() - linear_cka(x, y).item()) > 1e-3


@pytest.mark.parametrize(
    "seed, n, shape_x, shape_y", [(0, 16, (5,), (30,)), (1, 64, (3, 4, 4), (10,)), (2, 7, (50,), (2, 3))]
)
def test_cka_equals_the_numpy_hsic_reference_on_random_data(seed, n, shape_x, shape_y):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape_x)) + rng.normal(size=shape_x)  # not centred
    y = rng.normal(size=(n, *shape_y)) * 3.0
    y.reshape(n, -1)[:, 0] += x.reshape(n, -1)[:, 0]  # some shared structure
    expected = numpy_cka(x, y)
    assert linear_cka(torch.tensor(x), torch.tensor(y)).item() == pytest.approx(expected, rel=1e-10)
    assert linear_cka(
        torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    ).item() == pytest.approx(expected, rel=1e-4)


def test_the_gradient_flows_to_the_student_side_and_not_to_the_teacher_side():
    torch.manual_seed(3)
    x = torch.randn(16, 8, requires_grad=True)
    t = torch.randn(16, 4, 2, 2, requires_grad=True)
    linear_cka(x, t).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0 and t.grad.abs().sum() > 0
    x.grad, t.grad = None, None
    cka_loss(x, t).backward()
    assert x.grad.abs().sum() > 0 and t.grad is None  # the teacher is a fixed target

    # a small step against the gradient of 1 - CKA raises CKA
    x = torch.randn(16, 8, requires_grad=True)
    before = cka_loss(x, t)
    before.backward()
    with torch.no_grad():
        after = cka_loss(x - 0.1 * x.grad / x.grad.norm(), t)
    assert after.item() < before.item()


def test_a_constant_batch_or_one_example_has_cka_0_and_a_zero_gradient_not_nan():
    y = torch.randn(6, 4)
    for x in (torch.full((6, 5), 3.0, requires_grad=True), torch.randn(1, 5, requires_grad=True)):
        value = linear_cka(x, y[: len(x)])
        value.backward()
        assert value.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))
    assert linear_cka(torch.zeros(6, 3), torch.zeros(6, 3)).item() == 0.0
    with pytest.raises(ValueError, match="linear_cka: .* must hold the same examples") as err:
        linear_cka(torch.randn(6, 4), torch.randn(5, 4))
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------- the mixin and the module


def test_the_mixin_adds_the_module_checks_its_fields_and_rebuilds_from_a_row():
    cfg = CKATrainer(cka_layers={"core": "readout.relu2"})
    assert cfg.main_loop_modules == ["CKATransfer"] and cfg.cka_weight == 1.0
    assert MODULES.get("CKATransfer") is CKATransfer and CKATransfer.config_mixin is CKATransferMixin
    assert CKATransfer.student_layers(cfg) == ["core"] and CKATransfer.teacher_layers(cfg) == ["readout.relu2"]
    rebuilt = trainer_config_from_dict(cfg.to_dict())
    assert rebuilt.to_dict() == cfg.to_dict() and CKATransferMixin in type(rebuilt).__mro__
    for kwargs, match in [
        (dict(), "cka_layers must be a non-empty dict"),
        (dict(cka_layers={"core": ""}), "cka_layers must be a non-empty dict"),
        (dict(cka_layers={"core": "core"}, cka_weight=-0.5), "cka_weight must be a finite number >= 0"),
        (dict(cka_layers={"core": "core"}, cka_weight=float("nan")), "cka_weight must be a finite number"),
    ]:
        with pytest.raises(ValueError, match=match) as err:
            CKATrainer(**kwargs)
        assert "\n" not in str(err.value)


class Unfold(nn.Module):
    """A layer whose output holds another number of rows than the batch has examples: (B, C, H, W) -> (B*H, C*W)."""

    def forward(self, x):
        return x.permute(0, 2, 1, 3).reshape(x.shape[0] * x.shape[2], -1)


def test_check_step_refuses_a_pair_of_different_numbers_of_examples_in_one_line():
    student = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), Unfold(), nn.Linear(16, 10))  # not a batch per example
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, 10))
    step = StepCheck(CKATrainer(cka_layers={"1": "2"}), student, teacher, torch.randn(4, 1, 8, 8))
    CKATransfer.check_step(step)
    assert step.problems == [
        "CKATransfer (cka_layers): linear_cka: the student's layer (32, 16) and the teacher's (4, 12) "
        "must hold the same examples (equal first dimension); run the teacher on the student's batch"
    ]
    fine = StepCheck(
        CKATrainer(cka_layers={"0": "2", "output": "output"}), student[:1], teacher, torch.randn(4, 1, 8, 8)
    )
    CKATransfer.check_step(fine)  # a conv map against a flat layer of another width is what CKA compares
    assert fine.problems == []


class DeadStudent(nn.Module):
    """An MLP whose hidden layer is dead (ReLU of a large negative bias): the same zeros for every example."""

    def __init__(self):
        super().__init__()
        self.core = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU())
        nn.init.constant_(self.core[1].bias, -1e3)
        self.readout = nn.Linear(8, 10)

    def forward(self, x):
        return self.readout(self.core(x))


def test_a_layer_that_does_not_vary_over_a_batch_is_said_once_and_trains_without_nan(caplog):
    cfg = CKATrainer(cka_layers={"core": "core"}, max_iter=2, show_progress=False)
    with caplog.at_level(logging.WARNING, logger="nntransfer.trainer.main_loop_modules.cka"):
        _, output, state = train(cfg, model=DeadStudent(), teacher_model=TinyNet())
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "CKATransfer: the student's layer 'core' is the same for every example of a training batch; "
        "its CKA is 0 and gives no gradient there"
    ]
    log = output["tracker"]["log"]["Training"][TASK]
    assert [value / n for value, n in zip(log["cka"][1:], log["normalization"][1:])] == pytest.approx([1.0, 1.0])
    assert all(torch.isfinite(value).all() for value in state.values())


# ---------------------------------------------------------------------- a real chain through nntransfer.run

DATA = ImageDatasetConfig(dataset_cls="Digits", input_size=12, train_subset=0.5, batch_size=64)
TEACHER = ClassificationModelConfig(type="lenet5")  # a conv teacher ...
STUDENT = ClassificationModelConfig(type="mlp", options={"hidden_sizes": [16]})  # ... and an MLP student
PAIR = {"core": "readout.relu2"}  # the student's 16 hidden units against the teacher's 84 penultimate ones
EPOCHS = 6
STUDENT_TRAINING = dict(max_iter=EPOCHS, lr=0.003, early_stopping=False, show_progress=False)


def teacher_step(seed=1):
    return Experiment(
        DATA, TEACHER, ClassificationTrainerConfig(max_iter=3, show_progress=False), seed=seed, comment="teacher"
    )


def cka_chain(weight=1.0, layers=PAIR, seed=1):
    student = CKATrainer(
        teacher="previous", start_from_previous=False, cka_layers=layers, cka_weight=weight, **STUDENT_TRAINING
    )
    return TransferExperiment([teacher_step(seed), Experiment(DATA, STUDENT, student, seed=seed, comment="cka")])


def representation(store, model_config, key, path, inputs):
    model = build_model(model_config, tuple(inputs.shape[1:]), 10)
    model.load_state_dict(store.load_weights(key))
    with torch.no_grad():
        return IntermediateLayerWrapper(model.eval(), {path: path})(inputs)[0][path]


@pytest.mark.slow  # about 4 s: a teacher and two students
def test_a_conv_teacher_raises_an_mlp_students_cka_at_the_matched_layer(tmp_path, caplog):
    with_cka = cka_chain(weight=1.0)
    plain = TransferExperiment(
        [
            teacher_step(),
            Experiment(
                DATA,
                STUDENT,
                ClassificationTrainerConfig(start_from_previous=False, **STUDENT_TRAINING),
                seed=1,
                comment="plain",
            ),
        ]
    )
    with caplog.at_level(logging.INFO, logger="nntransfer.trainer.main_loop_modules.cka"):
        rows = nntransfer.run([with_cka, plain], store=f"local:{tmp_path}", progress=False)
    assert {row.state for row in rows} == {DONE}
    assert any(
        "CKATransfer: 1 - linear CKA of {'core': 'readout.relu2'}, weight 1" in r.message for r in caplog.records
    )

    store = LocalStore(tmp_path)
    log = store.load(with_cka.step_key(1)).output["tracker"]["log"]["Training"][TASK]
    term = [value / n for value, n in zip(log["cka"][1:], log["normalization"][1:])]  # per example, every epoch
    assert len(term) == EPOCHS and all(0.0 <= value <= 1.0 for value in term)
    assert term[-1] < term[0]  # 1 - CKA falls as the student learns the teacher's arrangement
    assert "cka" not in store.load(plain.step_key(1)).output["tracker"]["log"]["Training"][TASK]

    loaders = img_dataset_loader(1, **DATA.to_dict())
    inputs = torch.cat([batch[0] for batch in loaders["validation"][TASK]])
    ((student_path, teacher_path),) = PAIR.items()
    teacher = representation(store, TEACHER, with_cka.step_key(0), teacher_path, inputs)
    cka_with = linear_cka(representation(store, STUDENT, with_cka.step_key(1), student_path, inputs), teacher).item()
    cka_without = linear_cka(representation(store, STUDENT, plain.step_key(1), student_path, inputs), teacher).item()
    assert cka_with > cka_without + 0.05, (cka_with, cka_without)  # held-out examples, same seed and teacher


def test_the_weight_and_the_layers_are_part_of_the_steps_key():
    keys = {cka_chain(weight=w).step_key(1)["trainer_hash"] for w in (0.0, 0.5, 1.0)}
    assert len(keys) == 3
    assert cka_chain(layers={"core": "core"}).step_key(1) != cka_chain().step_key(1)
    assert cka_chain(weight=0.5).step_key(0) == cka_chain().step_key(0)  # the teacher's step is the same


def test_a_chain_with_an_unknown_layer_or_without_a_teacher_is_refused_before_anything_is_written(tmp_path):
    typo = cka_chain(layers={"core.fc9": "readout.relu2"})
    no_teacher = TransferExperiment(
        [
            teacher_step(),
            Experiment(
                DATA, STUDENT, CKATrainer(start_from_previous=False, cka_layers=PAIR, **STUDENT_TRAINING), seed=1
            ),
        ]
    )
    with pytest.raises(ChainCheckError) as caught:
        nntransfer.run([typo, no_teacher], store=f"local:{tmp_path / 'work'}", progress=False)
    problems = caught.value.problems
    assert any(
        "step 1: CKATransfer (cka_layers): the student's CoreReadoutModel has no layer 'core.fc9'; "
        "did you mean 'core.fc1'?" in line
        for line in problems
    ), problems
    assert any("step 1: CKATransfer needs a teacher: set teacher='previous'" in line for line in problems), problems
    assert all("\n" not in line for line in problems)
    steps = tmp_path / "work" / "steps"
    assert not steps.exists() or not any(steps.iterdir())
