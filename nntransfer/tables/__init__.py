"""DataJoint tables, bound to a schema on demand (as DataJoint Elements do with ``schema.activate``).

Importing this package, or any of its modules, opens no connection; importing the package itself does
not even load DataJoint. :func:`activate` binds the tables to a schema::

    from nntransfer import tables
    lab = tables.activate("my_lab")             # connects, creates the schema if needed, declares the tables
    lab.TransferredTrainedModel & chain.step_key(1)

The returned :class:`~nntransfer.tables.activation.Tables` has the table classes: ``Fabrikant``, ``Seed``,
``Dataset``, ``Model``, ``Trainer``, ``TrainedModelTransferRecipe``, ``TrainedModel``, ``Checkpoint``,
``TransferredTrainedModel``, ``TransferredCheckpoint``, and ``schema``. Activating the same schema again
returns the same classes; another schema gets classes of its own.

The module paths recipes import keep working and activate the configured schema
(``dj.config["custom"]["nnfabrik.my_schema_name"]``, default ``nntransfer``) when first read::

    from nntransfer.tables.nnfabrik import Dataset, TrainedModelTransferRecipe, schema
    from nntransfer.tables.trained_model import TrainedModel
    from nntransfer.tables.transfer import TransferredTrainedModel

Modules: ``database`` (configuration, connection, schema names, a lost server), ``compat`` (the nnfabrik
0.2.1 fixes), ``activation`` (declaring the tables), ``nnfabrik`` / ``trained_model`` / ``transfer`` /
``checkpoints`` / ``provenance`` (what the tables do), ``heartbeat`` (liveness of workers), ``storage``
(files of the external store), ``store`` (:class:`~nntransfer.tables.store.DataJointStore`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

from nntransfer.configs.table_writer import install_table_writer

if TYPE_CHECKING:
    from nntransfer.tables.activation import Tables

__all__ = ["activate", "active", "TABLE_NAMES"]

#: the table classes (and ``schema``) an activation provides
TABLE_NAMES = (
    "Fabrikant",
    "Seed",
    "Dataset",
    "Model",
    "Trainer",
    "TrainedModelTransferRecipe",
    "TrainedModel",
    "Checkpoint",
    "TransferredTrainedModel",
    "TransferredCheckpoint",
    "schema",
)


def activate(schema_name: Optional[str] = None, create: bool = True, read_only: bool = False) -> "Tables":
    """Bind the tables to ``schema_name`` (default: the configured schema) and return them.

    Configures DataJoint (:func:`nntransfer.tables.database.configure`), connects (one-line
    :class:`~nntransfer.errors.DatabaseError` if the server cannot be reached), checks the name (letters,
    digits, underscores, at most 64 characters; a one-line ``ValueError`` before anything is created),
    creates the schema and nnfabrik's core schema if missing (``CREATE DATABASE IF NOT EXISTS``: workers
    started together do not collide) and declares the tables. ``create=False`` refuses a schema that
    does not exist (``ValueError``) instead of creating it.

    ``read_only`` binds an existing schema's tables as DataJoint finds them on the server (a virtual
    module: no nnfabrik, no torch, nothing declared; the tables of a schema already activated for writing are
    returned as they are): enough to read every row, file and job, and fast to start, for the commands
    that only read (``status``, ``report``, ``diff``, ``lineage``)."""
    # DataJoint and nnfabrik load here, not when this package is imported: binding on demand.
    from nntransfer.tables import activation

    return activation.activate(schema_name, create=create, read_only=read_only)


def active() -> "Tables":
    """The tables of the schema activated last in this process; the configured schema is activated
    if none is."""
    # DataJoint and nnfabrik load here, not when this package is imported: binding on demand.
    from nntransfer.tables import activation

    return activation.active()


class _ActiveTablesWriter:
    """What ``add_to_table`` of a config or an experiment writes to: the active tables."""

    def add_config(self, config: Any, skip_duplicates: bool = True) -> Dict[str, str]:
        # DataJoint and nnfabrik load here, not when this package is imported: binding on demand.
        from nntransfer.tables.nnfabrik import add_config_to_table

        return add_config_to_table(config, skip_duplicates=skip_duplicates)

    def add_experiment(self, experiment: Any) -> Dict[str, Any]:
        from nntransfer.tables.nnfabrik import add_experiment_to_tables

        return add_experiment_to_tables(experiment)


# configs sit below the tables and never import them: the tables install what add_to_table calls
install_table_writer(_ActiveTablesWriter())

