"""A part table that records what produced each trained model."""

from __future__ import annotations

import logging
from typing import Any, Dict

import datajoint as dj

from nntransfer.provenance import RecipeSource

logger = logging.getLogger(__name__)
_warned: set = set()  # schemas already warned about missing provenance columns


class ProvenanceMixin:
    """Adds ``<Table>.Provenance``: what produced each stored result.

    Attributes of ``Provenance``:
        master's primary key (-> master).
        nntransfer_version, torch_version, nnfabrik_version (varchar(32)): package versions.
        recipe_path (varchar(255)): file or folder of the recipe, when run from one.
        recipe_commit (varchar(64)): git commit of the recipe's repository (``-dirty``: uncommitted changes).
        recipe_hash (varchar(64)): SHA-256 of the recipe's source files (``nntransfer.provenance.source_hash``),
            recorded in and outside git. A schema declared before this column existed keeps its table; the
            hash is then not recorded there.
    """

    class Provenance(dj.Part):
        definition = """
        # what produced this result
        -> master
        ---
        nntransfer_version:  varchar(32)
        torch_version:       varchar(32)
        nnfabrik_version:    varchar(32)
        recipe_path="":      varchar(255)   # file or folder of the recipe, when run from one
        recipe_commit="":    varchar(64)    # git commit of the recipe's repository ("-dirty": uncommitted changes)
        recipe_hash="":      varchar(64)    # SHA-256 of the recipe's source files (in and outside git)
        """

    def record_provenance(self, key: Dict[str, Any]) -> None:
        primary = {k: key[k] for k in self.heading.primary_key}
        record = RecipeSource.record()
        missing = sorted(set(record) - set(self.Provenance.heading.names))
        if missing and self.database not in _warned:  # a schema declared before these columns existed
            _warned.add(self.database)
            logger.warning("the Provenance table of schema %s has no column %s: not recorded there (new schemas have it)",
                           self.database, ", ".join(missing))
        self.Provenance.insert1(dict(primary, **record), ignore_extra_fields=True)
