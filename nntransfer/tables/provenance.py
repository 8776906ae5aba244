"""A part table that records what produced each trained model."""

from __future__ import annotations

import logging
from typing import Any, Dict

from nntransfer.tables._datajoint import dj

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
            recorded in and outside git.
        code_hash (varchar(64)), code_files (longblob): the fingerprint of the user code the step ran
            (``nntransfer.fingerprint``: one hash, and ``{module: hash}``); ``run`` compares it with the code
            loaded then (``nntransfer.pipeline.drift``).
        code_reused (longblob): set when a run kept the step although its code changed (``--reuse-changed``):
            the code it was kept for, the changed modules and when.
    A schema declared before a column existed keeps its table; what the column holds is then not recorded
    there (one warning), and a step without a code fingerprint is reused with a warning.
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
        code_hash="":        varchar(64)    # fingerprint of the user code the step ran (nntransfer.fingerprint)
        code_files=null:     longblob       # per user module, the SHA-256 of the code of it the step ran
        code_reused=null:    longblob       # kept by --reuse-changed although its code changed: for which code, when
        """

    def record_provenance(self, key: Dict[str, Any], record: Dict[str, Any]) -> None:
        """Insert ``record`` (what the run passed with the step: ``StepMeta.provenance``) as ``key``'s row."""
        primary = {k: key[k] for k in self.heading.primary_key}
        missing = sorted(set(record) - set(self.Provenance.heading.names))
        if missing and self.database not in _warned:  # a schema declared before these columns existed
            _warned.add(self.database)
            logger.warning("the Provenance table of schema %s has no column %s: not recorded there (new schemas have it)",
                           self.database, ", ".join(missing))
        self.Provenance.insert1(dict(primary, **record), ignore_extra_fields=True)
