"""Function-transfer methods with a teacher in the student's loop (online distillation, RDL, attention
transfer, direct layer matching) and the parameter-distance regularisers of fine-tuning chains (L2-SP,
EWC): their pure functions, their config checks, and real runs on the digits with a conv teacher and an
MLP student."""

import pytest
import torch
from test_trainer import IMAGES, LABELS, TASK, TinyNet, config, digits_loaders, train
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nntransfer.configs.trainer.classification import ClassificationTrainerConfig
from nntransfer.configs.trainer.mixins import (
    AttentionTransferMixin,
    KnowledgeDistillationMixin,
    LayerMatchingMixin,
    NoiseAugmentationMixin,
    ParameterDistanceMixin,
    RDLMixin,
)
from nntransfer.models.intermediate import IntermediateLayerWrapper
from nntransfer.trainer import ImgClassificationTrainer, trainer_config_from_dict
from nntransfer.trainer.main_loop_modules import OUTPUT, MainLoopModule, register
from nntransfer.trainer.main_loop_modules.attention_transfer import attention_map, attention_transfer_loss
from nntransfer.trainer.main_loop_modules.knowledge_distillation import distillation_loss
from nntransfer.trainer.main_loop_modules.layer_matching import layer_matching_loss
from nntransfer.trainer.main_loop_modules.parameter_distance import ewc_penalty, l2sp_penalty
from nntransfer.trainer.main_loop_modules.rdl import rdl_loss, representational_dissimilarity


class KDConfig(KnowledgeDistillationMixin, ClassificationTrainerConfig):
    pass


class NoisyKDConfig(KnowledgeDistillationMixin, NoiseAugmentationMixin, ClassificationTrainerConfig):
    pass


class RDLConfig(RDLMixin, ClassificationTrainerConfig):
    pass


class ATConfig(AttentionTransferMixin, ClassificationTrainerConfig):
    pass


class MatchConfig(LayerMatchingMixin, ClassificationTrainerConfig):
    pass


class ParamConfig(ParameterDistanceMixin, ClassificationTrainerConfig):
    pass


class MLP(nn.Module):
    """A student of another architecture than the conv teacher: core = flatten, linear, ReLU (B, hidden);
    readout = linear."""

    def __init__(self, hidden=256, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.core = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU())
        self.readout = nn.Linear(hidden, 10)

    def forward(self, x):
        return self.readout(self.core(x))


@pytest.fixture(scope="module")
def teacher_state():
    """A conv TinyNet trained for two epochs (the previous step of the chain)."""
    torch.set_num_threads(1)
    _, _, state = train(config(max_iter=2))
    return state


def make_teacher(state):
    teacher = TinyNet()
    teacher.load_state_dict(state)
    return teacher


def per_example(output, name):
    """The logged objective ``name`` of every training epoch, per example."""
    log = output["tracker"]["log"]["Training"][TASK]
    return [value / n for value, n in zip(log[name][1:], log["normalization"][1:])]


@torch.no_grad()
def layers(model, paths, x):
    """{path: output of that layer} ("output" = the logits) of ``model`` in eval mode."""
    model.eval()
    extra, logits = IntermediateLayerWrapper(model, {p: p for p in paths if p != OUTPUT})(x)
    return {**extra, OUTPUT: logits}


COMMON = dict(max_iter=6, lr=0.003, show_progress=False, early_stopping=False)

