"""Transfer metrics (gain over the from-scratch run, forgetting, the step x test-set matrix) on results
written out by hand, and the identities they rest on: test sets, shared steps, from-scratch baselines.
``tests/test_analysis.py`` checks the same metrics on a real run and in the report's CSVs."""

import math

import numpy as np
import pandas as pd
import pytest

from nntransfer.analysis import accuracy_matrix, forgetting, transfer_gain
from nntransfer.analysis.results import (
    FINAL_COLUMNS,
    STATUS_COLUMNS,
    Results,
    config_ids,
    name_test_sets,
    scratch_id,
    split_identity,
    step_frame,
)
from nntransfer.configs import (
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Description,
    Experiment,
    ImageDatasetConfig,
    KnowledgeDistillationMixin,
    ParameterDistanceMixin,
    RDLMixin,
    TransferExperiment,
    TransferMethodMixin,
)
from nntransfer.recipes.loading import Recipe

TASK = "img_classification"


def make_results(steps, values):
    """``steps``: rows (name, seed, step, comment, state, config_id, scratch_id, test_set, shared_by);
    ``values``: {(name, seed, step): {(split, test_set): accuracy}}."""
    steps = pd.DataFrame(steps, columns=["name", "seed", "step", "comment", "state", "config_id", "scratch_id", "test_set",
                                         "shared_by"])
    steps["label"] = steps["comment"].str.split(" -> ").str[-1]
    steps["continues"] = steps["step"] > 0  # fine-tuning chains: every later step trains the network further
    steps["trained_seed"] = steps["seed"]
    steps["step_id"] = steps["config_id"] + "-" + steps["seed"].astype(str)  # one seed all along: as the store's ids
    status = steps.assign(score=1.0, error="", chain_steps=0, chain_complete=True).reindex(columns=STATUS_COLUMNS, fill_value="")
    rows = []
    for (name, seed, step), splits in values.items():
        info = steps[(steps["name"] == name) & (steps["seed"] == seed) & (steps["step"] == step)].iloc[0]
        for (split, test_set), value in splits.items():
            rows.append(dict(name=name, seed=seed, step=step, comment=info["comment"], split=split, variant="plain",
                             group="", level=math.nan, task=TASK, objective="accuracy", value=value, chain_steps=0,
                             chain_complete=True, test_set=test_set, config_id=info["config_id"], step_id=info["step_id"],
                             trained_seed=seed))
        rows.append(dict(rows[-1], split="validation", test_set="", value=99.0))  # never a test set
    final = pd.DataFrame(rows, columns=FINAL_COLUMNS)
    return Results("hand", "memory", status, pd.DataFrame(), final, steps)


STEPS = [
    # name, seed, step, comment, state, config_id, scratch_id, test_set, shared_by
    ("ft", 1, 0, "A", "done", "pre", "sA", "A", "ft, other"),
    ("ft", 1, 1, "A -> B", "done", "ft1", "sB", "B", "ft"),
    ("ft", 2, 0, "A", "done", "pre", "sA", "A", "ft, other"),
    ("ft", 2, 1, "A -> B", "done", "ft1", "sB", "B", "ft"),
    ("other", 1, 0, "A", "done", "pre", "sA", "A", "ft, other"),
    ("other", 1, 1, "A -> C", "done", "other1", "sC", "C", "other"),
    ("scratch", 1, 0, "B", "done", "scr", "sB", "B", "scratch, scratch_long"),
    ("scratch", 2, 0, "B", "done", "scr", "sB", "B", "scratch, scratch_long"),
    ("scratch_long", 1, 0, "B", "done", "scr", "sB", "B", "scratch, scratch_long"),
    ("scratch_long", 1, 1, "B -> D", "waiting", "long1", "sD", "D", "scratch_long"),
    ("unfinished", 1, 0, "C", "waiting", "c0", "sC", "C", "unfinished"),
]
VALUES = {
    ("ft", 1, 0): {("test", "A"): 90.0},
    ("ft", 1, 1): {("test", "B"): 80.0, ("A", "A"): 60.0},
    ("ft", 2, 0): {("test", "A"): 94.0},
    ("ft", 2, 1): {("test", "B"): 84.0, ("A", "A"): 70.0},
    ("other", 1, 0): {("test", "A"): 90.0},
    ("other", 1, 1): {("test", "C"): 50.0},
    ("scratch", 1, 0): {("test", "B"): 70.0},
    ("scratch", 2, 0): {("test", "B"): 72.0},
    ("scratch_long", 1, 0): {("test", "B"): 70.0},
}


