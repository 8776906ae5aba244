"""The tables against the real server: a three-step chain, weights and data along it, bookkeeping, the
DataJoint store and its step states, the current user."""

import logging

import datajoint as dj
import pytest
import torch
from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig

from nntransfer.configs import Description, Experiment, TransferExperiment
from nntransfer.pipeline.runner import run_experiments
from nntransfer.pipeline.step import StepMeta
from nntransfer.pipeline.store import BLOCKED, DONE, FAILED, RUNNING, WAITING, step_status
from nntransfer.recipes.loading import Recipe
from nntransfer.tables import activate
from nntransfer.tables.store import IGNORED_JOB, DataJointStore

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
    table = tables.TransferredTrainedModel
    store = DataJointStore(tables=tables)
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
    assert float(store.load_weights(chain.step_key(2))["weight"]) == pytest.approx(7.5)

    # data transfer: step 0 produced data, step 1 (data_transfer=True) received it, step 2 did not ask
    stored = store.load_transfer_data(chain.step_key(0))
    assert stored["soft_labels"].shape == (4, 2)
    assert rows[1]["output"]["received"]["soft_labels"].tolist() == stored["soft_labels"].tolist()
    assert rows[1]["data_transfer"] == 1 and rows[2]["data_transfer"] == 0
    assert rows[2]["output"]["received"] == {}
    assert store.load_transfer_data(chain.step_key(2)) is None

    # the table's collapsed history is what get_restrictions predicted
    for level in range(2):
        nxt = (table.CollapsedHistory & chain.get_restrictions(level)).fetch1("next_collapsed_history")
        assert nxt == chain.get_restrictions(level + 1)["collapsed_history"]

    # provenance, comments, the fabrikant; what the store reads back
    provenance = (table.Provenance & chain.get_restrictions(2)).fetch1()
    assert provenance["torch_version"] and provenance["nnfabrik_version"] == "0.2.1"
    assert provenance["nntransfer_version"]
    loaded = store.load(chain.step_key(2))
    assert loaded.score == pytest.approx(7.5) and loaded.output["final_weight"] == pytest.approx(7.5)
    assert loaded.info["step"] == 2 and loaded.info["seed"] == 11 and loaded.info["nnfabrik_version"] == "0.2.1"
    assert loaded.info["fabrikant"] == tables.Fabrikant.current_user()
    # checkpoints are removed once a step finished (keep_checkpoints=False)
    assert len(table.checkpoint_table & chain.get_restrictions(2)) == 0


def test_shared_first_step_trains_once(tables):
    table = tables.TransferredTrainedModel
    a = three_step_chain(seed=21)
    b = TransferExperiment([a[0], Experiment(ToyDatasetConfig(), ToyModelConfig(), ToyTrainerConfig(increment=8.0), seed=21, comment="D")])
    populate_chain(table, a)
    populate_chain(table, b)
    assert len(table & a.get_restrictions(0)) == 1
    assert a.get_restrictions(0) == b.get_restrictions(0)
    assert a.get_restrictions(1) != b.get_restrictions(1)
    assert (table & b.get_restrictions(1)).fetch1("score") == pytest.approx(1.5 + 8.0)


def test_unresolvable_function_writes_nothing(tables):
    before = (len(tables.Dataset()), len(tables.Model()), len(tables.Trainer()))
    broken = Experiment(ToyDatasetConfig(size=99), ToyModelConfig(init=9.0), ToyTrainerConfig(fn="toy_steps.no_such_trainer"), seed=5)
    with pytest.raises(ValueError, match="no_such_trainer"):
        broken.add_to_table()
    assert (len(tables.Dataset()), len(tables.Model()), len(tables.Trainer())) == before


def test_stored_config_rebuilds_the_same_key(tables):
    config = ToyTrainerConfig(increment=0.25)
    key = config.add_to_table()
    _, stored = (tables.Trainer & key).fn_config
    assert ToyTrainerConfig.from_dict(stored).get_key() == key
    assert (tables.Trainer & key).fetch1("trainer_fabrikant") == tables.Fabrikant.current_user()
    with pytest.raises(ValueError, match="already in the Trainer table"):
        config.add_to_table(skip_duplicates=False)


