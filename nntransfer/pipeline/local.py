"""``LocalStore``: finished steps in a work folder, no database.

    <workdir>/steps/<hash of the step key>/   one folder per finished step, written whole or not at all:
        key.json          the step's key and experiment (configs), for people and tools
        result.json       score, name, seed, step, comment, seconds, finished, provenance (with the fingerprint
                          of the user code, ``nntransfer.fingerprint``; ``code_reused`` when a run kept the
                          step although its code changed), and ``files``: the size and sha256 of each file below
        output.json       the trainer's output (tracker log, final evaluation), through the one codec
        model_state.pt    the trained weights (read back with ``torch.load(weights_only=True)``)
        transfer_data.npz the data handed to the next step, if any (read without pickle)
    <workdir>/failed/<hash>.txt     the error of a step's last failed attempt
    <workdir>/checkpoints/<hash>/   checkpoints of steps being trained (a killed run resumes from them)
    <workdir>/locks/<hash>.lock     locked (``flock``) by the run training the step; the lock goes when the
                                    run ends or dies

What the folder guarantees:

* Nothing read back can execute code: JSON, NumPy without pickle, weights only.
* A step folder appears whole: it is written to ``steps/.<hash>.<pid>.tmp`` and renamed into place; the
  step's checkpoints are deleted only after that. A run killed at any point loses at most the epoch in
  progress; the next run removes the temporary files of runs that are gone and resumes from the checkpoints.
* What is read is verified. A step whose ``result.json`` cannot be read, or whose files are missing or
  differ from what ``result.json`` records (the size always; the sha256 when the step is read or a run
  decides whether to train it) is not done: a WARNING names the file, and the next run trains it again.
  ``load`` and ``load_weights`` raise a one-line ``ValueError`` naming the file.
* Runs on one folder share the work step by step: a step another live run holds is left to it (``status``
  shows it as running), so every step is trained once. The locks work wherever ``flock`` does (local disks;
  NFS with working locks).
* A full disk or an unwritable folder is a one-line :class:`~nntransfer.errors.StorageError`; nothing is left
  half-written and ``status`` keeps working.
* The folder is data, never a trap (see :mod:`nntransfer.safe_files`): only regular files are read, without
  following a link or waiting on a FIFO, JSON records up to a size and nesting limit; anything else makes its
  step damaged (one WARNING) or its failure record unreadable, and the command goes on. Nothing is written
  outside the folder: a link where a sub-folder, a step folder, a lock or a checkpoint folder should be is
  refused (a ``StorageError``) or removed, never followed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import socket
import sqlite3
import stat
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np

from nntransfer.configs import codec
from nntransfer.configs.codec import make_hash
from nntransfer.configs.transfer_experiment import TransferExperiment
from nntransfer.defaults import DEFAULT_WORKDIR
from nntransfer.errors import StorageError
from nntransfer.pipeline.backends import register_store
from nntransfer.pipeline.step import StepMeta, StepResult, StepSpec
from nntransfer.pipeline.store import (
    DONE,
    FAILED,
    INTERRUPTED,
    RUNNING,
    SHORT_ID,
    WAITING,
    Garbage,
    Key,
    StepState,
    Store,
    StoredKey,
    StoredStep,
)
from nntransfer.provenance import RunProvenance
from nntransfer.recipes.loading import Recipe
from nntransfer.safe_files import (
    OUTPUT_LIMIT,
    RECORD_LIMIT,
    NotARegularFile,
    ensure_folder,
    is_real_folder,
    open_for_reading,
    open_regular,
    read_bytes,
    read_text,
    remove_entry,
    write_atomically,
)

try:
    import fcntl
except ImportError:  # not on POSIX: no locks, one run per work folder
    fcntl = None

# torch is imported where weights are read or written: ``status`` and ``report`` read JSON only and
# must start fast.

logger = logging.getLogger(__name__)

#: files a step folder must have (``transfer_data.npz`` only when the step handed data on)
REQUIRED_FILES = ("output.json", "model_state.pt")
SUBFOLDERS = ("steps", "failed", "checkpoints", "locks")
#: the SQLite database of the searches over this folder's recipes (``nntransfer search``; Optuna's tables)
SEARCH_DATABASE = "search.sqlite3"


@register_store("local")
class LocalStore(Store):
    """Steps in a work folder (see module docstring): the backend of the addresses ``local:DIR``."""

    location_help = "DIR"

    def __init__(self, workdir: os.PathLike = DEFAULT_WORKDIR) -> None:
        self.workdir = Path(workdir)
        self.location = str(workdir)
        self.where = f"work folder {self.workdir}"
        self._held: Dict[str, int] = {}  # step hash -> descriptor of the lock this store holds
        self._digests: Dict[Tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256, hashed once
        self._warned: Set[Tuple[str, str]] = set()

    @classmethod
    def open(cls, location: str, create: bool = True) -> "LocalStore":
        """The work folder ``location``; ``create=False``: a missing folder is a one-line ``FileNotFoundError``
        (it is created when the first run prepares it)."""
        if not create and not cls.exists(location):
            raise FileNotFoundError(f"work folder {location} does not exist; pass the --workdir (or --store local:DIR) the recipe ran with")
        return cls(location)

    @classmethod
    def exists(cls, location: str) -> bool:
        return Path(location).is_dir()

    # ------------------------------------------------------------------ paths

    def step_dir(self, key: Key) -> Path:
        return self.workdir / "steps" / make_hash(key)

    def failure_file(self, key: Key) -> Path:
        return self.workdir / "failed" / f"{make_hash(key)}.txt"

    def lock_file(self, key: Key) -> Path:
        return self._lock_path(make_hash(key))

    def _lock_path(self, digest: str) -> Path:
        return self.workdir / "locks" / f"{digest}.lock"

    # ------------------------------------------------------------------ verifying

    def _verify(self, key: Key, names: Optional[Iterable[str]] = None, full: bool = True) -> Tuple[Optional[Dict[str, Any]], str]:
        """``(record, "")`` if the step is stored and its files ``names`` (default: all) verify; ``(None, "")``
        if there is no step folder; ``(None, what is wrong)`` if it is damaged. ``full``: compare checksums
        too (else sizes only, for ``status``)."""
        folder = self.step_dir(key)
        if not os.path.lexists(folder):
            return None, ""
        if not is_real_folder(folder):
            return None, f"{folder} is not a folder (a symbolic link or a file)"
        result = folder / "result.json"
        try:
            info = _read_json(result)
            float(info["score"])
        except FileNotFoundError:
            return None, f"{result} is missing"
        except OSError as err:  # a FIFO, a link, a device, too large
            return None, f"{result} cannot be read ({_reason(err)})"
        except Exception as err:  # truncated, garbage, not an object, no score
            return None, f"{result} cannot be read ({type(err).__name__}: {_first_line(err)})"
        files = info.get("files")
        if files is None:  # written before result.json recorded its files: check by loading them
            return (info, "") if not (problem := self._legacy_problem(folder, names, full)) else (None, problem)
        for name in REQUIRED_FILES if names is None else names:
            if name not in files and name not in REQUIRED_FILES:
                continue  # an optional file the step did not write
            problem = self._file_problem(folder / name, files.get(name), full)
            if problem:
                return None, problem
        if names is None and "transfer_data.npz" in files:
            problem = self._file_problem(folder / "transfer_data.npz", files["transfer_data.npz"], full)
            if problem:
                return None, problem
        return info, ""

    def _file_problem(self, path: Path, expected: Any, full: bool) -> str:
        if not (isinstance(expected, dict) and isinstance(expected.get("size"), int) and isinstance(expected.get("sha256"), str)):
            return f"{path.parent / 'result.json'} records no size and checksum of {path.name}"
        try:
            found = path.lstat()
        except FileNotFoundError:
            return f"{path} is missing"
        except OSError as err:
            return f"{path} cannot be read ({_reason(err)})"
        if not stat.S_ISREG(found.st_mode):
            return f"{path} is not a regular file (a symbolic link, FIFO or device)"
        if found.st_size != expected["size"]:
            return f"{path} has {found.st_size} bytes, result.json records {expected['size']}"
        if full:
            seen = (str(path), found.st_size, found.st_mtime_ns)
            if seen not in self._digests:
                try:
                    self._digests[seen] = _sha256_of(path)
                except OSError as err:
                    return f"{path} cannot be read ({_reason(err)})"
            if self._digests[seen] != expected["sha256"]:
                return f"{path} does not match the checksum result.json records"
        return ""

    def _legacy_problem(self, folder: Path, names: Optional[Iterable[str]], full: bool) -> str:
        for name in REQUIRED_FILES if names is None else names:
            path = folder / name
            if name not in REQUIRED_FILES and not os.path.lexists(path):
                continue
            if path.is_symlink() or not path.is_file() or path.stat().st_size == 0:
                return f"{path} is missing, empty or not a regular file"
            if full:
                try:
                    _read_file(path)
                except Exception as err:
                    return f"{path} cannot be read ({type(err).__name__}: {_first_line(err)})"
        return ""

    def _warn_damaged(self, key: Key, problem: str) -> None:
        if (make_hash(key), problem) not in self._warned:  # once per store: status and run ask repeatedly
            self._warned.add((make_hash(key), problem))
            logger.warning("damaged step: %s; it will be trained again", problem)

    def _verified(self, key: Key, names: Iterable[str]) -> Dict[str, Any]:
        """The record of a finished step whose files ``names`` verify; a one-line ``ValueError`` otherwise."""
        info, problem = self._verify(key, names, full=True)
        if info is None:
            if problem:
                raise ValueError(f"{problem}; run the recipe again to train the step again")
            raise ValueError(f"the step is not stored in {self.where} (no {self.step_dir(key)}); run the recipe first")
        return info

    # ------------------------------------------------------------------ reading

    def states(self, keys: Sequence[Key]) -> List[StepState]:
        """Never raises on a damaged folder: a damaged step is waiting (with a WARNING naming the file)."""
        found = []
        for key in keys:
            info, problem = self._verify(key, full=False)
            if info is not None:
                found.append(StepState(DONE, score=float(info["score"])))
                continue
            if problem:
                self._warn_damaged(key, problem)
            if self._locked_elsewhere(make_hash(key)):
                found.append(StepState(RUNNING))
                continue
            failure = self.failure_file(key)
            try:
                text = read_text(failure).strip()
            except FileNotFoundError:
                found.append(self._waiting(key))
                continue
            except OSError as err:
                text = f"failed (its record {failure} cannot be read: {_reason(err)})"
            found.append(StepState(FAILED, error=text.splitlines()[0] if text else "failed (no message recorded)"))
        return found

    def _waiting(self, key: Key) -> StepState:
        """Waiting, or interrupted where checkpoints of the step are left (it resumes from the last)."""
        from nntransfer.trainer.checkpoint_files import CheckpointFolder  # the layout only: no torch

        epochs = CheckpointFolder(self.workdir / "checkpoints").checkpoints(dict(key))
        return StepState(INTERRUPTED, resumes_after=max(epochs)) if epochs else StepState(WAITING)

    def is_done(self, key: Key) -> bool:
        """Stored, and every file matches its checksum (a damaged step is trained again)."""
        info, problem = self._verify(key, full=True)
        if problem:
            self._warn_damaged(key, problem)
        return info is not None

    def load(self, key: Key) -> StoredStep:
        info = self._verified(key, ["output.json"])
        path = self.step_dir(key) / "output.json"
        try:
            output = _read_file(path)
        except Exception as err:
            raise ValueError(f"cannot read {path} ({type(err).__name__}: {_first_line(err)}); run the recipe again to train the step again") from None
        info = {k: v for k, v in info.items() if k != "files"}
        return StoredStep(float(info["score"]), output, info)

    def code_records(self, keys: Sequence[Key]) -> List[Dict[str, Any]]:
        """Each step's ``result.json`` (``{}`` where it cannot be read: ``states`` warns about that)."""
        found = []
        for key in keys:
            try:
                info = _read_json(self.step_dir(key) / "result.json")
            except (OSError, ValueError):
                info = {}
            found.append(info if isinstance(info, dict) else {})
        return found

    def record_code_reuse(self, key: Key, record: Dict[str, Any]) -> None:
        """``record`` becomes the step's ``code_reused`` in its ``result.json`` (rewritten whole: the other
        files and their checksums are untouched)."""
        path = self.step_dir(key) / "result.json"
        try:
            info = _read_json(path)
            info["code_reused"] = record
            write_atomically(path, json.dumps(info, indent=2).encode())
        except OSError as err:
            raise StorageError(f"cannot record in {path} that the step is kept ({_reason(err)}); pass a writable --workdir") from None

    def stored_steps(self) -> List[StoredKey]:
        """The step folders: ``key.json`` (key and configs) and ``result.json`` (name, comment)."""
        entries = []
        folder = self.workdir / "steps"
        for step_dir in sorted(folder.iterdir()) if folder.is_dir() else []:
            if step_dir.name.startswith(".") or not is_real_folder(step_dir):
                continue  # a step being written, or not a step folder
            try:
                stored = _read_json(step_dir / "key.json", codec.loads)
                experiment = stored["experiment"]
                configs = {role: {"class": experiment[role].get("config_class", ""), "fields": codec.decode(experiment[role]["fields"])}
                           for role in ("dataset", "model", "trainer")}
                key = dict(stored["key"])
            except Exception as err:  # damaged or foreign: listed without it
                logger.warning("skipped %s: cannot read its key.json (%s: %s)", step_dir, type(err).__name__, _first_line(err))
                continue
            try:
                info = _read_json(step_dir / "result.json")
            except (OSError, ValueError):
                info = {}
            entries.append(StoredKey(step_dir.name, key, configs, str(info.get("name", "")), str(info.get("comment", ""))))
        return entries

    def load_weights(self, key: Key) -> Dict[str, Any]:
        self._verified(key, ["model_state.pt"])
        path = self.step_dir(key) / "model_state.pt"
        try:
            return _read_file(path)
        except Exception as err:  # not a weights-only file
            raise ValueError(f"cannot read the weights {path} ({type(err).__name__}); run the recipe again to train the step again") from None

    def load_transfer_data(self, key: Key) -> Optional[Dict[str, np.ndarray]]:
        info = self._verified(key, ["transfer_data.npz"])
        path = self.step_dir(key) / "transfer_data.npz"
        if "transfer_data.npz" not in info.get("files", {}) and not os.path.lexists(path):
            return None
        try:
            return _read_file(path)
        except Exception as err:
            raise ValueError(f"cannot read {path} ({type(err).__name__}); run the recipe again to train the step again") from None

    # ------------------------------------------------------------------ writing

    def save(self, key: Key, result: StepResult, meta: StepMeta) -> None:
        """Write the step's files to a temporary folder, then rename it into place (see module docstring)."""
        final = self.step_dir(key)
        temporary = final.parent / f".{final.name}.{os.getpid()}.tmp"
        contents = {"output.json": codec.dumps(result.output).encode(), "model_state.pt": _torch_bytes(result.model_state)}
        if result.transfer_data:
            contents["transfer_data.npz"] = _npz_bytes(result.transfer_data)
        info = dict(
            name=meta.name,
            seed=meta.seed,
            step=meta.step,
            comment=meta.comment,
            score=result.score,
            seconds=result.seconds,
            finished=_now(),
            **meta.provenance,
            files={name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()} for name, data in contents.items()},
        )
        try:
            remove_entry(temporary)
            ensure_folder(final.parent, self.workdir)
            temporary.mkdir()
            (temporary / "key.json").write_text(codec.dumps({"key": key, "experiment": meta.experiment}, indent=2))
            for name, data in contents.items():
                (temporary / name).write_bytes(data)
            (temporary / "result.json").write_text(json.dumps(info, indent=2))  # last: it vouches for the others
            remove_entry(final)  # a damaged folder of this step, or a link in its place (this run holds the step)
            os.replace(temporary, final)
        except OSError as err:
            with contextlib.suppress(OSError):
                remove_entry(temporary)
            raise StorageError(f"cannot store the step in {final} ({_reason(err)}); free some space or pass a writable --workdir") from None
        except BaseException:  # interrupted: nothing half-written stays
            with contextlib.suppress(OSError):
                remove_entry(temporary)
            raise
        try:
            self.failure_file(key).unlink(missing_ok=True)
        except OSError as err:  # harmless: a stored step is done whatever the failure record says
            logger.warning("cannot remove the old failure record %s (%s)", self.failure_file(key), _reason(err))

    def record_failure(self, key: Key, error: BaseException, meta: StepMeta) -> None:
        failure = self.failure_file(key)
        text = f"{type(error).__name__}: {error}\n\n{''.join(traceback.format_exception(type(error), error, error.__traceback__))}"
        try:
            ensure_folder(failure.parent, self.workdir)
            write_atomically(failure, text.encode())  # whole or not at all: never an empty record
        except OSError as err:
            raise StorageError(f"cannot record the failure in {failure} ({_reason(err)}); free some space or pass a writable --workdir") from None

    def checkpoints(self, key: Key) -> Callable:
        from nntransfer.trainer.checkpointing import LocalCheckpoints

        return LocalCheckpoints(self.workdir / "checkpoints")

    def clear_checkpoints(self, key: Key) -> None:
        self.checkpoints(key).clear(dict(key))

    def delete(self, keys: Sequence[Key]) -> int:
        """Remove each step's folder, failure record, checkpoints and lock. The folder is first renamed to a
        temporary name (the step is gone at once; a run killed meanwhile leaves a temporary folder the next run
        removes). A link is removed, never followed; a sub-folder that is a link (out of the work folder) is
        refused (``StorageError``) before anything is deleted, and so is a step a live run holds."""
        for sub in SUBFOLDERS:
            if os.path.lexists(self.workdir / sub) and not is_real_folder(self.workdir / sub):
                raise StorageError(f"{self.workdir / sub} is not a folder of the work folder (a symbolic link or a file); nothing deleted")
        digests = [make_hash(dict(key)) for key in keys]
        held = [digest[:SHORT_ID] for digest in digests if self._locked_elsewhere(digest)]
        if held:
            raise StorageError(f"another run holds step(s) {', '.join(held)} of the work folder {self.workdir}; nothing deleted")
        stored = 0
        for key, digest in zip(keys, digests):
            folder = self.step_dir(key)
            try:
                if is_real_folder(folder):
                    doomed = folder.parent / f".{digest}.{os.getpid()}.tmp"
                    os.replace(folder, doomed)
                    stored += 1
                    remove_entry(doomed)
                else:
                    remove_entry(folder)  # a link or a file in its place: removed, not followed
                for path in (self.failure_file(key), self.workdir / "checkpoints" / digest, self._lock_path(digest)):
                    remove_entry(path)
            except OSError as err:
                raise StorageError(f"cannot delete step {digest[:SHORT_ID]} from {self.workdir} ({_reason(err)}); "
                                   f"{stored} of {len(keys)} step(s) deleted") from None
            logger.info("deleted step %s from %s", digest[:SHORT_ID], self.where)
        return stored

    # ------------------------------------------------------------------ running

    def sql_url(self) -> str:
        """``search.sqlite3`` in the work folder (SQLite, which several local processes can share)."""
        return f"sqlite:///{(self.workdir / SEARCH_DATABASE).resolve()}"

    def holds_table(self, name: str) -> bool:
        """Whether ``search.sqlite3`` exists and has a table ``name`` (read-only: a missing file stays missing)."""
        path = self.workdir / SEARCH_DATABASE
        if not path.is_file():
            return False
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as connection:
            query = "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?"
            return connection.execute(query, (name,)).fetchone() is not None

    def prepare(self, recipe: Recipe, runtime: Optional[Dict[str, Dict[str, Any]]] = None,
                provenance: Optional[RunProvenance] = None) -> None:
        """Create the work folder, check that it can be written (a one-line ``StorageError`` before anything
        is trained), and tidy what killed runs left: temporary files, and the checkpoints and locks of steps
        that were stored just before the kill."""
        try:
            for sub in SUBFOLDERS:  # a link in place of one is refused: nothing is written outside the folder
                ensure_folder(self.workdir / sub, self.workdir)
            probe = self.workdir / f".write-test.{os.getpid()}.tmp"
            probe.write_bytes(b"nntransfer")
            probe.unlink()
        except OSError as err:
            raise StorageError(f"cannot write to the work folder {self.workdir} ({_reason(err)}); pass a writable --workdir") from None
        self.remove_stale_temporaries()
        for chain in recipe.transfer_experiments.values():
            self._tidy_finished(chain)

    def _stale_temporaries(self) -> List[Path]:
        """The temporary files and folders of runs that are gone (no live run holds their step)."""
        candidates = [(p, p.name[1:].split(".")[0]) for sub in ("steps", "failed") for p in (self.workdir / sub).glob(".*.tmp")]
        candidates += [(p, folder.name) for folder in (self.workdir / "checkpoints").glob("*") if is_real_folder(folder)
                       for p in folder.glob("*.tmp")]  # never into a link: what it leads to is not ours
        return [path for path, digest in candidates if not self._locked_elsewhere(digest)]

    def remove_stale_temporaries(self) -> int:
        """Delete the temporary files and folders of runs that are gone; returns how many."""
        stale = self._stale_temporaries()
        for path in stale:
            with contextlib.suppress(OSError):
                remove_entry(path)
            logger.info("removed %s, left by a run that was stopped", path)
        return len(stale)

    def collect_garbage(self, dry_run: bool = False, grace_seconds: float = 3600.0) -> Garbage:
        """The temporary files and folders of stopped runs (a run removes them when it starts, too), once
        older than ``grace_seconds``."""
        found = Garbage(self.where, removed=not dry_run)
        now = time.time()
        for path in self._stale_temporaries():
            try:
                if now - os.lstat(path).st_mtime < grace_seconds:
                    found.young += 1
                    continue
                found.paths.append(str(path))
                if not dry_run:
                    remove_entry(path)
            except OSError as err:
                found.errors.append(f"{path}: {_reason(err)}")
        return found

    def _tidy_finished(self, chain: TransferExperiment) -> None:
        for level in range(len(chain)):
            key = chain.step_key(level)
            digest = make_hash(key)
            if self._verify(key, full=False)[0] is None or self._locked_elsewhere(digest):
                continue
            if not StepSpec.from_experiment(chain[level]).keep_checkpoints and os.path.lexists(self.workdir / "checkpoints" / digest):
                self.clear_checkpoints(key)
            self._lock_path(digest).unlink(missing_ok=True)

    @contextlib.contextmanager
    def claim(self, key: Key) -> Iterator[bool]:
        """Hold the step's lock while the block runs; yields False if another live run holds it. Reentrant
        within this store. The kernel releases the lock of a process that dies, however it dies."""
        digest = make_hash(key)
        if fcntl is None or digest in self._held:
            yield True
            return
        descriptor = self._try_lock(digest)
        if descriptor is None:
            yield False
            return
        self._held[digest] = descriptor
        try:
            with contextlib.suppress(OSError):  # who holds it, for people looking at the folder
                os.ftruncate(descriptor, 0)
                os.write(descriptor, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
            for partial in (self.workdir / "steps").glob(f".{digest}.*.tmp"):  # of a run that was killed saving
                with contextlib.suppress(OSError):
                    remove_entry(partial)
            yield True
        finally:
            del self._held[digest]
            if self._verify(key, full=False)[0] is not None:  # done: no run will ask for this lock again
                self._lock_path(digest).unlink(missing_ok=True)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            os.close(descriptor)

    def _try_lock(self, digest: str) -> Optional[int]:
        path = self._lock_path(digest)
        try:
            ensure_folder(path.parent, self.workdir)
            descriptor = open_regular(path, os.O_RDWR | os.O_CREAT)  # never truncates what a planted link leads to
        except NotARegularFile as err:
            raise StorageError(f"cannot use the lock {path} ({_reason(err)}); remove it and run again") from None
        except OSError as err:
            raise StorageError(f"cannot create the lock {path} ({_reason(err)}); pass a writable --workdir") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return None
        except OSError as err:  # a file system without locks: go on unlocked rather than not at all
            if "nolock" not in self._warned:
                self._warned.add("nolock")
                logger.warning("cannot lock %s (%s): do not run two runs on this work folder at once", path, _reason(err))
        return descriptor

    def _locked_elsewhere(self, digest: str) -> bool:
        """Whether another live run (process or store) holds the step's lock. Never creates the lock file."""
        if fcntl is None or digest in self._held:
            return False
        try:
            descriptor = open_regular(self._lock_path(digest))  # a FIFO there is no lock, not a wait
        except OSError:
            return False
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            return False
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            os.close(descriptor)

    def train(self, description, chain: TransferExperiment, level: int, runtime: Optional[Dict[str, Dict[str, Any]]] = None,
              provenance: Optional[RunProvenance] = None) -> StepResult:
        """Train and store one step, holding its lock; a damaged folder of the step is removed first."""
        key = chain.step_key(level)
        with self.claim(key) as mine:
            if not mine:
                raise RuntimeError(f"{description.name} step {level} is being trained by another run (lock {self.lock_file(key)}); wait for it")
            if os.path.lexists(self.step_dir(key)) and not self.is_done(key):
                with contextlib.suppress(OSError):
                    remove_entry(self.step_dir(key))
            return super().train(description, chain, level, runtime, provenance)


# ---------------------------------------------------------------------- files


def _read_json(path: Path, loads: Callable[[str], Any] = json.loads, limit: int = RECORD_LIMIT) -> Any:
    """A JSON file of the folder: a regular file of at most ``limit`` bytes; nesting too deep for the parser
    is a ``ValueError``, not a ``RecursionError``."""
    text = read_bytes(path, limit).decode("utf-8")
    try:
        return loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _read_file(path: Path) -> Any:
    """The content of one of a step's files (regular files only), read without executing anything."""
    if path.suffix == ".json":
        return _read_json(path, codec.loads, OUTPUT_LIMIT)
    with open_for_reading(path) as handle:
        if path.suffix == ".npz":
            with np.load(handle, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        import torch

        return torch.load(handle, map_location="cpu", weights_only=True)


def _torch_bytes(value: Any) -> bytes:
    import torch

    buffer = io.BytesIO()  # in memory, so that writing the bytes raises a plain OSError on a full disk
    torch.save(value, buffer)
    return buffer.getvalue()


def _npz_bytes(arrays: Dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    return buffer.getvalue()


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open_for_reading(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else ""


def _reason(err: OSError) -> str:
    return err.strerror or str(err) or type(err).__name__


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")
