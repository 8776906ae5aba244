"""Analysis from the tables: a digits transfer chain populated through the DataJoint backend is read back
into the same frames as from a work folder (integer severities and float noise levels survive the blobs)."""

import logging

import pytest
import torch

from nntransfer.analysis import accuracy_matrix, load_results, plot_all, transfer_gain
from nntransfer.configs import (
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Description,
    Experiment,
    ImageDatasetConfig,
    TransferExperiment,
)
from nntransfer.recipes.loading import Recipe
from nntransfer.tables import activate
from nntransfer.tables.store import DataJointStore

pytestmark = pytest.mark.database
TASK = "img_classification"


def chain(seed):
    def step(classes, **options):
        dataset = ImageDatasetConfig(dataset_cls="Digits", filter_classes=classes, batch_size=128, examples_per_class=60)
        trainer = ClassificationTrainerConfig(max_iter=1, show_progress=False, noise_test={"noise_std": [0.0, 0.25]}, **options)
        return Experiment(dataset, ClassificationModelConfig(type="lenet300-100"), trainer, seed=seed,
                          comment=f"{classes[0]}-{classes[1] - 1}")

    return TransferExperiment([step((0, 5)), step((5, 10), reset=["readout"])])


@pytest.mark.slow
def test_results_from_the_tables(tables, db_prefix, tmp_path, caplog):
    torch.set_num_threads(1)
    done, waiting = Description("db_pretrained", 1), Description("db_pretrained", 2)
    recipe = Recipe("db_recipe", None, {done: chain(1), waiting: chain(2)})
    DataJointStore(tables=tables).run(Recipe("db_recipe", None, {done: recipe.transfer_experiments[done]}), progress=False)

    with caplog.at_level(logging.WARNING, logger="nntransfer.analysis"):
        results = load_results(recipe, schema=tables.schema_name)
    assert results.where == f"schema {tables.schema_name}"
    assert "1 of 2 chains are incomplete: db_pretrained seed 2 (step 0 waiting, step 1 waiting)" in caplog.text
    assert list(results.status["state"]) == ["done", "done", "waiting", "waiting"]

    table = tables.TransferredTrainedModel
    for level in range(2):
        row = (table & recipe.transfer_experiments[done].get_restrictions(level)).fetch1()
        final = results.final[(results.final["step"] == level) & (results.final["objective"] == "accuracy")]
        assert final[final["split"] == "test"]["value"].item() == row["output"]["final"]["test"][TASK]["accuracy"]
        noise = final[final["split"] == "validation_noise"].set_index("level")["value"]
        assert noise.to_dict() == {
            level_: values[TASK]["accuracy"] for level_, values in row["output"]["final"]["validation_noise"]["noise_std"].items()
        }
        assert set(noise.index) == {0.0, 0.25}
        assert results.status.loc[level, "score"] == pytest.approx(row["score"])
        validation = results.curves[(results.curves["step"] == level) & (results.curves["mode"] == "Validation")
                                    & (results.curves["objective"] == "accuracy")]
        assert validation["epoch"].tolist() == [1] and validation["value"].item() == pytest.approx(row["score"])
    assert set(results.final["seed"]) == {1} and results.final["chain_complete"].all()

    # the same identities and metrics as from a work folder
    assert results.steps["test_set"].tolist() == ["0-4", "5-9"] * 2
    matrix = accuracy_matrix(results)
    assert list(matrix.columns) == ["0-4", "5-9"] and len(matrix) == 2
    test = results.final[(results.final["split"] == "test") & (results.final["objective"] == "accuracy")]
    assert matrix.loc[("db_pretrained", 1, "0-4 -> 5-9"), "5-9"] == test[test["step"] == 1]["value"].item()
    # the fine-tuning step also evaluated the pre-training step's test set (the tables' make found it)
    earlier = results.final[(results.final["split"] == "step 0 test") & (results.final["objective"] == "accuracy")]
    assert matrix.loc[("db_pretrained", 1, "0-4 -> 5-9"), "0-4"] == earlier["value"].item()
    gain = transfer_gain(results)
    assert gain["scratch"].tolist() == [""] and gain["n"].tolist() == [1]  # no from-scratch run in this recipe

    figures = plot_all(results, out=tmp_path, close=True)
    assert set(figures) == {"learning_curves", "transfer_steps", "final_accuracy", "robustness_validation_noise",
                            "accuracy_matrix"}
    assert all((tmp_path / f"{name}.png").stat().st_size > 1000 for name in figures)

    # another schema in the same process: its own tables (here: nothing finished yet); a missing one is an error
    try:
        activate(f"{db_prefix}_analysis_other")
        with pytest.raises(ValueError, match="none of the 4 steps .* is finished in schema .*_analysis_other"):
            load_results(recipe, schema=f"{db_prefix}_analysis_other")
        with pytest.raises(ValueError, match="does not exist on the database server"):
            load_results(recipe, schema=f"{db_prefix}_analysis_missing")
    finally:
        activate(tables.schema_name)
