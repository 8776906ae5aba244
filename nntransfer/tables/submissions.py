"""``~submissions``: the job arrays submitted to a cluster to work on a schema (``nntransfer submit``).

Hidden, like DataJoint's ``~jobs`` and nntransfer's ``~heartbeat`` (declared with SQL, not shown in
diagrams), and created by the first submission: a schema nobody submitted for has none, and reads of it
find nothing. ``status`` and ``cancel`` read it on any machine that reaches the database.
"""

from __future__ import annotations

import getpass
import platform
from typing import List

from nntransfer.pipeline.store import Submission
from nntransfer.tables._datajoint import dj

__all__ = ["SUBMISSIONS_TABLE", "record", "read"]

SUBMISSIONS_TABLE = "~submissions"

DEFINITION = """
CREATE TABLE IF NOT EXISTS {table} (
    job_id varchar(64) NOT NULL COMMENT "the cluster's id of the job array",
    tasks int unsigned NOT NULL COMMENT "how many worker tasks the array has",
    recipe varchar(2048) NOT NULL COMMENT "the recipe the workers run",
    log_dir varchar(2048) NOT NULL COMMENT "where the workers' logs go",
    submitted timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP COMMENT "server time of the submission",
    host varchar(255) NOT NULL COMMENT "the machine it was submitted from",
    user varchar(255) NOT NULL COMMENT "who submitted it",
    PRIMARY KEY (job_id)
) ENGINE=InnoDB COMMENT "job arrays submitted to work on this schema (nntransfer submit)"
"""


def _full_name(schema_name: str) -> str:
    return f"`{schema_name}`.`{SUBMISSIONS_TABLE}`"


def record(connection: dj.Connection, schema_name: str, submission: Submission) -> None:
    """Insert ``submission`` (its ``host`` and ``user`` default to this process's), creating the table first."""
    connection.query(DEFINITION.format(table=_full_name(schema_name)))
    connection.query(
        f"REPLACE INTO {_full_name(schema_name)} (job_id, tasks, recipe, log_dir, host, user) VALUES (%s, %s, %s, %s, %s, %s)",
        args=(submission.job_id, int(submission.tasks), submission.recipe, submission.log_dir,
              submission.host or platform.node(), submission.user or getpass.getuser()),
    )  # fmt: skip


def read(connection: dj.Connection, schema_name: str) -> List[Submission]:
    """The schema's submissions, oldest first; none when nothing was submitted for it."""
    exists = "SELECT 1 FROM information_schema.tables WHERE table_schema=%s AND table_name=%s"
    if not connection.query(exists, args=(schema_name, SUBMISSIONS_TABLE)).fetchone():
        return []
    rows = connection.query(
        f"SELECT job_id, tasks, recipe, log_dir, submitted, host, user FROM {_full_name(schema_name)} ORDER BY submitted, job_id",
        as_dict=True,
    ).fetchall()
    return [Submission(r["job_id"], int(r["tasks"]), r["recipe"], r["log_dir"], str(r["submitted"]), r["host"], r["user"]) for r in rows]
