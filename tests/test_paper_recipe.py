"""The reproduction recipe of Nix et al. 2022 (examples/mnist1d_paper) stays valid: every config names
code that exists, the chains have the paper's structure, and the bench's table reads stored results."""

from pathlib import Path

from nntransfer.pipeline.validation import validate_recipe
from nntransfer.recipes.loading import load_recipe

RECIPE = Path(__file__).parent.parent / "examples" / "mnist1d_paper"


def test_paper_recipe_loads_validates_and_has_the_papers_chains():
    recipe = load_recipe(RECIPE)
    validate_recipe(recipe)
    chains = recipe.transfer_experiments
    names = sorted({d.name for d in chains})
    assert names == ["attention", "kd", "matching", "orbit", "rdl", "scratch", "teacher"]
    assert {d.seed for d in chains} == {1, 2, 3}
    by_name = {d.name: chain for d, chain in chains.items() if d.seed == 1}
    assert [len(by_name[n]) for n in ("scratch", "teacher", "kd", "orbit")] == [1, 1, 2, 3]
    # every method's teacher is the same stored step: trained once per seed
    teacher_key = by_name["teacher"].step_key(0)
    assert all(by_name[n].step_key(0) == teacher_key for n in ("kd", "rdl", "attention", "matching", "orbit"))
    student = by_name["kd"][1]
    assert student.trainer.teacher == "previous" and student.trainer.start_from_previous is False
    assert by_name["orbit"][1].model.fn.endswith("learned_orbit_builder")


def test_the_tuned_bench_searches_settings_every_method_has():
    import importlib.util

    from nntransfer.configs import Description

    path = RECIPE.parent.parent / "bench" / "paper_mnist1d_tuned.py"
    spec = importlib.util.spec_from_file_location("paper_mnist1d_tuned", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    recipe = bench.chains.build(seeds=(bench.SEARCH_SEED,))
    assert set(bench.SPACES) == {"scratch", *bench.chains.METHODS}
    for method in bench.SPACES:
        chain = recipe[Description(method, bench.SEARCH_SEED)]
        space = bench.space_of(method, len(chain) - 1)
        space.check(chain)  # every searched field exists on the student step, with a distribution that fits it
        assert all(param[0] == len(chain) - 1 and param[1] == "trainer" for param in space.params)
