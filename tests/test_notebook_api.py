"""The notebook workflow of design.md: build experiments, ``nntransfer.run`` them, load the results."""

import pytest

import nntransfer
import nntransfer.analysis
from nntransfer.configs import (
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Description,
    Experiment,
    ImageDatasetConfig,
    TransferExperiment,
)
from nntransfer.recipes.loading import RecipeError, as_recipe


def small_chain(seed=1):
    data = ImageDatasetConfig(train_subset=0.3, batch_size=64)
    model = ClassificationModelConfig(type="lenet300-100")
    trainer = ClassificationTrainerConfig(max_iter=1, show_progress=False)
    return TransferExperiment(
        [Experiment(data, model, trainer, seed=seed, comment="A"), Experiment(data, model, trainer, seed=seed, comment="B")]
    )


def test_run_a_transfer_experiment_from_a_notebook_and_load_its_results(tmp_path):
    from nntransfer.analysis import load_results

    chain = small_chain()
    rows = nntransfer.run(chain, workdir=str(tmp_path), progress=False)
    assert [(r.name, r.step, r.state) for r in rows] == [("A -> B", 0, "done"), ("A -> B", 1, "done")]
    assert all(0 <= r.score <= 100 for r in rows)
    again = nntransfer.run(chain, workdir=str(tmp_path), progress=False)  # done steps are skipped
    assert [r.score for r in again] == [r.score for r in rows]
    # each row names its step by the id the store files it under, which lineage takes as a short prefix
    assert sorted(r.id for r in rows) == sorted(p.name for p in (tmp_path / "steps").iterdir())
    assert [r.short_id for r in rows] == [r.id[:8] for r in rows]
    assert nntransfer.analysis.lineage(rows[1].short_id, workdir=str(tmp_path)).step.id == rows[1].id
    results = load_results(chain, workdir=str(tmp_path))
    assert set(results.final["step"]) == {0, 1}
    assert not results.curves.empty


def test_as_recipe_accepts_what_a_notebook_holds():
    chain = small_chain(seed=3)
    assert list(as_recipe({Description("x", 3): chain}).transfer_experiments) == [Description("x", 3)]
    assert list(as_recipe(chain[0]).transfer_experiments) == [Description("A", 3)]
    both = as_recipe([small_chain(seed=1), small_chain(seed=2)])
    assert list(both.transfer_experiments) == [Description("A -> B", 1), Description("A -> B", 2)]
    with pytest.raises(RecipeError, match="cannot run a int"):
        as_recipe([1])
    with pytest.raises(RecipeError, match="not a TransferExperiment"):
        as_recipe({Description("x", 1): "nonsense"})
