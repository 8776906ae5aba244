"""TensorBoard event files of every tracked curve: a runtime option (``tensorboard_dir``, not hashed) that
writes one run per step, epoch by epoch, with the same values the analysis reads from the stored log."""

import builtins
import importlib.util
import sys

import pytest
import torch

import nntransfer
from nntransfer.analysis import load_results
from nntransfer.configs import ClassificationModelConfig, ClassificationTrainerConfig, Experiment, ImageDatasetConfig
from nntransfer.configs import runtime as runtime_options
from nntransfer.trainer.tensorboard import TensorBoardLog, scalar_tag

TASK = "img_classification"


def experiment(**trainer):
    return Experiment(ImageDatasetConfig(dataset_cls="Digits", filter_classes=(0, 3), batch_size=128),
                      ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[16]),
                      ClassificationTrainerConfig(max_iter=3, show_progress=False, **trainer), seed=3, comment="tb")


def test_tensorboard_dir_is_not_hashed():
    assert experiment(tensorboard_dir="/tmp/tb").get_key() == experiment().get_key()
    assert "tensorboard_dir" not in experiment(tensorboard_dir="/tmp/tb").trainer.to_dict()


def test_every_tracked_curve_is_written_per_step(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.set_num_threads(1)
    workdir, events = tmp_path / "work", tmp_path / "tb"
    nntransfer.run(experiment(), workdir=str(workdir), progress=False, runtime={"trainer": {"tensorboard_dir": str(events)}})
    (step_folder,) = (workdir / "steps").iterdir()
    (run,) = events.iterdir()
    # <tensorboard_dir>/<name> seed <seed> step <index> <comment> <short step id>; the work folder names the step by its id
    assert run.name == f"tb seed 3 step 0 tb {step_folder.name[:8]}"
    accumulator = EventAccumulator(str(run))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    results = load_results(experiment(), workdir=str(workdir))
    curves = results.curves
    expected = {scalar_tag(m, t, o) for m, t, o in zip(curves["mode"], curves["task"], curves["objective"])}
    assert expected == {"lr", "Training/img_classification/accuracy", "Training/img_classification/loss",
                        "Training/img_classification/total_loss", "Validation/img_classification/accuracy",
                        "Validation/img_classification/loss", "Validation/img_classification/total_loss",
                        "Validation/patience"}
    assert expected <= tags
    for mode, objective in (("Training", "accuracy"), ("Validation", "loss")):
        scalars = accumulator.Scalars(f"{mode}/{TASK}/{objective}")
        rows = curves[(curves["mode"] == mode) & (curves["objective"] == objective)]
        assert [s.step for s in scalars] == [1, 2, 3]
        assert [s.value for s in scalars] == pytest.approx(rows["value"].tolist(), rel=1e-6)
    final = results.final
    test = final[(final["split"] == "test") & (final["objective"] == "accuracy")]["value"].item()
    (written,) = accumulator.Scalars(f"final/test/{TASK}/accuracy")
    assert written.value == pytest.approx(test) and written.step == 3
    # the same experiment without the option: already trained (same hash), nothing new written
    nntransfer.run(experiment(), workdir=str(workdir), progress=False)
    assert len(list(events.iterdir())) == 1


def test_missing_tensorboard_is_a_one_line_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(ValueError, match=r'^tensorboard_dir=.*/tb\' needs TensorBoard, which is not installed; pip install "nntransfer\[tensorboard\]"'):
        runtime_options.merge({"trainer": {"tensorboard_dir": "/x/tb"}})
    runtime_options.merge({"trainer": {"device": "cpu"}})  # not set: no check

    real_import = builtins.__import__

    def without_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    monkeypatch.setattr(builtins, "__import__", without_tensorboard)
    with pytest.raises(ImportError) as err:
        TensorBoardLog("/x/tb", "run")
    assert len(str(err.value).splitlines()) == 1 and 'pip install "nntransfer[tensorboard]"' in str(err.value)


def test_tensorboard_dir_from_the_environment():
    found = runtime_options.from_environment({"NNTRANSFER_TENSORBOARD_DIR": "/runs"})
    assert found["trainer"] == {"tensorboard_dir": "/runs"}
