"""Files of the external store (``attach@minio``) behind table rows: finding them, reading them with a
clear error, and deleting them with their rows.

DataJoint 0.14 keeps a file in the external store after the rows that reference it are deleted, until
``schema.external[store].delete(delete_external_files=True)`` removes the unused entries. Cleaning every
unused entry of a schema while workers run is not safe: a checkpoint's file is registered (and committed)
a moment before the row that references it is inserted. So deletions here clean exactly the entries of the
rows just deleted, and only those no other row references (the external table's foreign keys refuse to
delete a referenced entry anyway).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Dict, List, Set

import datajoint as dj

__all__ = ["ExternalFilesMixin", "stored_files", "delete_unused_files", "delete_unused_store_files"]
logger = logging.getLogger(__name__)


def _external_attributes(expression) -> Dict[str, str]:
    """name -> store of the external attributes (attachments, blobs, filepaths) of ``expression``."""
    return {name: attr.store for name, attr in expression.heading.attributes.items() if attr.is_external}


def stored_files(expression) -> Dict[str, Set[uuid.UUID]]:
    """store -> the external-store hashes the rows of ``expression`` reference (nothing is downloaded)."""
    attributes = _external_attributes(expression)
    found: Dict[str, Set[uuid.UUID]] = {}
    if not attributes:
        return found
    names = list(attributes)
    for row in expression.connection.query(expression.make_sql(names)).fetchall():
        for name, value in zip(names, row):
            if value is not None:
                found.setdefault(attributes[name], set()).add(uuid.UUID(bytes=value))
    return found


def file_paths(expression, attribute: str) -> List[str]:
    """Where the files of ``attribute`` of the rows of ``expression`` are in the external store."""
    store = _external_attributes(expression)[attribute]
    hashes = stored_files(expression.proj(attribute)).get(store, set())
    if not hashes:
        return []
    external = expression.connection.schemas[expression.database].external[store]
    return [str(path) for _, path in (external & [{"hash": h} for h in hashes]).fetch_external_paths()]


def delete_unused_store_files(connection: dj.Connection, database: str, files: Dict[str, Set[uuid.UUID]]) -> int:
    """Delete the external entries and files among ``files`` (store -> hashes) that no row of ``database``
    references any more; returns how many files were deleted."""
    deleted = 0
    schema = connection.schemas.get(database)
    if schema is None:
        return 0
    for store, hashes in files.items():
        if not hashes:
            continue
        external = schema.external[store]
        candidates = external & [{"hash": h} for h in hashes]
        unused = len(candidates.unused())
        errors = candidates.delete(delete_external_files=True, display_progress=False)
        for hash_, path, error in errors or []:
            logger.warning("could not delete %s from the external store %s: %s", path, store, error)
        deleted += unused - len(errors or [])
    return deleted


def delete_unused_files(schema: dj.Schema, store: str, older_than: float = 24 * 3600) -> int:
    """Delete the files of ``store`` that no row of ``schema`` references and that were registered more than
    ``older_than`` seconds ago (younger ones may belong to a row being inserted right now); returns how many.
    For files left behind by rows deleted by hand, e.g. a finished step deleted to retrain it."""
    external = schema.external[store]
    old = external.unused() & f"timestamp < CURRENT_TIMESTAMP - INTERVAL {float(older_than)} SECOND"
    count = len(old)
    errors = old.delete(delete_external_files=True, display_progress=False)
    return count - len(errors or [])


class ExternalFilesMixin:
    """Deleting rows deletes their files in the external store (``delete`` and ``delete_quick``).

    Mix it into a table with ``attach@store`` attributes, before the DataJoint base class. Deletions inside
    a transaction the caller holds keep the files (the deletion may be rolled back); DataJoint's
    ``schema.external[store].delete(delete_external_files=True)`` collects them later.
    """

    def delete_quick(self, get_count=False):
        files = stored_files(self)
        count = super().delete_quick(get_count=get_count)
        self._delete_store_files(files)
        return count

    def delete(self, *args: Any, **kwargs: Any):
        files = stored_files(self)
        count = super().delete(*args, **kwargs)
        self._delete_store_files(files)
        return count

    def _delete_store_files(self, files: Dict[str, Set[uuid.UUID]]) -> None:
        if not files or self.connection.in_transaction:
            return
        try:
            deleted = delete_unused_store_files(self.connection, self.database, files)
        except Exception as err:  # the rows are gone; a file left behind is no reason to fail the caller
            logger.warning("could not delete the store files of deleted rows of %s: %s", self.table_name, err)
        else:
            logger.debug("deleted %d store file(s) of %s", deleted, self.table_name)
