"""Main-loop modules: the order of the hooks, the registry, and every built-in module in a real run."""

import pytest
import torch
from test_trainer import IMAGES, TASK, TinyNet, config, digits, digits_loaders, train
from torch.utils.data import DataLoader

from nntransfer.configs.trainer.classification import ClassificationTrainerConfig
from nntransfer.configs.trainer.mixins import (
    KnowledgeDistillationMixin,
    NoiseAugmentationMixin,
    RepresentationMatchingMixin,
    RepresentationMonitorMixin,
)
from nntransfer.trainer.main_loop_modules import MainLoopModule, available, get, register
from nntransfer.trainer.main_loop_modules.base import BatchState
from nntransfer.trainer.main_loop_modules.knowledge_distillation import distillation_loss
from nntransfer.trainer.main_loop_modules.noise_augmentation import apply_noise, sample_noise_levels
from nntransfer.trainer.main_loop_modules.representation_matching import representation_distance

CALLS = []


class Probe(MainLoopModule):
    """Records every event as ``<name>.<hook>`` (``:tuple`` when the output carries layers)."""

    name = ""

    def pre_epoch(self, mode):
        CALLS.append(f"{self.name}.pre_epoch:{mode}")

    def pre_forward(self, state):
        CALLS.append(f"{self.name}.pre_forward")

    def post_forward(self, state):
        CALLS.append(f"{self.name}.post_forward" + (":layers" if state.output.layers else ""))

    def post_loss(self, state):
        CALLS.append(f"{self.name}.post_loss")

    def post_backward(self, state):
        CALLS.append(f"{self.name}.post_backward")

    def post_optimizer(self, state):
        CALLS.append(f"{self.name}.post_optimizer")

    def post_epoch(self, mode):
        CALLS.append(f"{self.name}.post_epoch")


@register
class ProbeA(Probe):
    name = "A"


@register
class ProbeB(Probe):
    name = "B"


def test_exact_order_of_hook_calls_before_events_in_order_after_events_in_reverse():
    CALLS.clear()
    loaders = digits_loaders(n_train=128)  # 2 training, 2 validation, 2 test batches of 64
    train(config(max_iter=1, main_loop_modules=["ProbeA", "ProbeB"]), model=TinyNet(extra=True), loaders=loaders)
    train_batch = ["A.pre_forward", "B.pre_forward", "B.post_forward:layers", "A.post_forward:layers", "B.post_loss",
                   "A.post_loss", "B.post_backward", "A.post_backward", "B.post_optimizer", "A.post_optimizer"]
    eval_batch = ["A.pre_forward", "B.pre_forward", "B.post_forward:layers", "A.post_forward:layers", "B.post_loss",
                  "A.post_loss"]

    def epoch(mode, batch):
        return [f"A.pre_epoch:{mode}", f"B.pre_epoch:{mode}"] + batch * 2 + ["B.post_epoch", "A.post_epoch"]

    expected = epoch("Training", train_batch) + epoch("Validation", eval_batch) + epoch("Test", eval_batch) * 2
    assert CALLS == expected  # the final evaluation: the validation and the test split


@register
class HookRecorder(Probe):
    name = "R"


def test_post_optimizer_follows_each_optimizer_step_under_accumulation():
    CALLS.clear()
    cfg = config(max_iter=1, accumulate_grad_batches=2, main_loop_modules=["HookRecorder"])
    train(cfg, loaders=digits_loaders(n_train=192))  # 3 batches: steps after batch 2 and after the last
    training = CALLS[: CALLS.index("R.post_epoch")]
    assert [c for c in training if c in ("R.post_backward", "R.post_optimizer")] == [
        "R.post_backward", "R.post_backward", "R.post_optimizer", "R.post_backward", "R.post_optimizer"]


@register
class EndAfterFirstBatch(MainLoopModule):
    def post_forward(self, state):
        if state.training:
            self.context.request_end_of_epoch()


def test_a_module_can_end_the_epoch_early():
    _, output, _ = train(config(max_iter=2, main_loop_modules=["EndAfterFirstBatch"], early_stopping=False))
    log = output["tracker"]["log"]
    assert log["Training"][TASK]["normalization"][1:] == [64.0, 64.0]
    assert log["Validation"][TASK]["normalization"][1:] == [128.0, 128.0]


