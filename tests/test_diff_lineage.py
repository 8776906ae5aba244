"""``diff`` (the settings behind two step hashes) and ``lineage`` (a step's ancestors and descendants across
chains), in Python and on the command line, from objects, a recipe, a work folder and the tables."""

import uuid

import pytest
from recipe_factory import write_recipe

from nntransfer.analysis import Diff, Lineage, diff, lineage
from nntransfer.analysis.diff import ABSENT
from nntransfer.analysis.lineage import StepRecord, resolve
from nntransfer.cli.main import EXIT_BAD_INPUT, main
from nntransfer.configs import (
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Experiment,
    ImageDatasetConfig,
    KnowledgeDistillationMixin,
    TransferExperiment,
)
from nntransfer.configs.codec import make_hash


def rows(result):
    return [(row.step, row.role, row.field, row.a, row.b) for row in result.rows]


def digits(first, stop):
    return ImageDatasetConfig(dataset_cls="Digits", filter_classes=(first, stop))


def chain(seed=1, lr=0.001, hidden=(32,), trainer_class=ClassificationTrainerConfig):
    model = ClassificationModelConfig(type="mlp", options={"hidden_sizes": list(hidden)})
    return TransferExperiment([
        Experiment(digits(0, 5), model, ClassificationTrainerConfig(max_iter=2), seed=seed, comment="pre-train"),
        Experiment(digits(5, 10), model, trainer_class(max_iter=2, lr=lr, reset=["readout"]), seed=seed, comment="fine-tune"),
    ])  # fmt: skip


class DistillingTrainer(KnowledgeDistillationMixin, ClassificationTrainerConfig):
    pass


def test_diff_of_chains_names_each_field_with_both_values():
    assert rows(diff(chain(), chain(lr=0.01))) == [("1", "trainer", "lr", 0.001, 0.01)]  # same history: the step only
    assert rows(diff(chain(), chain(seed=2))) == [("0", "seed", "seed", 1, 2), ("1", "seed", "seed", 1, 2)]
    # the model of step 0 differs: step 1's history differs too, and its own model
    assert rows(diff(chain(), chain(hidden=(64,)))) == [
        ("0", "model", "options", {"hidden_sizes": [32]}, {"hidden_sizes": [64]}),
        ("1", "model", "options", {"hidden_sizes": [32]}, {"hidden_sizes": [64]})]
    same = diff(chain(), chain())
    assert same.same and "no setting differs" in str(same)


def test_diff_of_steps_at_different_positions_and_of_other_config_classes():
    pre, fine = chain()[0], chain()
    result = diff(pre, fine)  # step 0 alone against the chain, at its last step
    assert rows(result) == [
        ("history", "chain", "steps before", 0, 1),
        ("0 vs 1", "dataset", "filter_classes", (0, 5), (5, 10)),
        ("0 vs 1", "trainer", "reset", [], ["readout"]),
        ("0 vs 1", "chain", "transfer_step", 0, 1),
    ]
    distilled = rows(diff(chain(), chain(trainer_class=DistillingTrainer)))
    assert distilled[0][:3] == ("1", "trainer", "class") and distilled[0][4].endswith("DistillingTrainer")
    assert {field: (a, b) for step, role, field, a, b in distilled[1:]} == {
        "main_loop_modules": ([], ["KnowledgeDistillation"]),  # the module the mixin adds
        "kd_weight": (ABSENT, 0.5), "kd_temperature": (ABSENT, 4.0), "kd_teacher": (ABSENT, "teacher"),  # only in B's class
    }
    frame = result.frame()
    assert list(frame.columns) == ["step", "role", "field", "a", "b"] and len(frame) == 4
    text = str(result).splitlines()
    assert text[2].split() == ["step", "role", "field", "A", "B"]
    assert text[4].split() == ["0", "vs", "1", "dataset", "filter_classes", "(0,", "5)", "(5,", "10)"]


def test_a_reference_names_exactly_one_step_or_says_how_to_fix_it():
    def record(step_id):
        return StepRecord(step_id, {"seed": 1, "transfer_step": 0, "collapsed_history": ""}, {})

    steps = {"abcd1234": record("abcd1234"), "abcd9999": record("abcd9999")}
    assert resolve("abcd12", steps)[-1].id == "abcd1234"
    with pytest.raises(ValueError, match="ambiguous .* give more characters"):
        resolve("abcd", steps)
    with pytest.raises(ValueError, match="no step with id ffff"):
        resolve("ffff", steps)
    with pytest.raises(ValueError, match="names no step"):
        resolve("abc", steps)  # too short to be an id