@pytest.fixture
def results():
    return make_results(STEPS, VALUES)


def test_gain_over_the_matching_scratch_run(results):
    gain = transfer_gain(results).set_index("name")
    assert list(gain.index) == ["ft", "other", "scratch_long"]
    ft = gain.loc["ft"]
    assert (ft["step"], ft["test_set"], ft["n"], ft["mean"]) == (1, "B", 2, 82.0)
    # the scratch step that two chains share counts once per seed: (70 + 72) / 2, not (70 + 72 + 70) / 3
    assert ft["scratch"] == "scratch, scratch_long" and ft["scratch_n"] == 2 and ft["scratch_mean"] == 71.0
    assert ft["gain"] == pytest.approx(11.0)
    # a step whose only from-scratch match never finished has none
    other = gain.loc["other"]
    assert other["scratch"] == "" and other["scratch_n"] == 0 and math.isnan(other["gain"]) and other["mean"] == 50.0
    # an unfinished step keeps its row, without values
    assert gain.loc["scratch_long", "n"] == 0 and math.isnan(gain.loc["scratch_long", "mean"])


def test_forgetting_on_an_earlier_steps_test_set(results):
    lost = forgetting(results)
    assert len(lost) == 1  # only "ft" step 1 evaluates an earlier step's test set
    row = lost.iloc[0]
    assert (row["name"], row["step"], row["earlier_step"], row["test_set"], row["n"]) == ("ft", 1, 0, "A", 2)
    assert row["learned"] == 92.0 and row["after"] == 65.0 and row["forgetting"] == 27.0
    assert row["forgetting_std"] == pytest.approx(np.std([30.0, 24.0], ddof=1))
    one_seed = make_results(STEPS, {k: v for k, v in VALUES.items() if k[1] == 1})
    assert math.isnan(forgetting(one_seed).iloc[0]["forgetting_std"])  # no spread from one seed
    nothing = make_results(STEPS, {k: v for k, v in VALUES.items() if k[0] != "ft"})
    assert forgetting(nothing).empty and list(forgetting(nothing).columns)[:4] == ["name", "step", "comment", "earlier_step"]


def test_accuracy_matrix_has_a_row_per_step_and_a_column_per_test_set(results):
    matrix = accuracy_matrix(results)
    assert list(matrix.columns) == ["A", "B", "C"]
    assert list(matrix.index) == [("ft, other", 0, "A"), ("ft", 1, "A -> B"), ("other", 1, "A -> C"),
                                  ("scratch, scratch_long", 0, "B")]
    assert matrix.loc[("ft, other", 0, "A"), "A"] == 92.0  # the shared step once: seeds 1 and 2, not 90 twice
    assert matrix.loc[("ft", 1, "A -> B")].tolist()[:2] == [65.0, 82.0]
    assert matrix.loc[("scratch, scratch_long", 0, "B"), "B"] == 71.0
    assert np.isnan(matrix.loc[("other", 1, "A -> C"), "A"]) and np.isnan(matrix.loc[("ft", 1, "A -> B"), "C"])


def test_metrics_need_a_test_set(results):
    with pytest.raises(ValueError, match="no final results of 'loss' on a test set; available objectives: accuracy"):
        transfer_gain(results, objective="loss")


# ---------------------------------------------------------------------------- identities


def test_test_set_identity_ignores_training_only_settings():
    base = ImageDatasetConfig(dataset_cls="Digits", filter_classes=(0, 5))
    same_test = ImageDatasetConfig(dataset_cls="Digits", filter_classes=(0, 5), batch_size=7, examples_per_class=3,
                                   augment_flip=True, train_subset=0.5, add_rotated_test=True)
    other_classes = ImageDatasetConfig(dataset_cls="Digits", filter_classes=(5, 10))
    resized = ImageDatasetConfig(dataset_cls="Digits", filter_classes=(0, 5), input_size=16)
    assert split_identity(base.to_dict(), "test") == split_identity(same_test.to_dict(), "test")
    assert split_identity(base.to_dict(), "test") != split_identity(other_classes.to_dict(), "test")
    assert split_identity(base.to_dict(), "test") != split_identity(resized.to_dict(), "test")
    noisy = {"test_noisy": {"transform": "gaussian_noise", "std": 0.1}}
    with_transform = ImageDatasetConfig(dataset_cls="Digits", filter_classes=(0, 5), test_transforms=noisy)
    stronger = ImageDatasetConfig(dataset_cls="Digits", filter_classes=(0, 5),
                                  test_transforms={"test_noisy": {"transform": "gaussian_noise", "std": 0.3}})
    assert split_identity(with_transform.to_dict(), "test") == split_identity(base.to_dict(), "test")
    assert split_identity(with_transform.to_dict(), "test_noisy") != split_identity(stronger.to_dict(), "test_noisy")
    assert split_identity(with_transform.to_dict(), "test_noisy") != split_identity(with_transform.to_dict(), "test")
    for split in ("validation", "validation_noise", "train", "my_extra_split"):
        assert split_identity(base.to_dict(), split) is None


