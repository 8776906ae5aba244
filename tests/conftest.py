"""Shared fixtures. Database tests use the real server (127.0.0.1:3306 unless DJ_HOST says otherwise)
under a per-session schema prefix that is dropped afterwards. Under CI (``CI`` or ``NNTRANSFER_CI`` set)
an unreachable server fails the tests instead of skipping them."""

import os
import uuid

import pytest
import torch

from nntransfer import database

IN_CI = bool(os.environ.get("CI") or os.environ.get("NNTRANSFER_CI"))


@pytest.fixture(autouse=True)
def one_thread():
    """Tests run on one thread: the machines have two cores, and results must not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _drop_schemas(conn, prefix):
    rows = conn.query("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s", args=(prefix + "%",)).fetchall()
    conn.query("SET FOREIGN_KEY_CHECKS=0")
    for (name,) in rows:
        conn.query(f"DROP DATABASE IF EXISTS `{name}`")
    conn.query("SET FOREIGN_KEY_CHECKS=1")


@pytest.fixture(scope="session")
def db_prefix(tmp_path_factory):
    """Configure DataJoint for the real server; yields this session's schema prefix, drops its schemas after."""
    store = tmp_path_factory.mktemp("dj_store")
    database.configure(store_location=str(store))
    try:
        conn = database.connect()
    except database.DatabaseError as err:
        if IN_CI:
            pytest.fail(f"database tests may not be skipped under CI: {err}")
        pytest.skip(str(err))
    prefix = f"nnt_test_{uuid.uuid4().hex[:8]}"
    database.set_schema_name(f"{prefix}_main")
    os.environ["NNTRANSFER_STORE"] = str(store)
    yield prefix
    _drop_schemas(conn, prefix)


@pytest.fixture(scope="session")
def tables(db_prefix):
    """The nntransfer table modules, declared in this session's schema."""
    from nntransfer.tables import nnfabrik, trained_model, transfer

    return {"nnfabrik": nnfabrik, "trained_model": trained_model, "transfer": transfer}
