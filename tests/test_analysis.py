"""Analysis: frames and plots from a real tiny run (digits, 2 epochs, two experiments, two seeds, a
corrupted test set and test noise), the ``report`` command, and incomplete chains. The 5-9 steps test on
0-4 through a split their dataset function adds ("0-4"); the fine-tuning steps also evaluate the
pre-training step's test set on their own ("step 0 test"), the same data."""

import logging
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402
from PIL import Image  # noqa: E402

from nntransfer.analysis import (  # noqa: E402
    final_frame,
    load_results,
    plot_all,
    plot_final_accuracy,
    plot_learning_curves,
    plot_robustness,
    plot_transfer_steps,
    tracker_frame,
    write_report,
)
from nntransfer.analysis.results import summarize  # noqa: E402
from nntransfer.cli.main import main  # noqa: E402
from nntransfer.configs import Description  # noqa: E402
from nntransfer.pipeline.local import LocalStore  # noqa: E402
from nntransfer.recipes.loading import Recipe, load_recipe  # noqa: E402

TASK = "img_classification"
NAMES = ["pretrained", "frozen", "scratch"]

RECIPE = '''
from nntransfer.configs import (ClassificationModelConfig, ClassificationTrainerConfig, Description, Experiment,
                                ImageDatasetConfig, TransferExperiment)
from nntransfer.dataset import img_dataset_loader

CORRUPTED = {corrupted!r}


def digits_also_testing(seed, also_test=None, return_data_info=False, **config):
    \"\"\"The digits, plus the test set of the digits ``also_test`` as a split named like that step ("0-4").\"\"\"
    loaders = img_dataset_loader(seed, return_data_info=return_data_info, **config)
    if also_test is not None and not return_data_info:
        earlier = dict(config, filter_classes=tuple(also_test), add_corrupted_test=False)
        loaders[f"{{also_test[0]}}-{{also_test[1] - 1}}"] = img_dataset_loader(seed, **earlier)["test"]
    return loaders


class DigitsAlsoTesting(ImageDatasetConfig):
    fn = __name__ + ".digits_also_testing"

    def __init__(self, **kwargs):
        self.set_defaults(also_test=None)
        super().__init__(**kwargs)


def step(classes, seed, also_test=None, **trainer_options):
    dataset = DigitsAlsoTesting(dataset_cls="Digits", filter_classes=classes, batch_size=128, add_corrupted_test=True,
                                corrupted_data_dir=CORRUPTED, stacked_severities=2, also_test=also_test)
    trainer = ClassificationTrainerConfig(max_iter=2, show_progress=False, noise_test={{"noise_std": [0.0, 0.3]}},
                                          **trainer_options)
    return Experiment(dataset, ClassificationModelConfig(type="lenet300-100"), trainer, seed=seed,
                      comment=f"{{classes[0]}}-{{classes[1] - 1}}")


def pretrained(seed):
    return TransferExperiment([step((0, 5), seed), step((5, 10), seed, also_test=(0, 5), reset=["readout"])])


def frozen(seed):  # shares its pre-training step with "pretrained"
    return TransferExperiment([step((0, 5), seed), step((5, 10), seed, also_test=(0, 5), reset=["readout"],
                                                        freeze=["core"])])


transfer_experiments = {{}}
for seed in (1, 2):
    transfer_experiments[Description("pretrained", seed)] = pretrained(seed)
    transfer_experiments[Description("frozen", seed)] = frozen(seed)
    transfer_experiments[Description("scratch", seed)] = TransferExperiment([step((5, 10), seed, also_test=(0, 5))])
'''


def write_corrupted_digits(folder):
    """A CIFAR-10-C style folder from the real digits test images: two corruptions, two severities."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images[1500:] * 255 / 16).astype(np.float64)
    rng = np.random.default_rng(0)
    noisy = [images + rng.normal(0, 60 * s, images.shape) for s in (1, 2)]
    faded = [images * (1 - 0.35 * s) for s in (1, 2)]
    folder.mkdir()
    for name, blocks in (("gaussian_noise", noisy), ("contrast", faded)):
        np.save(folder / f"{name}.npy", np.clip(np.concatenate(blocks), 0, 255).astype(np.uint8))
    np.save(folder / "labels.npy", digits.target[1500:].astype(np.int64))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The recipe, trained once with the local backend: (recipe folder, recipe, work folder)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("analysis")
    write_corrupted_digits(root / "digits_c")
    folder = root / "analysis_digits_recipe"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "chains.py").write_text(textwrap.dedent(RECIPE.format(corrupted=str(root / "digits_c"))))
    recipe = load_recipe(str(folder))
    workdir = root / "work"
    LocalStore(workdir).run(recipe, progress=False)
    return folder, recipe, workdir


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def results(run):
    folder, _, workdir = run
    return load_results(str(folder), workdir=str(workdir))


def outputs(run):
    """Every step's stored output, by (name, seed, step)."""
    _, recipe, workdir = run
    store = LocalStore(workdir)
    return {
        (d.name, d.seed, level): store.load(chain.step_key(level)).output
        for d, chain in recipe.transfer_experiments.items()
        for level in range(len(chain))
    }


