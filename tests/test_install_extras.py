"""The local backend needs no database stack: with DataJoint, nnfabrik and their drivers unimportable (an
import hook in the child's ``sitecustomize``, as if the ``datajoint`` extra were not installed), a recipe of
real digits steps runs, reports and is searched in a work folder, and a DataJoint command says in one line
which extra to install."""

import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

from recipe_factory import write_recipe

TESTS = Path(__file__).parent
BLOCKED = ("datajoint", "nnfabrik", "pymysql", "minio")

HIDE_DATABASE_STACK = f"""
import sys

class HideDatabaseStack:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, HideDatabaseStack())
"""

DIGITS = """
from nntransfer.configs import ClassificationModelConfig, ClassificationTrainerConfig, Description, Experiment, ImageDatasetConfig, TransferExperiment

data = ImageDatasetConfig(dataset_cls="Digits", filter_classes=(5, 10), batch_size=64)
model = ClassificationModelConfig(type="lenet300-100")
chain = TransferExperiment([Experiment(data, model, ClassificationTrainerConfig(max_iter=2, show_progress=False), seed=1, comment="scratch")])
transfer_experiments = {Description("digits", 1): chain}
"""

SPACE = """
from nntransfer.search import Choice, SearchSpace
space = SearchSpace(params={("scratch", "trainer", "lr"): Choice([1e-3, 3e-3])}, sampler="grid")
"""


def test_the_database_stack_is_an_extra_of_the_distribution():
    needed = [r for r in requires("nntransfer") if r.split(";")[0].strip().lower().startswith(("datajoint", "nnfabrik"))]
    extras = [r.split("extra ==")[1].strip().strip("'\"") if "extra ==" in r else None for r in needed]
    assert sorted(extras) == ["datajoint", "datajoint", "test", "test"], needed  # never required without an extra


def test_the_local_backend_runs_reports_and_searches_without_datajoint_and_a_datajoint_command_names_the_extra(tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HIDE_DATABASE_STACK)
    recipe = write_recipe(tmp_path, "digits_without_datajoint", DIGITS)
    space = tmp_path / "space.py"
    space.write_text(SPACE)
    env = {"PYTHONPATH": f"{hook}:{TESTS}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MPLBACKEND": "Agg"}

    def nntransfer(*args):
        return subprocess.run([sys.executable, "-m", "nntransfer", *args], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)

    probe = subprocess.run([sys.executable, "-c", "import datajoint"], capture_output=True, text=True, env=env)
    assert probe.returncode != 0 and "No module named 'datajoint'" in probe.stderr  # the hook works
    store = f"local:{tmp_path / 'w'}"
    for args in (["run", str(recipe), "--store", store, "--quiet"], ["status", str(recipe), "--store", store],
                 ["report", str(recipe), "--store", store, "--out", str(tmp_path / "report")],
                 ["search", str(recipe), "--space", str(space), "--trials", "2", "--store", store, "--quiet"]):  # fmt: skip
        done = nntransfer(*args)
        assert done.returncode == 0, (args, done.stderr[-3000:])
    assert "2 finished trial(s)" in done.stdout

    for args in (["status", str(recipe), "--schema", "lab"], ["run", str(recipe), "--store", "datajoint:lab"]):
        refused = nntransfer(*args)
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 2 and len(lines) == 1, refused.stderr
        assert lines[0].startswith("nntransfer: error: the datajoint store needs the packages of the extra 'datajoint': "
                                   "pip install \"nntransfer[datajoint]\" (No module named ")  # fmt: skip
        assert lines[0].split("No module named ")[1].strip("')") in BLOCKED
