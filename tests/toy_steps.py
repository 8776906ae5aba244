"""Tiny dataset/model/trainer functions for table and runner tests where the content does not matter:
the "model" is one weight, "training" adds ``increment`` to it. The output records what each step
started from and received, so tests can follow weights and data along a chain."""

import json
import os
import time

import numpy as np
import torch
from torch import nn

from nntransfer.configs import DatasetConfig, ModelConfig, TrainerConfig


class ToyDatasetConfig(DatasetConfig):
    fn = "toy_steps.toy_dataset"

    def __init__(self, **kwargs):
        self.size = 4
        super().__init__(**kwargs)


class ToyModelConfig(ModelConfig):
    fn = "toy_steps.toy_model"

    def __init__(self, **kwargs):
        self.init = 0.0
        super().__init__(**kwargs)


class ToyTrainerConfig(TrainerConfig):
    fn = "toy_steps.toy_trainer"

    def __init__(self, **kwargs):
        self.increment = 1.0
        self.compute_transfer_data = False
        self.sleep = 0.0  # seconds per "epoch", for concurrency tests
        self.epochs = 1
        self.fail = False
        super().__init__(**kwargs)


def toy_dataset(seed, transfer_data=None, **config):
    cfg = ToyDatasetConfig.from_dict(config)
    return {"train": {"toy": list(range(cfg.size))}, "transfer_data": transfer_data}


def toy_model(dataloaders, seed, state_dict=None, **config):
    cfg = ToyModelConfig.from_dict(config)
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(cfg.init)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    return model


def toy_trainer(model, dataloaders, seed, uid=None, cb=None, **config):
    cfg = ToyTrainerConfig.from_dict(config)
    if cfg.fail:
        if os.environ.get("TOY_LOG"):
            with open(os.environ["TOY_LOG"], "a") as log:
                log.write(json.dumps({"step": int((uid or {}).get("transfer_step", -1)), "failed": True}) + "\n")
        raise RuntimeError("toy trainer asked to fail")
    start = float(model.weight.item())
    first_epoch = 1
    if cb is not None:  # resume like the real trainer: restore the last checkpoint if there is one
        state = {"action": "last", "maximize_score": True, "net": model}
        cb(uid=uid, epoch=0, model=model, state=state)
        first_epoch = int(state.get("epoch", 0)) + 1
    if os.environ.get("TOY_LOG"):  # one line per training run, to count how often a step ran
        with open(os.environ["TOY_LOG"], "a") as log:
            entry = {"step": int((uid or {}).get("transfer_step", -1)), "pid": os.getpid(), "increment": cfg.increment, "first_epoch": first_epoch}
            log.write(json.dumps(entry) + "\n")
    for epoch in range(first_epoch, cfg.epochs + 1):
        if int(os.environ.get("TOY_CRASH_AT_EPOCH", 0)) == epoch:  # simulate a job killed mid-training
            raise RuntimeError(f"toy trainer crashed at epoch {epoch}")
        time.sleep(cfg.sleep)
        with torch.no_grad():
            model.weight.add_(cfg.increment / cfg.epochs)
        if cb is not None:
            cb(uid=uid, epoch=epoch, model=model, state={"action": "save", "score": float(epoch), "keep_last_n": 1, "keep_best_n": 1})
    received = dataloaders.get("transfer_data")
    output = {
        "start_weight": start,
        "final_weight": float(model.weight.item()),
        "first_epoch": first_epoch,
        "received": {k: np.asarray(v) for k, v in (received or {}).items()},
    }
    if cfg.compute_transfer_data:
        output["transfer_data"] = {"soft_labels": np.full((cfg_size(dataloaders), 2), float(model.weight.item()))}
    return float(model.weight.item()), output, model.state_dict()  # a float32 weight: a huge increment gives inf


def cfg_size(dataloaders):
    return len(dataloaders["train"]["toy"])


class ToyScoredTrainerConfig(ToyTrainerConfig):
    """The toy trainer with a final evaluation, so that ``report`` has results to summarise."""

    fn = "toy_steps.toy_scored_trainer"


def toy_scored_trainer(model, dataloaders, seed, uid=None, cb=None, **config):
    score, output, state = toy_trainer(model, dataloaders, seed, uid=uid, cb=cb, **config)
    output["final"] = {"test": {"img_classification": {"accuracy": score}}}
    return score, output, state


class ToySearchTrainerConfig(ToyTrainerConfig):
    """The toy trainer with a validation and a test accuracy that peak where the final weight is 3 (the
    validation one) and 4 (the test one): a search over ``increment`` has one best setting per split."""

    fn = "toy_steps.toy_search_trainer"


def toy_search_trainer(model, dataloaders, seed, uid=None, cb=None, **config):
    score, output, state = toy_trainer(model, dataloaders, seed, uid=uid, cb=cb, **config)
    output["final"] = {
        "validation": {"img_classification": {"accuracy": 100.0 - (score - 3.0) ** 2}},
        "test": {"img_classification": {"accuracy": 100.0 - (score - 4.0) ** 2}},
    }
    return 100.0 - (score - 3.0) ** 2, output, state
