"""``nntransfer forget``: a stored step and every step stored after it go, in a work folder and in the tables;
a reference that names nothing or more than one step deletes nothing; without a terminal, --yes is needed."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from recipe_factory import write_recipe
from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig

import nntransfer
from nntransfer.cli.main import EXIT_BAD_INPUT, main
from nntransfer.configs import Experiment, TransferExperiment
from nntransfer.configs.codec import make_hash

TESTS = Path(__file__).resolve().parent

# a three-step chain, and a teacher shared by two students
RECIPE = """
from nntransfer.configs import Description, Experiment, TransferExperiment
from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig


def step(increment, comment):
    return Experiment(ToyDatasetConfig(), ToyModelConfig(init=0.5), ToyTrainerConfig(increment=increment), seed=1, comment=comment)


teacher = step(1.0, "teacher")
transfer_experiments = {
    Description("long", 1): TransferExperiment([step(10.0, "first"), step(2.0, "middle"), step(3.0, "last")]),
    Description("student a", 1): TransferExperiment([teacher, step(4.0, "a")]),
    Description("student b", 1): TransferExperiment([teacher, step(5.0, "b")]),
}
"""
NAMES = [("long", 0), ("long", 1), ("long", 2), ("student a", 0), ("student a", 1), ("student b", 1)]


def step_ids(recipe_folder):
    """(chain, step) -> id of every step of RECIPE (the teacher under "student a")."""
    from nntransfer.recipes.loading import load_recipe

    recipe = load_recipe(str(recipe_folder))
    ids = {(d.name, level): make_hash(chain.step_key(level)) for d, chain in recipe.transfer_experiments.items() for level in range(len(chain))}
    assert ids[("student a", 0)] == ids[("student b", 0)]
    return ids


def stored_ids(workdir):
    return {p.name for p in (Path(workdir) / "steps").iterdir() if not p.name.startswith(".")}


def test_forget_deletes_a_step_and_its_descendants_only_in_a_work_folder(tmp_path, capsys):
    recipe = write_recipe(tmp_path, f"forget_{uuid.uuid4().hex[:6]}", RECIPE)
    workdir = tmp_path / "work"
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 0
    ids = step_ids(recipe)
    assert stored_ids(workdir) == {ids[name] for name in NAMES}
    # leftovers forget must take along: checkpoints of the middle step, a failure record of the last one,
    # and a checkpoint "folder" that is a link out of the work folder (removed, never followed)
    (workdir / "checkpoints" / ids[("long", 1)]).mkdir(parents=True)
    (workdir / "checkpoints" / ids[("long", 1)] / "epoch_000001.pt").write_bytes(b"x")
    (workdir / "failed" / f"{ids[('long', 2)]}.txt").write_text("RuntimeError: an old failure\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    (workdir / "checkpoints" / ids[("long", 2)]).symlink_to(outside, target_is_directory=True)

    capsys.readouterr()
    assert main(["forget", "long:1:1", "--recipe", str(recipe), "--workdir", str(workdir), "--yes"]) == 0
    out = capsys.readouterr().out
    assert "2 step(s) to delete" in out and ids[("long", 1)][:8] in out and ids[("long", 2)][:8] in out
    assert stored_ids(workdir) == {ids[name] for name in NAMES if name not in (("long", 1), ("long", 2))}
    assert not (workdir / "checkpoints" / ids[("long", 1)]).exists()
    assert not (workdir / "failed" / f"{ids[('long', 2)]}.txt").exists()
    assert not os.path.lexists(workdir / "checkpoints" / ids[("long", 2)])
    assert (outside / "precious.txt").read_text() == "keep me"

    # the shared teacher, in Python: it goes with both students, and nothing of the long chain
    deleted = nntransfer.forget(ids[("student a", 0)][:6], workdir=str(workdir))
    assert [record.id for record in deleted][0] == ids[("student a", 0)]
    assert {record.id for record in deleted} == {ids[("student a", 0)], ids[("student a", 1)], ids[("student b", 1)]}
    assert stored_ids(workdir) == {ids[("long", 0)]}

    # after forget, run trains exactly what was deleted
    capsys.readouterr()
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 0
    assert "1 reused, 5 trained, 0 failed" in capsys.readouterr().out
    assert stored_ids(workdir) == {ids[name] for name in NAMES}


def colliding_increments():
    """Two increments whose one-step chains have ids with the same first four characters."""
    seen = {}
    for index in range(5000):
        increment = 100.0 + index
        chain = TransferExperiment([Experiment(ToyDatasetConfig(), ToyModelConfig(), ToyTrainerConfig(increment=increment), seed=3)])
        prefix = make_hash(chain.step_key(0))[:4]
        if prefix in seen:
            return seen[prefix], increment, prefix
        seen[prefix] = increment
    raise AssertionError("no two ids share four characters")  # 5000 draws from 65536 prefixes: never


AMBIGUOUS = """
from nntransfer.configs import Description, Experiment, TransferExperiment
from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig


