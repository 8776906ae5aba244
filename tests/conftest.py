"""Shared fixtures. Database tests use the real server (127.0.0.1:3306 unless DJ_HOST says otherwise)
under a per-session schema prefix that is dropped afterwards, nnfabrik's core schema included: it is
``<prefix>_core`` here and in every subprocess (``NNFABRIK_SCHEMA_NAME``). Cluster tests use a real
single-node SLURM, started by ``.ci/slurm-cluster`` when it is not running (and stopped after the session
if this session started it). Under CI (``CI`` or ``NNTRANSFER_CI`` set) an unreachable server or a cluster
that cannot start fails the tests instead of skipping them."""

import os
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from mnist_files import write_mnist

IN_CI = bool(os.environ.get("CI") or os.environ.get("NNTRANSFER_CI"))
# One prefix per session; processes the tests start inherit it (a spawned child imports this file again).
PREFIX = os.environ.setdefault("NNTRANSFER_TEST_PREFIX", f"nnt_test_{uuid.uuid4().hex[:8]}")
# Set before anything imports nnfabrik.main (which declares the core schema) and inherited by subprocesses.
os.environ["NNFABRIK_SCHEMA_NAME"] = f"{PREFIX}_core"


#: the session's own variables (set above or by ``db_prefix``), which every test and subprocess needs
SESSION_VARIABLES = {"NNTRANSFER_TEST_PREFIX", "NNTRANSFER_STORE", "NNTRANSFER_CI", "NNTRANSFER_SLURM_DIR"}
SLURM_SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "slurm-cluster"


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch):
    """Each test sees none of the user's ``NNTRANSFER_*`` runtime options and no ``MPLBACKEND`` (a test that
    needs one sets it): the suite passes whatever the user's shell exports. ``DJ_HOST``/``DJ_USER``/``DJ_PASS``
    stay: they say where the test server is."""
    for name in list(os.environ):
        if (name.startswith("NNTRANSFER_") and name not in SESSION_VARIABLES) or name == "MPLBACKEND":
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def one_thread():
    """Tests run on one thread: the machines have two cores, and results must not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def schemas_with_prefix(conn, prefix):
    query = "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s"
    return [name for (name,) in conn.query(query, args=(prefix.replace("_", r"\_") + "%",)).fetchall()]


def _drop_schemas(conn, prefix):
    conn.query("SET FOREIGN_KEY_CHECKS=0")
    for name in schemas_with_prefix(conn, prefix):
        conn.query(f"DROP DATABASE IF EXISTS `{name}`")
    conn.query("SET FOREIGN_KEY_CHECKS=1")


@pytest.fixture(scope="session")
def db_prefix(tmp_path_factory):
    """Configure DataJoint for the real server; yields this session's schema prefix, drops its schemas after."""
    from nntransfer.errors import DatabaseError
    from nntransfer.tables import database

    store = tmp_path_factory.mktemp("dj_store")
    os.environ["NNTRANSFER_STORE"] = str(store)
    database.configure(store_location=str(store))
    try:
        conn = database.connect()
    except DatabaseError as err:
        if IN_CI:
            pytest.fail(f"database tests may not be skipped under CI: {err}")
        pytest.skip(str(err))
    database.set_schema_name(f"{PREFIX}_main")
    yield PREFIX
    _drop_schemas(conn, PREFIX)


@pytest.fixture(scope="session")
def tables(db_prefix):
    """The tables, activated in this session's main schema."""
    from nntransfer.tables import activate

    return activate(f"{db_prefix}_main")


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real SLURM cluster to submit to: the one ``.ci/slurm-cluster`` runs (started here if it is not
    running, installing Debian's packages when missing, and stopped after the session if started here).
    Yields the environment its clients need (``SLURM_CONF``), also set for this process."""
    def script(command):
        return subprocess.run([str(SLURM_SCRIPT), command], capture_output=True, text=True, timeout=600)

    was_running = script("status").returncode == 0
    started = script("start")
    if started.returncode != 0:
        reason = (started.stderr or started.stdout).strip().splitlines()
        message = f"no SLURM cluster: .ci/slurm-cluster start failed ({reason[-1] if reason else started.returncode})"
        if IN_CI:
            pytest.fail(f"cluster tests may not be skipped under CI: {message}")
        pytest.skip(message)
    name, _, value = started.stdout.strip().splitlines()[-1].partition("=")
    previous = os.environ.get(name)
    os.environ[name] = value
    yield {name: value}
    if previous is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = previous
    if not was_running:
        script("stop")


@pytest.fixture
def aistats_mnist_dir(tmp_path):
    """A tiny MNIST in torchvision's raw IDX layout and MNIST-C's ``translate`` corruption (the recipes'
    ``add_corrupted_test=True``)."""
    root = tmp_path / "data"
    x_train, y_train, x_test, y_test = write_mnist(root, 40, 20)
    corrupted = root / "mnist_c" / "translate"
    corrupted.mkdir(parents=True)
    np.save(corrupted / "test_images.npy", x_test[..., None])
    np.save(corrupted / "test_labels.npy", y_test)
    x_moved = np.roll(x_train, 3, axis=2)  # the module's "MNIST-C Experiment Student" trains on these
    np.save(corrupted / "train_images.npy", x_moved[..., None])
    np.save(corrupted / "train_labels.npy", y_train)
    return root
