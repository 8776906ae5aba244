"""The step pipeline and the stores: one path trains a step, every store keeps it the same way, and the
status walk is the same over every store."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from recipe_factory import write_toy_recipe
from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig

import nntransfer
from nntransfer.configs import (
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Description,
    Experiment,
    ImageDatasetConfig,
    NoiseAugmentationMixin,
    TransferExperiment,
    codec,
)
from nntransfer.pipeline.local import LocalStore
from nntransfer.pipeline.step import StepMeta, StepResult, StepSpec
from nntransfer.pipeline.store import BLOCKED, DONE, FAILED, WAITING, step_status
from nntransfer.recipes.loading import as_recipe


class NoisyTrainer(NoiseAugmentationMixin, ClassificationTrainerConfig):
    pass


def test_noise_range_key_trains_and_is_stored_locally(tmp_path):
    """Defect: a noise config with a range key (tuple key, the documented form) trained and then failed
    writing key.json; the training was lost."""
    experiment = Experiment(
        ImageDatasetConfig(dataset_cls="Digits", train_subset=0.2, batch_size=64),
        ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[16]),
        NoisyTrainer(max_iter=1, noise_std={(0.2, 0.4): 0.25, 0.1: 0.25}, show_progress=False),
        seed=3,
    )
    rows = nntransfer.run(experiment, workdir=tmp_path, progress=False)
    assert [row.state for row in rows] == [DONE], rows
    store = LocalStore(tmp_path)
    key = TransferExperiment([experiment]).step_key(0)
    stored = codec.loads((store.step_dir(key) / "key.json").read_text())
    trainer = Experiment.from_dict(stored["experiment"]).trainer
    assert trainer.noise_std == {(0.2, 0.4): 0.25, 0.1: 0.25}
    assert Experiment.from_dict(stored["experiment"]).get_key() == experiment.get_key()


def toy_chain(seed=1, fail_step=None):
    steps = [
        Experiment(ToyDatasetConfig(), ToyModelConfig(init=0.5),
                   ToyTrainerConfig(increment=1.0 + i, compute_transfer_data=True, data_transfer=i > 0, fail=i == fail_step),
                   seed=seed, comment=f"s{i}")
        for i in range(3)
    ]  # fmt: skip
    return TransferExperiment(steps)


def result_with_every_kind_of_value():
    output = {"tracker": {"log": {"Training": {"loss": np.arange(3.0)}}}, "levels": {(0.2, 0.4): 1.0, None: 2}, "nan": float("nan")}
    return StepResult(1.5, output, {"weight": torch.ones(2, 2)}, {"soft_labels": np.ones((4, 2), dtype=np.float32)}, seconds=0.1)


def test_local_store_round_trips_a_step(tmp_path):
    store = LocalStore(tmp_path)
    key = toy_chain().step_key(0)
    assert store.states([key])[0].state == WAITING
    store.save(key, result_with_every_kind_of_value(), StepMeta("toy", 1, 0, "s0"))
    state = store.states([key])[0]
    assert (state.state, state.score) == (DONE, 1.5)
    loaded = store.load(key)
    assert loaded.score == 1.5 and loaded.info["name"] == "toy" and loaded.info["comment"] == "s0"
    assert loaded.output["levels"] == {(0.2, 0.4): 1.0, None: 2}
    assert loaded.output["tracker"]["log"]["Training"]["loss"] == [0.0, 1.0, 2.0]
    assert torch.equal(store.load_weights(key)["weight"], torch.ones(2, 2))
    np.testing.assert_array_equal(store.load_transfer_data(key)["soft_labels"], np.ones((4, 2)))
    assert not list(store.step_dir(key).glob("*.pkl"))


def test_weights_file_cannot_run_code(tmp_path):
    store = LocalStore(tmp_path)
    key = toy_chain().step_key(0)
    store.save(key, result_with_every_kind_of_value(), StepMeta())
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"weight": Payload()}, store.step_dir(key) / "model_state.pt")
    with pytest.raises(ValueError, match="model_state.pt"):
        store.load_weights(key)
    assert not marker.exists()


def test_status_walk_blocks_a_chain_after_its_failed_step(tmp_path):
    chains = {Description("ok", 1): toy_chain(), Description("broken", 1): toy_chain(fail_step=1)}
    rows = nntransfer.run(chains, workdir=tmp_path, progress=False)
    states = {(r.name, r.step): r.state for r in rows}
    assert [states[("ok", i)] for i in range(3)] == [DONE, DONE, DONE]
    assert [states[("broken", i)] for i in range(3)] == [DONE, FAILED, BLOCKED]
    failed = next(r for r in rows if r.state == FAILED)
    assert "toy trainer asked to fail" in failed.error
    # the same walk over the same store, read again
    assert step_status(LocalStore(tmp_path), as_recipe(chains)) == rows


def test_runtime_options_do_not_rename_or_retrain(tmp_path):
    experiment = Experiment(ToyDatasetConfig(), ToyModelConfig(), ToyTrainerConfig(), seed=1)
    nntransfer.run(experiment, workdir=tmp_path, progress=False)
    moved = Experiment(ToyDatasetConfig(data_dir=str(tmp_path / "elsewhere"), num_workers=0), ToyModelConfig(),
                       ToyTrainerConfig(keep_checkpoints=True, force_cpu=True), seed=1)  # fmt: skip
    assert moved.get_key() == experiment.get_key()
    assert LocalStore(tmp_path).is_done(TransferExperiment([moved]).step_key(0))


def test_runtime_options_reach_the_functions(tmp_path):
    spec = StepSpec.from_experiment(
        Experiment(ImageDatasetConfig(data_dir="/from/config"), ClassificationModelConfig(), ClassificationTrainerConfig(), seed=1),
        runtime={"dataset": {"num_workers": 2}, "trainer": {"device": "cpu"}},
    )
    dataset = spec.config("dataset")
    assert dataset["data_dir"] == "/from/config" and dataset["num_workers"] == 2
    assert spec.config("trainer")["device"] == "cpu" and "device" not in spec.trainer_config


@pytest.mark.slow
def test_local_run_never_imports_datajoint(tmp_path):
    recipe = write_toy_recipe(tmp_path, "nodj_recipe", chains=1)
    code = textwrap.dedent(f"""
        import sys
        from nntransfer.cli.main import main
        assert main(["run", {str(recipe)!r}, "--workdir", {str(tmp_path / 'w')!r}, "--quiet"]) == 0
        assert main(["status", {str(recipe)!r}, "--workdir", {str(tmp_path / 'w')!r}]) == 0
        assert "datajoint" not in sys.modules and "nnfabrik" not in sys.modules, "DataJoint was imported"
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
