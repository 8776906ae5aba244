"""The image classification trainer on real 8x8 digits (sklearn) with a tiny model."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nntransfer.configs.trainer.classification import ClassificationTrainerConfig
from nntransfer.configs.trainer.loop import EpochLoopConfig
from nntransfer.configs.trainer.mixins import NoiseAugmentationMixin
from nntransfer.defaults import TASK_KEY
from nntransfer.trainer import ImgClassificationTrainer, classification_trainer, trainer_config_from_dict
from nntransfer.trainer.cycler import TaskCycler
from nntransfer.trainer.main_loop_modules import MainLoopModule, register

TASK = TASK_KEY
_DIGITS = load_digits()
IMAGES = torch.tensor(_DIGITS.images / 16.0, dtype=torch.float32).unsqueeze(1)  # pixels in [0, 1]
LABELS = torch.tensor(_DIGITS.target, dtype=torch.int64)


def digits(start, stop, extras=None):
    tensors = (IMAGES[start:stop], LABELS[start:stop])
    return TensorDataset(*tensors)


class WithExtras(torch.utils.data.Dataset):
    """(image, label, {name: row}) like the dataset loader when it gets transfer data."""

    def __init__(self, dataset, extras):
        self.dataset, self.extras = dataset, extras

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        x, y = self.dataset[i]
        return x, y, {k: torch.as_tensor(v[i]) for k, v in self.extras.items()}


def digits_loaders(n_train=256, batch_size=64, generator=None, extras=None, **splits):
    """Train/validation/test splits of the digits; more test splits by keyword (``name=(start, stop)``)."""
    train = digits(0, n_train)
    if extras is not None:
        train = WithExtras(train, extras)
    loaders = {
        "train": {TASK: DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator)},
        "validation": {TASK: DataLoader(digits(1000, 1128), batch_size=64)},
        "test": {TASK: DataLoader(digits(1200, 1328), batch_size=64)},
    }
    for name, (start, stop) in splits.items():
        loaders[name] = {TASK: DataLoader(digits(start, stop), batch_size=64)}
    return loaders


class TinyNet(nn.Module):
    """core (conv + BN) and readout (dropout + linear); with ``extra`` returns ({"core": features}, logits)."""

    def __init__(self, extra=False, bn=True, dropout=0.1, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.extra = extra
        self.core = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4) if bn else nn.Identity(), nn.ReLU(), nn.Flatten())
        self.readout = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * 64, 10))

    def forward(self, x):
        features = self.core(x)
        logits = self.readout(features)
        return ({"core": features}, logits) if self.extra else logits


def config(**kwargs):
    defaults = dict(max_iter=2, lr=0.01, show_progress=False)
    defaults.update(kwargs)
    return ClassificationTrainerConfig(**defaults)


def values(cfg):
    """What the run layer passes a trainer function: the fields plus the runtime options."""
    return {**cfg.to_dict(), **cfg.runtime_options()}


def train(cfg=None, model=None, loaders=None, seed=1, **kwargs):
    cfg = cfg or config()
    return classification_trainer(model or TinyNet(), loaders or digits_loaders(), seed, **values(cfg), **kwargs)


def test_trains_learns_and_returns_storable_output():
    from datajoint import blob

    score, output, state = train(config(max_iter=3))
    assert score > 50  # chance is 10 %
    assert set(output) >= {"tracker", "final"}
    assert output["final"]["validation"][TASK]["accuracy"] == score
    assert set(output["final"]) == {"validation", "test"}
    log = output["tracker"]["log"]
    assert len(log["Training"][TASK]["loss"]) == 4  # epoch 0 (initial values) + 3 epochs
    assert log["Training"][TASK]["normalization"][1:] == [256.0] * 3
    assert all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in state.values())
    restored = blob.unpack(blob.pack(output))  # what a DataJoint longblob holds
    assert restored["final"]["test"][TASK]["accuracy"] == output["final"]["test"][TASK]["accuracy"]


def test_same_seed_same_numbers_and_other_seed_differs():
    first, out1, state1 = train(config(max_iter=2))
    second, out2, state2 = train(config(max_iter=2))
    assert first == second
    assert out1["final"] == out2["final"]
    assert all(torch.equal(state1[k], state2[k]) for k in state1)
    _, out3, _ = train(config(max_iter=2), seed=2)
    assert out3["final"] != out1["final"]


def test_early_stopping_waits_patience_then_stops():
    # lr 1e-30 (the smallest change float32 weights ignore): nothing improves after the first validation
    # (that the best state is restored: test_restore_best_false_keeps_the_last_state, test_every_lr_decay_...)
    score, output, _ = train(config(max_iter=20, lr=1e-30, patience=2))
    assert output["best_epoch"] == 1 and output["epochs"] == 3
    assert output["tracker"]["log"]["Validation"]["patience"][1:] == [0.0, 1.0, 0.0]


def test_interval_validates_every_nth_epoch_and_the_last():
    _, output, _ = train(config(max_iter=5, interval=2, early_stopping=False))
    norms = output["tracker"]["log"]["Validation"][TASK]["normalization"]
    assert norms == [0.0, 0.0, 128.0, 0.0, 128.0, 128.0]


def test_restore_best_false_keeps_the_last_state():
    # tolerance 100: only the first validation counts as an improvement, so epoch 1 of 3 is the best
    def run(restore_best):
        cfg = config(max_iter=3, lr=0.1, optimizer="SGD", patience=5, tolerance=100.0, restore_best=restore_best)
        return train(cfg, model=TinyNet(dropout=0.0))

    _, last, last_state = run(False)
    _, best, best_state = run(True)
    assert last["best_epoch"] == best["best_epoch"] == 1 and last["epochs"] == best["epochs"] == 3
    log = last["tracker"]["log"]["Validation"][TASK]
    per_epoch = [total / n for total, n in zip(log["accuracy"][1:], log["normalization"][1:])]
    assert per_epoch[0] != per_epoch[-1]
    assert last["final"]["validation"][TASK]["accuracy"] == pytest.approx(per_epoch[-1])  # the state after epoch 3
    assert best["final"]["validation"][TASK]["accuracy"] == pytest.approx(per_epoch[0])  # the state after epoch 1
    assert not all(torch.equal(last_state[k], best_state[k]) for k in last_state)


def test_gradient_accumulation_equals_a_larger_batch():
    def run(batch_size, accumulate):
        loaders = digits_loaders(n_train=128, batch_size=batch_size)
        loaders["train"][TASK] = DataLoader(digits(0, 128), batch_size=batch_size, shuffle=False)
        cfg = config(max_iter=1, optimizer="SGD", lr=0.1, accumulate_grad_batches=accumulate)
        return train(cfg, model=TinyNet(bn=False, dropout=0.0), loaders=loaders)[2]

    big, accumulated, small = run(64, 1), run(32, 2), run(32, 1)
    assert all(torch.allclose(big[k], accumulated[k], atol=1e-6) for k in big)
    assert not all(torch.allclose(big[k], small[k], atol=1e-6) for k in big)


class LrRecorder(MainLoopModule):
    lrs = []

    def post_optimizer(self, state):
        LrRecorder.lrs.append(self.context.learning_rates()[0])


register(LrRecorder)


def test_linear_warmup_then_target_lr():
    LrRecorder.lrs = []
    _, output, _ = train(config(max_iter=2, lr=0.04, lr_warmup=1, main_loop_modules=["LrRecorder"], optimizer="SGD"))
    # 256 examples / 64 = 4 steps per epoch: warm-up over the first 4 steps
    assert LrRecorder.lrs == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.04, 0.04, 0.04, 0.04])
    assert output["tracker"]["log"]["lr"][1:] == pytest.approx([0.01, 0.04])  # the lr each epoch starts with


def test_warmup_then_multistep_and_cosine_schedules_start_from_the_target_lr():
    cfg = config(max_iter=3, lr=0.04, lr_warmup=1, optimizer="SGD", early_stopping=False, scheduler="multistep",
                 scheduler_options={"milestones": [1], "gamma": 0.5})
    _, output, _ = train(cfg)
    assert output["tracker"]["log"]["lr"][1:] == pytest.approx([0.01, 0.04, 0.02])


def test_multistep_scheduler_counts_epochs():
    _, output, _ = train(config(max_iter=3, lr=0.1, optimizer="SGD", scheduler="multistep",
                                scheduler_options={"milestones": [1, 2], "gamma": 0.5}, early_stopping=False))
    assert output["tracker"]["log"]["lr"][1:] == pytest.approx([0.1, 0.05, 0.025])


def test_plateau_scheduler_reduces_when_validation_stalls():
    # a threshold no epoch can beat: every validation after the first is a plateau
    cfg = config(max_iter=4, lr=0.1, optimizer="SGD", scheduler="plateau", early_stopping=False,
                 scheduler_options={"patience": 0, "factor": 0.5, "threshold": 1e9})
    _, output, _ = train(cfg)
    assert output["tracker"]["log"]["lr"][1:] == pytest.approx([0.1, 0.1, 0.05, 0.025])


class DtypeRecorder(MainLoopModule):
    dtypes = []

    def post_forward(self, state):
        DtypeRecorder.dtypes.append(state.output.logits.dtype)


register(DtypeRecorder)


def test_bfloat16_autocast_on_cpu():
    DtypeRecorder.dtypes = []
    score, _, _ = train(config(max_iter=1, amp=True, main_loop_modules=["DtypeRecorder"]))
    assert set(DtypeRecorder.dtypes) == {torch.bfloat16}
    assert np.isfinite(score)


def test_final_evaluation_of_every_split_noise_bn_train_and_mc_dropout():
    loaders = digits_loaders(test_rotated=(1400, 1464))
    loaders["c_test"] = {"gaussian_noise": {1: DataLoader(digits(1500, 1564), batch_size=64),
                                            2: DataLoader(digits(1564, 1628), batch_size=64)}}
    cfg = config(max_iter=1, eval_with_bn_train=True, mc_dropout_samples=3,
                 noise_test={"noise_std": [0.0, 0.5], "noise_snr": [2.0]})
    score, output, _ = train(cfg, loaders=loaders)
    final = output["final"]
    for split in ("validation", "test", "test_rotated", "c_test"):
        assert split in final and f"{split}_bn_train" in final and f"{split}_mc_dropout" in final
    assert set(final["c_test"]["gaussian_noise"]) == {1, 2}
    assert set(final["c_test"]["gaussian_noise"][2][TASK]) == {"loss", "accuracy"}
    noise = final["validation_noise"]
    assert noise["noise_std"][0.0][TASK] == pytest.approx(final["validation"][TASK])  # std 0 = clean
    assert noise["noise_std"][0.5][TASK]["accuracy"] < final["validation"][TASK]["accuracy"]
    assert set(noise["noise_snr"]) == {2.0}
    from datajoint import blob

    restored = blob.unpack(blob.pack(output))  # int (severity) and float (noise level) keys survive a longblob
    assert restored["final"]["c_test"]["gaussian_noise"][2] == final["c_test"]["gaussian_noise"][2]
    assert restored["final"]["validation_noise"]["noise_std"][0.5] == noise["noise_std"][0.5]


def test_bn_train_evaluation_restores_the_model_and_the_noise_is_the_same_each_time():
    cfg = trainer_config_from_dict(config(max_iter=1).to_dict())
    trainer = ImgClassificationTrainer(TinyNet(), digits_loaders(), 1, cfg)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    plain = trainer.evaluate(trainer.validation_loaders, "validation")
    bn_train = trainer.evaluate(trainer.validation_loaders, "validation", variant="bn_train")
    assert bn_train != plain
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    noisy = [trainer.evaluate(trainer.validation_loaders, "validation", input_transform=trainer.noise_transform("std", 0.3))
             for _ in range(2)]
    assert noisy[0] == noisy[1] != plain


def test_transfer_data_are_the_logits_of_the_training_set_in_order():
    cfg = config(max_iter=1, compute_transfer_data=True)
    _, output, state = train(cfg, loaders=digits_loaders(n_train=200))
    logits = output["transfer_data"]["logits"]
    model = TinyNet()
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        expected = model(IMAGES[:200]).numpy()
    assert logits.shape == (200, 10)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_progress_bars_can_be_switched_off(capfd):
    train(config(max_iter=1, show_progress=False, show_epoch_progress=False))
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    # switched on, bars show only on a terminal (captured output is none: no escape codes in log files;
    # the terminal case is tested in test_cli with a pseudo-terminal)
    train(config(max_iter=1, show_progress=True, show_epoch_progress=True))
    assert "epochs" not in capfd.readouterr().err


def test_task_cycler_round_robin_and_main_task():
    a, b = list(range(3)), list(range(2))
    order = [key for key, _ in TaskCycler({"a": a, "b": b})]
    assert order == ["a", "b"] * 3
    batches = list(TaskCycler({"a": a, "b": b}))
    assert [x for k, x in batches if k == "b"] == [0, 1, 0]  # the shorter loader restarts
    order = [key for key, _ in TaskCycler({"a": a, "b": b}, "main_task", main_task="a", ratio=0.5)]
    assert order == ["a", "a", "b", "a"]
    assert len(TaskCycler({"a": a, "b": b}, "main_task", main_task="a", ratio=2)) == 9
    with pytest.raises(ValueError, match="main_task"):
        TaskCycler({"a": a}, "main_task", main_task="c")


def test_two_tasks_train_with_their_own_losses():
    loaders = digits_loaders()
    for split, (start, stop) in (("train", (300, 400)), ("validation", (1128, 1192))):
        loaders[split]["second"] = DataLoader(digits(start, stop), batch_size=50)
    cfg = config(max_iter=1, loss_functions={TASK: "CrossEntropyLoss", "second": "CrossEntropyLoss"})
    _, output, _ = train(cfg, loaders=loaders)
    log = output["tracker"]["log"]
    assert log["Training"]["second"]["normalization"][1] == 200  # 2 batches cycled to the 4 of the main task
    with pytest.raises(ValueError, match="loss_functions has no entry"):
        train(config(max_iter=1), loaders=loaders)


def test_config_checks_and_round_trip():
    cfg = config(optimizer_options={"weight_decay": 1e-4}, scheduler="cosine")
    assert ClassificationTrainerConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.fn == "nntransfer.trainer.classification_trainer"
    with pytest.raises(ValueError, match="lr=..."):
        config(optimizer_options={"lr": 0.1})
    with pytest.raises(ValueError, match="milestones"):
        config(scheduler="multistep")
    with pytest.raises(ValueError, match="maximize=False"):
        config(objective="loss")
    with pytest.raises(ValueError, match="max_itr"):  # unknown keyword names the closest field
        ClassificationTrainerConfig(max_itr=3)
    with pytest.raises(ValueError, match="did you mean 'Adam'"):
        train(config(optimizer="Adamm"))
    with pytest.raises(ValueError, match="unknown loss function"):
        train(config(loss_functions={TASK: "CrossEntropy"}))


def test_minimising_the_loss_objective():
    score, output, _ = train(config(max_iter=2, objective="loss", maximize=False))
    assert score == output["final"]["validation"][TASK]["loss"]


def test_mixin_config_rebuilds_from_a_table_row():
    class NoisyConfig(NoiseAugmentationMixin, ClassificationTrainerConfig):
        pass

    cfg = NoisyConfig(noise_std={0.1: 0.5}, max_iter=1, show_progress=False)
    typed = trainer_config_from_dict(cfg.to_dict())
    assert typed.to_dict() == cfg.to_dict() and typed.noise_std == {0.1: 0.5}
    with pytest.raises(ValueError, match="noise_std"):
        trainer_config_from_dict({**ClassificationTrainerConfig().to_dict(), "noise_std": {0.1: 1.0}})


def test_freeze_and_reset_use_the_model_utilities():
    model = TinyNet()
    core_before = {k: v.clone() for k, v in model.core.state_dict().items()}
    readout_before = {k: v.clone() for k, v in model.readout.state_dict().items()}
    _, _, state = train(config(max_iter=1, freeze=["core"], reset=["readout"], freeze_bn=True), model=model)
    assert all(torch.equal(state[f"core.{k}"], v) for k, v in core_before.items())  # BN statistics too
    assert not torch.equal(state["readout.1.weight"], readout_before["1.weight"])


def test_the_generic_trainer_fits_a_regression_with_a_plain_epoch_loop_config():
    from nntransfer.trainer import Trainer

    class RegressionConfig(EpochLoopConfig):  # the loop's fields only: no classification field, loss by default
        pass

    class Regressor(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.core, self.readout = nn.Flatten(), nn.Linear(64, 1)

        def forward(self, x):
            return self.readout(self.core(x)).squeeze(1)

    def loader(start, stop, shuffle=False):
        # target: the mean ink of the digit, a simple real-valued function of the image
        x = IMAGES[start:stop]
        return DataLoader(TensorDataset(x, x.mean(dim=(1, 2, 3))), batch_size=64, shuffle=shuffle)

    loaders = {"train": {"ink": loader(0, 512, True)}, "validation": {"ink": loader(1000, 1128)}}
    cfg = RegressionConfig(max_iter=5, loss_functions={"ink": "MSELoss"}, lr=0.01, show_progress=False)
    assert not set(cfg.to_dict()) & (set(ClassificationTrainerConfig().to_dict()) - set(EpochLoopConfig().to_dict()))
    assert "noise_test" not in cfg.to_dict()
    trainer = Trainer(Regressor(), loaders, 1, cfg)
    score, output, _ = trainer.train()
    losses = output["tracker"]["log"]["Validation"]["ink"]["loss"]
    assert score < losses[1] / 128  # better than after the first epoch
    assert set(output["final"]["validation"]["ink"]) == {"loss"}


class ScoreRecorder:
    """A checkpoint callback that only records the score of every saved epoch (a table stores it as a
    non-null float: DataJoint turns NaN into NULL, which the insert rejects)."""

    def __init__(self):
        self.scores = {}

    def __call__(self, uid=None, epoch=None, model=None, state=None):
        if state.get("action") == "save":
            self.scores[epoch] = state["score"]


def empty_validation_loaders():
    loaders = digits_loaders()
    loaders["validation"][TASK] = DataLoader(digits(0, 0), batch_size=64)  # valid_size=0
    return loaders


def test_an_empty_validation_set_selects_and_scores_on_the_training_objective():
    cb = ScoreRecorder()
    # lr 0 and no BN/dropout: the training accuracy is the same every epoch, so early stopping stops
    score, output, _ = train(config(max_iter=6, patience=1, lr=1e-30), model=TinyNet(bn=False, dropout=0.0),
                             loaders=empty_validation_loaders(), cb=cb)
    assert np.isfinite(score) and score == output["final"]["train"][TASK]["accuracy"]
    assert output["best_epoch"] == 1 and output["epochs"] == 2
    assert all(np.isfinite(s) for s in cb.scores.values())
    assert output["final"]["validation"] == {}


def test_an_empty_validation_set_does_not_starve_the_plateau_scheduler():
    # before: the plateau scheduler got NaN every epoch and cut the lr every epoch
    cfg = config(max_iter=3, lr=0.05, optimizer="SGD", scheduler="plateau", early_stopping=False,
                 scheduler_options={"patience": 0, "factor": 0.5})
    _, output, _ = train(cfg, loaders=empty_validation_loaders())
    assert output["tracker"]["log"]["lr"][1:] == pytest.approx([0.05, 0.05, 0.05])  # training accuracy improves


def test_gradient_accumulation_with_a_partial_last_group_equals_larger_batches():
    # 96 examples in batches of 32, accumulated by 2: groups of 2 and 1 batches = batches of 64 and 32
    def run(batch_size, accumulate):
        loaders = digits_loaders(n_train=96, batch_size=batch_size)
        loaders["train"][TASK] = DataLoader(digits(0, 96), batch_size=batch_size, shuffle=False)
        cfg = config(max_iter=1, optimizer="SGD", lr=0.1, accumulate_grad_batches=accumulate)
        return train(cfg, model=TinyNet(bn=False, dropout=0.0), loaders=loaders)[2]

    big, accumulated = run(64, 1), run(32, 2)
    assert all(torch.allclose(big[k], accumulated[k], atol=1e-6) for k in big)


def test_checkpoints_of_epochs_without_validation_have_a_finite_never_best_score():
    cb = ScoreRecorder()
    train(config(max_iter=3, interval=2, early_stopping=False), cb=cb)
    assert sorted(cb.scores) == [1, 2, 3]
    assert all(np.isfinite(s) for s in cb.scores.values())
    assert cb.scores[1] < min(cb.scores[2], cb.scores[3])  # maximised: the unvalidated epoch is never the best
    cb = ScoreRecorder()
    train(config(max_iter=2, interval=2, objective="loss", maximize=False, early_stopping=False), cb=cb)
    assert np.isfinite(cb.scores[1]) and cb.scores[1] > cb.scores[2]  # minimised: worst is large


def test_the_generic_trainer_rejects_an_objective_it_does_not_compute():
    from nntransfer.trainer import Trainer

    with pytest.raises(ValueError, match="objective 'accuracy'.*'loss'"):
        Trainer(TinyNet(), digits_loaders(), 1, config(max_iter=1))  # the base class tracks only the loss


def test_an_empty_training_loader_is_an_error_at_the_start():
    loaders = digits_loaders()
    loaders["train"]["second"] = DataLoader(digits(0, 0), batch_size=8)
    with pytest.raises(ValueError, match="'second'.*no batches"):
        train(config(max_iter=1, loss_functions={TASK: "CrossEntropyLoss", "second": "CrossEntropyLoss"}), loaders=loaders)


class StartRecorder(MainLoopModule):
    """The model state and lr at the start of every training epoch."""

    starts = []

    def pre_epoch(self, mode):
        if mode == "Training":
            StartRecorder.starts.append(({k: v.clone() for k, v in self.context.model.state_dict().items()},
                                         self.context.learning_rates()[0]))


register(StartRecorder)


def test_every_lr_decay_restores_the_best_model():
    StartRecorder.starts = []
    # tolerance 100: only the first validation improves; then decay, decay, stop
    cfg = config(max_iter=10, lr=0.1, optimizer="SGD", patience=1, tolerance=100.0, lr_decay_steps=2,
                 lr_decay=0.5, main_loop_modules=["StartRecorder"])
    _, output, state = train(cfg, model=TinyNet(dropout=0.0))
    assert output["best_epoch"] == 1 and output["epochs"] == 4
    after_epoch_1 = StartRecorder.starts[1][0]
    for start, lr in StartRecorder.starts[2:]:
        assert all(torch.equal(start[k], v) for k, v in after_epoch_1.items())  # restored each time
    assert [lr for _, lr in StartRecorder.starts] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert all(torch.equal(state[k], v) for k, v in after_epoch_1.items())  # restore_best at the end


def test_without_restore_on_decay_a_decay_keeps_the_state_that_trained_on():
    StartRecorder.starts = []
    cfg = config(max_iter=10, lr=0.1, optimizer="SGD", patience=1, tolerance=100.0, lr_decay_steps=2,
                 lr_decay=0.5, restore_on_decay=False, restore_best=False, main_loop_modules=["StartRecorder"])
    assert cfg.to_dict()["restore_on_decay"] is False and "restore_on_decay" not in config().to_dict()  # keys kept
    _, output, state = train(cfg, model=TinyNet(dropout=0.0))
    assert output["best_epoch"] == 1 and output["epochs"] == 4
    starts = [start for start, _ in StartRecorder.starts]
    for before, after in zip(starts[1:], starts[2:]):  # each epoch goes on from the last, decayed or not
        assert not all(torch.equal(after[k], v) for k, v in before.items())
    assert [lr for _, lr in StartRecorder.starts] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert not all(torch.equal(state[k], v) for k, v in starts[1].items())


def test_the_model_ends_in_eval_mode_after_mc_dropout_and_bn_train_evaluation():
    model = TinyNet()
    train(config(max_iter=1, eval_with_bn_train=True, mc_dropout_samples=2), model=model)
    assert not any(m.training for m in model.modules())


def test_gradient_clipping_bounds_every_step():
    # one batch per epoch, one SGD step with lr=1: the parameter change is the (clipped) gradient
    loaders = digits_loaders(n_train=64, batch_size=64)
    start = TinyNet(bn=False, dropout=0.0)
    initial = {k: v.clone() for k, v in start.state_dict().items()}

    def step_norm(**options):
        model = TinyNet(bn=False, dropout=0.0)
        model.load_state_dict(initial)
        cfg = config(max_iter=1, optimizer="SGD", lr=1.0, early_stopping=False, restore_best=False, **options)
        state = train(cfg, model=model, loaders=loaders)[2]
        return torch.sqrt(sum(((state[k] - initial[k]) ** 2).sum() for k in initial)).item()

    unclipped = step_norm()
    assert unclipped > 0.05
    assert step_norm(grad_clip_norm=0.05) == pytest.approx(0.05, rel=1e-3)
    with pytest.raises(ValueError, match="grad_clip_norm"):
        config(grad_clip_norm=-1.0)


# ---------------------------------------------------------------------- the checker


def test_checker_accepts_the_defaults_and_is_attached_to_the_trainer():
    from nntransfer.trainer import check_trainer_config

    assert classification_trainer.check_config is check_trainer_config
    check_trainer_config(values(ClassificationTrainerConfig()))
    class NoisyConfig(NoiseAugmentationMixin, ClassificationTrainerConfig):
        pass

    check_trainer_config(values(NoisyConfig(noise_std={0.1: 0.5}, scheduler="plateau", train_cycler="main_task")))
    check_trainer_config({"scheduler": None})  # no scheduler; absent fields are not checked


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("optimizer", "Adm", r"^optimizer: unknown optimizer 'Adm'; did you mean 'Adam'\? \(available: .*SGD"),
        ("loss_functions", {TASK: "CrossEntropy"},
         r"^loss_functions\['img_classification'\]: unknown loss function 'CrossEntropy'; did you mean 'CrossEntropyLoss'\?"),
        ("scheduler", "cosin", r"^scheduler: unknown scheduler 'cosin'; did you mean 'cosine'\? \(available: cosine, multistep, plateau\)"),
        ("train_cycler", "round_robbin", r"^train_cycler: unknown train cycler 'round_robbin'; did you mean 'round_robin'\?"),
        ("main_loop_modules", ["NoiseAugmentaton"],
         r"^main_loop_modules: unknown main-loop module 'NoiseAugmentaton'; did you mean 'NoiseAugmentation'\? \(available: "),
    ],
)
def test_checker_names_the_field_the_value_the_closest_and_what_exists(field, value, message):
    from nntransfer.trainer import check_trainer_config

    with pytest.raises(ValueError, match=message) as excinfo:
        check_trainer_config({**values(ClassificationTrainerConfig()), field: value})
    assert "\n" not in str(excinfo.value)
