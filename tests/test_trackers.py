"""What a person sees of a step in TensorBoard and MLflow: runs named by experiment, seed, step and comment
(plus the short step id), the step's settings as TensorBoard hyper-parameters and MLflow params, every tracked
curve and the final results as metrics, one MLflow run per step that a resumed step continues, nothing from a
fast dev run; and MLflow imported only when it is used."""

import builtins
import importlib.util
import subprocess
import sys

import pytest

import nntransfer
from nntransfer.analysis import load_results
from nntransfer.configs import (
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Experiment,
    ImageDatasetConfig,
    KnowledgeDistillationMixin,
    TransferExperiment,
)
from nntransfer.configs import runtime as runtime_options
from nntransfer.configs.base import Description
from nntransfer.configs.codec import make_hash
from nntransfer.pipeline.store import DONE
from nntransfer.trainer import run_info
from nntransfer.trainer.observers import watching_validation
from nntransfer.trainer.run_info import RunInfo, flat_settings, safe_name, title
from nntransfer.trainer.tensorboard import scalar_tag

TASK = "img_classification"
EPOCHS = 3


class Distillation(KnowledgeDistillationMixin, ClassificationTrainerConfig):
    pass


def chain(seed=1, epochs=EPOCHS):
    """Pre-training, then a student distilled from it (a loss term beside the task's loss)."""
    data = ImageDatasetConfig(dataset_cls="Digits", filter_classes=(0, 3), batch_size=128)
    model = ClassificationModelConfig(type="mlp", options={"hidden_sizes": [16]})
    return TransferExperiment([
        Experiment(data, model, ClassificationTrainerConfig(max_iter=epochs, show_progress=False), seed=seed,
                   comment="pre-train 0-2"),
        Experiment(data, model, Distillation(max_iter=epochs, show_progress=False, teacher="previous", kd_weight=0.5),
                   seed=seed, comment="fine-tune 0-2"),
    ])


def run_names(experiments):
    """``{step index: expected run name}`` of a ``{Description: chain}``, from the steps' keys."""
    ((description, steps),) = experiments.items()
    return {level: f"{description.name} seed {description.seed} step {level} {comment} {make_hash(steps.step_key(level))[:8]}"
            for level, comment in enumerate(("pre-train 0-2", "fine-tune 0-2"))}


@pytest.fixture
def mlflow_file_store(monkeypatch, tmp_path):
    """A ``file:`` tracking URI in ``tmp_path`` (MLflow 3 refuses its file store unless allowed) and the client."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.chdir(tmp_path)  # whatever MLflow puts beside the store stays in tmp_path
    uri = (tmp_path / "mlruns").as_uri()
    return uri, MlflowClient(tracking_uri=uri)


def mlflow_runs(client):
    experiment = client.get_experiment_by_name("nntransfer")
    return [] if experiment is None else client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def hparams_view(logdir):
    """What TensorBoard's HParams view shows of ``logdir``: the experiment (columns) and the session groups."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    backend = backend_context.Context(base_plugin.TBContext(data_provider=provider, logdir=str(logdir), multiplexer=multiplexer))
    request = context.RequestContext()
    experiment = get_experiment.Handler(request, backend, "", api_pb2.GetExperimentRequest()).run()
    statuses = [api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE, api_pb2.STATUS_RUNNING]
    groups = list_session_groups.Handler(request, backend, "", api_pb2.ListSessionGroupsRequest(
        start_index=0, slice_size=100, allowed_statuses=statuses)).run()
    return experiment, groups.session_groups


def hparam_value(value):
    kind = value.WhichOneof("kind")
    return getattr(value, kind)


# ------------------------------------------------------------------ names and settings


def test_a_run_is_named_by_experiment_seed_step_and_own_comment_made_filesystem_safe():
    assert title("KD", 1, 1, "pre-train 0-4 -> fine-tune 5-9") == "KD seed 1 step 1 fine-tune 5-9"
    assert title(seed=3) == "seed 3"
    assert safe_name('digits 0-4 -> 5-9: "best"/v2?') == "digits 0-4 to 5-9_ _best_v2_"
    assert safe_name("x" * 300) == "x" * run_info.TITLE_CHARS and safe_name(" ../ ") == "_"
    info = RunInfo(title("KD", 1, 1, "fine-tune 5-9"), "d710c56a0123456789abcdef01234567")
    assert info.name == "KD seed 1 step 1 fine-tune 5-9 d710c56a"
    assert RunInfo("", "d710c56a0123").name == "d710c56a"


