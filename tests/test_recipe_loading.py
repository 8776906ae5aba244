"""A recipe's experiments are collected whole and named right: a ``Description`` that two modules of a folder
define for different chains, or whose seed is not its last step's, is one line (exit 2) before anything runs."""

import uuid

import pytest
from recipe_factory import write_recipe
from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig

from nntransfer.cli.main import EXIT_BAD_INPUT, main
from nntransfer.configs import Description, Experiment, TransferExperiment
from nntransfer.recipes.loading import RecipeError, as_recipe, load_recipe

CHAIN = (
    "from nntransfer.configs import Description, Experiment, TransferExperiment\n"
    "from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig\n"
    "def chain(increment, seed=1):\n"
    "    return TransferExperiment([Experiment(ToyDatasetConfig(), ToyModelConfig(), ToyTrainerConfig(increment=increment),"
    " seed=seed, comment='toy')])\n"
)


def folder_with_modules(tmp_path, **modules):
    folder = write_recipe(tmp_path, f"recipe_{uuid.uuid4().hex[:6]}", "")
    for name, code in modules.items():
        (folder / f"{name}.py").write_text(CHAIN + code)
    return folder


def test_two_modules_defining_one_description_for_different_chains_are_one_line_and_nothing_runs(tmp_path, capsys):
    folder = folder_with_modules(tmp_path, first="transfer_experiments = {Description('same', 1): chain(1.0)}\n",
                                 second="transfer_experiments = {Description('same', 1): chain(2.0)}\n")
    with pytest.raises(RecipeError, match=r"Description\(name='same', seed=1\) is defined by both .*first and .*second"):
        load_recipe(str(folder))
    assert main(["run", str(folder), "--workdir", str(tmp_path / "w"), "--quiet"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "defined by both" in err and err.count("\n") == 1
    assert not (tmp_path / "w").exists()
    # the same chain under one Description in two modules (one imports the other's) is that one chain
    same = folder_with_modules(tmp_path, first="transfer_experiments = {Description('same', 1): chain(1.0)}\n",
                               second="transfer_experiments = {Description('same', 1): chain(1.0),"
                                      " Description('other', 1): chain(2.0)}\n")
    assert list(load_recipe(str(same)).transfer_experiments) == [Description("same", 1), Description("other", 1)]


def test_a_description_whose_seed_is_not_its_last_steps_is_one_line_and_nothing_runs(tmp_path, capsys):
    folder = folder_with_modules(tmp_path, chains="transfer_experiments = {Description('mislabelled', 1): chain(1.0, seed=5)}\n")
    with pytest.raises(RecipeError, match="its last step trains with seed 5, but the chain is named with seed 1"):
        load_recipe(str(folder))
    assert main(["run", str(folder), "--workdir", str(tmp_path / "w"), "--quiet"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "seed 5" in err and err.count("\n") == 1
    assert not (tmp_path / "w").exists()


def test_a_notebook_dict_whose_description_has_another_seed_is_refused_too():
    chain = TransferExperiment([Experiment(ToyDatasetConfig(), ToyModelConfig(), ToyTrainerConfig(), seed=2)])
    with pytest.raises(RecipeError, match="seed 2, but the chain is named with seed 3"):
        as_recipe({Description("x", 3): chain})


def test_two_different_experiments_of_one_list_with_one_comment_and_seed_are_refused(tmp_path):
    folder = folder_with_modules(tmp_path, listed="experiments = [chain(1.0)[0], chain(2.0)[0]]\n")
    with pytest.raises(RecipeError, match=r"experiments\[1\] and an earlier experiment are both named 'toy'"):
        load_recipe(str(folder))
