"""Analysis: frames and plots from a real tiny run (digits, 2 epochs, two experiments, two seeds, a
corrupted test set and test noise), the ``report`` command, and incomplete chains."""

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
from nntransfer.cli.main import main  # noqa: E402
from nntransfer.configs import Description  # noqa: E402
from nntransfer.pipeline.local import LocalStore  # noqa: E402
from nntransfer.recipes.loading import Recipe, load_recipe  # noqa: E402

TASK = "img_classification"
NAMES = ["pretrained", "scratch"]

RECIPE = '''
from nntransfer.configs import (ClassificationModelConfig, ClassificationTrainerConfig, Description, Experiment,
                                ImageDatasetConfig, TransferExperiment)

CORRUPTED = {corrupted!r}


def step(classes, seed, **trainer_options):
    dataset = ImageDatasetConfig(dataset_cls="Digits", filter_classes=classes, batch_size=128,
                                 add_corrupted_test=True, corrupted_data_dir=CORRUPTED, stacked_severities=2)
    trainer = ClassificationTrainerConfig(max_iter=2, show_progress=False, noise_test={{"noise_std": [0.0, 0.3]}},
                                          **trainer_options)
    return Experiment(dataset, ClassificationModelConfig(type="lenet300-100"), trainer, seed=seed,
                      comment=f"{{classes[0]}}-{{classes[1] - 1}}")


def pretrained(seed):
    return TransferExperiment([step((0, 5), seed), step((5, 10), seed, reset=["readout"])])


transfer_experiments = {{}}
for seed in (1, 2):
    transfer_experiments[Description("pretrained", seed)] = pretrained(seed)
    transfer_experiments[Description("scratch", seed)] = TransferExperiment([step((5, 10), seed)])
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
    assert list(status.columns[:5]) == ["name", "seed", "step", "comment", "state"]
    assert len(status) == 6 and set(status["state"]) == {"done"} and status["chain_complete"].all()
    assert list(dict.fromkeys(status["name"])) == NAMES
    steps = status.set_index(["name", "seed", "step"])
    assert steps.loc[("pretrained", 1, 1), "comment"] == "0-4 -> 5-9"
    assert steps.loc[("scratch", 2, 0), "chain_steps"] == 1
    assert results.incomplete.empty


def test_curves_hold_every_epoch_of_every_step_and_match_the_score(results, run):
    curves = results.curves
    assert list(curves.columns) == ["name", "seed", "step", "comment", "mode", "task", "objective", "epoch", "value"]
    for mode in ("Training", "Validation"):
        rows = curves[(curves["mode"] == mode) & (curves["objective"] == "accuracy")]
        # 6 steps x 2 epochs
        assert len(rows) == 12 and set(rows["epoch"]) == {1, 2} and set(rows["task"]) == {TASK}
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
    assert set(accuracy["split"]) == {"validation", "test", "c_test", "validation_noise"}
    c_test = accuracy[accuracy["split"] == "c_test"]
    assert set(c_test["group"]) == {"gaussian_noise", "contrast"} and set(c_test["level"]) == {1.0, 2.0}
    assert len(c_test) == 6 * 2 * 2
    noise = accuracy[accuracy["split"] == "validation_noise"]
    assert set(noise["group"]) == {"noise_std"} and set(noise["level"]) == {0.0, 0.3}
    for (name, seed, step), output in stored.items():
        mine = accuracy[(accuracy["name"] == name) & (accuracy["seed"] == seed) & (accuracy["step"] == step)]
        test = mine[(mine["split"] == "test")]["value"].item()
        assert test == output["final"]["test"][TASK]["accuracy"]
        fog2 = mine[(mine["group"] == "contrast") & (mine["level"] == 2.0)]["value"].item()
        assert fog2 == output["final"]["c_test"]["contrast"][2][TASK]["accuracy"]
    # stronger corruption hurts (mean over every step and seed)
    by_level = c_test[c_test["group"] == "gaussian_noise"].groupby("level")["value"].mean()
    assert by_level[2.0] < by_level[1.0]


def test_summary_aggregates_seeds(results):
    summary = results.summary()
    assert list(summary[["name", "step"]].itertuples(index=False, name=None)) == [("pretrained", 0), ("pretrained", 1), ("scratch", 0)]
    final = results.final
    test = final[(final["split"] == "test") & (final["objective"] == "accuracy")]
    seeds = test[(test["name"] == "pretrained") & (test["step"] == 1)]["value"].to_numpy()
    row = summary[(summary["name"] == "pretrained") & (summary["step"] == 1)].iloc[0]
    assert row["n_done"] == row["n_seeds"] == 2
    assert row["mean"] == pytest.approx(seeds.mean()) and row["std"] == pytest.approx(seeds.std(ddof=1))
    assert row["comment"] == "0-4 -> 5-9"
    with pytest.raises(ValueError, match="available: .*test"):
        results.summary(split="tset")


def test_incomplete_chain_is_reported_not_dropped(run, caplog, tmp_path):
    folder, recipe, workdir = run
    extra = dict(recipe.transfer_experiments)
    module = __import__(f"{folder.name}.chains", fromlist=["pretrained"])
    extra[Description("pretrained", 3)] = chain = module.pretrained(3)
    bigger = Recipe(recipe.name, recipe.path, extra)
    LocalStore(workdir).train(Description("pretrained", 3), chain, 0)  # step 1 never runs

    with caplog.at_level(logging.WARNING, logger="nntransfer.analysis"):
        partial = load_results(bigger, workdir=str(workdir))
    assert "1 of 5 chains are incomplete: pretrained seed 3 (step 1 waiting)" in caplog.text
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
    # the bar of the chains' last step uses the two seeds that finished it
    figure = plot_final_accuracy(final)
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["pretrained\nn=2", "scratch\nn=2"]
    written = write_report(partial, tmp_path)
    status = pd.read_csv(written["status"])
    assert len(status) == 8 and status[status["state"] == "waiting"][["name", "seed", "step"]].values.tolist() == [["pretrained", 3, 1]]


def test_nothing_finished_is_an_error(run, tmp_path):
    folder, _, _ = run
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="none of the 6 steps .* is finished"):
        load_results(str(folder), workdir=str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_results(str(folder), workdir=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="not both"):
        load_results(str(folder), workdir=str(tmp_path), schema="x")


# ---------------------------------------------------------------------------- plots


def test_learning_curves_plot(results, tmp_path):
    fig = plot_learning_curves(results.curves, path=tmp_path / "curves.png")
    step0, step1 = fig.axes
    assert step0.get_xlabel() == step1.get_xlabel() == "epoch" and step0.get_ylabel() == "accuracy (%)"
    assert step0.get_title() == "transfer step 0" and step1.get_title() == "transfer step 1"
    # a line per experiment and mode; only "pretrained" has a second step
    assert sorted(line.get_label() for line in step0.get_lines()) == [
        "pretrained (training)", "pretrained (validation)", "scratch (training)", "scratch (validation)"]
    assert sorted(line.get_label() for line in step1.get_lines()) == ["pretrained (training)", "pretrained (validation)"]
    line = next(line for line in step1.get_lines() if line.get_label() == "pretrained (validation)")
    curves = results.curves
    expected = curves[(curves["name"] == "pretrained") & (curves["step"] == 1) & (curves["mode"] == "Validation")
                      & (curves["objective"] == "accuracy")].groupby("epoch")["value"].mean()
    assert list(line.get_xdata()) == [1, 2] and np.allclose(line.get_ydata(), expected.values)
    assert_png(tmp_path / "curves.png")
    with pytest.raises(ValueError, match="available objectives"):
        plot_learning_curves(results.curves, objective="acc")


def test_transfer_steps_plot(results, tmp_path):
    fig = plot_transfer_steps(results.final, path=tmp_path / "steps.png")
    (ax,) = fig.axes
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [c.get_label() for c in bars] == NAMES
    summary = results.summary().set_index(["name", "step"])
    pretrained = bars[0].lines[0]
    assert len(pretrained.get_xdata()) == 2 and len(bars[1].lines[0].get_xdata()) == 1
    assert np.allclose(pretrained.get_ydata(), summary.loc["pretrained", "mean"].values)
    assert ax.get_xlabel() == "transfer step" and ax.get_ylabel() == "test accuracy (%)"
    assert_png(tmp_path / "steps.png")


def test_final_accuracy_bars(results, tmp_path):
    fig = plot_final_accuracy(results.final, path=tmp_path / "bars.png")
    (ax,) = fig.axes
    (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars.patches) == 2  # one bar per experiment
    summary = results.summary().set_index(["name", "step"])
    heights = [patch.get_height() for patch in bars.patches]
    assert np.allclose(heights, [summary.loc[("pretrained", 1), "mean"], summary.loc[("scratch", 0), "mean"]])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["pretrained\nn=2", "scratch\nn=2"]
    assert ax.get_ylabel() == "test accuracy (%)" and ax.get_xlabel() == "experiment"
    assert_png(tmp_path / "bars.png")


def test_robustness_plots(results, tmp_path):
    fig = plot_robustness(results.final, "c_test", path=tmp_path / "c.png")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["c_test: mean over corruptions", "c_test: contrast", "c_test: gaussian_noise"]
    for ax in visible:
        assert ax.get_xlabel() == "severity"
        assert [c.get_label() for c in ax.containers if isinstance(c, ErrorbarContainer)] == NAMES
        assert all(list(c.lines[0].get_xdata()) == [1.0, 2.0] for c in ax.containers)
    assert visible[0].get_ylabel() == "accuracy (%)"
    assert_png(tmp_path / "c.png")

    fig = plot_robustness(results.final, "validation_noise")
    (ax,) = [ax for ax in fig.axes if ax.get_visible()]
    assert ax.get_xlabel() == "noise std" and len(ax.containers) == 2
    with pytest.raises(ValueError, match="no results per severity"):
        plot_robustness(results.final, "test")


def test_plot_all_saves_every_plot(results, tmp_path):
    figures = plot_all(results, out=tmp_path, close=True)
    assert list(figures) == ["learning_curves", "transfer_steps", "final_accuracy", "robustness_c_test",
                             "robustness_validation_noise"]
    for name in figures:
        assert_png(tmp_path / f"{name}.png")
    assert list(results.plot()) == list(figures)  # the same from the Results object, nothing saved


# ---------------------------------------------------------------------------- the report command


def test_report_command_writes_csvs_and_pngs(run, tmp_path, capsys):
    folder, _, workdir = run
    out = tmp_path / "report"
    assert main(["report", str(folder), "--workdir", str(workdir), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy, mean ± std over seeds" in printed
    lines = printed.splitlines()
    assert lines[1].split() == ["name", "step", "comment", "seeds", "accuracy"]
    assert lines[3].split()[:6] == ["pretrained", "1", "0-4", "->", "5-9", "2/2"]
    assert {p.name for p in out.iterdir()} == {
        "status.csv", "curves.csv", "final.csv", "summary.csv", "learning_curves.png", "transfer_steps.png",
        "final_accuracy.png", "robustness_c_test.png", "robustness_validation_noise.png"}
    for png in out.glob("*.png"):
        assert_png(png)
    final = pd.read_csv(out / "final.csv")
    assert len(final) == len(load_results(str(folder), workdir=str(workdir)).final)
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["name"]) == ["pretrained", "pretrained", "scratch"] and (summary["n_done"] == 2).all()


def test_report_bad_input_is_one_line(run, tmp_path, capsys):
    folder, _, _ = run
    assert main(["report", str(folder), "--workdir", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nntransfer: error: work folder") and len(err.splitlines()) == 1
    assert main(["report", str(folder), "--experiment", "chainz", "--workdir", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "did you mean 'chains'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