def test_registry_names_what_exists_and_imports_dotted_paths():
    assert {"NoiseAugmentation", "RepresentationMatching", "RepresentationMonitor", "KnowledgeDistillation",
            "RDL", "AttentionTransfer", "LayerMatching", "ParameterDistance", "OrbitLearning", "OrbitTransfer"} <= set(available())
    with pytest.raises(ValueError, match=r"did you mean 'NoiseAugmentation'\? \(available: .*RepresentationMonitor"):
        get("NoiseAugmentaton")
    path = "nntransfer.trainer.main_loop_modules.representation_monitor.RepresentationMonitor"
    assert get(path) is get("RepresentationMonitor")
    with pytest.raises(ValueError, match="not a subclass of MainLoopModule"):
        register(dict)
    with pytest.raises(ValueError, match="unknown main-loop module"):
        train(config(max_iter=1, main_loop_modules=["NoSuchModule"]))


# ---------------------------------------------------------------------- noise


def test_apply_noise_is_pure_clips_in_pixel_units_and_leaves_clean_rows():
    torch.manual_seed(0)
    mean, std = [0.3], [0.2]
    x = (IMAGES[:8] - 0.3) / 0.2
    original = x.clone()
    levels = torch.tensor([0.5] * 4 + [float("nan"), 0.0, float("nan"), 0.0])
    noisy = apply_noise(x, std=levels, mean=mean, data_std=std, pixel_range=(0.0, 1.0))
    assert torch.equal(x, original)  # input untouched
    assert torch.equal(noisy[4:], x[4:])  # NaN and 0 are clean, bit for bit
    pixels = noisy[:4] * 0.2 + 0.3
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6 and not torch.allclose(noisy[:4], x[:4])


def test_apply_noise_by_snr_sets_the_noise_power():
    x = torch.full((64, 1, 16, 16), 0.5)
    noisy = apply_noise(x, snr=25.0, generator=torch.Generator().manual_seed(0), pixel_range=(-10, 10))
    # mean squared pixel 0.25 / snr 25 = variance 0.01
    assert (noisy - x).std().item() == pytest.approx(0.1, rel=0.05)
    with pytest.raises(ValueError, match="exactly one"):
        apply_noise(x)


def test_noise_levels_follow_the_fractions_and_ranges():
    g = torch.Generator().manual_seed(0)
    levels = sample_noise_levels({0.1: 0.5, (0.2, 0.4): 0.25, None: 0.25}, 8, generator=g)
    assert levels[:4].tolist() == pytest.approx([0.1] * 4)
    assert len(set(levels[4:6].tolist())) == 1 and 0.2 <= levels[4] <= 0.4
    assert torch.isnan(levels[6:]).all()
    assert torch.isnan(sample_noise_levels({0.3: 0.25}, 8)[2:]).all()  # the rest of the batch stays clean


@register
class InputRecorder(MainLoopModule):
    inputs = []

    def pre_forward(self, state):
        InputRecorder.inputs.append((state.mode, state.inputs.clone()))


class NoisyConfig(NoiseAugmentationMixin, ClassificationTrainerConfig):
    pass


@pytest.mark.parametrize("in_evaluation", [True, False])
def test_noise_augmentation_in_training_and_the_same_noise_on_every_evaluation(in_evaluation):
    InputRecorder.inputs = []
    loaders = digits_loaders()
    loaders["train"][TASK] = DataLoader(digits(0, 256), batch_size=64)  # fixed order: compare with clean
    cfg = NoisyConfig(noise_std={0.3: 1.0}, noise_in_evaluation=in_evaluation, max_iter=2, show_progress=False,
                      early_stopping=False, main_loop_modules=["NoiseAugmentation", "InputRecorder"])
    train(cfg, loaders=loaders)
    training = [x for mode, x in InputRecorder.inputs if mode == "Training"]
    validation = [x for mode, x in InputRecorder.inputs if mode == "Validation"]
    test = [x for mode, x in InputRecorder.inputs if mode == "Test"]
    assert not torch.equal(training[0], IMAGES[:64]) and not torch.equal(training[0], training[4])
    assert torch.equal(validation[0], validation[2]) and torch.equal(validation[1], validation[3])
    assert torch.equal(validation[0], IMAGES[1000:1064]) != in_evaluation
    assert torch.equal(test[0], IMAGES[1000:1064])  # the final evaluation is clean


