"""Commands that only read start without what only training needs: ``status`` of a stored recipe imports
neither torch nor nnfabrik (seconds each), on either backend, nor what DataJoint imports for what nntransfer
never does (matplotlib for diagrams, minio for S3, deepdiff; ``nntransfer.tables._datajoint``), and the fingerprint of a step's user code is
the same whether or not nntransfer's own functions were imported to take it."""

import json
import subprocess
import sys
import uuid

import pytest
from recipe_factory import write_recipe

from nntransfer.cli.main import main

RECIPE = """
from nntransfer.configs import ClassificationModelConfig, ClassificationTrainerConfig, Description, Experiment, ImageDatasetConfig, TransferExperiment
{extra}
chain = TransferExperiment([Experiment(
    ImageDatasetConfig(dataset_cls="Digits", filter_classes=(0, 3), batch_size=64{dataset_extra}),
    ClassificationModelConfig(type="mlp", options={{"hidden_sizes": [16]}}),
    ClassificationTrainerConfig(max_iter=1, early_stopping=False, show_progress=False),
    seed=1, comment="scratch")])
transfer_experiments = {{Description("light", 1): chain}}
"""

# a test transform of the user's own: registered through nntransfer.dataset (which imports torch)
USER_TRANSFORM = """
from nntransfer.dataset import register_test_transform


@register_test_transform("light_flip")
def light_flip(batch, generator):
    return batch.flip(-1)
"""

HEAVY = ("torch", "nnfabrik", "matplotlib", "minio", "deepdiff")

PROBE = """
HEAVY = {heavy!r}
import runpy, sys
sys.argv = {argv!r}
try:
    runpy.run_module("nntransfer", run_name="__main__")
except SystemExit as exit:
    code = exit.code
print("IMPORTED", sorted(name for name in HEAVY if name in sys.modules), "EXIT", code, file=sys.stderr)
"""


def probe(argv, cwd):
    """Run the command line ``argv`` in a new process; its stdout, and which heavy packages it imported."""
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)], capture_output=True, text=True, cwd=cwd, timeout=120)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("IMPORTED") and last.endswith("EXIT 0"), done.stderr
    return done.stdout, last


def digits_recipe(tmp_path, **code):
    name = f"light_{uuid.uuid4().hex[:8]}"
    return write_recipe(tmp_path, name, RECIPE.format(extra=code.get("extra", ""), dataset_extra=code.get("dataset_extra", "")))


@pytest.mark.database
def test_status_on_the_tables_reads_without_importing_torch_nnfabrik_or_datajoints_plotting(tmp_path, db_prefix):
    recipe = digits_recipe(tmp_path)
    store = f"datajoint:{db_prefix}_light"
    assert main(["run", str(recipe), "--store", store, "--quiet"]) == 0
    out, imported = probe(["nntransfer", "status", str(recipe), "--store", store], cwd=tmp_path)
    assert "IMPORTED []" in imported
    assert " done " in out and "scratch" in out, out


def test_status_of_a_work_folder_reads_without_importing_torch(tmp_path):
    recipe = digits_recipe(tmp_path)
    store = f"local:{tmp_path / 'work'}"
    assert main(["run", str(recipe), "--store", store, "--quiet"]) == 0
    out, imported = probe(["nntransfer", "status", str(recipe), "--store", store], cwd=tmp_path)
    assert "IMPORTED []" in imported
    assert " done " in out, out


FINGERPRINT = """
import json, sys
sys.path.insert(0, {root!r})
if {import_all}:
    import nntransfer.dataset, nntransfer.models, nntransfer.trainer.img_classification  # noqa: F401
from nntransfer.fingerprint import chain_fingerprints
from nntransfer.recipes.loading import load_recipe

recipe = load_recipe({recipe!r})
prints = chain_fingerprints(recipe.transfer_experiments.values())
print(json.dumps({{key: [value.digest, sorted(value.files)] for key, value in prints.items()}}))
print("torch" in sys.modules, file=sys.stderr)
"""


@pytest.mark.parametrize("user_code", [False, True], ids=["nntransfer's functions only", "a user's test transform"])
def test_a_steps_fingerprint_does_not_depend_on_whether_nntransfers_functions_were_imported(tmp_path, user_code):
    code = {}
    if user_code:
        name = f"light_transforms_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(USER_TRANSFORM)
        code = {"extra": f"import {name}  # noqa: F401\n", "dataset_extra": ', test_transforms={"test_flip": {"transform": "light_flip"}}'}
    recipe = digits_recipe(tmp_path, **code)

    def fingerprints(import_all):
        source = FINGERPRINT.format(root=str(tmp_path), import_all=import_all, recipe=str(recipe))
        done = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=120, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr.strip().splitlines()[-1] == "True"

    lazily, torch_lazily = fingerprints(import_all=False)
    eagerly, torch_eagerly = fingerprints(import_all=True)
    assert lazily == eagerly
    assert torch_eagerly and torch_lazily == user_code  # only the user's code brought torch in
    files = {module for _, modules in lazily.values() for module in modules}
    assert any(module.startswith("light_transforms_") for module in files) == user_code
