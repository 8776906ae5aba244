"""Files of the external store (``attach@minio``) behind table rows: finding them, reading them with a
clear error, and deleting them with their rows.

DataJoint 0.14 keeps a file in the external store after the rows that reference it are deleted, until
``schema.external[store].delete(delete_external_files=True)`` removes the unused entries. Cleaning every
unused entry of a schema while workers run is not safe: a checkpoint's file is registered (and committed)
a moment before the row that references it is inserted. So deletions here clean exactly the entries of the
rows just deleted, and only those no other row references (the external table's foreign keys refuse to
delete a referenced entry anyway). :func:`collect_garbage` (``nntransfer gc``) removes what killed workers
leave: files no entry registers (a partial ``*.copying`` copy, the upload of a transaction that rolled back)
and entries no row references, both only once older than a grace period (a live worker's upload is young).

Every table with a stored file records its SHA-256 and size beside it (:class:`ChecksummedFileMixin`):
reading the file back checks them, so a flipped byte or another file copied over it is a one-line
:class:`DamagedFile`, never loaded. Schemas declared before these columns existed keep working, with one
warning that their files are not checked.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Set, Tuple

from nntransfer.tables._datajoint import dj

__all__ = [
    "ExternalFilesMixin",
    "ChecksummedFileMixin",
    "StoredFilePart",
    "DamagedFile",
    "CHECKSUM_DEFINITION",
    "stored_files",
    "delete_unused_store_files",
    "collect_garbage",
    "Garbage",
    "remove_rolled_back_uploads",
]
logger = logging.getLogger(__name__)

#: the columns beside a table's stored file (one file attribute per table), declared by every new schema
CHECKSUM_DEFINITION = """
    file_sha256:                       char(64)         # SHA-256 of the stored file, checked when it is read back
    file_size:                         bigint unsigned  # its size in bytes
    """
CHECKSUM_COLUMNS = ("file_sha256", "file_size")
#: seconds an unreferenced file or entry must be old before ``collect_garbage`` removes it (a live worker's
#: upload is registered, and referenced, moments after it is written)
GARBAGE_GRACE_SECONDS = 3600.0
_warned_unchecked: Set[str] = set()  # schemas already warned about missing checksum columns
_digests: Dict[Tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256 of a file hashed in place


class DamagedFile(ValueError):
    """A stored file that does not match the checksum recorded when it was stored."""


def file_checksum(path: os.PathLike) -> Tuple[str, int]:
    """``(sha256, size)`` of the file at ``path``."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _cached_checksum(path: Path) -> Tuple[str, int]:
    """``file_checksum`` of a file in a file store, hashed once per size and modification time."""
    stat = path.stat()
    seen = (str(path), stat.st_size, stat.st_mtime_ns)
    if seen not in _digests:
        _digests[seen] = file_checksum(path)[0]
    return _digests[seen], stat.st_size


def _mismatch(expected: Tuple[str, Any], found: Tuple[str, int]) -> str:
    return ("the file does not match the checksum recorded when it was stored "
            f"({int(expected[1])} bytes, sha256 {expected[0][:12]}...; found {found[1]} bytes, sha256 {found[0][:12]}...)")


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


@dataclass
class Garbage:
    """What :func:`collect_garbage` found in one schema's stores, and removed unless it was a dry run.

    Attributes:
        schema: the schema.
        entries: store files whose entries no row references (and the entries), as paths.
        files: files in the schema's folder of a file store that no entry registers (partial ``*.copying``
            copies, uploads of transactions that rolled back).
        young: unreferenced files and entries left alone for being younger than the grace period.
        removed: whether they were removed (False for a dry run).
        errors: files that could not be removed, with the reason.
    """

    schema: str
    entries: List[str] = field(default_factory=list)
    files: List[str] = field(default_factory=list)
    young: int = 0
    removed: bool = False
    errors: List[str] = field(default_factory=list)

    def __str__(self) -> str:
        found = len(self.entries) + len(self.files)
        done = "removed" if self.removed else "would remove (dry run)"
        line = f"schema {self.schema}: {done} {found} file(s) no row references"
        if self.young:
            line += f"; left {self.young} younger than the grace period (a live worker may be storing them)"
        if self.errors:
            line += f"; {len(self.errors)} could not be removed"
        return line


def _external_stores(schema: dj.Schema) -> List[str]:
    """The stores ``schema`` has an external table for (``~external_<store>``)."""
    query = "SELECT table_name FROM information_schema.tables WHERE table_schema=%s AND table_name LIKE %s"
    rows = schema.connection.query(query, args=(schema.database, r"~external\_%")).fetchall()
    return sorted(name[len("~external_"):] for (name,) in rows)