def assert_png(path):
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels[..., :3].std() > 0.05  # not a blank canvas
    with Image.open(path) as image:
        assert image.format == "PNG"


# ---------------------------------------------------------------------------- pure functions


def test_tracker_frame_normalises_and_skips_initial_and_unvalidated_epochs():
    tracker = {
        "log": {
            "lr": [0.0, 0.1, 0.05, 0.05],
            "Training": {"t": {"accuracy": [0.0, 50.0, 160.0, 180.0], "normalization": [0.0, 2.0, 2.0, 2.0]}},
            # validated every second epoch: epoch 1 has no examples
            "Validation": {"t": {"loss": [0.0, 0.0, 3.0, 0.0], "normalization": [0.0, 0.0, 4.0, 0.0]}, "patience": [0.0, 0.0, 1.0, 0.0]},
        },
        "main_objective": ("t", "accuracy"),
    }
    frame = tracker_frame(tracker).set_index(["mode", "task", "objective", "epoch"])["value"].sort_index()
    assert frame[("", "", "lr", 1)] == 0.1 and frame[("", "", "lr", 3)] == 0.05
    assert list(frame.loc[("Training", "t", "accuracy")]) == [25.0, 80.0, 90.0]
    assert list(frame.loc[("Validation", "t", "loss")].items()) == [(2, 0.75)]
    assert list(frame.loc[("Validation", "", "patience")]) == [0.0, 1.0, 0.0]
    assert ("Training", "t", "normalization", 1) not in frame.index
    assert 0 not in set(frame.index.get_level_values("epoch"))


def test_final_frame_names_splits_variants_corruptions_and_noise_levels():
    task = {TASK: {"accuracy": 90.0, "loss": 0.3}}
    final = {
        "validation": task,
        "test": {TASK: {"accuracy": 80.0, "loss": 0.5}},
        "test_bn_train": {TASK: {"accuracy": 70.0, "loss": 0.9}},
        "c_test": {"fog": {1: {TASK: {"accuracy": 60.0, "loss": 1.0}}, 3: {TASK: {"accuracy": 40.0, "loss": 2.0}}}},
        "validation_noise": {"noise_std": {0.0: task, 0.25: {TASK: {"accuracy": 50.0, "loss": 1.5}}}},
    }
    frame = final_frame(final)
    accuracy = frame[frame["objective"] == "accuracy"].set_index(["split", "variant", "group", "level"])["value"]
    plain = frame[(frame["group"] == "") & (frame["objective"] == "accuracy")]
    assert plain["level"].isna().all()
    assert dict(zip(plain["split"] + "/" + plain["variant"], plain["value"])) == {
        "validation/plain": 90.0, "test/plain": 80.0, "test/bn_train": 70.0,
    }
    assert accuracy[("c_test", "plain", "fog", 3.0)] == 40.0
    assert accuracy[("validation_noise", "plain", "noise_std", 0.25)] == 50.0
    assert len(frame) == 2 * 7 and set(frame["task"]) == {TASK}


# ---------------------------------------------------------------------------- frames of a real run


def test_status_lists_every_step_as_done(results):
    status = results.status
    assert list(status.columns[:6]) == ["name", "seed", "step", "trained_seed", "comment", "state"]
    assert (status["trained_seed"] == status["seed"]).all()
    assert len(status) == 10 and set(status["state"]) == {"done"} and status["chain_complete"].all()
    assert list(dict.fromkeys(status["name"])) == NAMES
    steps = status.set_index(["name", "seed", "step"])
    assert steps.loc[("pretrained", 1, 1), "comment"] == "0-4 -> 5-9"
    assert steps.loc[("scratch", 2, 0), "chain_steps"] == 1
    assert results.incomplete.empty


