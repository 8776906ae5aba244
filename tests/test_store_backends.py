"""Stores named by one address (``local:DIR``, ``datajoint:SCHEMA``, ``SCHEME:LOCATION``) and backends written
outside the package: a JSON folder store defined in a module under tmp_path, found through the
``nntransfer.stores`` entry point of a distribution under tmp_path, works with every command."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from recipe_factory import write_recipe, write_toy_recipe

from nntransfer.cli.main import EXIT_BAD_INPUT, main
from nntransfer.configs.codec import make_hash
from nntransfer.pipeline.addresses import open_store, parse_address
from nntransfer.pipeline.backends import ENTRY_POINT_GROUP, store_address
from nntransfer.pipeline.local import LocalStore
from nntransfer.recipes.loading import load_recipe

TESTS = Path(__file__).parent

USER_BACKEND = '''
"""A store backend outside nntransfer: each finished step is one JSON file (weights beside it)."""
import json
from pathlib import Path

import numpy as np
import torch

from nntransfer.configs import codec
from nntransfer.configs.codec import make_hash
from nntransfer.pipeline.backends import register_store
from nntransfer.pipeline.store import DONE, FAILED, WAITING, StepState, Store, StoredKey, StoredStep
from nntransfer.trainer.checkpointing import LocalCheckpoints


@register_store("jsonfolder")
class JsonFolderStore(Store):
    location_help = "DIR"

    def __init__(self, location):
        self.folder = Path(location)
        self.location = str(location)
        self.where = f"json folder {location}"

    @classmethod
    def exists(cls, location):
        return Path(location).is_dir()

    def _path(self, key, suffix):
        return self.folder / f"{make_hash(dict(key))}{suffix}"

    def states(self, keys):
        found = []
        for key in keys:
            if self._path(key, ".json").exists():
                found.append(StepState(DONE, score=json.loads(self._path(key, ".json").read_text())["score"]))
            elif self._path(key, ".failed").exists():
                found.append(StepState(FAILED, error=self._path(key, ".failed").read_text()))
            else:
                found.append(StepState(WAITING))
        return found

    def load(self, key):
        if not self._path(key, ".json").exists():
            raise ValueError(f"step {make_hash(dict(key))[:8]} is not stored in {self.where}")
        record = codec.loads(self._path(key, ".json").read_text())
        return StoredStep(record["score"], record["output"], record["info"])

    def stored_steps(self):
        entries = []
        for path in sorted(self.folder.glob("*.json")):
            record = codec.loads(path.read_text())
            experiment = record["experiment"]
            configs = {role: {"class": experiment[role].get("config_class", ""), "fields": codec.decode(experiment[role]["fields"])}
                       for role in ("dataset", "model", "trainer")}
            entries.append(StoredKey(path.stem, dict(record["key"]), configs, record["info"]["name"], record["info"]["comment"]))
        return entries

    def load_weights(self, key):
        return torch.load(self._path(key, ".pt"), weights_only=True)

    def load_transfer_data(self, key):
        path = self._path(key, ".npz")
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}

    def save(self, key, result, meta):
        self.folder.mkdir(parents=True, exist_ok=True)
        torch.save(result.model_state, self._path(key, ".pt"))
        if result.transfer_data:
            np.savez(self._path(key, ".npz"), **result.transfer_data)
        info = dict(name=meta.name, seed=meta.seed, step=meta.step, comment=meta.comment, **meta.provenance)
        record = dict(key=dict(key), experiment=meta.experiment, score=result.score, output=result.output, info=info)
        self._path(key, ".json").write_text(codec.dumps(record))
        self._path(key, ".failed").unlink(missing_ok=True)

    def record_failure(self, key, error, meta):
        self.folder.mkdir(parents=True, exist_ok=True)
        self._path(key, ".failed").write_text(f"{type(error).__name__}: {error}")

    def checkpoints(self, key):
        return LocalCheckpoints(self.folder / "checkpoints")

    def clear_checkpoints(self, key):
        self.checkpoints(key).clear(dict(key))

    def delete(self, keys):
        stored = 0
        for key in keys:
            stored += self._path(key, ".json").exists()
            for suffix in (".json", ".pt", ".npz", ".failed"):
                self._path(key, suffix).unlink(missing_ok=True)
            self.clear_checkpoints(key)
        return stored
'''


@pytest.fixture
def user_package(tmp_path):
    """The backend's module and an installed distribution declaring it in the entry points, both under
    tmp_path (never in the package); returns the folder to put on ``sys.path``."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "jsonstore.py").write_text(USER_BACKEND)
    dist = site / "jsonstore-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: jsonstore\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\njsonfolder = jsonstore:JsonFolderStore\n")
    return site


