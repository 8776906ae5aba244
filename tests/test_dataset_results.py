"""Named test sets end to end: a recipe whose dataset config names extra test sets is run with the
local store, and ``load_results`` reports each set under its name (split) in ``final``."""

import textwrap

import torch

from nntransfer.analysis import load_results
from nntransfer.pipeline.local import LocalStore
from nntransfer.recipes.loading import load_recipe

RECIPE = '''
from nntransfer.configs import ClassificationModelConfig, ClassificationTrainerConfig, Experiment, ImageDatasetConfig

dataset = ImageDatasetConfig(dataset_cls="Digits", batch_size=128, test_transforms={
    "test_shift": {"transform": "circular_shift", "low": 1, "high": 3},
    "test_noisy": {"transform": "gaussian_noise", "std": 0.3},
})
experiments = [Experiment(dataset, ClassificationModelConfig(type="lenet300-100"),
                          ClassificationTrainerConfig(max_iter=1, show_progress=False), seed=1)]
'''


def test_a_named_test_set_shows_up_as_a_split_of_the_final_results(tmp_path):
    torch.set_num_threads(1)
    folder = tmp_path / "named_tests_recipe"
    folder.mkdir()
    (folder / "__init__.py").write_text(textwrap.dedent(RECIPE))
    workdir = tmp_path / "work"
    LocalStore(workdir).run(load_recipe(str(folder)), progress=False)
    final = load_results(str(folder), workdir=str(workdir)).final
    splits = set(final["split"])
    assert {"test", "test_shift", "test_noisy", "validation"} <= splits
    accuracy = final[(final["objective"] == "accuracy")].set_index("split")["value"]
    assert 0 <= accuracy["test_shift"] <= 100 and accuracy["test_noisy"] <= 100