# name: (config, objective, {student layer: teacher layer}, the unweighted distance of one pair)
METHODS = {
    "distillation": (KDConfig(kd_weight=1.0, **COMMON), "distillation", {OUTPUT: OUTPUT},
                     lambda s, t: distillation_loss(s, t, 4.0)),
    "rdl_correlation": (RDLConfig(rdl_layers={"core": "core"}, rdl_weight=100.0, **COMMON), "rdl", {"core": "core"},
                        lambda s, t: rdl_loss(s, t, "correlation")),
    "rdl_euclidean": (RDLConfig(rdl_layers={"core": "core"}, rdl_weight=100.0, rdl_distance="euclidean", **COMMON),
                      "rdl", {"core": "core"}, lambda s, t: rdl_loss(s, t, "euclidean")),
    "attention_transfer": (ATConfig(at_layers={"core": "core.2"}, **COMMON), "attention_transfer", {"core": "core.2"},
                           lambda s, t: attention_transfer_loss(s, t, p=2.0, beta=1.0)),
    "match_l2": (MatchConfig(match_layers={"core": "core"}, match_weight=30.0, **COMMON), "layer_matching",
                 {"core": "core"}, lambda s, t: layer_matching_loss(s, t, "l2")),
    "match_logits_cosine": (MatchConfig(match_layers={OUTPUT: OUTPUT}, match_criterion="cosine", **COMMON),
                            "layer_matching", {OUTPUT: OUTPUT}, lambda s, t: layer_matching_loss(s, t, "cosine")),
}


# ---------------------------------------------------------------------- every method in a real run


@pytest.mark.parametrize("method", list(METHODS))
def test_a_conv_teacher_pulls_an_mlp_student_and_the_term_falls(method, teacher_state):
    cfg, objective, pairs, distance = METHODS[method]
    _, output, state = train(cfg, model=MLP(), teacher_model=make_teacher(teacher_state))
    term = per_example(output, objective)
    assert len(term) == 6 and term[0] > 0
    assert term[-1] < 0.8 * term[0]  # the term falls as the student trains

    # the student ends closer to the teacher than the same student trained without the term
    _, _, plain_state = train(config(**COMMON), model=MLP())
    teacher = make_teacher(teacher_state)
    x = IMAGES[:256]
    t = layers(teacher, pairs.values(), x)

    def final_distance(student_state):
        student = MLP()
        student.load_state_dict(student_state)
        s = layers(student, pairs, x)
        return sum(distance(s[sp], t[tp]).item() for sp, tp in pairs.items())

    assert final_distance(state) < 0.8 * final_distance(plain_state)


@register
class KDWeightProbe(MainLoopModule):
    """Records, after the loss, the distillation term (weighted), the expected term, the task-loss weight and
    whether the loss is their sum, for every batch."""

    records = []
    gamma = 0.0

    def post_loss(self, state):
        expected, term = None, state.losses.get("distillation")
        if state.teacher_output is not None:
            expected = KDWeightProbe.gamma * distillation_loss(state.output.logits, state.teacher_output.logits, 4.0).item()
        weighted = None if term is None else term.weighted().item()
        total = (0.0 if term is None else term.weighted()) + state.task_loss_weight * state.task_loss
        KDWeightProbe.records.append((state.mode, weighted, expected, state.task_loss_weight,
                                      torch.allclose(total, state.loss)))


@pytest.mark.parametrize("gamma", [0.0, 0.3, 1.0])
def test_online_distillation_weights_task_and_distillation_by_one_minus_gamma_and_gamma(gamma, teacher_state):
    KDWeightProbe.records, KDWeightProbe.gamma = [], gamma
    cfg = KDConfig(kd_weight=gamma, kd_temperature=4.0, max_iter=1, show_progress=False,
                   main_loop_modules=["KnowledgeDistillation", "KDWeightProbe"])
    train(cfg, model=MLP(), teacher_model=make_teacher(teacher_state))
    training = [r for r in KDWeightProbe.records if r[0] == "Training"]
    evaluation = [r for r in KDWeightProbe.records if r[0] != "Training"]
    assert len(training) == 4 and evaluation
    for _, term, expected, weight, summed in training:
        assert weight == pytest.approx(1 - gamma) and summed
        assert term == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert gamma == 0.0 or all(term > 0 for _, term, _, _, _ in training)
    for _, term, expected, weight, summed in evaluation:  # the task loss alone, weight 1
        assert (term, expected, weight, summed) == (None, None, 1.0, True)


@register
class TeacherInputProbe(MainLoopModule):
    """Records the student's training inputs and the teacher's logits on them."""

    records = []

    def post_forward(self, state):
        if state.teacher_output is not None:
            TeacherInputProbe.records.append(state.teacher_output.logits.clone())