def test_trained_model_populates_with_checkpoints_and_provenance(tables):
    table = tables.TrainedModel
    experiment = Experiment(ToyDatasetConfig(size=2), ToyModelConfig(init=1.0), ToyTrainerConfig(increment=3.0, epochs=3), seed=31)
    key = experiment.add_to_table()
    table.populate(key, reserve_jobs=True)
    row = (table & key).fetch1()
    assert row["score"] == pytest.approx(4.0)
    assert row["output"]["first_epoch"] == 1
    assert row["fabrikant_name"] == tables.Fabrikant.current_user()
    assert (table.Provenance & key).fetch1("nnfabrik_version") == "0.2.1"
    assert float(table().fetch_weights(key)["weight"]) == pytest.approx(4.0)
    # nnfabrik's checkpoint template deletes with delete(verbose=False): our fix lets it run
    assert len(table.checkpoint_table & key) == 0


def test_real_trainer_resumes_from_table_checkpoints(tables, caplog):
    """The real trainer checkpoints through the table's callback; a job restarted after its row was lost
    resumes from the last checkpoint (no epoch trained again) and ends with the same result. Keeping the
    checkpoints is a runtime option: ``prepare`` hands it to ``make``."""
    from nntransfer.configs import ClassificationModelConfig, ClassificationTrainerConfig, ImageDatasetConfig

    table = tables.TransferredTrainedModel
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
    recipe = Recipe("resume", None, {Description("resume", 41): chain})
    store = DataJointStore(tables=tables)
    store.run(recipe, progress=False)
    restriction = chain.get_restrictions(0)
    first = (table & restriction).fetch1()
    epochs = sorted((table.checkpoint_table & restriction).fetch("epoch").tolist())
    assert epochs and epochs[-1] == 3  # kept after training (keep_checkpoints=True)

    (table & restriction).delete(safemode=False)  # as if the job had died before storing its row
    caplog.set_level(logging.INFO, logger="nntransfer.trainer")
    store.run(recipe, progress=False)
    assert "resumed from the checkpoint of epoch 3" in caplog.text
    again = (table & restriction).fetch1()
    assert again["score"] == first["score"]
    assert again["output"]["best_epoch"] == first["output"]["best_epoch"]


def test_chain_with_a_bad_last_step_writes_nothing(tables):
    table = tables.TransferredTrainedModel
    chain = TransferExperiment(
        [
            Experiment(ToyDatasetConfig(size=77), ToyModelConfig(init=7.0), ToyTrainerConfig(increment=7.0), seed=77),
            Experiment(ToyDatasetConfig(size=78), ToyModelConfig(), ToyTrainerConfig(fn="toy_steps.nope"), seed=77),
        ]
    )
    parts = (tables.Dataset, tables.Model, tables.Trainer, tables.Seed, tables.TrainedModelTransferRecipe)
    before = [len(t()) for t in parts]
    with pytest.raises(ValueError, match="toy_steps.nope"):
        table.add_transfer_experiment(chain)
    with pytest.raises(ValueError, match="toy_steps.nope"):
        DataJointStore(tables=tables).prepare(Recipe("bad", None, {Description("bad", 77): chain}))
    assert [len(t()) for t in parts] == before


def test_checkpoint_restore_picks_last_or_best_epoch(tables):
    table = tables.TrainedModel
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
    table().clear_checkpoints(uid)
    assert len(table.checkpoint_table & uid) == 0


def test_diverged_training_is_a_clear_job_error(tables):
    table = tables.TransferredTrainedModel
    chain = TransferExperiment([Experiment(ToyDatasetConfig(size=61), ToyModelConfig(), ToyTrainerConfig(increment=1e39), seed=61)])
    table.add_transfer_experiment(chain)
    with pytest.raises(ValueError, match="training diverged"):
        table.populate(chain.get_restrictions(0))
    assert len(table & chain.get_restrictions(0)) == 0


# ---------------------------------------------------------------------------- the store