def test_settings_are_flattened_to_scalars_and_short_strings():
    settings = flat_settings({"dataset": {"batch_size": 128, "filter_classes": (0, 5), "mean": None, "kwargs": {}},
                              "model": {"options": {"hidden_sizes": [64, 32]}, "type": "mlp", "note": "x" * 500},
                              "trainer": {"lr": 0.01, "amp": False, "modules": [{"a": 1}]}})
    assert settings == {"dataset/batch_size": 128, "dataset/filter_classes": "(0, 5)", "dataset/mean": None,
                        "model/options/hidden_sizes": "[64, 32]", "model/type": "mlp", "trainer/lr": 0.01,
                        "trainer/amp": False}


# ------------------------------------------------------------------ TensorBoard


def test_tensorboard_runs_are_named_for_people_and_listed_with_their_settings_in_the_hparams_view(tmp_path):
    pytest.importorskip("tensorboard")
    experiments = {Description("KD", 1): chain()}
    events = tmp_path / "tb"
    nntransfer.run(experiments, workdir=str(tmp_path / "work"), progress=False,
                   runtime={"trainer": {"tensorboard_dir": str(events)}})
    names = run_names(experiments)
    assert sorted(path.name for path in events.iterdir()) == sorted(names.values())
    experiment, groups = hparams_view(events)
    columns = {info.name for info in experiment.hparam_infos}
    assert {"seed", "dataset/dataset_cls", "dataset/filter_classes", "model/type", "model/options/hidden_sizes",
            "trainer/lr", "trainer/max_iter", "trainer/kd_weight", "trainer/teacher"} <= columns
    assert {"Validation/img_classification/accuracy", "final/test/img_classification/accuracy"} <= {
        info.name.tag for info in experiment.metric_infos}
    sessions = {group.name: group for group in groups}
    assert set(sessions) == set(names.values())  # every step's run, in a group of its own
    student = sessions[names[1]]
    assert [session.status for session in student.sessions] == [1]  # STATUS_SUCCESS: the step finished
    hparams = {name: hparam_value(value) for name, value in student.hparams.items()}
    assert hparams["seed"] == 1 and hparams["trainer/kd_weight"] == 0.5 and hparams["trainer/teacher"] == "previous"
    assert hparams["dataset/filter_classes"] == "(0, 3)" and hparams["model/options/hidden_sizes"] == "[16]"
    assert "trainer/kd_weight" not in {name for name in sessions[names[0]].hparams}  # only the student has it
    metrics = {value.name.tag: value.value for value in student.metric_values}
    final = load_results(experiments, workdir=str(tmp_path / "work")).final
    test = final[(final["step"] == 1) & (final["split"] == "test") & (final["objective"] == "accuracy")]["value"].item()
    assert metrics["final/test/img_classification/accuracy"] == pytest.approx(test)


# ------------------------------------------------------------------ MLflow


