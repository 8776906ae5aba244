"""Chains of several seeds that share one teacher trained with a seed of its own (as the paper's rotation
recipe does): each step trains with its own Experiment's seed, the teacher once, and the results count it
once (``trained_seed``; means over seeds by ``step_id``). A chain is named with its last step's seed."""

import pytest

from nntransfer.analysis.results import collect_results, summarize
from nntransfer.configs import (
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Description,
    Experiment,
    ImageDatasetConfig,
    TransferExperiment,
)
from nntransfer.pipeline.local import LocalStore
from nntransfer.pipeline.store import status_table, step_status
from nntransfer.recipes.loading import RecipeError, as_recipe
from nntransfer.search.run import _with_seed

TEACHER_SEED = 1
SEEDS = (1, 2, 3)


def step(seed: int, classes=(0, 10)) -> Experiment:
    dataset = ImageDatasetConfig(dataset_cls="Digits", filter_classes=classes, batch_size=256)
    trainer = ClassificationTrainerConfig(max_iter=1, show_progress=False)
    return Experiment(dataset, ClassificationModelConfig(type="lenet300-100"), trainer, seed=seed,
                      comment=f"{classes[0]}-{classes[1] - 1}")


def recipe():
    """One pre-training step (seed 1) that the fine-tuning chains of seeds 1, 2, 3 share."""
    teacher = step(TEACHER_SEED, (0, 5))
    return as_recipe({Description("fine-tuned", seed): TransferExperiment([teacher, step(seed, (5, 10))]) for seed in SEEDS})


def test_a_chain_is_named_with_its_last_steps_seed_and_its_earlier_steps_may_have_their_own():
    assert [d.seed for d in recipe().transfer_experiments] == list(SEEDS)
    mislabelled = TransferExperiment([step(TEACHER_SEED, (0, 5)), step(2, (5, 10))])
    with pytest.raises(RecipeError, match="its last step trains with seed 2, but the chain is named with seed 1"):
        as_recipe({Description("fine-tuned", 1): mislabelled})


def test_the_shared_teacher_trains_once_and_the_results_count_it_once(tmp_path):
    loaded = recipe()
    store = LocalStore(tmp_path / "work")
    store.run(loaded, progress=False)
    chains = list(loaded.transfer_experiments.values())
    assert len({chain.step_key(0)["seed"] for chain in chains}) == 1
    rows = step_status(store, loaded)
    assert len({row.id for row in rows if row.step == 0}) == 1 and len({row.id for row in rows if row.step == 1}) == 3
    assert {(row.seed, row.step): row.trained_seed for row in rows} == {
        (1, 0): 1, (1, 1): 1, (2, 0): 1, (2, 1): 2, (3, 0): 1, (3, 1): 3}
    table = status_table(rows)
    assert "2 (trained 1)" in table and "3 (trained 1)" in table and "1 (trained" not in table

    results = collect_results(loaded, store)
    teacher = results.status[results.status["step"] == 0]
    assert list(teacher["seed"]) == list(SEEDS) and set(teacher["trained_seed"]) == {TEACHER_SEED}
    assert teacher["step_id"].nunique() == 1
    final = results.final[(results.final["split"] == "test") & (results.final["objective"] == "accuracy")
                          & (results.final["variant"] == "plain")]
    assert set(final[final["step"] == 0]["trained_seed"]) == {TEACHER_SEED}
    assert list(final[final["step"] == 1].sort_values("seed")["trained_seed"]) == list(SEEDS)
    summary = summarize(results.final, results.status).set_index("step")
    # one pre-training run, three fine-tuning runs: the teacher's accuracy is its one value, not three copies
    assert (summary.loc[0, "n_done"], summary.loc[0, "n_seeds"]) == (1, 1)
    assert (summary.loc[1, "n_done"], summary.loc[1, "n_seeds"]) == (3, 3)
    assert summary.loc[0, "mean"] == pytest.approx(float(final[final["step"] == 0]["value"].iloc[0]))


def test_a_search_moves_the_chains_seed_and_keeps_a_teachers_own():
    chain = TransferExperiment([step(TEACHER_SEED, (0, 5)), step(2, (5, 10))])
    assert [s.seed for s in _with_seed(chain, 7)] == [TEACHER_SEED, 7]
    uniform = TransferExperiment([step(2, (0, 5)), step(2, (5, 10))])
    assert [s.seed for s in _with_seed(uniform, 7)] == [7, 7]