SHARED = (
    "from nntransfer.configs import Description, Experiment, TransferExperiment\n"
    "from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig\n"
    "pre = Experiment(ToyDatasetConfig(), ToyModelConfig(init=0.5), ToyTrainerConfig(increment=1.0), seed=1, comment='pre')\n"
    "def fine(increment):\n"
    "    return Experiment(ToyDatasetConfig(size=3), ToyModelConfig(init=0.5), ToyTrainerConfig(increment=increment), seed=1,"
    " comment=f'fine {{increment}}')\n"
    "transfer_experiments = {{{chains}}}\n"
)


def shared_recipe(root, name, increments):
    """Chains that all start from the same pre-training step, one per fine-tuning increment."""
    chains = ", ".join(f"Description('{label}', 1): TransferExperiment([pre, fine({inc})])" for label, inc in increments.items())
    return write_recipe(root, name, SHARED.format(chains=chains))


def status_ids(capsys, argv):
    """(name, step) -> step id from the table ``status`` prints."""
    capsys.readouterr()
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    return {(line.split()[0], int(line.split()[2])): line.split()[5] for line in lines[1:] if line and not line.startswith(" ")}


def lineage_lines(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 0
    return capsys.readouterr().out.splitlines()


def test_lineage_and_diff_across_chains_and_recipes_in_a_work_folder(tmp_path, capsys):
    first = shared_recipe(tmp_path, f"shared_{uuid.uuid4().hex[:6]}", {"two": 2.0, "three": 3.0})
    later = shared_recipe(tmp_path, f"later_{uuid.uuid4().hex[:6]}", {"five": 5.0})  # another recipe, same pre-training
    workdir = str(tmp_path / "work")
    for recipe in (first, later):
        assert main(["run", str(recipe), "--workdir", workdir, "--quiet"]) == 0
    ids = status_ids(capsys, ["status", str(first), "--workdir", workdir])
    ids.update(status_ids(capsys, ["status", str(later), "--workdir", workdir]))
    assert ids[("two", 0)] == ids[("three", 0)] == ids[("five", 0)]  # one stored pre-training step

    tree = lineage_lines(capsys, ["lineage", ids[("two", 0)], "--workdir", workdir])
    assert tree[0].startswith(ids[("two", 0)]) and tree[0].endswith("<- this step")
    children = sorted(line.split()[1] for line in tree[1:])
    assert children == sorted(ids[(name, 1)] for name in ("two", "three", "five"))  # across chains and recipes
    assert all(line.startswith("   └─ ") for line in tree[1:])

    tree = lineage_lines(capsys, ["lineage", ids[("three", 1)], "--workdir", workdir])
    assert tree[0].split()[0] == ids[("three", 0)] and tree[1].split()[1] == ids[("three", 1)] and "<- this step" in tree[1]
    assert "no stored step continues from it" in tree[2]

    found = lineage(ids[("two", 0)], workdir=workdir)
    assert isinstance(found, Lineage) and [depth for depth, _ in found.descendants] == [1, 1, 1]
    frame = found.frame()
    assert frame["relation"].tolist() == ["step", "descendant", "descendant", "descendant"]
    assert set(frame["state"]) == {"done"} and frame["score"].notna().all()

    # diff by ids (as status prints them) and by NAME:SEED:STEP of the recipe: the same rows
    assert main(["diff", ids[("two", 1)], ids[("three", 1)], "--workdir", workdir]) == 0
    by_id = capsys.readouterr().out.splitlines()
    assert by_id[-1].split() == ["1", "trainer", "increment", "2.0", "3.0"] and len(by_id) == 4
    assert main(["diff", "two:1:1", "three:1", "--recipe", str(first), "--workdir", workdir]) == 0
    assert capsys.readouterr().out.splitlines()[2:] == by_id[2:]
    assert rows(diff("two:1:0", "two:1:1", recipe=str(first))) == [
        ("history", "chain", "steps before", 0, 1),
        ("0 vs 1", "dataset", "size", 4, 3),
        ("0 vs 1", "trainer", "increment", 1.0, 2.0),
        ("0 vs 1", "chain", "transfer_step", 0, 1),
    ]


def test_bad_references_are_one_line(tmp_path, capsys):
    recipe = shared_recipe(tmp_path, f"badref_{uuid.uuid4().hex[:6]}", {"two": 2.0})
    workdir = str(tmp_path / "work")
    assert main(["run", str(recipe), "--workdir", workdir, "--quiet"]) == 0
    capsys.readouterr()
    for argv, message in [
        (["diff", "0000000", "two:1:1", "--recipe", str(recipe), "--workdir", workdir], "no step with id 0000000 in work folder"),
        (["diff", "two:7:1", "two:1:1", "--recipe", str(recipe), "--workdir", workdir], "'two' has no seed 7"),
        (["lineage", "two:1:5", "--recipe", str(recipe), "--workdir", workdir], "two has steps 0..1"),
        (["lineage", "two:1:1", "--workdir", workdir], "'two:1:1' names no step; give a step id"),
        (["lineage", "abcdef", "--workdir", str(tmp_path / "nowhere")], "does not exist"),
    ]:
        assert main(argv) == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert err.startswith("nntransfer: error:") and message in err and err.count("\n") == 1, err


@pytest.mark.slow
@pytest.mark.database
def test_the_tables_give_the_same_ids_lineage_and_diff(tables, db_prefix, tmp_path, capsys):
    from nntransfer.tables import activate

    recipe = shared_recipe(tmp_path, f"tables_{uuid.uuid4().hex[:6]}", {"two": 2.0, "three": 3.0})
    schema = f"{db_prefix}_lineage"
    workdir = str(tmp_path / "work")
    try:
        assert main(["run", str(recipe), "--schema", schema, "--quiet"]) == 0
        assert main(["run", str(recipe), "--workdir", workdir, "--quiet"]) == 0
        capsys.readouterr()
        ids = status_ids(capsys, ["status", str(recipe), "--schema", schema])
        assert ids == status_ids(capsys, ["status", str(recipe), "--workdir", workdir])
        pre, two, three = ids[("two", 0)], ids[("two", 1)], ids[("three", 1)]
        tree = lineage_lines(capsys, ["lineage", pre, "--schema", schema])
        assert sorted(line.split()[1] for line in tree[1:]) == sorted([two, three])
        assert main(["diff", two, three, "--schema", schema]) == 0
        from_tables = capsys.readouterr().out.splitlines()[2:]
        assert main(["diff", two, three, "--workdir", workdir]) == 0
        assert from_tables == capsys.readouterr().out.splitlines()[2:]
        assert from_tables[-1].split() == ["1", "trainer", "increment", "2.0", "3.0"]
        named = lineage(pre, schema=schema, recipe=str(recipe))  # the tables keep no names: the recipe's
        assert {record.name for _, record in named.descendants} == {"two", "three"}
        assert make_hash(named.step.key) == named.step.id
    finally:
        activate(f"{db_prefix}_main")


def test_python_references_need_a_place_to_look_in():
    with pytest.raises(ValueError, match="give where the steps are"):
        diff("abcd1234", "abcd5678")
    assert isinstance(diff(chain(), chain(lr=0.1)), Diff)  # objects need no store


def test_the_readme_shows_what_diff_prints_for_the_example_recipe():
    """The README's run -> report -> diff session: its diff output (ids included) is what diff prints."""
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    session = readme.split("A typical session:", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    command = next(line for line in session.splitlines() if line.startswith("nntransfer diff "))
    shown = session.split(command, 1)[1].split("\nnntransfer ", 1)[0]
    shown = [line[len("#   "):] for line in shown.splitlines() if line.startswith("#   ")]
    a, b = command.split('"')[1], command.split('"')[3]
    printed = str(diff(a, b, recipe="nntransfer.recipes.digits_transfer")).splitlines()
    assert shown == printed
    lineage_id = next(line for line in session.splitlines() if line.startswith("nntransfer lineage ")).split()[2]
    assert printed[0].split()[1] == lineage_id  # the id the README's lineage line uses is step 0's