@register
class StudentInputs(MainLoopModule):
    """Records the student's training inputs after the earlier modules' pre_forward."""

    inputs = []

    def pre_forward(self, state):
        if state.training:
            StudentInputs.inputs.append(state.inputs.clone())


def test_online_distillation_sees_the_teacher_on_the_students_noisy_batch(teacher_state):
    TeacherInputProbe.records, StudentInputs.inputs = [], []
    loaders = digits_loaders()
    loaders["train"][TASK] = DataLoader(TensorDataset(IMAGES[:128], LABELS[:128]), batch_size=64)
    cfg = NoisyKDConfig(noise_std={0.5: 1.0}, max_iter=1, show_progress=False,
                        main_loop_modules=["NoiseAugmentation", "StudentInputs", "KnowledgeDistillation", "TeacherInputProbe"])
    train(cfg, model=MLP(), loaders=loaders, teacher_model=make_teacher(teacher_state))
    teacher = make_teacher(teacher_state).eval()
    assert len(StudentInputs.inputs) == len(TeacherInputProbe.records) == 2
    with torch.no_grad():
        for x, logits in zip(StudentInputs.inputs, TeacherInputProbe.records):
            assert not torch.equal(x, IMAGES[:64]) and not torch.equal(x, IMAGES[64:128])  # noisy
            torch.testing.assert_close(logits, teacher(x))


def test_distillation_from_initial_and_transfer_data_needs_no_teacher():
    _, output, _ = train(KDConfig(kd_teacher="initial", kd_weight=0.5, max_iter=1, show_progress=False))
    assert per_example(output, "distillation")[0] >= 0
    with pytest.raises(ValueError, match="need\\(s\\) a teacher"):
        train(KDConfig(max_iter=1, show_progress=False))  # kd_teacher="teacher" is the default


# ---------------------------------------------------------------------- parameter distance (fine-tuning chains)


def shifted_loaders():
    """A new task on the same inputs: every label shifted by one."""
    loaders = digits_loaders()
    shifted = TensorDataset(IMAGES[:256], (LABELS[:256] + 1) % 10)
    loaders["train"][TASK] = DataLoader(shifted, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    return loaders


@pytest.fixture(scope="module")
def previous_step():
    """The previous step: a TinyNet trained on the digits that hands on its Fisher information."""
    torch.set_num_threads(1)
    _, output, state = train(config(max_iter=2, compute_fisher=True))
    fisher = {name[len("fisher/"):]: torch.as_tensor(value) for name, value in output["transfer_data"].items()
              if name.startswith("fisher/")}
    return state, fisher


@pytest.mark.parametrize("param_reg, weight", [("l2sp", 3.0), ("ewc", 10.0)])
def test_parameter_distance_keeps_the_fine_tuned_parameters_near_the_start(param_reg, weight, previous_step):
    state, fisher = previous_step
    finetune = dict(max_iter=4, lr=0.01, show_progress=False, early_stopping=False, restore_best=False)

    def fine_tune(cfg):
        model = TinyNet()
        model.load_state_dict(state)
        return train(cfg, model=model, loaders=shifted_loaders(), fisher=fisher)

    _, output, regularised = fine_tune(ParamConfig(param_reg=param_reg, param_reg_weight=weight, **finetune))
    _, _, plain = fine_tune(config(**finetune))
    logged = per_example(output, "param_reg")
    assert logged[0] > 0 and all(v == v for v in logged)

    start = {name: value for name, value in state.items() if not name.startswith("readout") and name in fisher}

    def distance(final):
        if param_reg == "ewc":
            return ewc_penalty(final, start, fisher).item()
        return l2sp_penalty(final, start).item()

    # (the term starts near 0, at the start itself, so it cannot fall: it keeps the parameters close instead)
    assert distance(regularised) < 0.5 * distance(plain)


def test_parameter_distance_reference_is_the_received_model_without_reset_excluded_and_frozen():
    model = TinyNet()
    received = {name: p.detach().clone() for name, p in model.named_parameters()}
    cfg = ParamConfig(reset=["core.0"], param_reg_exclude=["readout.1.bias"], freeze=["core.1.bias"], max_iter=1,
                      show_progress=False)
    trainer = ImgClassificationTrainer(model, digits_loaders(), 1, trainer_config_from_dict(cfg.to_dict()))
    module = next(m for m in trainer.modules if type(m).__name__ == "ParameterDistance")
    assert set(module.reference) == {"core.1.weight", "core.1.bias", "readout.1.weight"}
    assert not torch.equal(dict(trainer.model.named_parameters())["core.0.weight"], received["core.0.weight"])  # reset
    trainer.train()
    assert set(module.reference) == {"core.1.weight", "readout.1.weight"}  # the frozen bias cannot move
    assert all(torch.equal(module.reference[n], received[n]) for n in module.reference)


def test_l2sp_and_ewc_penalties():
    w0 = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([[0.0, -1.0]])}
    w = {"a": torch.tensor([2.0, 0.0], requires_grad=True), "b": torch.tensor([[0.0, -1.0]], requires_grad=True)}
    assert l2sp_penalty(w0, w0).item() == 0.0
    penalty = l2sp_penalty(w, w0)
    assert penalty.item() == pytest.approx(0.5 * (1 + 4))
    penalty.backward()
    assert torch.equal(w["a"].grad, w["a"].detach() - w0["a"])  # d/dw of 1/2 ||w - w0||^2
    zero = {k: torch.zeros_like(v) for k, v in w0.items()}
    assert ewc_penalty(w, w0, zero).item() == 0.0
    ones = {k: torch.ones_like(v) for k, v in w0.items()}
    assert ewc_penalty(w, w0, ones).item() == pytest.approx(penalty.item())
    fisher = {"a": torch.tensor([3.0, 0.5]), "b": torch.tensor([[7.0, 7.0]])}
    assert ewc_penalty(w, w0, fisher).item() == pytest.approx(0.5 * (3 * 1 + 0.5 * 4))
    with pytest.raises(ValueError, match="lacks \\['b'\\]"):
        ewc_penalty(w, w0, {"a": fisher["a"]})
    with pytest.raises(ValueError, match="lack \\['b'\\]"):
        l2sp_penalty({"a": w["a"]}, w0)