def test_mlflow_gets_one_run_per_step_with_settings_every_curve_and_the_final_results(tmp_path, mlflow_file_store):
    uri, client = mlflow_file_store
    experiments = {Description("KD", 2): chain(seed=2)}
    workdir = tmp_path / "work"
    nntransfer.run(experiments, workdir=str(workdir), progress=False, runtime={"trainer": {"mlflow_uri": uri}})
    runs = mlflow_runs(client)
    names = run_names(experiments)
    assert [run.info.run_name for run in runs] == [names[0], names[1]]
    results = load_results(experiments, workdir=str(workdir))
    ((_, steps),) = experiments.items()
    for level, run in enumerate(runs):
        step_id = make_hash(steps.step_key(level))
        assert run.info.status == "FINISHED"
        assert run.data.tags[run_info.STEP_ID_TAG] == step_id
        assert {k: run.data.tags[k] for k in ("nntransfer.chain", "nntransfer.seed", "nntransfer.step")} == {
            "nntransfer.chain": "KD", "nntransfer.seed": "2", "nntransfer.step": str(level)}
        params = run.data.params
        assert params["seed"] == "2" and params["trainer/max_iter"] == str(EPOCHS) and params["model/type"] == "mlp"
        assert params["dataset/filter_classes"] == "(0, 3)" and params["trainer/lr"] == "0.001"
        curves = results.curves[results.curves["step"] == level]
        expected = {scalar_tag(m, t, o) for m, t, o in zip(curves["mode"], curves["task"], curves["objective"])}
        finals = {key for key in run.data.metrics if key.startswith("final/")}
        assert set(run.data.metrics) - finals == expected  # every tracked curve, nothing else
        for (mode, task, objective), rows in curves.groupby(["mode", "task", "objective"]):
            history = client.get_metric_history(run.info.run_id, scalar_tag(mode, task, objective))
            assert sorted(m.step for m in history) == rows["epoch"].tolist()
            assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(rows["value"].tolist())
        final = results.final[results.final["step"] == level]
        test = final[(final["split"] == "test") & (final["objective"] == "accuracy")]["value"].item()
        (written,) = client.get_metric_history(run.info.run_id, f"final/test/{TASK}/accuracy")
        assert written.value == pytest.approx(test) and written.step == EPOCHS
    # the student's distillation term is a curve of its own, per epoch
    kd_terms = {key for key in runs[1].data.metrics if key.startswith("Training/") and key.split("/")[-1] not in ("loss", "accuracy", "total_loss")}
    assert kd_terms and not {key for key in runs[0].data.metrics if key in kd_terms}
    # the same steps again: stored, reused, no new run
    nntransfer.run(experiments, workdir=str(workdir), progress=False, runtime={"trainer": {"mlflow_uri": uri}})
    assert len(mlflow_runs(client)) == 2


def test_a_resumed_step_continues_its_mlflow_run_and_tensorboard_folder_without_logging_an_epoch_twice(tmp_path, mlflow_file_store):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    uri, client = mlflow_file_store
    experiment = Experiment(ImageDatasetConfig(dataset_cls="Digits", filter_classes=(0, 3), batch_size=128),
                            ClassificationModelConfig(type="mlp", options={"hidden_sizes": [16]}),
                            ClassificationTrainerConfig(max_iter=4, show_progress=False), seed=5, comment="resume")
    workdir, events = tmp_path / "work", tmp_path / "tb"
    runtime = {"trainer": {"mlflow_uri": uri, "tensorboard_dir": str(events)}}

    def killed_after_epoch_2(uid, epoch, results):
        if epoch == 2:
            raise KeyboardInterrupt("killed")

    with watching_validation(killed_after_epoch_2), pytest.raises(KeyboardInterrupt):
        nntransfer.run(experiment, workdir=str(workdir), progress=False, runtime=runtime)
    (run,) = mlflow_runs(client)
    assert run.info.status == "KILLED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "Training/img_classification/loss")] == [1, 2]

    (row,) = nntransfer.run(experiment, workdir=str(workdir), progress=False, runtime=runtime)
    assert row.state == DONE
    (resumed,) = mlflow_runs(client)  # the same run, continued
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    for key in resumed.data.metrics:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert len(steps) == len(set(steps)), key  # no epoch logged twice
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "Training/img_classification/loss")) == [1, 2, 3, 4]
    (folder,) = events.iterdir()
    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    assert [s.step for s in accumulator.Scalars("Training/img_classification/loss")] == [1, 2, 3, 4]


def test_a_fast_dev_run_writes_no_tensorboard_events_and_no_mlflow_run(tmp_path, mlflow_file_store):
    uri, client = mlflow_file_store
    events = tmp_path / "tb"
    result = nntransfer.run({Description("KD", 3): chain(seed=3)}, workdir=str(tmp_path / "work"), progress=False,
                            fast_dev_run=True, runtime={"trainer": {"mlflow_uri": uri, "tensorboard_dir": str(events)}})
    assert all(row.state == "passed" for row in result)
    assert not events.exists() and mlflow_runs(client) == []