def experiment(classes, comment, seed=1, **trainer):
    return Experiment(ImageDatasetConfig(dataset_cls="Digits", filter_classes=classes),
                      ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[8]),
                      ClassificationTrainerConfig(max_iter=1, **trainer), seed=seed, comment=comment)


def test_shared_steps_scratch_baselines_and_test_set_names():
    pre = experiment((0, 5), "pre")
    chains = {
        Description("finetune", 1): TransferExperiment([pre, experiment((5, 10), "new", reset=["readout"])]),
        Description("frozen", 1): TransferExperiment([pre, experiment((5, 10), "new", freeze=["core"], reset=["readout"])]),
        Description("frozen", 2): TransferExperiment([experiment((0, 5), "pre", seed=2),
                                                     experiment((5, 10), "new", seed=2, freeze=["core"], reset=["readout"])]),
        Description("scratch", 1): TransferExperiment([experiment((5, 10), "new")]),
        Description("faster", 1): TransferExperiment([experiment((5, 10), "quick", lr=0.01)]),
    }
    finetune, frozen, frozen2, scratch, faster = chains.values()
    assert config_ids(finetune)[0] == config_ids(frozen)[0] and config_ids(finetune)[1] != config_ids(frozen)[1]
    assert config_ids(frozen) == config_ids(frozen2)  # the seed is not part of it
    assert scratch_id(finetune[1]) == scratch_id(frozen[1]) == scratch_id(scratch[0]) != scratch_id(faster[0])
    recipe = Recipe("ids", None, chains)
    names = name_test_sets(recipe)
    by_data = {names[split_identity(chain[0].dataset.to_dict(), "test")] for chain in chains.values()}
    # 0-4: every step on it says "pre"; 5-9: its steps say "new" and "quick", so the data names it
    assert by_data == {"pre", "Digits 5-9"}
    steps = done_steps(recipe).set_index(["name", "seed", "step"])
    assert steps.loc[("finetune", 1, 0), "shared_by"] == "finetune, frozen"
    assert steps.loc[("faster", 1, 0), "label"] == "quick" and steps.loc[("faster", 1, 0), "test_set"] == "Digits 5-9"


def test_test_set_names_that_would_collide_get_a_hash():
    chains = {Description("a", 1): TransferExperiment([experiment((0, 5), "task")]),
              Description("b", 1): TransferExperiment([experiment((5, 10), "task")])}
    names = sorted(name_test_sets(Recipe("clash", None, chains)).values())
    plain = [n for n in names if " " not in n]
    assert plain == ["task"] and any(n.startswith("task #") for n in names)


def test_a_report_without_test_sets_has_no_metrics_and_says_so(tmp_path, caplog):
    from nntransfer.analysis import write_report

    only_validation = make_results(STEPS[:2], {("ft", 1, 0): {("validation", ""): 90.0}})
    with caplog.at_level("WARNING", logger="nntransfer.analysis"):
        written = write_report(only_validation, tmp_path)
    assert sorted(written) == ["curves", "final", "index.html", "status", "steps", "summary"]
    assert "no step has accuracy results on a test set: no transfer metrics" in caplog.text
    with pytest.raises(ValueError, match="on a test set"):
        accuracy_matrix(only_validation)


# ---------------------------------------------------------------------------- baselines of transfer methods


class Distillation(KnowledgeDistillationMixin, ClassificationTrainerConfig):
    pass


class Representational(RDLMixin, ClassificationTrainerConfig):
    pass


class Regularised(ParameterDistanceMixin, ClassificationTrainerConfig):
    pass


class NewMethodMixin(TransferMethodMixin):
    """A transfer method a recipe defines: its field must be left out like the built-in ones'."""

    def __init__(self, **kwargs):
        self.set_defaults(new_method_weight=0.5)
        super().__init__(**kwargs)


class NewMethod(NewMethodMixin, ClassificationTrainerConfig):
    pass


DIGITS = ImageDatasetConfig(dataset_cls="Digits", input_size=16)
MLP = ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[8])