def test_ewc_without_the_fisher_information_says_where_to_compute_it():
    with pytest.raises(ValueError, match="set compute_fisher=True in the previous step's trainer config"):
        train(ParamConfig(param_reg="ewc", max_iter=1, show_progress=False))
    with pytest.raises(ValueError, match="names none of the regularised parameters"):
        train(ParamConfig(param_reg="ewc", max_iter=1, show_progress=False), fisher={"other.weight": torch.ones(2)})
    with pytest.raises(ValueError, match="param_reg_exclude"):
        train(ParamConfig(param_reg_exclude=["head"], max_iter=1, show_progress=False))


# ---------------------------------------------------------------------- pure functions


@pytest.mark.parametrize("distance", ["correlation", "euclidean"])
def test_rdm_is_symmetric_zero_on_the_diagonal_and_invariant_to_scaling(distance):
    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, 4)
    rdm = representational_dissimilarity(x, distance)
    assert rdm.shape == (6, 6)
    assert torch.equal(rdm.diagonal(), torch.zeros(6)) and torch.allclose(rdm, rdm.T)
    assert (rdm + torch.eye(6)).min() > 0  # distinct examples are dissimilar
    torch.testing.assert_close(representational_dissimilarity(3.0 * x, distance), rdm)
    assert rdl_loss(x, x, distance).item() == pytest.approx(0.0, abs=1e-6)
    assert rdl_loss(x, 5.0 * x, distance).item() == pytest.approx(0.0, abs=1e-6)
    assert rdl_loss(x, torch.randn(6, 10), distance).item() > 1e-3  # any size and kind of layer
    assert rdl_loss(x[:1], x[:1], distance).item() == 0.0  # no pair of examples


