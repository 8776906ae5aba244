"""The README's code stays true: its config example and its main-loop module example run."""

import re
from pathlib import Path

README = (Path(__file__).parent.parent / "README.md").read_text()


def python_block_after(heading):
    section = README.split(heading, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_concepts_example_runs():
    namespace = {}
    exec(python_block_after("## Concepts"), namespace)
    assert set(namespace["experiment"].get_key()) >= {"dataset_hash", "model_hash", "trainer_hash", "seed"}


def test_main_loop_module_example_trains():
    import torch

    from nntransfer.builder import train_step
    from nntransfer.configs import ClassificationModelConfig, ClassificationTrainerConfig, ImageDatasetConfig

    namespace = {}
    exec(python_block_after("## Writing a main-loop module"), namespace)
    trainer = ClassificationTrainerConfig(max_iter=1, show_progress=False, main_loop_modules=["L2Penalty"])
    torch.set_num_threads(1)
    result = train_step(
        ImageDatasetConfig.fn, ImageDatasetConfig(train_subset=0.2).to_dict(),
        ClassificationModelConfig.fn, ClassificationModelConfig(type="lenet300-100").to_dict(),
        trainer.fn, trainer.to_dict(), seed=1,
    )  # fmt: skip
    assert 0 <= result.score <= 100
    from nntransfer.trainer.main_loop_modules import available

    assert "L2Penalty" in available()
