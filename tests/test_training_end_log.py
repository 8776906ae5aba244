"""The log says why training ended: early stopping only when it cut training short, not when patience ran out
at the last epoch (``max_iter``), which stops nothing."""

import logging

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nntransfer.configs.trainer.classification import ClassificationTrainerConfig
from nntransfer.defaults import TASK_KEY
from nntransfer.trainer import ImgClassificationTrainer

_DIGITS = load_digits()
IMAGES = torch.tensor(_DIGITS.images / 16.0, dtype=torch.float32).unsqueeze(1)
LABELS = torch.tensor(_DIGITS.target, dtype=torch.int64)


def loaders():
    def split(start, stop, shuffle=False):
        return {TASK_KEY: DataLoader(TensorDataset(IMAGES[start:stop], LABELS[start:stop]), batch_size=64, shuffle=shuffle,
                                     generator=torch.Generator().manual_seed(0))}

    return {"train": split(0, 256, shuffle=True), "validation": split(1000, 1128), "test": split(1200, 1328)}


def train_frozen(caplog, **config):
    """A model that cannot improve after epoch 1 (a learning rate of 1e-30, no dropout or batch norm): the
    validation score is the same every epoch, so patience 1 runs out at epoch 2."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    cfg = ClassificationTrainerConfig(lr=1e-30, patience=1, show_progress=False, **config)
    with caplog.at_level(logging.INFO, logger="nntransfer.trainer.trainer"):
        _, output, _ = ImgClassificationTrainer(model, loaders(), 0, cfg).train()
    return output, [r.getMessage() for r in caplog.records if r.name == "nntransfer.trainer.trainer"]


def test_patience_running_out_at_max_iter_is_not_logged_as_early_stopping(caplog):
    output, lines = train_frozen(caplog, max_iter=2)
    assert output["epochs"] == 2 and output["best_epoch"] == 1
    assert not any("early stopping" in line for line in lines), lines
    assert "reached max_iter: trained 2 epochs (best: epoch 1)" in lines
    (last_epoch,) = [line for line in lines if line.startswith("epoch 2:")]
    assert last_epoch.endswith("(wait)")  # not "(stop)": nothing was stopped


def test_early_stopping_before_max_iter_is_logged_once_as_such(caplog):
    output, lines = train_frozen(caplog, max_iter=4)
    assert output["epochs"] == 2
    stops = [line for line in lines if "early stopping" in line]
    assert stops == ["early stopping after epoch 2 of 4: no improvement of the validation accuracy for 1 validation(s) "
                     "(best: epoch 1)"]
    assert not any("reached max_iter" in line for line in lines)
    (last_epoch,) = [line for line in lines if line.startswith("epoch 2:")]
    assert last_epoch.endswith("(stop)")
