"""What produced a result: package versions and the git commit of the recipe."""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Dict, Optional

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


class RecipeSource:
    """Where the recipe being run lives; set by the runner, read when results are stored."""

    path: Optional[str] = None

    @classmethod
    def record(cls) -> Dict[str, str]:
        path = str(cls.path) if cls.path else None
        return dict(package_versions(), recipe_path=(path or "")[-255:], recipe_commit=git_commit(path))