@pytest.mark.slow
def test_a_sqlite_tracking_uri_works_with_the_skinny_client(tmp_path, monkeypatch):
    """MLflow 3 prefers a database store to its file store; ``mlflow-skinny`` writes to one (SQLAlchemy and
    Alembic come with optuna)."""
    pytest.importorskip("mlflow")
    pytest.importorskip("alembic")
    from mlflow.tracking import MlflowClient

    from nntransfer.trainer.mlflow_log import MLflowLog

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    info = RunInfo("KD seed 1 step 0 pre-train", "0" * 32, {"seed": 1, "trainer/lr": 0.1}, {run_info.STEP_ID_TAG: "0" * 32})
    log = MLflowLog(uri, info)
    log.write_epochs({"log": {"lr": [0.0, 0.1, 0.1]}}, 2)
    log.close()
    client = MlflowClient(tracking_uri=uri)
    (run,) = mlflow_runs(client)
    assert run.info.run_name == "KD seed 1 step 0 pre-train 00000000" and run.data.params == {"seed": "1", "trainer/lr": "0.1"}
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "lr")] == [(1, 0.1), (2, 0.1)]


# ------------------------------------------------------------------ the option


def test_mlflow_uri_is_a_runtime_option_not_hashed_and_read_from_the_environment():
    trainer = ClassificationTrainerConfig(mlflow_uri="sqlite:///m.db")
    assert "mlflow_uri" not in trainer.to_dict() and trainer.runtime_options()["mlflow_uri"] == "sqlite:///m.db"
    assert trainer.get_key() == ClassificationTrainerConfig().get_key()
    found = runtime_options.from_environment({"NNTRANSFER_MLFLOW_URI": "http://mlflow:5000"})
    assert found["trainer"] == {"mlflow_uri": "http://mlflow:5000"}


def test_missing_mlflow_is_one_line_before_anything_trains(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(ValueError, match=r'^mlflow_uri=\'file:/x\' needs MLflow, which is not installed; pip install "nntransfer\[mlflow\]"'):
        runtime_options.merge({"trainer": {"mlflow_uri": "file:/x"}})
    with pytest.raises(ValueError, match="needs MLflow"):
        nntransfer.run({Description("KD", 4): chain(seed=4)}, workdir=str(tmp_path / "work"), progress=False,
                       runtime={"trainer": {"mlflow_uri": "file:/x"}})
    assert not (tmp_path / "work" / "steps").exists() or not any((tmp_path / "work" / "steps").iterdir())
    runtime_options.merge({"trainer": {"device": "cpu"}})  # not set: no check

    from nntransfer.trainer.mlflow_log import MLflowLog

    real_import = builtins.__import__

    def without_mlflow(name, *args, **kwargs):
        if name.split(".")[0] == "mlflow":
            raise ImportError("No module named 'mlflow'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_mlflow)
    with pytest.raises(ImportError) as err:
        MLflowLog("file:/x", RunInfo("t"))
    assert len(str(err.value).splitlines()) == 1 and 'pip install "nntransfer[mlflow]"' in str(err.value)


def test_importing_nntransfer_does_not_import_mlflow():
    code = ("import sys, nntransfer, nntransfer.trainer, nntransfer.pipeline.step, nntransfer.trainer.mlflow_log; "
            "assert 'mlflow' not in sys.modules, 'mlflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.database
def test_the_datajoint_store_names_its_runs_the_same_way(tables, tmp_path, mlflow_file_store):
    """The tables' ``make`` trains through ``train_and_store`` too: the same names, settings and tags."""
    uri, client = mlflow_file_store
    experiments = {Description("KD tables", 6): chain(seed=6, epochs=2)}
    events = tmp_path / "tb"
    rows = nntransfer.run(experiments, store=f"datajoint:{tables.schema_name}", progress=False,
                          runtime={"trainer": {"mlflow_uri": uri, "tensorboard_dir": str(events)}})
    assert [row.state for row in rows] == [DONE, DONE]
    names = run_names(experiments)
    assert sorted(path.name for path in events.iterdir()) == sorted(names.values())
    runs = mlflow_runs(client)
    assert [run.info.run_name for run in runs] == [names[0], names[1]]
    assert all(run.info.status == "FINISHED" and run.data.params["seed"] == "6" for run in runs)