# ---------------------------------------------------------------------- representations


class MatchingConfig(RepresentationMatchingMixin, ClassificationTrainerConfig):
    pass


def test_representation_matching_adds_and_logs_its_loss():
    assert representation_distance(IMAGES[:4], IMAGES[:4], "cosine").item() == pytest.approx(0, abs=1e-6)
    assert representation_distance(IMAGES[:4], IMAGES[:4] + 1, "mse").item() == pytest.approx(1)
    cfg = MatchingConfig(rep_matching_layers=["core"], rep_matching_noise_std={0.5: 1.0}, max_iter=1, show_progress=False)
    _, output, _ = train(cfg, model=TinyNet(extra=True))
    log = output["tracker"]["log"]["Training"][TASK]
    assert log["normalization"][1] == 512  # clean and noisy copy
    assert log["rep_matching"][1] > 0
    with pytest.raises(ValueError, match=r"return \(extra_outputs, logits\)"):
        train(cfg, model=TinyNet(extra=False))


def test_representation_matching_learns_its_layer_weights():
    from nntransfer.trainer import ImgClassificationTrainer, trainer_config_from_dict

    cfg = MatchingConfig(rep_matching_layers=["core"], rep_matching_noise_snr={4.0: 1.0}, rep_matching_learned_weights=True,
                         rep_matching_criterion="mse", max_iter=1, show_progress=False)
    trainer = ImgClassificationTrainer(TinyNet(extra=True), digits_loaders(), 1, trainer_config_from_dict(cfg.to_dict()))
    module = next(m for m in trainer.modules if type(m).__name__ == "RepresentationMatching")
    trainer.train()
    assert module.log_variances.abs().sum() > 0
    assert module.state_dict()["log_variances"].shape == (1,)


class MonitorConfig(RepresentationMonitorMixin, ClassificationTrainerConfig):
    pass


def test_representation_monitor_logs_statistics_per_layer():
    cfg = MonitorConfig(max_iter=2, show_progress=False, early_stopping=False)
    _, output, _ = train(cfg, model=TinyNet(extra=True))
    log = output["tracker"]["log"]["Validation"][TASK]
    assert len(log["core_sparsity"]) == 3
    sparsity = [s / n for s, n in zip(log["core_sparsity"][1:], log["normalization"][1:])]
    assert all(0 < s < 1 for s in sparsity)  # ReLU features: some zeros, not all
    assert "core_mean" not in output["tracker"]["log"]["Training"][TASK]


# ---------------------------------------------------------------------- distillation


class DistillConfig(KnowledgeDistillationMixin, ClassificationTrainerConfig):
    pass


def test_distillation_from_the_initial_model_keeps_the_teacher_frozen():
    logits = torch.randn(4, 10)
    assert distillation_loss(logits, logits, 3.0).item() == pytest.approx(0, abs=1e-6)
    from nntransfer.trainer import ImgClassificationTrainer, trainer_config_from_dict

    model = TinyNet()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = DistillConfig(kd_teacher="initial", max_iter=1, show_progress=False, reset=["readout"])
    trainer = ImgClassificationTrainer(model, digits_loaders(), 1, trainer_config_from_dict(cfg.to_dict()))
    _, output, _ = trainer.train()
    teacher = next(m for m in trainer.modules if type(m).__name__ == "KnowledgeDistillation").initial
    assert all(torch.equal(initial[k], v) for k, v in teacher.state_dict().items())  # copied before the reset
    assert output["tracker"]["log"]["Training"][TASK]["distillation"][1] > 0


def test_distillation_from_transfer_data_of_the_previous_step():
    _, first, state = train(config(max_iter=1, compute_transfer_data=True))
    loaders = digits_loaders(extras=first["transfer_data"])
    cfg = DistillConfig(kd_teacher="transfer_data", data_transfer=True, max_iter=1, show_progress=False)
    _, second, _ = train(cfg, loaders=loaders)
    assert second["tracker"]["log"]["Training"][TASK]["distillation"][1] > 0
    with pytest.raises(ValueError, match="needs batch extras 'logits'"):
        train(cfg, loaders=digits_loaders())