def test_steps_frame_knows_shared_steps_baselines_and_test_sets(results):
    steps = results.steps.set_index(["name", "seed", "step"])
    # "pretrained" and "frozen" share their pre-training step: one config_id, both named
    assert steps.loc[("pretrained", 1, 0), "config_id"] == steps.loc[("frozen", 1, 0), "config_id"]
    assert steps.loc[("pretrained", 1, 0), "shared_by"] == "pretrained, frozen"
    assert steps.loc[("pretrained", 1, 1), "config_id"] != steps.loc[("frozen", 1, 1), "config_id"]
    assert steps.loc[("pretrained", 1, 1), "shared_by"] == "pretrained"
    # seeds do not make another config_id
    assert steps.loc[("pretrained", 2, 1), "config_id"] == steps.loc[("pretrained", 1, 1), "config_id"]
    # step_id: the step in the store (its seed included), whose prefix status prints and lineage takes
    assert steps.loc[("pretrained", 1, 0), "step_id"] == steps.loc[("frozen", 1, 0), "step_id"]
    assert steps.loc[("pretrained", 2, 1), "step_id"] != steps.loc[("pretrained", 1, 1), "step_id"]
    assert all(len(step_id) == 32 for step_id in steps["step_id"]) and set(steps["step_id"]) == set(results.status["step_id"])
    assert set(results.final["step_id"]) <= set(steps["step_id"]) and set(results.curves["step_id"]) <= set(steps["step_id"])
    # the fine-tuning steps differ from scratch only by reset/freeze: the same baseline
    assert steps.loc[("pretrained", 1, 1), "scratch_id"] == steps.loc[("scratch", 1, 0), "scratch_id"]
    assert steps.loc[("frozen", 1, 1), "scratch_id"] == steps.loc[("scratch", 1, 0), "scratch_id"]
    assert steps.loc[("pretrained", 1, 0), "scratch_id"] != steps.loc[("scratch", 1, 0), "scratch_id"]
    assert list(steps["label"]) == ["0-4", "5-9"] * 4 + ["5-9"] * 2
    assert list(steps["test_set"]) == ["0-4", "5-9"] * 4 + ["5-9"] * 2
    final = results.final
    tested = final[(final["objective"] == "accuracy") & (final["group"] == "")].drop_duplicates(["name", "step", "split"])
    assert dict(zip(tested["name"] + "/" + tested["step"].astype(str) + "/" + tested["split"], tested["test_set"])) == {
        **{f"{name}/0/{split}": test_set for name in ("pretrained", "frozen")
           for split, test_set in (("validation", ""), ("test", "0-4"))},
        **{f"{name}/{step}/{split}": test_set for name, step in (("pretrained", 1), ("frozen", 1), ("scratch", 0))
           for split, test_set in (("validation", ""), ("test", "5-9"), ("0-4", "0-4"))},
        **{f"{name}/1/step 0 test": "0-4" for name in ("pretrained", "frozen")},
    }


def test_curves_hold_every_epoch_of_every_step_and_match_the_score(results, run):
    curves = results.curves
    assert list(curves.columns) == ["name", "seed", "step", "trained_seed", "comment", "mode", "task", "objective", "epoch", "value",
                                    "step_id", "config_id"]
    for mode in ("Training", "Validation"):
        rows = curves[(curves["mode"] == mode) & (curves["objective"] == "accuracy")]
        # 10 steps of chains (the shared one under both) x 2 epochs
        assert len(rows) == 20 and set(rows["epoch"]) == {1, 2} and set(rows["task"]) == {TASK}
        assert rows["value"].between(0, 100).all()
    stored = outputs(run)
    for row in results.status.itertuples():
        output = stored[(row.name, row.seed, row.step)]
        validation = curves[(curves["name"] == row.name) & (curves["seed"] == row.seed) & (curves["step"] == row.step)
                            & (curves["mode"] == "Validation") & (curves["objective"] == "accuracy")]
        # the score is the validation accuracy of the best epoch, which the trainer restored
        best = validation.set_index("epoch")["value"][output["best_epoch"]]
        assert best == pytest.approx(row.score)
        n = output["tracker"]["log"]["Training"][TASK]["normalization"][2]
        loss = curves[(curves["name"] == row.name) & (curves["seed"] == row.seed) & (curves["step"] == row.step)
                      & (curves["mode"] == "Training") & (curves["objective"] == "loss") & (curves["epoch"] == 2)]
        assert loss["value"].item() == pytest.approx(output["tracker"]["log"]["Training"][TASK]["loss"][2] / n)


def test_final_frame_of_a_real_run(results, run):
    final = results.final
    stored = outputs(run)
    accuracy = final[final["objective"] == "accuracy"]
    assert set(accuracy["split"]) == {"validation", "test", "c_test", "validation_noise", "0-4", "step 0 test"}
    c_test = accuracy[accuracy["split"] == "c_test"]
    assert set(c_test["group"]) == {"gaussian_noise", "contrast"} and set(c_test["level"]) == {1.0, 2.0}
    assert len(c_test) == 10 * 2 * 2
    assert set(c_test["test_set"]) == {"0-4 c_test", "5-9 c_test"}
    noise = accuracy[accuracy["split"] == "validation_noise"]
    assert set(noise["group"]) == {"noise_std"} and set(noise["level"]) == {0.0, 0.3} and set(noise["test_set"]) == {""}
    for (name, seed, step), output in stored.items():
        mine = accuracy[(accuracy["name"] == name) & (accuracy["seed"] == seed) & (accuracy["step"] == step)]
        test = mine[(mine["split"] == "test")]["value"].item()
        assert test == output["final"]["test"][TASK]["accuracy"]
        fog2 = mine[(mine["group"] == "contrast") & (mine["level"] == 2.0)]["value"].item()
        assert fog2 == output["final"]["c_test"]["contrast"][2][TASK]["accuracy"]
        if step == 1 or name == "scratch":
            assert mine[mine["split"] == "0-4"]["value"].item() == output["final"]["0-4"][TASK]["accuracy"]
        if step == 1:  # the pre-training test set, found by the pipeline: the same data as the recipe's own split
            assert mine[mine["split"] == "step 0 test"]["value"].item() == output["final"]["0-4"][TASK]["accuracy"]
    # stronger corruption hurts (mean over every step and seed)
    by_level = c_test[c_test["group"] == "gaussian_noise"].groupby("level")["value"].mean()
    assert by_level[2.0] < by_level[1.0]