def one(increment, seed=3):
    return TransferExperiment([Experiment(ToyDatasetConfig(), ToyModelConfig(), ToyTrainerConfig(increment=increment), seed=seed)])


transfer_experiments = {{
    Description("x", 3): one({first}),
    Description("y", 3): one({second}),
    Description("twice", 1): one(7.0, 1),
    Description("twice", 2): one(7.0, 2),
}}
"""


def test_an_ambiguous_or_unknown_reference_deletes_nothing(tmp_path, capsys):
    first, second, prefix = colliding_increments()
    recipe = write_recipe(tmp_path, f"ambiguous_{uuid.uuid4().hex[:6]}", AMBIGUOUS.format(first=first, second=second))
    workdir = tmp_path / "work"
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 0
    before = stored_ids(workdir)
    assert len(before) == 4 and sum(digest.startswith(prefix) for digest in before) == 2
    capsys.readouterr()
    for argv, message in [
        (["forget", prefix, "--workdir", str(workdir), "--yes"], f"step id {prefix} is ambiguous (2 steps start with it)"),
        (["forget", "0000aaaa", "--workdir", str(workdir), "--yes"], "no step with id 0000aaaa"),
        (["forget", "twice", "--recipe", str(recipe), "--workdir", str(workdir), "--yes"], "'twice' has seeds 1, 2"),
    ]:
        assert main(argv) == EXIT_BAD_INPUT
        captured = capsys.readouterr()
        assert captured.err.startswith("nntransfer: error:") and message in captured.err and captured.err.count("\n") == 1, captured.err
        assert captured.out == ""
        assert stored_ids(workdir) == before
    with pytest.raises(ValueError, match="ambiguous"):
        nntransfer.forget(prefix, workdir=str(workdir))
    assert stored_ids(workdir) == before


def _cli(args, **kwargs):
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "nntransfer.cli.main", *args], env=environment, cwd=TESTS,
                          capture_output=True, text=True, timeout=120, **kwargs)


@pytest.mark.slow
def test_forget_asks_on_a_terminal_and_refuses_without_one(tmp_path, capsys):
    recipe = write_recipe(tmp_path, f"asks_{uuid.uuid4().hex[:6]}", RECIPE)
    workdir = tmp_path / "work"
    assert main(["run", str(recipe), "--workdir", str(workdir), "--quiet"]) == 0
    ids = step_ids(recipe)
    before = stored_ids(workdir)
    reference = ids[("long", 1)][:8]

    # no terminal, no --yes: one line, exit 2, nothing deleted
    refused = _cli(["forget", reference, "--workdir", str(workdir)], stdin=subprocess.DEVNULL)
    assert refused.returncode == EXIT_BAD_INPUT, refused.stderr
    assert refused.stderr.strip().splitlines() == ["nntransfer: error: forget deletes stored steps and asks first; "
                                                   "without a terminal, pass --yes"]
    assert stored_ids(workdir) == before

    # on a terminal: the list, then the question; "n" keeps everything, "y" deletes
    for answer, expected in (("n", before), ("y", before - {ids[("long", 1)], ids[("long", 2)]})):
        controller, terminal = os.openpty()
        try:
            os.write(controller, f"{answer}\n".encode())
            asked = _cli(["forget", reference, "--workdir", str(workdir)], stdin=terminal)
        finally:
            os.close(controller)
            os.close(terminal)
        out, err = asked.stdout, asked.stderr
        assert "2 step(s) to delete" in out and "delete them? [y/N]" in out, (out, err)
        assert asked.returncode == (0 if answer == "y" else 1)
        assert stored_ids(workdir) == expected


@pytest.mark.database
@pytest.mark.slow  # two runs on the tables
def test_forget_deletes_rows_files_checkpoints_and_failures_in_the_tables(tables, db_prefix, tmp_path, capsys):
    from nntransfer.pipeline.store import StepMeta
    from nntransfer.tables import activate
    from nntransfer.tables.store import DataJointStore

    recipe = write_recipe(tmp_path, f"forget_dj_{uuid.uuid4().hex[:6]}", RECIPE)
    schema = f"{db_prefix}_forget"
    ids = step_ids(recipe)
    try:
        assert main(["run", str(recipe), "--schema", schema, "--quiet"]) == 0
        store = DataJointStore(schema, create=False)
        keys = {entry.id: entry.key for entry in store.stored_steps()}
        assert set(keys) == {ids[name] for name in NAMES}
        external = store.tables.schema.external["minio"]
        files_before = len(external)
        # a failure record of the middle step (as a failed attempt before a retry leaves one in the jobs table)
        store.record_failure(keys[ids[("long", 1)]], RuntimeError("an old failure"), StepMeta())

        capsys.readouterr()
        assert main(["forget", "long:1:1", "--recipe", str(recipe), "--schema", schema, "--yes"]) == 0
        store = DataJointStore(schema, create=False)
        gone = {ids[("long", 1)], ids[("long", 2)]}
        assert {entry.id for entry in store.stored_steps()} == {ids[name] for name in NAMES} - gone
        assert len(store.tables.schema.external["minio"]) == files_before - 2  # their weight files
        assert not (store.jobs & {"status": "error"})
        assert len(store.table.ModelStorage & [keys[d] for d in gone]) == 0

        deleted = nntransfer.forget(ids[("student b", 0)], schema=schema)
        assert {record.id for record in deleted} == {ids[("student a", 0)], ids[("student a", 1)], ids[("student b", 1)]}
        assert {entry.id for entry in store.stored_steps()} == {ids[("long", 0)]}

        capsys.readouterr()
        assert main(["run", str(recipe), "--schema", schema, "--quiet"]) == 0
        assert "1 reused, 5 trained, 0 failed" in capsys.readouterr().out
    finally:
        activate(f"{db_prefix}_main")


@pytest.mark.database
def test_forget_in_a_new_process_deletes_from_the_tables(tables, db_prefix, tmp_path):
    """``forget`` is the first and only command of its process: the tables it deletes from are bound for
    writing (not as the read-only commands bind them)."""
    from nntransfer.tables import activate
    from nntransfer.tables.store import DataJointStore

    recipe = write_recipe(tmp_path, f"forget_fresh_{uuid.uuid4().hex[:6]}", RECIPE)
    schema = f"{db_prefix}_forget_fresh"
    ids = step_ids(recipe)
    try:
        assert main(["run", str(recipe), "--schema", schema, "--quiet"]) == 0
        done = _cli(["forget", "long:1:2", "--recipe", str(recipe), "--schema", schema, "--yes"], stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        assert ids[("long", 2)][:8] in done.stdout and "deleted 1 step(s)" in done.stdout
        store = DataJointStore(schema, create=False)
        assert {entry.id for entry in store.stored_steps()} == {ids[name] for name in NAMES} - {ids[("long", 2)]}
    finally:
        activate(f"{db_prefix}_main")