def collect_garbage(schema: dj.Schema, dry_run: bool = False, grace_seconds: float = GARBAGE_GRACE_SECONDS) -> Garbage:
    """Find, and unless ``dry_run`` remove, what no row of ``schema`` references in its external stores:
    entries no row references (with their files), and files in the schema's folder of a file store that no
    entry registers (a killed worker's partial ``*.copying`` copy, the upload of a transaction that rolled
    back; an S3 store is cleaned of entries only). Only what is older than ``grace_seconds`` (entries by
    the server's clock, files by their modification time) is touched: a live worker's upload is registered
    and referenced moments after it is written."""
    grace = float(grace_seconds)
    found = Garbage(schema.database)
    now = time.time()
    for store in _external_stores(schema):
        external = schema.external[store]
        unused = external.unused()
        old = unused & f"timestamp < CURRENT_TIMESTAMP - INTERVAL {grace} SECOND"
        found.young += len(unused) - len(old)
        found.entries += [str(path) for _, path in old.fetch_external_paths()]
        if not dry_run and old:
            for _, path, error in old.delete(delete_external_files=True, display_progress=False) or []:
                found.errors.append(f"{path}: {error}")
        if external.spec["protocol"] != "file":
            continue
        registered = {os.path.normpath(str(path)) for _, path in external.fetch_external_paths()}
        folder = Path(external.spec["location"]) / schema.database
        for parent, _, names in os.walk(folder):  # links are listed, never followed
            for name in names:
                path = os.path.join(parent, name)
                if os.path.normpath(path) in registered:
                    continue
                if now - os.lstat(path).st_mtime < grace:
                    found.young += 1
                    continue
                found.files.append(path)
                if not dry_run:
                    try:
                        os.unlink(path)
                    except OSError as err:
                        found.errors.append(f"{path}: {err.strerror}")
    found.removed = not dry_run
    for path in found.entries + found.files:
        logger.info("%s %s", "removed" if found.removed else "would remove", path)
    return found


class ChecksummedFileMixin:
    """A table whose one stored file (``file_attribute``, an ``attach`` attribute) has its SHA-256 and size
    recorded beside it (``CHECKSUM_DEFINITION``) when a row is inserted, and checked when it is read back.
    Mix it in before the DataJoint base class. A table declared without the columns (a schema older than
    them) stores and reads its files unchecked, with one warning per schema."""

    #: the name of the table's file attribute
    file_attribute: str = ""

    def checked(self) -> bool:
        """Whether this table records checksums (warns once per schema where it cannot)."""
        if all(name in self.heading.names for name in CHECKSUM_COLUMNS):
            return True
        if self.database not in _warned_unchecked:
            _warned_unchecked.add(self.database)
            logger.warning("the store tables of schema %s have no checksum columns (declared before nntransfer 0.4.0): "
                           "their files are not checked when read back; new schemas have them", self.database)
        return False

    def insert1(self, row: Any, **kwargs: Any):
        if isinstance(row, Mapping) and row.get(self.file_attribute) is not None and self.checked():
            digest, size = file_checksum(row[self.file_attribute])
            row = dict(row, file_sha256=digest, file_size=size)
        return super().insert1(row, **kwargs)

    def fetch_file(self, download_path: str) -> str:
        """Download the file of this expression's one row into ``download_path``; its local path.
        :class:`DamagedFile` if it does not match the checksum recorded when it was stored."""
        path = self.fetch1(self.file_attribute, download_path=download_path)
        if self.checked():
            expected = self.fetch1(*CHECKSUM_COLUMNS)
            found = file_checksum(path)
            if found != (expected[0], int(expected[1])):
                raise DamagedFile(_mismatch(expected, found))
        return path

    def damaged_files(self) -> List[str]:
        """One line for each file of this expression's rows that is missing or does not match its checksum
        (naming the file). A file store's files are hashed where they are, once per size and modification
        time in this process; other stores' are downloaded."""
        if not self.checked():
            return []
        attribute = self.file_attribute
        external = self.connection.schemas[self.database].external[self.heading.attributes[attribute].store]
        problems = []
        for value, digest, size in self.connection.query(self.make_sql([attribute, *CHECKSUM_COLUMNS])).fetchall():
            entry = external & {"hash": uuid.UUID(bytes=value)}
            paths = entry.fetch_external_paths()
            if not paths:
                problems.append(f"file {uuid.UUID(bytes=value)} is not registered in the store")
                continue
            path = paths[0][1]
            try:
                if external.spec["protocol"] == "file":
                    found = _cached_checksum(Path(path))
                else:
                    with tempfile.TemporaryDirectory() as temp_dir:
                        local = Path(temp_dir) / "file"
                        external.download_attachment(paths[0][0], entry.fetch1("attachment_name"), local)
                        found = file_checksum(local)
            except FileNotFoundError:
                problems.append(f"file {path} is missing")
                continue
            if found != (digest, int(size)):
                problems.append(f"{_mismatch((digest, size), found)}: {path}")
        return problems


class StoredFilePart(ChecksummedFileMixin, dj.Part):
    """The part table of a master row's one file, stored externally: ``file_attribute`` in the master's store,
    with its checksum columns; ``file_description`` is the table's comment."""

    file_description: str = ""

    @property
    def definition(self):
        return f"""
        # {self.file_description}
        -> master
        ---
        {self.file_attribute}: attach@{self._master.storage}
        """ + CHECKSUM_DEFINITION


def upload_of(part, local_path: str) -> Tuple[str, str, uuid.UUID, str]:
    """``(database, store, hash, attachment name)`` under which inserting ``local_path`` into ``part``'s file
    attribute registers the file (DataJoint's content hash of an attachment)."""
    name = Path(local_path).name
    store = part.heading.attributes[part.file_attribute].store
    return part.database, store, dj.hash.uuid_from_file(local_path, init_string=name + "\0"), name


def remove_rolled_back_uploads(connection: dj.Connection, uploads: List[Tuple[str, str, uuid.UUID, str]]) -> int:
    """Remove the files of ``uploads`` (see :func:`upload_of`) that no entry registers: DataJoint copies an
    attachment into the store before the transaction that registers it commits, and leaves the file when
    the transaction rolls back. Call it once that transaction has ended; returns how many it removed."""
    removed = 0
    for database, store, digest, name in uploads:
        external = connection.schemas[database].external[store]
        if external & {"hash": digest}:
            continue  # committed (or registered by another row): in use
        # DataJoint's own path of an attachment, and its removal for file and S3 stores
        external._remove_external_file(external._make_uuid_path(digest, "." + name))
        removed += 1
    return removed


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