def test_summary_aggregates_seeds(results):
    summary = results.summary()
    assert list(summary[["name", "step"]].itertuples(index=False, name=None)) == [
        ("pretrained", 0), ("pretrained", 1), ("frozen", 0), ("frozen", 1), ("scratch", 0)]
    assert set(summary["split"]) == {"test"}
    final = results.final
    test = final[(final["split"] == "test") & (final["objective"] == "accuracy")]
    seeds = test[(test["name"] == "pretrained") & (test["step"] == 1)]["value"].to_numpy()
    row = summary[(summary["name"] == "pretrained") & (summary["step"] == 1)].iloc[0]
    assert row["n_done"] == row["n_seeds"] == 2
    assert row["mean"] == pytest.approx(seeds.mean()) and row["std"] == pytest.approx(seeds.std(ddof=1))
    assert row["comment"] == "0-4 -> 5-9" and row["test_set"] == "5-9"
    with pytest.raises(ValueError, match="available: .*test"):
        results.summary(split="tset")
    # every plain split at once: validation, test and the earlier task's test set
    every = results.summary(None).set_index(["name", "step", "split"])
    assert set(every.index) == {(n, 0, s) for n in ("pretrained", "frozen") for s in ("validation", "test")} | {
        (n, k, s) for n, k in (("pretrained", 1), ("frozen", 1), ("scratch", 0)) for s in ("validation", "test", "0-4")} | {
        (n, 1, "step 0 test") for n in ("pretrained", "frozen")}
    assert every.loc[("pretrained", 1, "test"), "mean"] == pytest.approx(row["mean"])
    assert every.loc[("scratch", 0, "0-4"), "test_set"] == "0-4"


def test_summary_of_one_seed_has_no_spread(results):
    """One seed measures no spread: std is NaN (not 0.0), n_done says 1, and the report prints n=1."""
    from nntransfer.analysis.report import summary_text

    one_seed = results.final[results.final["seed"] == 1]
    summary = summarize(one_seed, results.status[results.status["seed"] == 1])
    assert (summary["n_done"] == 1).all() and summary["std"].isna().all() and summary["mean"].notna().all()
    text = summary_text(summary)
    first = summary.iloc[0]
    assert f"{first['mean']:.2f} (n=1)" in text and "± 0.00" not in text


def test_incomplete_chain_is_reported_not_dropped(run, caplog, tmp_path):
    folder, recipe, workdir = run
    extra = dict(recipe.transfer_experiments)
    module = __import__(f"{folder.name}.chains", fromlist=["pretrained"])
    extra[Description("pretrained", 3)] = chain = module.pretrained(3)
    bigger = Recipe(recipe.name, recipe.path, extra)
    LocalStore(workdir).train(Description("pretrained", 3), chain, 0)  # step 1 never runs

    with caplog.at_level(logging.WARNING, logger="nntransfer.analysis"):
        partial = load_results(bigger, workdir=str(workdir))
    assert "1 of 7 chains are incomplete: pretrained seed 3 (step 1 waiting)" in caplog.text
    seed3 = partial.status[partial.status["seed"] == 3]
    assert list(seed3["state"]) == ["done", "waiting"] and not seed3["chain_complete"].any()
    assert list(partial.incomplete["seed"]) == [3, 3]
    # the finished step is there, marked; the other chains are untouched
    final = partial.final
    assert set(final[final["seed"] == 3]["step"]) == {0} and not final[final["seed"] == 3]["chain_complete"].any()
    assert final[final["seed"] != 3]["chain_complete"].all()
    summary = partial.summary().set_index(["name", "step"])
    assert summary.loc[("pretrained", 0), ["n_done", "n_seeds"]].tolist() == [3, 3]
    assert summary.loc[("pretrained", 1), ["n_done", "n_seeds"]].tolist() == [2, 3]
    # the rows count the seeds that finished each step
    figure = plot_final_accuracy(final)
    labels = [t.get_text() for ax in figure.axes for t in ax.get_yticklabels()]
    # the shared pre-training step once, with every seed that trained it (seed 3 only in "pretrained")
    assert labels == ["pretrained, frozen (shared)\n0-4 (step 0), n=3", "pretrained\n5-9 (step 1), n=2",
                      "frozen\n5-9 (step 1), n=2", "scratch\n5-9 (step 0), n=2"]
    written = write_report(partial, tmp_path)
    status = pd.read_csv(written["status"])
    assert len(status) == 12 and status[status["state"] == "waiting"][["name", "seed", "step"]].values.tolist() == [["pretrained", 3, 1]]


