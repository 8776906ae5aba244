"""The tables against the real server: a three-step chain, weights and data along it, bookkeeping."""

import logging

import pytest
from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig

from nntransfer.configs import Experiment, TransferExperiment

pytestmark = pytest.mark.database


def three_step_chain(seed=1, first_increment=1.0):
    return TransferExperiment(
        [
            Experiment(ToyDatasetConfig(), ToyModelConfig(init=0.5), ToyTrainerConfig(increment=first_increment, compute_transfer_data=True), seed=seed, comment="A"),
            Experiment(ToyDatasetConfig(size=3), ToyModelConfig(), ToyTrainerConfig(increment=2.0, data_transfer=True), seed=seed, comment="B"),
            Experiment(ToyDatasetConfig(), ToyModelConfig(), ToyTrainerConfig(increment=4.0), seed=seed, comment="C"),
        ]
    )


def populate_chain(table, chain):
    table.add_transfer_experiment(chain)
    for level in range(len(chain)):
        table.populate(chain.get_restrictions(level), reserve_jobs=True)


def test_three_step_transfer_chain(tables):
    table = tables["transfer"].TransferredTrainedModel
    chain = three_step_chain(seed=11)
    populate_chain(table, chain)

    rows = []
    for level in range(3):
        restricted = table & chain.get_restrictions(level)
        assert len(restricted) == 1, f"step {level} should have exactly one row"
        row = restricted.fetch1()
        assert row["transfer_step"] == level
        assert {k: row[k] for k in chain.step_key(level)} == chain.step_key(level)
        rows.append(row)

    # step k starts from step k-1's weights
    assert rows[0]["output"]["start_weight"] == pytest.approx(0.5)
    assert rows[1]["output"]["start_weight"] == pytest.approx(rows[0]["output"]["final_weight"]) == pytest.approx(1.5)
    assert rows[2]["output"]["start_weight"] == pytest.approx(rows[1]["output"]["final_weight"]) == pytest.approx(3.5)
    assert rows[2]["score"] == pytest.approx(7.5)
    state = table().fetch_state_dict(chain.get_restrictions(2))
    assert float(state["weight"]) == pytest.approx(7.5)

    # data transfer: step 0 produced data, step 1 (data_transfer=True) received it, step 2 did not ask
    stored = table().fetch_transfer_data(chain.get_restrictions(0))
    assert stored["soft_labels"].shape == (4, 2)
    assert rows[1]["output"]["received"]["soft_labels"].tolist() == stored["soft_labels"].tolist()
    assert rows[1]["data_transfer"] == 1 and rows[2]["data_transfer"] == 0
    assert rows[2]["output"]["received"] == {}

    # the table's collapsed history is what get_restrictions predicted
    for level in range(2):
        nxt = (table.CollapsedHistory & chain.get_restrictions(level)).fetch1("next_collapsed_history")
        assert nxt == chain.get_restrictions(level + 1)["collapsed_history"]

    # provenance and comments
    provenance = (table.Provenance & chain.get_restrictions(2)).fetch1()
    assert provenance["torch_version"] and provenance["nnfabrik_version"] == "0.2.1"
    assert provenance["nntransfer_version"]
    # checkpoints are removed once a step finished (keep_checkpoints=False)
    assert len(table.checkpoint_table & chain.get_restrictions(2)) == 0


def test_shared_first_step_trains_once(tables):
    table = tables["transfer"].TransferredTrainedModel
    a = three_step_chain(seed=21)
    b = TransferExperiment([a[0], Experiment(ToyDatasetConfig(), ToyModelConfig(), ToyTrainerConfig(increment=8.0), seed=21, comment="D")])
    populate_chain(table, a)
    populate_chain(table, b)
    assert len(table & a.get_restrictions(0)) == 1
    assert a.get_restrictions(0) == b.get_restrictions(0)
    assert a.get_restrictions(1) != b.get_restrictions(1)
    assert (table & b.get_restrictions(1)).fetch1("score") == pytest.approx(1.5 + 8.0)


def test_unresolvable_function_writes_nothing(tables):
    nnf = tables["nnfabrik"]
    before = (len(nnf.Dataset()), len(nnf.Model()), len(nnf.Trainer()))
    broken = Experiment(ToyDatasetConfig(size=99), ToyModelConfig(init=9.0), ToyTrainerConfig(fn="toy_steps.no_such_trainer"), seed=5)
    with pytest.raises(ValueError, match="no_such_trainer"):
        broken.add_to_table()
    assert (len(nnf.Dataset()), len(nnf.Model()), len(nnf.Trainer())) == before


def test_stored_config_rebuilds_the_same_key(tables):
    nnf = tables["nnfabrik"]
    config = ToyTrainerConfig(increment=0.25)
    key = config.add_to_table()
    _, stored = (nnf.Trainer & key).fn_config
    assert ToyTrainerConfig.from_dict(stored).get_key() == key