def test_store_states_from_rows_and_jobs(tables):
    """Done from the rows; running, failed and ignored from DataJoint's jobs table; blocked by the walk."""
    store = DataJointStore(tables=tables)
    chains = {Description(f"states{i}", 70 + i): three_step_chain(seed=70 + i) for i in range(4)}
    recipe = Recipe("states", None, chains)
    store.prepare(recipe)
    done, running, failed, ignored = chains.values()
    table, jobs = tables.TransferredTrainedModel, tables.schema.jobs
    table.populate(done.get_restrictions(0), reserve_jobs=True)
    jobs.reserve(table.table_name, running.step_key(0))
    store.record_failure(failed.step_key(0), RuntimeError("boom"), StepMeta())
    jobs.ignore(table.table_name, ignored.step_key(0))

    states = store.states([chain.step_key(0) for chain in chains.values()])
    assert [s.state for s in states] == [DONE, RUNNING, FAILED, FAILED]
    assert states[0].score == pytest.approx(1.5)
    assert states[2].error == "RuntimeError: boom" and states[3].error == IGNORED_JOB
    rows = step_status(store, recipe)
    by_chain = {}
    for row in rows:
        by_chain.setdefault(row.name, []).append(row.state)
    assert by_chain == {
        "states0": [DONE, WAITING, WAITING],
        "states1": [RUNNING, WAITING, WAITING],
        "states2": [FAILED, BLOCKED, BLOCKED],
        "states3": [FAILED, BLOCKED, BLOCKED],
    }
    assert store.clear_failures(recipe) == 1  # the error; 'ignore' stays as set by hand
    assert store.states([failed.step_key(0)])[0].state == WAITING
    (jobs & {"table_name": table.table_name}).delete_quick()


def test_store_refuses_to_read_what_it_does_not_hold(tables):
    store = DataJointStore(tables=tables)
    missing = three_step_chain(seed=99).step_key(1)
    for read in (store.load, store.load_weights):
        with pytest.raises(ValueError, match="step 1 .*seed 99"):
            read(missing)


def test_runtime_options_reach_make_through_prepare(tables, tmp_path):
    """Runtime options are not stored in the tables; ``prepare`` remembers them for this process's makes."""
    chain = TransferExperiment([Experiment(ToyDatasetConfig(size=81), ToyModelConfig(), ToyTrainerConfig(keep_checkpoints=True), seed=81)])
    store = DataJointStore(tables=tables)
    store.run(Recipe("runtime", None, {Description("runtime", 81): chain}), progress=False)
    name, _, runtime, _ = store.prepared(chain.step_key(0))
    assert name == "runtime" and runtime["trainer"]["keep_checkpoints"] is True
    assert len(tables.TransferredCheckpoint & chain.get_restrictions(0)) == 1  # kept, as the option asks


def test_current_user_comes_from_the_schemas_own_fabrikant_table(tables, db_prefix):
    """Defect 2: nnfabrik's ``get_current_user`` reads the shared core Fabrikant table. A database user with
    a row there (every nnfabrik user) got a foreign-key IntegrityError from ``run --backend datajoint``,
    and every stored row had ``fabrikant_name = NULL``."""
    import nnfabrik.main as core

    user = dj.conn().get_user().split("@")[0]
    core_row = dict(fabrikant_name="core_person", full_name="", email="core@lab", affiliation="lab", dj_username=user)
    core.Fabrikant.insert1(core_row, skip_duplicates=True)
    schema = f"{db_prefix}_fabrikant"
    try:
        rows = run_experiments(three_step_chain(seed=91), schema=schema, progress=False)
        assert [row.state for row in rows] == [DONE] * 3
        own = activate(schema)
        expected = (own.Fabrikant & {"dj_username": user}).fetch1("fabrikant_name")
        assert expected != "core_person"
        assert own.TransferredTrainedModel.fetch("fabrikant_name").tolist() == [expected] * 3
        assert set(own.Dataset.fetch("dataset_fabrikant")) == {expected}
        assert own.Fabrikant.get_current_user() == expected
    finally:
        (core.Fabrikant & {"fabrikant_name": "core_person"}).delete_quick()
        activate(tables.schema_name)


def test_scores_are_stored_in_double_precision_like_a_work_folder(tables):
    # nnfabrik declares a single-precision float: 73/74 (a validation accuracy of 73 of 74) would read back
    # as 0.98648649 in a work folder and 0.98648650 from the tables
    for table in (tables.TrainedModel, tables.TransferredTrainedModel):
        assert table.heading.attributes["score"].type == "double"