def digits_step(trainer, comment, model=MLP, dataset=DIGITS):
    return Experiment(dataset, model, trainer, seed=1, comment=comment)


def transfer_recipe():
    teacher = digits_step(ClassificationTrainerConfig(max_iter=1), "teacher", model=ClassificationModelConfig(type="lenet5"))
    pre = digits_step(ClassificationTrainerConfig(max_iter=2, compute_fisher=True), "pre")  # longer: no baseline
    return Recipe("methods", None, {
        Description("scratch", 1): TransferExperiment([digits_step(ClassificationTrainerConfig(max_iter=1), "plain")]),
        Description("kd", 1): TransferExperiment([teacher, digits_step(
            Distillation(max_iter=1, teacher="previous", start_from_previous=False, kd_weight=0.7, kd_temperature=2.0), "kd")]),
        Description("rdl", 1): TransferExperiment([teacher, digits_step(
            Representational(max_iter=1, teacher="previous", start_from_previous=False, rdl_layers={"readout": "readout"}),
            "rdl")]),
        Description("l2sp", 1): TransferExperiment([pre, digits_step(Regularised(max_iter=1, param_reg_weight=0.1), "l2sp")]),
        Description("ewc", 1): TransferExperiment([pre, digits_step(
            Regularised(max_iter=1, param_reg="ewc", param_reg_weight=100.0, reset=["readout"]), "ewc")]),
        Description("new", 1): TransferExperiment([teacher, digits_step(
            NewMethod(max_iter=1, teacher="previous", start_from_previous=False, new_method_weight=0.9), "new")]),
        Description("faster", 1): TransferExperiment([teacher, digits_step(
            Distillation(max_iter=1, teacher="previous", start_from_previous=False, lr=0.01), "kd, other lr")]),
    })


def done_steps(recipe):
    status = pd.DataFrame([dict(name=d.name, seed=d.seed, step=level, comment="", state="done", score=None, error="",
                                chain_steps=0, chain_complete=True)
                           for d, chain in recipe.transfer_experiments.items() for level in range(len(chain))])
    return step_frame(recipe, status.reindex(columns=STATUS_COLUMNS, fill_value=""))


def test_kd_rdl_l2sp_and_ewc_steps_get_their_plain_baseline():
    recipe = transfer_recipe()
    steps = done_steps(recipe)
    values = {(name, 1, step): {("test", label): 90.0 + step} for name, step, label in
              steps[["name", "step", "test_set"]].itertuples(index=False)}
    values[("scratch", 1, 0)] = {("test", steps["test_set"].iloc[0]): 80.0}
    hand = make_results([tuple(row) for row in steps[["name", "seed", "step", "comment", "state", "config_id", "scratch_id",
                                                      "test_set", "shared_by"]].itertuples(index=False)], values)
    gain = transfer_gain(hand).set_index("name")
    for name in ("kd", "rdl", "l2sp", "ewc", "new"):  # every transfer method's settings are left out
        assert gain.loc[name, "scratch"] == "scratch", name
        assert gain.loc[name, "scratch_mean"] == 80.0 and gain.loc[name, "gain"] == pytest.approx(11.0)
    # a setting of the training itself is compared: another learning rate has no plain run
    assert gain.loc["faster", "scratch"] == "" and math.isnan(gain.loc["faster", "gain"])


