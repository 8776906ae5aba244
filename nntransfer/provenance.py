"""What produced a result: package versions, the recipe's path, its git commit and a hash of its source, and
the fingerprint of the user code (``nntransfer.fingerprint``). The runner takes it when a run starts
(:class:`RunProvenance`) and hands it to the store with each step; nothing is kept in process state.

The git commit is empty outside a repository (an installed package, a Docker image); the source hash is
not: ``recipe_hash`` is the SHA-256 of the recipe's Python files (their paths relative to the recipe and
their contents), so two results with the same hash were produced by the same recipe code wherever they ran.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from nntransfer.configs.codec import make_hash
from nntransfer.fingerprint import CodeFingerprint, chain_fingerprints, spec_fingerprint

logger = logging.getLogger(__name__)


@lru_cache(maxsize=None)
def package_versions() -> Dict[str, str]:
    """``{"nntransfer_version": ..., "torch_version": ..., "nnfabrik_version": ...}``."""
    versions = {}
    for package in ("nntransfer", "torch", "nnfabrik"):
        try:
            versions[f"{package}_version"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[f"{package}_version"] = "unknown"
    return versions


def cluster_job() -> str:
    """The SLURM job this process runs in, as ``squeue`` and ``scancel`` name it: ``ARRAY_TASK`` for a task
    of a job array (``123_4``), else the job id; empty outside SLURM. Read each time: a requeued task keeps
    its id, a process started outside a job has none."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID", "")


@lru_cache(maxsize=32)
def git_commit(path: Optional[str]) -> str:
    """The commit of the repository containing ``path`` (suffixed ``-dirty`` when it has uncommitted
    changes), or ``""`` when ``path`` is not in a git repository."""
    if not path:
        return ""
    try:
        import git

        repo = git.Repo(Path(path).resolve(), search_parent_directories=True)
        commit = repo.head.commit.hexsha
        return commit + ("-dirty" if repo.is_dirty(untracked_files=False) else "")
    except Exception:  # not a repository, no commits yet, git missing
        return ""


def recipe_files(path: Optional[str]) -> Tuple[Optional[Path], List[Path]]:
    """The root and the sorted source files of the recipe at ``path``: every ``.py`` file of a recipe
    folder (a package given as its folder or its ``__init__.py``, or a module inside one: the whole
    package), or the single ``.py`` file of a recipe that is not in a package. ``(None, [])`` when there is
    nothing to read."""
    if not path:
        return None, []
    location = Path(path)
    if location.is_file() and (location.parent / "__init__.py").is_file():
        location = location.parent  # a module of a recipe package: its siblings are part of the recipe
    if location.is_dir():
        return location, sorted(p for p in location.rglob("*.py") if "__pycache__" not in p.parts and p.is_file())
    return (location.parent, [location]) if location.is_file() else (None, [])


def source_hash(path: Optional[str]) -> str:
    """SHA-256 (hex) of the recipe's source files (see :func:`recipe_files`): each file's path relative to
    the recipe and its bytes. ``""`` when there is no file to hash. Independent of where the recipe lives
    and of git."""
    root, files = recipe_files(path)
    if not files:
        return ""
    digest = hashlib.sha256()
    for file in files:
        try:
            content = file.read_bytes()
        except OSError as err:  # unreadable: the hash would not describe the recipe
            logger.warning("cannot read the recipe file %s (%s); no recipe hash is recorded", file, err.strerror or err)
            return ""
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(len(content).to_bytes(8, "big") + content)
    return digest.hexdigest()


def recipe_record(path: Optional[str]) -> Dict[str, str]:
    """``nntransfer_version``, ``torch_version``, ``nnfabrik_version``, ``recipe_path`` (its last 255
    characters), ``recipe_commit`` (``""`` outside git) and ``recipe_hash`` (``""`` without a recipe file) of
    the recipe at ``path`` (None: experiments given as objects, no recipe file), read now."""
    path = str(path) if path else None
    return dict(package_versions(), recipe_path=(path or "")[-255:], recipe_commit=git_commit(path), recipe_hash=source_hash(path))


@dataclass(frozen=True)
class RunProvenance:
    """What a run records with each step it stores, taken when the run starts from the files just loaded
    (editing the recipe or its code while it trains does not change what its results record): ``recipe``
    (:func:`recipe_record`) and ``code``, step id -> the fingerprint of the user code the step runs. The
    runner hands it to the store, which passes :meth:`for_step` with each step (``StepMeta.provenance``)."""

    recipe: Dict[str, str]
    code: Mapping[str, CodeFingerprint] = field(default_factory=dict)

    @classmethod
    def of(cls, path: Optional[str], chains: Iterable[Any]) -> "RunProvenance":
        """The provenance of running the chains (``TransferExperiment``\\ s) of the recipe at ``path``."""
        return cls(recipe_record(path), chain_fingerprints(chains))

    def for_step(self, key: Mapping[str, Any]) -> Dict[str, Any]:
        """What the store records with the step ``key``: the recipe record, ``code_hash`` and ``code_files``."""
        found = self.code.get(make_hash(dict(key)))
        return dict(self.recipe, **(found.record() if found is not None else {}))


def step_provenance(spec: Any, config_classes: Iterable[Any] = ()) -> Dict[str, Any]:
    """The provenance of a step trained outside a run (no recipe): the versions and the fingerprint of the
    code its :class:`~nntransfer.pipeline.step.StepSpec` names now."""
    return dict(recipe_record(None), **spec_fingerprint(spec, config_classes).record())
