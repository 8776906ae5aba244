"""The README's code stays true: its examples run and train as shown."""

import re
from pathlib import Path

import pytest

README = (Path(__file__).parent.parent / "README.md").read_text()


def python_blocks_after(heading):
    section = README.split(heading, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.mark.slow
def test_concepts_and_analysis_examples_train_and_plot(tmp_path, monkeypatch):
    import nntransfer

    monkeypatch.chdir(tmp_path)
    namespace = {}
    concepts, distillation = python_blocks_after("## Concepts")
    exec(concepts, namespace)
    assert set(namespace["experiment"].get_key()) >= {"dataset_hash", "model_hash", "trainer_hash", "seed"}
    exec(distillation, namespace)
    (analysis,) = python_blocks_after("## Analysis")
    exec(analysis, namespace)  # trains the chain of Concepts and plots it
    assert (tmp_path / "plots" / "learning_curves.png").exists()
    rows = nntransfer.run(namespace["distillation"], workdir="nntransfer_work", progress=False)
    assert [row.state for row in rows] == ["done", "done"]
    distilled = namespace["load_results"](namespace["distillation"], workdir="nntransfer_work").curves
    assert "distillation" in set(distilled["objective"])


def test_main_loop_module_example_trains():
    from nntransfer.configs import (
        ClassificationModelConfig,
        ClassificationTrainerConfig,
        Experiment,
        ImageDatasetConfig,
    )
    from nntransfer.pipeline.step import StepSpec, run_step
    from nntransfer.trainer.main_loop_modules import available

    namespace = {}
    (example,) = python_blocks_after("## Writing a main-loop module")
    exec(example, namespace)
    assert "L2Penalty" in available()
    trainer = ClassificationTrainerConfig(max_iter=1, show_progress=False, main_loop_modules=["L2Penalty"])
    experiment = Experiment(ImageDatasetConfig(train_subset=0.2), ClassificationModelConfig(type="lenet300-100"), trainer, seed=1)
    result = run_step(StepSpec.from_experiment(experiment))
    assert 0 <= result.score <= 100
