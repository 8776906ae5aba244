"""A part table that records what produced each trained model."""

from __future__ import annotations

from typing import Any, Dict

import datajoint as dj

from nntransfer.provenance import RecipeSource


class ProvenanceMixin:
    """Adds ``<Table>.Provenance``: what produced each stored result.

    Attributes of ``Provenance``:
        master's primary key (-> master).
        nntransfer_version, torch_version, nnfabrik_version (varchar(32)): package versions.
        recipe_path (varchar(255)): file or folder of the recipe, when run from one.
        recipe_commit (varchar(64)): git commit of the recipe's repository (``-dirty``: uncommitted changes).
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
        """

    def record_provenance(self, key: Dict[str, Any]) -> None:
        primary = {k: key[k] for k in self.heading.primary_key}
        self.Provenance.insert1(dict(primary, **RecipeSource.record()))