def nntransfer_command(site, cwd, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(TESTS)]))
    return subprocess.run([sys.executable, "-m", "nntransfer", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


SCORED_RECIPE = """
from nntransfer.configs import Description, Experiment, TransferExperiment
from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyScoredTrainerConfig


def chain(name, increments):
    return TransferExperiment([Experiment(ToyDatasetConfig(), ToyModelConfig(init=0.5), ToyScoredTrainerConfig(increment=inc),
                                          seed=1, comment=f"{name}-{i}") for i, inc in enumerate(increments)])


transfer_experiments = {Description(name=f"toy{i}", seed=1): chain(f"toy{i}", [1.0 + i, 2.0]) for i in range(2)}
"""


@pytest.mark.slow
def test_a_backend_from_a_users_package_works_with_every_command(user_package, tmp_path):
    recipe = write_recipe(tmp_path, "jsonrecipe", SCORED_RECIPE)
    store = f"jsonfolder:{tmp_path / 'json'}"
    ran = nntransfer_command(user_package, tmp_path, "run", str(recipe), "--store", store, "--quiet")
    assert ran.returncode == 0, ran.stderr
    assert "2 reused" not in ran.stdout and "4 trained, 0 failed; results in json folder" in ran.stdout
    assert f"nntransfer report {recipe} --store {store}" in ran.stdout  # the next command names the same store
    files = sorted(p.name for p in (tmp_path / "json").glob("*.json"))
    chains = load_recipe(str(recipe)).transfer_experiments.values()
    ids = [make_hash(chain.step_key(level)) for chain in chains for level in range(len(chain))]
    assert files == sorted(f"{i}.json" for i in ids)
    record = json.loads((tmp_path / "json" / f"{ids[0]}.json").read_text())
    assert record["info"]["recipe_path"].endswith("jsonrecipe") and record["info"]["code_hash"]  # provenance came with the step

    status = nntransfer_command(user_package, tmp_path, "status", str(recipe), "--store", store)
    assert status.returncode == 0 and status.stdout.count(" done ") == 4, status.stderr
    again = nntransfer_command(user_package, tmp_path, "run", str(recipe), "--store", store, "--quiet")
    assert again.returncode == 0 and "4 reused, 0 trained" in again.stdout

    lineage = nntransfer_command(user_package, tmp_path, "lineage", ids[0][:8], "--store", store)
    assert lineage.returncode == 0 and f"{ids[1][:8]}  step 1" in lineage.stdout, lineage.stderr
    diff = nntransfer_command(user_package, tmp_path, "diff", ids[0][:8], ids[2][:8], "--store", store)
    assert diff.returncode == 0 and "increment" in diff.stdout, diff.stderr

    report = nntransfer_command(user_package, tmp_path, "report", str(recipe), "--store", store, "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    assert f"(json folder {tmp_path / 'json'})" in report.stdout and (tmp_path / "report" / "status.csv").is_file()

    forget = nntransfer_command(user_package, tmp_path, "forget", ids[1][:8], "--store", store, "--yes")
    assert forget.returncode == 0 and "deleted 1 step(s)" in forget.stdout, forget.stderr
    assert not (tmp_path / "json" / f"{ids[1]}.json").exists() and (tmp_path / "json" / f"{ids[0]}.json").exists()
    gc = nntransfer_command(user_package, tmp_path, "gc", "--store", store)
    assert gc.returncode == 0 and f"json folder {tmp_path / 'json'}: removed 0 file(s)" in gc.stdout


def test_a_registered_backend_is_used_by_name_in_python(user_package, tmp_path, monkeypatch):
    import nntransfer

    monkeypatch.syspath_prepend(str(user_package))
    import jsonstore  # registering is importing: @register_store("jsonfolder")

    recipe = write_toy_recipe(tmp_path, "pyrecipe", chains=1)
    rows = nntransfer.run(str(recipe), store=f"jsonfolder:{tmp_path / 'json'}", progress=False)
    assert [row.state for row in rows] == ["done", "done"] and rows.summary.where == f"json folder {tmp_path / 'json'}"
    store = open_store(f"jsonfolder:{tmp_path / 'json'}", create=False)
    assert isinstance(store, jsonstore.JsonFolderStore) and store.address == f"jsonfolder:{tmp_path / 'json'}"
    assert len(store.stored_steps()) == 2


BAD_ADDRESSES = [
    ("jsonfoldr:x", "unknown store backend 'jsonfoldr'; did you mean 'jsonfolder'?"),
    ("lcoal:w", "unknown store backend 'lcoal'; did you mean 'local'?"),
    ("jsonfolder:", "the store address 'jsonfolder:' names no location; write jsonfolder:DIR"),
    ("datajoint: ", "the store address 'datajoint: ' names no location; write datajoint:SCHEMA"),
    ("./work", "the store address './work' is not SCHEME:LOCATION"),
]


@pytest.mark.parametrize("address, message", BAD_ADDRESSES)
def test_a_bad_address_is_one_line_and_exit_2_before_anything_is_written(user_package, tmp_path, monkeypatch, capsys, address, message):
    monkeypatch.syspath_prepend(str(user_package))  # the user's distribution: its entry point names the closest scheme
    monkeypatch.chdir(tmp_path)
    recipe = write_toy_recipe(tmp_path, "badaddress", chains=1)
    for command in (["run", str(recipe)], ["status", str(recipe)], ["lineage", "abcd"]):
        assert main([*command, "--store", address]) == EXIT_BAD_INPUT
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"nntransfer: error: {message}"), lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["badaddress", "site"]


@pytest.mark.slow
def test_a_bad_address_is_one_line_in_a_fresh_process(user_package, tmp_path):
    recipe = write_toy_recipe(tmp_path, "badaddress", chains=1)
    result = nntransfer_command(user_package, tmp_path, "run", str(recipe), "--store", "jsonfoldr:x")
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stderr.splitlines()[0].startswith("nntransfer: error: unknown store backend 'jsonfoldr'; did you mean 'jsonfolder'?")
    assert len(result.stderr.splitlines()) == 1


def test_the_shortcuts_make_the_same_address_and_one_store_at_most(tmp_path, capsys):
    assert store_address(workdir=tmp_path) == f"local:{tmp_path}"
    assert store_address(schema="lab") == "datajoint:lab"
    assert store_address() == "local:./nntransfer_work" and store_address(default=None) is None
    with pytest.raises(ValueError, match="name one store, not 2"):
        store_address("local:a", schema="lab")
    assert parse_address("local:C:/data") == ("local", "C:/data")  # everything after the first colon is the location
    recipe = write_toy_recipe(tmp_path, "shortcut", chains=1)
    with pytest.raises(SystemExit):
        main(["status", str(recipe), "--store", "local:a", "--workdir", "b"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_status_on_a_missing_store_creates_nothing(tmp_path, capsys):
    recipe = write_toy_recipe(tmp_path, "missing", chains=1)
    assert main(["status", str(recipe), "--store", f"local:{tmp_path / 'nowhere'}"]) == EXIT_BAD_INPUT
    assert "work folder" in capsys.readouterr().err and not (tmp_path / "nowhere").exists()


def test_provenance_travels_with_the_step_not_with_the_process(tmp_path):
    """Two runs in one process record each their own recipe: nothing of the first stays behind (the recipe
    path and code were class attributes the stores read)."""
    import nntransfer

    first, second = write_toy_recipe(tmp_path, "first", chains=1), write_toy_recipe(tmp_path, "second", chains=1)
    nntransfer.run(str(first), store=f"local:{tmp_path / 'w1'}", progress=False)
    nntransfer.run(str(second), store=f"local:{tmp_path / 'w2'}", progress=False)
    ((description, chain),) = load_recipe(str(first)).transfer_experiments.items()
    direct = LocalStore(tmp_path / "w3")
    direct.prepare(load_recipe(str(first)))
    direct.train(description, chain, 0)  # outside a run: no recipe to record
    info = direct.load(chain.step_key(0)).info
    assert info["recipe_path"] == "" and info["recipe_hash"] == "" and info["code_hash"]
    assert LocalStore(tmp_path / "w1").load(chain.step_key(0)).info["recipe_path"].endswith("first")
    ((_, other),) = load_recipe(str(second)).transfer_experiments.items()
    assert LocalStore(tmp_path / "w2").load(other.step_key(0)).info["recipe_path"].endswith("second")