def test_nothing_finished_is_an_error(run, tmp_path):
    folder, _, _ = run
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="none of the 10 steps .* is finished"):
        load_results(str(folder), workdir=str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_results(str(folder), workdir=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="name one store, not 2"):
        load_results(str(folder), workdir=str(tmp_path), schema="x")


# ---------------------------------------------------------------------------- plots


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_learning_curves_plot(results, tmp_path):
    fig = plot_learning_curves(results.curves, path=tmp_path / "curves.png", steps=results.steps)
    on_0to4, on_5to9 = fig.axes
    assert on_0to4.get_xlabel() == on_5to9.get_xlabel() == "epoch" and on_0to4.get_ylabel() == "accuracy (%)"
    # a panel per training data: pre-training alone, fine-tuning beside the scratch run on the same digits
    assert on_0to4.get_title() == "trained on 0-4" and on_5to9.get_title() == "trained on 5-9"
    # the shared pre-training step is one gray line per mode, not two identical ones hiding each other
    shared = lines_by_label(on_0to4)
    assert sorted(shared) == ["pretrained, frozen (shared), step 0 (training)", "pretrained, frozen (shared), step 0 (validation)"]
    assert all(line.get_color() == "0.35" for line in shared.values())
    assert sorted(lines_by_label(on_5to9)) == sorted(
        f"{name}, step {step} ({mode})" for name, step in (("pretrained", 1), ("frozen", 1), ("scratch", 0))
        for mode in ("training", "validation"))
    curves = results.curves
    for ax, name, step in ((on_5to9, "pretrained", 1), (on_5to9, "scratch", 0), (on_0to4, "frozen", 0)):
        label = (f"{name}, step {step} (validation)" if step or name == "scratch"
                 else "pretrained, frozen (shared), step 0 (validation)")
        line = lines_by_label(ax)[label]
        expected = curves[(curves["name"] == name) & (curves["step"] == step) & (curves["mode"] == "Validation")
                          & (curves["objective"] == "accuracy")].groupby("epoch")["value"].mean()
        assert list(line.get_xdata()) == [1, 2] and np.allclose(line.get_ydata(), expected.values)
    assert_png(tmp_path / "curves.png")
    # without the steps frame: panels by the steps' own comments, the same grouping here
    assert [ax.get_title() for ax in plot_learning_curves(results.curves).axes] == ["trained on 0-4", "trained on 5-9"]
    with pytest.raises(ValueError, match="available objectives"):
        plot_learning_curves(results.curves, objective="acc")


def test_transfer_steps_plot_joins_only_steps_on_the_same_test_set(results, tmp_path):
    fig = plot_transfer_steps(results.final, path=tmp_path / "steps.png")
    on_0to4, on_5to9 = fig.axes  # a panel per test set, one y axis
    assert on_0to4.get_title() == "tested on 0-4" and on_5to9.get_title() == "tested on 5-9"
    assert on_0to4.get_shared_y_axes().joined(on_0to4, on_5to9)
    final = results.final
    accuracy = final[(final["objective"] == "accuracy") & (final["variant"] == "plain") & (final["group"] == "")]

    def mean(name, step, test_set):
        rows = accuracy[(accuracy["name"] == name) & (accuracy["step"] == step) & (accuracy["test_set"] == test_set)]
        return rows["value"].mean()

    joined = {line.get_gid(): line for ax in fig.axes for line in ax.get_lines() if str(line.get_gid()).startswith("line|")}
    # step 0 (tested on 0-4) and step 1 (tested on 5-9) are not joined; step 1's evaluation of 0-4 is: forgetting
    assert sorted(joined) == ["line|frozen|0-4", "line|pretrained|0-4"]
    assert all(line.axes is on_0to4 for line in joined.values())
    for name in ("pretrained", "frozen"):
        line = joined[f"line|{name}|0-4"]
        assert line.get_xdata()[0] == 0 and round(line.get_xdata()[1]) == 1
        assert np.allclose(line.get_ydata(), [mean(name, 0, "0-4"), mean(name, 1, "0-4")])
    # every step and test set is a point, in its test set's panel; the shared pre-training step only once, in gray
    points = {ax.get_title(): [c for c in ax.containers if isinstance(c, ErrorbarContainer)] for ax in fig.axes}
    gids = {title: sorted(c.lines[0].get_gid() for c in found) for title, found in points.items()}
    assert gids == {"tested on 0-4": sorted(["point|pretrained+frozen|0-4|0", "point|pretrained|0-4|1", "point|frozen|0-4|1",
                                             "point|scratch|0-4|0"]),
                    "tested on 5-9": sorted(["point|pretrained|5-9|1", "point|frozen|5-9|1", "point|scratch|5-9|0"])}
    every = [c for found in points.values() for c in found]
    shared = next(c for c in every if c.lines[0].get_gid() == "point|pretrained+frozen|0-4|0")
    assert shared.lines[0].get_color() == "0.35" and shared.lines[0].get_ydata()[0] == pytest.approx(mean("pretrained", 0, "0-4"))
    scratch = next(c for c in every if c.lines[0].get_gid() == "point|scratch|5-9|0")
    assert scratch.lines[0].get_ydata()[0] == pytest.approx(mean("scratch", 0, "5-9"))
    legend = [t.get_text() for t in on_5to9.get_legend().get_texts()]
    assert legend == NAMES + ["a step several chains share"]
    assert on_0to4.get_xlabel() == "transfer step" and on_0to4.get_ylabel() == "accuracy (%)"
    assert fig.get_suptitle() == "accuracy on each test set after each transfer step"
    assert_png(tmp_path / "steps.png")
    # one split only: the test split, where no two steps share a test set
    fig = plot_transfer_steps(results.final, split="test")
    assert not [line for ax in fig.axes for line in ax.get_lines() if str(line.get_gid()).startswith("line|")]
    assert fig.axes[0].get_ylabel() == "test accuracy (%)"


def test_final_accuracy_points_show_every_step(results, tmp_path):
    fig = plot_final_accuracy(results.final, path=tmp_path / "points.png")
    on_0to4, on_5to9 = fig.axes  # a panel per test set: only steps on the same data side by side
    assert not [c for ax in fig.axes for c in ax.containers if isinstance(c, BarContainer)]
    summary = results.summary().set_index(["name", "step"])
    # the pre-training step too (once: shared), grouped by test set, top to bottom
    for ax, expected in ((on_0to4, [("pretrained", 0)]), (on_5to9, [("pretrained", 1), ("frozen", 1), ("scratch", 0)])):
        points = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert [c.lines[0].get_ydata()[0] for c in points] == list(range(len(expected)))
        assert np.allclose([c.lines[0].get_xdata()[0] for c in points], [summary.loc[key, "mean"] for key in expected])
        low, high = ax.get_xlim()
        assert low > min(summary.loc[key, "min"] for key in expected) - 10  # near the data, not from 0
    assert [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()] == [
        "pretrained, frozen (shared)\n0-4 (step 0), n=2", "pretrained\n5-9 (step 1), n=2", "frozen\n5-9 (step 1), n=2",
        "scratch\n5-9 (step 0), n=2"]
    assert [ax.get_title() for ax in fig.axes] == ["tested on 0-4", "tested on 5-9"]
    assert on_5to9.get_xlabel() == "test accuracy (%)"
    assert fig.get_suptitle() == "test accuracy of every step (mean ± std over seeds, dots: seeds)"
    assert_png(tmp_path / "points.png")
    (ax,) = plot_final_accuracy(results.final, step=1).axes
    assert len([c for c in ax.containers if isinstance(c, ErrorbarContainer)]) == 2


def test_robustness_plots_have_readable_titles(results, tmp_path):
    fig = plot_robustness(results.final, "c_test", path=tmp_path / "c.png")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["test accuracy, mean over corruptions",
                                                  "test accuracy under corruption: contrast",
                                                  "test accuracy under corruption: gaussian noise"]
    for ax in visible:
        assert ax.get_xlabel() == "severity"
        assert [c.get_label() for c in ax.containers if isinstance(c, ErrorbarContainer)] == NAMES
        assert all(list(c.lines[0].get_xdata()) == [1.0, 2.0] for c in ax.containers)
    assert visible[0].get_ylabel() == "accuracy (%)"
    assert_png(tmp_path / "c.png")

    fig = plot_robustness(results.final, "validation_noise")
    (ax,) = [ax for ax in fig.axes if ax.get_visible()]
    assert ax.get_title() == "validation accuracy under Gaussian noise (std)"
    assert ax.get_xlabel() == "noise std" and len(ax.containers) == 3
    with pytest.raises(ValueError, match="no results per severity"):
        plot_robustness(results.final, "test")


def test_accuracy_matrix_plot(results, tmp_path):
    from nntransfer.analysis import accuracy_matrix, plot_accuracy_matrix

    matrix = accuracy_matrix(results)
    fig = plot_accuracy_matrix(matrix, path=tmp_path / "matrix.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["pretrained, frozen · step 0", "pretrained · step 1",
                                                            "frozen · step 1", "scratch · step 0"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["tested on 0-4", "tested on 5-9"]
    cells = [t.get_text() for t in ax.texts]
    values = matrix.to_numpy().ravel()
    assert cells == [f"{v:.1f}" for v in values if np.isfinite(v)] and len(cells) == 7
    assert_png(tmp_path / "matrix.png")


@pytest.mark.slow
def test_plot_all_saves_every_plot(results, tmp_path):
    figures = plot_all(results, out=tmp_path, close=True)
    assert list(figures) == ["learning_curves", "transfer_steps", "final_accuracy", "robustness_c_test",
                             "robustness_validation_noise", "robustness_test_sets", "accuracy_matrix"]
    for name in figures:
        assert_png(tmp_path / f"{name}.png")


# ---------------------------------------------------------------------------- the report command


@pytest.mark.slow
def test_report_command_writes_csvs_pngs_and_transfer_metrics(run, tmp_path, capsys):
    folder, _, workdir = run
    out = tmp_path / "report"
    assert main(["report", str(folder), "--workdir", str(workdir), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "accuracy per split, mean ± std over seeds" in printed
    lines = printed.splitlines()
    assert lines[1].split() == ["name", "step", "comment", "split", "test", "set", "seeds", "accuracy"]
    # the pre-training step that two chains share is one step: printed once, named after both
    assert lines[2].split()[:6] == ["pretrained,", "frozen", "0", "0-4", "validation", "2/2"]
    assert lines[3].split()[:6] == ["pretrained,", "frozen", "0", "0-4", "test", "0-4"]
    words = [" ".join(line.split()) for line in lines]
    assert not any(line.startswith(("pretrained 0 ", "frozen 0 ")) for line in words)
    # each row names its test set: the fine-tuning step's own, and the pre-training step's
    frozen = {line.split(" 2/2")[0] for line in words if line.startswith("frozen 1 ")}
    assert frozen == {"frozen 1 0-4 -> 5-9 validation", "frozen 1 0-4 -> 5-9 test 5-9", "frozen 1 0-4 -> 5-9 0-4 0-4",
                      "frozen 1 0-4 -> 5-9 step 0 test 0-4"}
    assert {p.name for p in out.iterdir()} == {
        "status.csv", "steps.csv", "curves.csv", "final.csv", "summary.csv", "transfer_gain.csv", "forgetting.csv",
        "continual_learning.csv", "accuracy_matrix.csv", "learning_curves.png", "transfer_steps.png", "final_accuracy.png",
        "robustness_c_test.png", "robustness_validation_noise.png", "robustness_test_sets.png", "accuracy_matrix.png",
        "index.html"}
    for png in out.glob("*.png"):
        assert_png(png)
    results = load_results(str(folder), workdir=str(workdir))
    final = pd.read_csv(out / "final.csv")
    assert len(final) == len(results.final)
    # the summary covers every split, not one at a time
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert set(summary["split"]) == {"validation", "test", "0-4", "step 0 test"} and (summary["n_done"] == 2).all()
    assert len(summary) == 2 * 2 + 3 * 3 + 2
    accuracy = results.final[(results.final["objective"] == "accuracy") & (results.final["group"] == "")]

    def mean(name, step, test_set):
        return accuracy[(accuracy["name"] == name) & (accuracy["step"] == step) & (accuracy["test_set"] == test_set)]["value"].mean()

    gain = pd.read_csv(out / "transfer_gain.csv", keep_default_na=False).set_index("name")
    assert list(gain.index) == ["pretrained", "frozen"] and set(gain["scratch"]) == {"scratch"}
    assert gain.loc["pretrained", "gain"] == pytest.approx(mean("pretrained", 1, "5-9") - mean("scratch", 0, "5-9"))
    forgetting = pd.read_csv(out / "forgetting.csv").set_index("name")
    assert list(forgetting.index) == ["pretrained", "frozen"] and set(forgetting["test_set"]) == {"0-4"}
    assert forgetting.loc["frozen", "forgetting"] == pytest.approx(mean("frozen", 0, "0-4") - mean("frozen", 1, "0-4"))
    matrix = pd.read_csv(out / "accuracy_matrix.csv")
    assert list(matrix.columns) == ["experiment", "step", "comment", "0-4", "5-9"]
    assert matrix.loc[3].tolist()[:3] == ["scratch", 0, "5-9"]
    assert matrix.loc[3, "5-9"] == pytest.approx(mean("scratch", 0, "5-9"))
    gain_line = next(line for line in lines if line.startswith("  pretrained step 1"))
    assert gain_line.endswith(f"{gain.loc['pretrained', 'gain']:+.2f}") and "(scratch)" in gain_line
    assert any(line.startswith("  frozen step 1 on 0-4 (learned at step 0):") for line in lines)
    continual = pd.read_csv(out / "continual_learning.csv").set_index("name")
    assert list(continual.index) == ["pretrained", "frozen"] and set(continual["tasks"]) == {"0-4 -> 5-9"}
    assert continual.loc["frozen", "bwt"] == pytest.approx(mean("frozen", 1, "0-4") - mean("frozen", 0, "0-4"))
    assert continual.loc["frozen", "fwt"] == pytest.approx(mean("frozen", 1, "5-9") - mean("scratch", 0, "5-9"))
    assert any(line.startswith("  frozen (0-4 -> 5-9): ACC ") for line in lines)


def test_report_bad_input_is_one_line(run, tmp_path, capsys):
    folder, _, _ = run
    assert main(["report", str(folder), "--workdir", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nntransfer: error: work folder") and len(err.splitlines()) == 1
    assert main(["report", str(folder), "--experiment", "chainz", "--workdir", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "did you mean 'chains'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------- continual learning, run summary


def test_a_fine_tuning_chain_of_plain_digits_configs_has_a_complete_matrix_and_bwt_fwt(tmp_path):
    from nntransfer.analysis import accuracy_matrix, continual_learning
    from nntransfer.analysis.metrics import forgetting, transfer_gain
    from nntransfer.analysis.report import metrics_text
    from nntransfer.configs import (
        ClassificationModelConfig,
        ClassificationTrainerConfig,
        Experiment,
        ImageDatasetConfig,
        TransferExperiment,
    )
    from nntransfer.pipeline.runner import run_experiments

    def step(classes, comment, **trainer):
        return Experiment(ImageDatasetConfig(dataset_cls="Digits", filter_classes=classes, batch_size=256),
                          ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[16]),
                          ClassificationTrainerConfig(max_iter=1, show_progress=False, **trainer), seed=1, comment=comment)

    chains = {Description("finetune", 1): TransferExperiment([step((0, 5), "0-4"), step((5, 10), "5-9", reset=["readout"])]),
              Description("scratch", 1): TransferExperiment([step((5, 10), "5-9")])}
    workdir = tmp_path / "work"
    run_experiments(chains, workdir=str(workdir), progress=False)
    results = load_results(chains, workdir=str(workdir))
    # the fine-tuning step evaluated the 0-4 test set by itself: no custom data set needed
    matrix = accuracy_matrix(results)
    assert list(matrix.columns) == ["0-4", "5-9"]
    assert matrix.loc[("finetune", 1, "0-4 -> 5-9")].notna().all()
    final = results.final
    value = final[(final["objective"] == "accuracy") & (final["group"] == "") & (final["variant"] == "plain")]
    value = value.set_index(["name", "step", "test_set"])["value"]
    learned, after = value[("finetune", 0, "0-4")], value[("finetune", 1, "0-4")]
    assert set(final[(final["name"] == "finetune") & (final["step"] == 1) & (final["test_set"] == "0-4")]["split"]) == {
        "step 0 test"}
    row = continual_learning(results).set_index("name").loc["finetune"]
    assert (row["tasks"], row["n"], row["scratch"]) == ("0-4 -> 5-9", 1, "scratch")
    assert row["bwt"] == pytest.approx(after - learned)
    assert row["fwt"] == pytest.approx(value[("finetune", 1, "5-9")] - value[("scratch", 0, "5-9")])
    assert row["acc"] == pytest.approx((after + value[("finetune", 1, "5-9")]) / 2)
    text = metrics_text(transfer_gain(results), forgetting(results), continual_learning(results))
    assert f"  finetune (0-4 -> 5-9): ACC {row['acc']:.2f}, BWT {row['bwt']:+.2f} (n=1), FWT {row['fwt']:+.2f} (n=1)" in text


SHARED_TEACHER = """
from nntransfer.configs import Description, Experiment, TransferExperiment
from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig

teacher = Experiment(ToyDatasetConfig(), ToyModelConfig(init=0.5), ToyTrainerConfig(increment=1.0), seed=1, comment="teacher")
transfer_experiments = {
    Description(f"student{i}", 1): TransferExperiment([teacher, Experiment(
        ToyDatasetConfig(), ToyModelConfig(), ToyTrainerConfig(increment=float(i), start_from_previous=False), seed=1,
        comment=f"student {i}")])
    for i in (1, 2, 3)
}
"""


def test_the_run_summary_counts_a_teacher_shared_by_three_students_once(tmp_path, capsys):
    from recipe_factory import write_recipe

    recipe = write_recipe(tmp_path, "shared_teacher_recipe", SHARED_TEACHER)
    workdir = tmp_path / "work"
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 0
    assert f"0 reused, 4 trained, 0 failed; results in work folder {workdir}" in capsys.readouterr().out
    assert len(list((workdir / "steps").iterdir())) == 4
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 0
    assert f"4 reused, 0 trained, 0 failed; results in work folder {workdir}" in capsys.readouterr().out


def test_a_worker_counts_what_it_trained_not_what_others_stored():
    from nntransfer.pipeline.store import DONE, FAILED, WAITING, StepStatus, summarize_run

    # three chains share the teacher "t"; this worker trained the teacher and one student, another worker the rest
    ids = ["t", "s1", "t", "s2", "t", "s3", "x"]

    def rows(*states):
        return [StepStatus(f"chain{i}", 1, step, "", state, id=ids[i]) for i, (step, state) in enumerate(states)]

    before = rows((0, WAITING), (1, WAITING), (0, WAITING), (1, WAITING), (0, WAITING), (1, WAITING), (0, DONE))
    after = rows((0, DONE), (1, DONE), (0, DONE), (1, DONE), (0, DONE), (1, FAILED), (0, DONE))
    summary = summarize_run(before, after, "schema lab", trained_here=["t", "s1"])
    assert (summary.reused, summary.trained, summary.elsewhere, summary.failed) == (1, 2, 1, 1)
    assert str(summary) == "1 reused, 2 trained, 1 trained by other runs, 1 failed"


def test_an_earlier_test_set_of_another_input_shape_is_skipped_with_a_warning(tmp_path, caplog):
    from nntransfer.configs import (
        ClassificationModelConfig,
        ClassificationTrainerConfig,
        Experiment,
        ImageDatasetConfig,
        TransferExperiment,
    )
    from nntransfer.pipeline.runner import run_experiments

    def step(size, comment):
        return Experiment(ImageDatasetConfig(dataset_cls="Digits", input_size=size, batch_size=256),
                          ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[8]),
                          ClassificationTrainerConfig(max_iter=1, show_progress=False, start_from_previous=False),
                          seed=1, comment=comment)

    chains = {Description("resized", 1): TransferExperiment([step(16, "16 px"), step(8, "8 px")])}
    with caplog.at_level(logging.WARNING, logger="nntransfer.pipeline"):
        rows = run_experiments(chains, workdir=str(tmp_path / "work"), progress=False)
    assert rows.summary.trained == 2 and rows.summary.failed == 0  # the step itself trains all the same
    assert "step 0's test sets are not evaluated after this step (inputs (1, 16, 16) with 10 classes, this step's " \
           "(1, 8, 8) with 10 classes)" in caplog.text
    final = load_results(chains, workdir=str(tmp_path / "work")).final
    assert set(final[final["step"] == 1]["split"]) == {"validation", "test"}
