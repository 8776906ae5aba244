"""Files in folders someone else may have written (a work folder, a checkpoint folder, a report folder).

What is read there is data, never a trap: only regular files are read, opened without following a
symbolic link and without waiting (a FIFO or a device is refused, not read), and records are read up to a
size limit. What is written there stays there: folders are created one level at a time and a symbolic link
(or a file) where a folder should be is refused, and files are written to a fresh temporary name and renamed
into place, so a link planted at the target is replaced, never written through.

Every refusal is an :class:`OSError` (``strerror`` says what was found), so callers that handle an unreadable
or unwritable file handle these too.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Optional, Union

PathLike = Union[str, os.PathLike]

#: the most a JSON record of a step (``result.json``, ``key.json``) or a failure record may hold
RECORD_LIMIT = 16 << 20
#: the most a step's ``output.json`` may hold (tracker logs of long runs)
OUTPUT_LIMIT = 512 << 20

_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NO_WAIT = getattr(os, "O_NONBLOCK", 0)
_CLOSE_ON_EXEC = getattr(os, "O_CLOEXEC", 0)


class NotARegularFile(OSError):
    """A path that holds a symbolic link, a FIFO, a device, a socket or a folder where a file was expected."""


class FileTooLarge(OSError):
    """A record larger than its limit."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):  # fmt: skip
        if test(mode):
            return name
    return "not a regular file"


def _refuse(path: PathLike, mode: int) -> NotARegularFile:
    return NotARegularFile(errno.EINVAL, f"{_kind(mode)}, not a regular file: not read", str(path))


def open_regular(path: PathLike, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """A descriptor of the regular file ``path``, opened with ``flags`` without following a symbolic link and
    without blocking (a FIFO opened for reading would wait for a writer); :class:`NotARegularFile` for
    anything else."""
    try:
        descriptor = os.open(path, flags | _NO_FOLLOW | _NO_WAIT | _CLOSE_ON_EXEC, mode)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.EMLINK):  # O_NOFOLLOW's answer to a link (EMLINK on FreeBSD)
            raise NotARegularFile(errno.ELOOP, "a symbolic link, not a regular file: not followed", str(path)) from None
        if err.errno == errno.ENXIO:  # a FIFO opened for writing without a reader
            raise NotARegularFile(errno.ENXIO, "a FIFO, not a regular file: not used", str(path)) from None
        raise
    found = os.fstat(descriptor)
    if not stat.S_ISREG(found.st_mode):
        os.close(descriptor)
        raise _refuse(path, found.st_mode)
    if _NO_WAIT:  # a regular file never blocks; later reads and writes behave as usual
        os.set_blocking(descriptor, True)
    return descriptor


def open_for_reading(path: PathLike, limit: Optional[int] = None) -> BinaryIO:
    """The regular file ``path`` opened for binary reading (see :func:`open_regular`); with ``limit``, a file
    larger than that many bytes is :class:`FileTooLarge`."""
    descriptor = open_regular(path)
    size = os.fstat(descriptor).st_size
    if limit is not None and size > limit:
        os.close(descriptor)
        raise FileTooLarge(errno.EFBIG, f"{size} bytes, more than the {limit} a record may hold: not read", str(path))
    return os.fdopen(descriptor, "rb")


def read_bytes(path: PathLike, limit: int = RECORD_LIMIT) -> bytes:
    """The content of the regular file ``path``, at most ``limit`` bytes (:class:`FileTooLarge` beyond)."""
    with open_for_reading(path, limit) as handle:
        data = handle.read(limit + 1)  # a file that grew since it was opened is still cut off
    if len(data) > limit:
        raise FileTooLarge(errno.EFBIG, f"more than the {limit} bytes a record may hold: not read", str(path))
    return data


def read_text(path: PathLike, limit: int = RECORD_LIMIT) -> str:
    """:func:`read_bytes` decoded as UTF-8 (invalid bytes replaced)."""
    return read_bytes(path, limit).decode("utf-8", errors="replace")


def is_real_folder(path: PathLike) -> bool:
    """Whether ``path`` is a folder itself, not a symbolic link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def ensure_folder(folder: PathLike, root: PathLike) -> Path:
    """Create ``folder`` (``root`` or a path below it) one level at a time and return it. ``root`` is created
    as given (the user chose it); below it, every level must be a real folder: a symbolic link or a file there
    is :class:`NotARegularFile`, so nothing is ever written outside ``root`` through a planted link."""
    folder, root = Path(folder), Path(root)
    root.mkdir(parents=True, exist_ok=True)
    current = root
    for part in folder.relative_to(root).parts:
        current = current / part
        try:
            os.mkdir(current)
        except FileExistsError:
            pass
        found = os.lstat(current)
        if not stat.S_ISDIR(found.st_mode):
            raise NotARegularFile(errno.ENOTDIR, f"{_kind(found.st_mode)} where a folder should be: nothing is "
                                                 "written through it; remove it", str(current))  # fmt: skip
    return folder


def write_atomically(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename, so that ``path``
    is whole or untouched, and a symbolic link at ``path`` is replaced, never written through. The temporary
    file is removed if writing fails (the error is re-raised; a full disk often shows only when the file is
    closed)."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remove_entry(path: PathLike) -> None:
    """Remove whatever is at ``path``: a folder with its content, or a file, link, FIFO... itself (a link is
    removed, never followed). Nothing there is no error."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(found.st_mode):
        shutil.rmtree(path)  # never follows the links inside
    else:
        os.unlink(path)
