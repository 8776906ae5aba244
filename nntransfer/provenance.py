"""What produced a result: package versions, the recipe's path, its git commit and a hash of its source.

The git commit is empty outside a repository (an installed package, a Docker image); the source hash is
not: ``recipe_hash`` is the SHA-256 of the recipe's Python files (their paths relative to the recipe and
their contents), so two results with the same hash were produced by the same recipe code wherever they ran.
"""

from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional, Tuple

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


class RecipeSource:
    """Where the recipe being run lives; set by the runner (:meth:`use`), read when results are stored.

    The source hash is taken when the recipe is set, from the files that were just loaded: editing the
    recipe while it runs does not change what its results record."""

    path: Optional[str] = None
    _hashed: Optional[str] = None  # the path ``_hash`` belongs to
    _hash: str = ""

    @classmethod
    def use(cls, path: Optional[str]) -> None:
        """The recipe at ``path`` (None: experiments given as objects, no recipe file) is being run."""
        cls.path = str(path) if path else None
        cls._hashed, cls._hash = cls.path, source_hash(cls.path)

    @classmethod
    def record(cls) -> Dict[str, str]:
        """``nntransfer_version``, ``torch_version``, ``nnfabrik_version``, ``recipe_path`` (its last 255
        characters), ``recipe_commit`` (``""`` outside git) and ``recipe_hash`` (``""`` without a recipe file)."""
        path = str(cls.path) if cls.path else None
        if cls._hashed != path:  # ``path`` was assigned directly
            cls._hashed, cls._hash = path, source_hash(path)
        return dict(
            package_versions(),
            recipe_path=(path or "")[-255:],
            recipe_commit=git_commit(path),
            recipe_hash=cls._hash,
        )
