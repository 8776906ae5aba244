"""Functions for the table benchmarks: a trivial job (no work) and a CPU-bound job (fixed work)."""

import os
import time

import torch
from torch import nn

from nntransfer.configs import DatasetConfig, ModelConfig, TrainerConfig


class TrivialDatasetConfig(DatasetConfig):
    fn = "trivial_steps.trivial_dataset"


class TrivialModelConfig(ModelConfig):
    fn = "trivial_steps.trivial_model"


class TrivialTrainerConfig(TrainerConfig):
    fn = "trivial_steps.trivial_trainer"

    def __init__(self, **kwargs):
        self.work_seconds = 0.0  # CPU-bound busy work per job
        super().__init__(**kwargs)


def trivial_dataset(seed, transfer_data=None, **config):
    return {"train": {"x": [0]}}


def trivial_model(dataloaders, seed, state_dict=None, **config):
    model = nn.Linear(2, 1)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    return model


def trivial_trainer(model, dataloaders, seed, uid=None, cb=None, **config):
    cfg = TrivialTrainerConfig.from_dict(config)
    started = time.time()
    if cfg.work_seconds:
        deadline = time.process_time() + cfg.work_seconds  # CPU time: independent of other processes
        value = 0
        while time.process_time() < deadline:
            value += sum(i * i for i in range(2000))
    if os.environ.get("BENCH_LOG"):  # start and end of every job, for queue throughput
        with open(os.environ["BENCH_LOG"], "a") as log:
            log.write(f"{started} {time.time()}\n")
    return 0.0, {"pid": os.getpid()}, model.state_dict()


torch.set_num_threads(1)
