"""Experiment and TransferExperiment: keys, round trips, comments, restrictions."""

import subprocess
import sys

import pytest

from nntransfer.configs import (
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Experiment,
    ImageDatasetConfig,
    TransferExperiment,
)
from nntransfer.configs.base import make_hash


def make_experiment(seed=1, comment="A", **trainer):
    return Experiment(
        ImageDatasetConfig(batch_size=32),
        ClassificationModelConfig(),
        ClassificationTrainerConfig(**trainer),
        seed=seed,
        comment=comment,
    )


def test_experiment_key_is_union_of_config_keys_and_seed():
    exp = make_experiment(seed=3)
    key = exp.get_key()
    assert key == {**exp.dataset.get_key(), **exp.model.get_key(), **exp.trainer.get_key(), "seed": 3}


def test_experiment_rejects_wrong_parts():
    with pytest.raises(ValueError, match="model must be a model config"):
        Experiment(ImageDatasetConfig(), ImageDatasetConfig(), ClassificationTrainerConfig(), seed=1)
    with pytest.raises(ValueError, match="seed must be an int"):
        Experiment(ImageDatasetConfig(), ClassificationModelConfig(), ClassificationTrainerConfig(), seed="1")


def test_experiment_round_trip():
    exp = make_experiment(seed=5)
    again = Experiment.from_dict(exp.to_dict())
    assert again.get_key() == exp.get_key()
    assert again.comment == exp.comment
    assert type(again.trainer) is ClassificationTrainerConfig


def test_transfer_experiment_comments_chain():
    chain = TransferExperiment([make_experiment(comment="A"), make_experiment(comment="B"), make_experiment(comment="C")])
    assert chain.comments == ["A", "A -> B", "A -> B -> C"]


def test_transfer_experiment_round_trip():
    chain = TransferExperiment([make_experiment(comment="A", compute_transfer_data=True), make_experiment(comment="B", data_transfer=True)])
    again = TransferExperiment.from_dict(chain.to_dict())
    assert again.comments == chain.comments
    assert [s.get_key() for s in again] == [s.get_key() for s in chain]
    assert again.get_restrictions(1) == chain.get_restrictions(1)


def test_update_changes_copies_of_one_step():
    base = make_experiment()
    chain = TransferExperiment([base, base], update=[{}, {"dataset": {"batch_size": 8}}])
    assert chain[0].dataset.batch_size == 32
    assert chain[1].dataset.batch_size == 8
    assert base.dataset.batch_size == 32  # the recipe's object is untouched
    with pytest.raises(ValueError, match="unknown part"):
        TransferExperiment([base], update=[{"optimizer": {}}])
    with pytest.raises(ValueError, match="did you mean 'batch_size'"):
        TransferExperiment([base], update=[{"dataset": {"batchsize": 8}}])


def test_first_step_cannot_receive_data():
    with pytest.raises(ValueError, match="first step"):
        TransferExperiment([make_experiment(data_transfer=True)])


def test_receiving_step_needs_a_producing_step():
    with pytest.raises(ValueError, match="set compute_transfer_data=True in step 0's trainer"):
        TransferExperiment([make_experiment(), make_experiment(data_transfer=True)])


def test_get_restrictions_chain_collapsed_history():
    steps = [make_experiment(comment="A", compute_transfer_data=True), make_experiment(comment="B", data_transfer=True), make_experiment(comment="C")]
    chain = TransferExperiment(steps)
    r0 = chain.get_restrictions(0)
    assert r0 == dict(steps[0].get_key(), collapsed_history="")
    # step 1's history is the hash of step 0's full row key, as the table's CollapsedHistory computes it
    full0 = dict(r0, transfer_step=0, data_transfer=0)
    r1 = chain.get_restrictions(1)
    assert r1 == dict(chain[1].get_key(), collapsed_history=make_hash(full0))
    full1 = dict(r1, transfer_step=1, data_transfer=1)
    assert chain.get_restrictions(2)["collapsed_history"] == make_hash(full1)
    assert "transfer_step" not in r1 and "data_transfer" not in r1
    assert chain.get_restrictions(3) == {}  # past the last step, as in the original nntransfer
    with pytest.raises(ValueError, match="does not exist"):
        chain.step_key(3)


def test_same_configs_different_history_give_different_restrictions():
    a = TransferExperiment([make_experiment(seed=1), make_experiment(seed=1)])
    b = TransferExperiment([make_experiment(seed=2), make_experiment(seed=1)])
    assert a.get_restrictions(1) != b.get_restrictions(1)
    assert a.get_restrictions(0) != b.get_restrictions(0)


@pytest.mark.slow
def test_importing_configs_opens_no_connection():
    code = (
        "import datajoint as dj\n"
        "dj.config['database.host'] = '127.0.0.1:1'\n"  # nothing listens there: any connection attempt fails
        "import nntransfer, nntransfer.configs\n"
        "from nntransfer.configs import *\n"
        "ImageDatasetConfig().get_key()\n"
        "assert getattr(dj.conn, 'connection', None) is None\n"
        "print('no connection')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "no connection" in result.stdout