def test_a_teacher_to_student_step_has_no_forgetting():
    digits_0to4 = ImageDatasetConfig(dataset_cls="Digits", input_size=16, filter_classes=(0, 5))
    digits_5to9 = ImageDatasetConfig(dataset_cls="Digits", input_size=16, filter_classes=(5, 10))
    teacher = digits_step(ClassificationTrainerConfig(max_iter=1), "0-4", model=ClassificationModelConfig(type="lenet5"),
                          dataset=digits_0to4)
    student = Distillation(max_iter=1, teacher="previous", start_from_previous=False)
    recipe = Recipe("students", None, {
        # the same data: the student's accuracy below its teacher's is no forgetting
        Description("kd", 1): TransferExperiment([teacher, digits_step(student, "0-4", dataset=digits_0to4)]),
        # other data: the student evaluates the teacher's test set, but it never learned it
        Description("kd_new_data", 1): TransferExperiment([teacher, digits_step(student, "5-9", dataset=digits_5to9)]),
        # the same network fine-tuned: this is forgetting
        Description("finetune", 1): TransferExperiment([teacher, digits_step(
            ClassificationTrainerConfig(max_iter=1, reset=["readout.fc3"]), "5-9", model=ClassificationModelConfig(type="lenet5"),
            dataset=digits_5to9)]),
    })
    steps = done_steps(recipe)
    assert steps.set_index(["name", "step"])["continues"].to_dict() == {
        ("kd", 0): False, ("kd", 1): False, ("kd_new_data", 0): False, ("kd_new_data", 1): False,
        ("finetune", 0): False, ("finetune", 1): True}
    values = {("kd", 1, 0): {("test", "0-4"): 95.0}, ("kd", 1, 1): {("test", "0-4"): 80.0},
              ("kd_new_data", 1, 0): {("test", "0-4"): 95.0},
              ("kd_new_data", 1, 1): {("test", "5-9"): 90.0, ("step 0 test", "0-4"): 30.0},
              ("finetune", 1, 0): {("test", "0-4"): 95.0},
              ("finetune", 1, 1): {("test", "5-9"): 92.0, ("step 0 test", "0-4"): 40.0}}
    hand = make_results([tuple(row) for row in steps[["name", "seed", "step", "comment", "state", "config_id", "scratch_id",
                                                      "test_set", "shared_by"]].itertuples(index=False)], values)
    hand.steps["continues"] = steps["continues"].to_numpy()
    lost = forgetting(hand)
    assert lost[["name", "step", "earlier_step", "test_set", "learned", "after", "forgetting"]].values.tolist() == [
        ["finetune", 1, 0, "0-4", 95.0, 40.0, 55.0]]


def test_continual_learning_metrics_of_a_three_task_chain():
    """ACC, BWT and FWT (Lopez-Paz & Ranzato 2017; FWT against the from-scratch runs) from the matrix by hand."""
    steps = [
        ("cl", 1, 0, "A", "done", "a", "sA", "A", "cl"),
        ("cl", 1, 1, "A -> B", "done", "ab", "sB", "B", "cl"),
        ("cl", 1, 2, "A -> B -> C", "done", "abc", "sC", "C", "cl"),
        ("cl", 2, 0, "A", "done", "a", "sA", "A", "cl"),
        ("cl", 2, 1, "A -> B", "done", "ab", "sB", "B", "cl"),
        ("cl", 2, 2, "A -> B -> C", "done", "abc", "sC", "C", "cl"),
        ("scratch_b", 1, 0, "B", "done", "b", "sB", "B", "scratch_b"),
        ("scratch_c", 1, 0, "C", "done", "c", "sC", "C", "scratch_c"),
    ]
    values = {
        ("cl", 1, 0): {("test", "A"): 90.0},
        ("cl", 1, 1): {("test", "B"): 80.0, ("step 0 test", "A"): 60.0},
        ("cl", 1, 2): {("test", "C"): 70.0, ("step 0 test", "A"): 50.0, ("step 1 test", "B"): 40.0},
        ("cl", 2, 0): {("test", "A"): 92.0},
        ("cl", 2, 1): {("test", "B"): 82.0, ("step 0 test", "A"): 62.0},
        ("cl", 2, 2): {("test", "C"): 74.0, ("step 0 test", "A"): 56.0, ("step 1 test", "B"): 44.0},
        ("scratch_b", 1, 0): {("test", "B"): 75.0},
        ("scratch_c", 1, 0): {("test", "C"): 60.0},
    }
    from nntransfer.analysis import continual_learning

    row = continual_learning(make_results(steps, values)).set_index("name").loc["cl"]
    assert (row["tasks"], row["steps"], row["n"], row["scratch"]) == ("A -> B -> C", "0, 1, 2", 2, "scratch_b, scratch_c")
    # seed 1: ACC (50 + 40 + 70) / 3; BWT ((50 - 90) + (40 - 80)) / 2 = -40; FWT ((80 - 75) + (70 - 60)) / 2 = 7.5
    # seed 2: ACC (56 + 44 + 74) / 3; BWT ((56 - 92) + (44 - 82)) / 2 = -37; FWT ((82 - 75) + (74 - 60)) / 2 = 10.5
    assert row["acc"] == pytest.approx((160 / 3 + 174 / 3) / 2)
    assert row["bwt"] == pytest.approx(-38.5) and row["bwt_std"] == pytest.approx(np.std([-40.0, -37.0], ddof=1))
    assert row["fwt"] == pytest.approx(9.0) and row["fwt_std"] == pytest.approx(np.std([7.5, 10.5], ddof=1))
    # one task per chain (the scratch runs) is no continual learning
    assert list(continual_learning(make_results(steps, values))["name"]) == ["cl"]