# ---------------------------------------------------------------------- mixins


def test_mixins_compose_append_once_and_check_their_fields():
    class AllConfig(RepresentationMonitorMixin, NoiseAugmentationMixin, ClassificationTrainerConfig):
        pass

    cfg = AllConfig(noise_snr={(2.0, 8.0): 0.5})
    assert cfg.main_loop_modules == ["NoiseAugmentation", "RepresentationMonitor"]
    cfg.update(max_iter=3)
    cfg.update(main_loop_modules=["InputRecorder"])
    assert cfg.main_loop_modules == ["InputRecorder", "NoiseAugmentation", "RepresentationMonitor"]
    assert AllConfig.from_dict(cfg.to_dict()) == cfg
    assert AllConfig.from_json(cfg.to_json()) == cfg  # tuple keys survive JSON
    with pytest.raises(ValueError, match="exactly one of noise_std or noise_snr"):
        NoisyConfig()
    with pytest.raises(ValueError, match="more than 1"):
        NoisyConfig(noise_std={0.1: 0.7, 0.2: 0.7})
    with pytest.raises(ValueError, match="range"):
        NoisyConfig(noise_std={(0.4, 0.2): 0.5})
    with pytest.raises(ValueError, match="rep_matching_layers is empty"):
        MatchingConfig(rep_matching_noise_std={0.1: 1.0})
    with pytest.raises(ValueError, match="data_transfer=True"):
        DistillConfig(kd_teacher="transfer_data")


@register
class ReadoutPenalty(MainLoopModule):
    """Adds the term ``penalty`` (weight 1e-3): the squared readout weights; records each batch's value."""

    values = []

    def post_forward(self, state):
        if state.training:
            value = sum(p.pow(2).sum() for p in self.context.model.readout.parameters())
            ReadoutPenalty.values.append((value.item(), state.targets.shape[0]))
            state.add_loss("penalty", value, weight=1e-3)


def test_the_trainer_trains_on_a_modules_weighted_term_and_tracks_its_value():
    ReadoutPenalty.values = []
    _, output, state = train(config(max_iter=1, main_loop_modules=["ReadoutPenalty"]))
    _, _, plain = train(config(max_iter=1))
    log = output["tracker"]["log"]["Training"][TASK]
    expected = sum(value * n for value, n in ReadoutPenalty.values)  # tracked unweighted, summed per example
    assert log["penalty"][1] == pytest.approx(expected, rel=1e-5) and log["normalization"][1] == 256
    assert not all(torch.equal(state[k], plain[k]) for k in state)  # the term was trained on


def test_the_total_loss_is_tracked_and_can_be_the_objective():
    ReadoutPenalty.values = []
    cfg = config(max_iter=1, main_loop_modules=["ReadoutPenalty"], objective="total_loss", maximize=False)
    score, output, _ = train(cfg)
    log = output["tracker"]["log"]
    training = log["Training"][TASK]
    # per example: the task loss (weight 1) plus 1e-3 times the penalty of every batch
    assert training["total_loss"][1] == pytest.approx(training["loss"][1] + 1e-3 * training["penalty"][1], rel=1e-5)
    validation = log["Validation"][TASK]  # the module adds nothing outside training: the task loss alone
    assert validation["total_loss"][1] == pytest.approx(validation["loss"][1], rel=1e-6)
    assert score == pytest.approx(output["final"]["validation"][TASK]["total_loss"])
    with pytest.raises(ValueError, match="'total_loss' is minimised"):
        config(objective="total_loss")


def test_two_modules_scaling_the_task_loss_multiply_in_any_order():
    state = BatchState("Training", TASK, IMAGES[:2], torch.zeros(2, dtype=torch.long), {}, TinyNet())
    state.scale_task_loss(0.5)
    state.scale_task_loss(0.2)
    assert state.task_loss_weight == pytest.approx(0.1)
    with pytest.raises(AttributeError):
        state.task_loss_weight = 1.0  # a module multiplies the weight, never sets it
    with pytest.raises(ValueError, match="added twice"):
        state.add_loss("a", torch.ones(())) or state.add_loss("a", torch.ones(()))