def test_rdm_values_by_hand_and_gradients_of_identical_examples():
    pearson = representational_dissimilarity(torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [2.0, 4.0, 6.0]]))
    torch.testing.assert_close(pearson, torch.tensor([[0.0, 2.0, 0.0], [2.0, 0.0, 2.0], [0.0, 2.0, 0.0]]))
    euclidean = representational_dissimilarity(torch.tensor([[0.0], [1.0], [3.0]]), "euclidean")
    # distances 1, 3, 2; mean over the pairs 2
    torch.testing.assert_close(euclidean, torch.tensor([[0.0, 0.5, 1.5], [0.5, 0.0, 1.0], [1.5, 1.0, 0.0]]))
    for distance in ("correlation", "euclidean"):
        same = torch.ones(4, 5, requires_grad=True)  # identical and constant examples
        rdl_loss(same, torch.randn(4, 5), distance).backward()
        assert torch.isfinite(same.grad).all()
    with pytest.raises(ValueError, match="same examples"):
        rdl_loss(torch.randn(4, 5), torch.randn(3, 5))


def test_attention_map_is_normalised_and_reads_a_flat_layer_as_channels_times_positions():
    torch.manual_seed(0)
    conv = torch.randn(3, 4, 8, 8)
    q = attention_map(conv)
    assert q.shape == (3, 64)
    torch.testing.assert_close(q.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(attention_map(conv.flatten(1), length=64), q)  # nn.Flatten's layout
    torch.testing.assert_close(attention_map(10 * conv), q)
    expected = conv.pow(2).mean(1).flatten(1)
    torch.testing.assert_close(q, expected / expected.norm(dim=1, keepdim=True))
    assert not torch.allclose(attention_map(conv, p=1.0), q)
    hot = torch.zeros(1, 2, 2, 2)
    hot[0, 1, 1, 0] = -3.0
    torch.testing.assert_close(attention_map(hot), torch.tensor([[0.0, 0.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match="cannot be read as channels x 64 positions"):
        attention_map(torch.randn(3, 100), length=64)


def test_attention_transfer_loss_is_beta_half_the_mean_normalised_map_distance():
    torch.manual_seed(0)
    s, t = torch.randn(5, 128), torch.randn(5, 4, 8, 8)
    assert attention_transfer_loss(t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert attention_transfer_loss(t.flatten(1), 2 * t).item() == pytest.approx(0.0, abs=1e-6)
    q_s, q_t = attention_map(s, length=64), attention_map(t)
    by_hand = 1000 / 2 * (q_s - q_t).norm(dim=1).mean() / 64
    assert attention_transfer_loss(s, t).item() == pytest.approx(by_hand.item(), rel=1e-5)
    both = attention_transfer_loss([s, t], [t, t], beta=10.0)
    assert both.item() == pytest.approx(attention_transfer_loss(s, t, beta=10.0).item() / 2, rel=1e-5)  # mean over pairs
    with pytest.raises(ValueError, match="cannot be read as channels x 64 positions"):
        attention_transfer_loss(torch.randn(5, 100), t)
    with pytest.raises(ValueError, match="pair layers of the same spatial size"):
        attention_transfer_loss(torch.randn(5, 4, 4, 4), t)


def test_layer_matching_loss_l2_and_cosine():
    torch.manual_seed(0)
    s, t = torch.randn(4, 256), torch.randn(4, 4, 8, 8)
    assert layer_matching_loss(s, t, "l2").item() == pytest.approx(((s - t.flatten(1)) ** 2).mean().item())
    assert layer_matching_loss(t.flatten(1), 3 * t, "cosine").item() == pytest.approx(0.0, abs=1e-6)
    assert layer_matching_loss(s, t, "cosine").item() > 0.5
    with pytest.raises(ValueError, match="has 100 values per example, the teacher's .* 256"):
        layer_matching_loss(torch.randn(4, 100), t)
    with pytest.raises(ValueError, match="unknown layer-matching criterion"):
        layer_matching_loss(s, t, "l1")


# ---------------------------------------------------------------------- configs and errors


@pytest.mark.parametrize("cfg", [
    KDConfig(),
    RDLConfig(rdl_layers={"core": "core"}),
    ATConfig(at_layers={"core": "core.2"}),
    MatchConfig(match_layers={OUTPUT: OUTPUT}),
], ids=["distillation", "rdl", "attention", "matching"])
def test_teacher_modules_refuse_to_start_without_a_teacher(cfg):
    cfg.update(max_iter=1, show_progress=False)
    with pytest.raises(ValueError, match="need\\(s\\) a teacher: set teacher='previous'"):
        train(cfg, model=MLP())


@pytest.mark.parametrize("cfg, module", [
    (KDConfig(), "KnowledgeDistillation"),
    (RDLConfig(rdl_layers={"core": "core"}, rdl_distance="euclidean"), "RDL"),
    (ATConfig(at_layers={"core": "core.2"}, at_p=1), "AttentionTransfer"),
    (MatchConfig(match_layers={"core": "core"}, match_criterion="cosine"), "LayerMatching"),
    (ParamConfig(param_reg="ewc", param_reg_exclude=[]), "ParameterDistance"),
])
def test_mixins_add_their_module_and_rebuild_from_a_row(cfg, module):
    assert cfg.main_loop_modules == [module]
    rebuilt = trainer_config_from_dict(cfg.to_dict())
    assert rebuilt.to_dict() == cfg.to_dict()
    assert type(cfg).__mro__[1] in type(rebuilt).__mro__


@pytest.mark.parametrize("cls, kwargs, match", [
    (KDConfig, dict(kd_weight=1.5), "kd_weight is gamma in \\[0, 1\\]"),
    (KDConfig, dict(kd_weight=-0.1), "kd_weight is gamma"),
    (KDConfig, dict(kd_teacher="previous"), "kd_teacher must be one of"),
    (KDConfig, dict(kd_temperature=0.0), "kd_temperature must be positive"),
    (RDLConfig, dict(), "rdl_layers must be a non-empty dict"),
    (RDLConfig, dict(rdl_layers={"core": ""}), "rdl_layers must be a non-empty dict"),
    (RDLConfig, dict(rdl_layers={"core": "core"}, rdl_distance="cosine"), "rdl_distance must be one of"),
    (RDLConfig, dict(rdl_layers={"core": "core"}, rdl_weight=-1.0), "rdl_weight must be a finite number >= 0"),
    (ATConfig, dict(), "at_layers must be a non-empty dict"),
    (ATConfig, dict(at_layers={"core": "core.2"}, at_p=0.0), "at_p must be a positive number"),
    (ATConfig, dict(at_layers={"core": "core.2"}, at_weight=float("inf")), "at_weight must be a finite number"),
    (MatchConfig, dict(), "match_layers must be a non-empty dict"),
    (MatchConfig, dict(match_layers={"core": "core"}, match_criterion="l1"), "match_criterion must be one of"),
    (ParamConfig, dict(param_reg="l1"), "param_reg must be one of"),
    (ParamConfig, dict(param_reg_weight=-1.0), "param_reg_weight must be a finite number >= 0"),
    (ParamConfig, dict(param_reg_exclude=[""]), "param_reg_exclude must be a list of selectors"),
    (ParamConfig, dict(start_from_previous=False), "set start_from_previous=True"),
])
def test_bad_field_values_are_one_line_errors(cls, kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        cls(**kwargs)
    assert "\n" not in str(err.value)


def test_an_unknown_layer_path_names_the_closest_one(teacher_state):
    with pytest.raises(ValueError, match="has no layer 'cor'"):
        train(RDLConfig(rdl_layers={"cor": "core"}, max_iter=1, show_progress=False), model=MLP(),
              teacher_model=make_teacher(teacher_state))
    with pytest.raises(ValueError, match="has 256 values per example, the teacher's .* 10"):
        train(MatchConfig(match_layers={"core": OUTPUT}, max_iter=1, show_progress=False), model=MLP(),
              teacher_model=make_teacher(teacher_state))


def test_a_teacher_copy_is_not_changed_by_training(teacher_state):
    teacher = make_teacher(teacher_state)
    train(METHODS["match_l2"][0], model=MLP(), teacher_model=teacher)
    assert all(torch.equal(v, teacher_state[k]) for k, v in teacher.state_dict().items())