def test_trained_model_populates_with_checkpoints_and_provenance(tables):
    table = tables["trained_model"].TrainedModel
    experiment = Experiment(ToyDatasetConfig(size=2), ToyModelConfig(init=1.0), ToyTrainerConfig(increment=3.0, epochs=3), seed=31)
    key = experiment.add_to_table()
    table.populate(key, reserve_jobs=True)
    row = (table & key).fetch1()
    assert row["score"] == pytest.approx(4.0)
    assert row["output"]["first_epoch"] == 1
    assert (table.Provenance & key).fetch1("nnfabrik_version") == "0.2.1"
    # nnfabrik's checkpoint template deletes with delete(verbose=False): our fix lets it run
    assert len(table.checkpoint_table & key) == 0


def test_real_trainer_resumes_from_table_checkpoints(tables, caplog):
    """The real trainer checkpoints through the table's callback; a job restarted after its row was lost
    resumes from the last checkpoint (no epoch trained again) and ends with the same result."""
    from nntransfer.configs import ClassificationModelConfig, ClassificationTrainerConfig, ImageDatasetConfig

    table = tables["transfer"].TransferredTrainedModel
    chain = TransferExperiment(
        [
            Experiment(
                ImageDatasetConfig(train_subset=0.3),
                ClassificationModelConfig(type="lenet300-100"),
                ClassificationTrainerConfig(max_iter=3, show_progress=False, keep_checkpoints=True),
                seed=41,
            )
        ]
    )
    table.add_transfer_experiment(chain)
    restriction = chain.get_restrictions(0)
    table.populate(restriction, reserve_jobs=True)
    first = (table & restriction).fetch1()
    epochs = sorted((table.checkpoint_table & restriction).fetch("epoch").tolist())
    assert epochs and epochs[-1] == 3  # kept after training (keep_checkpoints=True)

    (table & restriction).delete(safemode=False)  # as if the job had died before storing its row
    caplog.set_level(logging.INFO, logger="nntransfer.trainer")
    table.populate(restriction, reserve_jobs=True)
    assert "resumed from the checkpoint of epoch 3" in caplog.text
    again = (table & restriction).fetch1()
    assert again["score"] == first["score"]
    assert again["output"]["best_epoch"] == first["output"]["best_epoch"]


def test_chain_with_a_bad_last_step_writes_nothing(tables):
    nnf = tables["nnfabrik"]
    table = tables["transfer"].TransferredTrainedModel
    chain = TransferExperiment(
        [
            Experiment(ToyDatasetConfig(size=77), ToyModelConfig(init=7.0), ToyTrainerConfig(increment=7.0), seed=77),
            Experiment(ToyDatasetConfig(size=78), ToyModelConfig(), ToyTrainerConfig(fn="toy_steps.nope"), seed=77),
        ]
    )
    before = [len(t()) for t in (nnf.Dataset, nnf.Model, nnf.Trainer, nnf.Seed, nnf.TrainedModelTransferRecipe)]
    with pytest.raises(ValueError, match="toy_steps.nope"):
        table.add_transfer_experiment(chain)
    assert [len(t()) for t in (nnf.Dataset, nnf.Model, nnf.Trainer, nnf.Seed, nnf.TrainedModelTransferRecipe)] == before


def test_checkpoint_restore_picks_last_or_best_epoch(tables):
    import torch

    table = tables["trained_model"].TrainedModel
    experiment = Experiment(ToyDatasetConfig(size=5), ToyModelConfig(init=5.0), ToyTrainerConfig(increment=5.0), seed=51)
    uid = experiment.add_to_table()
    model = torch.nn.Linear(1, 1, bias=False)
    for epoch, score in ((1, 1.0), (2, 3.0), (3, 2.0)):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        state = {"action": "save", "score": score, "keep_best_n": 3, "keep_last_n": 3, "tag": epoch}
        table().call_back(uid=uid, epoch=epoch, model=model, state=state)

    def restore(action, maximize):
        target = torch.nn.Linear(1, 1, bias=False)
        state = {"action": action, "maximize_score": maximize, "net": target}
        table().call_back(uid=uid, epoch=0, model=target, state=state)
        return state["epoch"], state["tag"], target.weight.item()

    assert restore("last", True) == (3, 3, 3.0)
    assert restore("best", True) == (2, 2, 2.0)
    assert restore("best", False) == (1, 1, 1.0)


def test_diverged_training_is_a_clear_job_error(tables):
    table = tables["transfer"].TransferredTrainedModel
    chain = TransferExperiment([Experiment(ToyDatasetConfig(size=61), ToyModelConfig(), ToyTrainerConfig(increment=float("nan")), seed=61)])
    table.add_transfer_experiment(chain)
    with pytest.raises(ValueError, match="training diverged"):
        table.populate(chain.get_restrictions(0))
    assert len(table & chain.get_restrictions(0)) == 0
