"""Declaring nntransfer's tables in a schema: what :func:`nntransfer.tables.activate` does.

nnfabrik's table classes (``nnfabrik.main``) and templates can only be imported with a live connection
(importing ``nnfabrik.main`` declares nnfabrik's core schema), so the table classes are created here, at
activation, from nnfabrik's bases and the mixins that hold nntransfer's behaviour
(``nntransfer.tables.nnfabrik``, ``checkpoints``, ``trained_model``, ``transfer``). Each activated schema
gets classes of its own; activating a schema again returns the same :class:`Tables`.
"""

from __future__ import annotations

import copy
import importlib
import logging
import sys
from typing import Any, Dict, List, Optional, Tuple

from nntransfer.pipeline.step import StepSpec
from nntransfer.tables import TABLE_NAMES, compat, database, heartbeat
from nntransfer.tables._datajoint import dj
from nntransfer.tables.checkpoints import CheckpointMixin, TransferredCheckpointMixin
from nntransfer.tables.nnfabrik import ConfigTableMixin, FabrikantMixin, TransferRecipeMixin
from nntransfer.tables.trained_model import TrainedModelMixin
from nntransfer.tables.transfer import TransferredTrainedModelMixin

__all__ = ["Tables", "activate", "active"]
logger = logging.getLogger(__name__)

_activated: Dict[str, "Tables"] = {}
_read_only: Dict[str, "Tables"] = {}
_last: Optional["Tables"] = None


class Tables:
    """The tables of one schema, as :func:`nntransfer.tables.activate` returns them.

    Attributes:
        schema_name: the schema.
        schema: its ``dj.Schema`` (``schema.jobs`` is DataJoint's job table).
        connection: the connection the tables use (checkpoint tables use a second one).
        Fabrikant, Seed, Dataset, Model, Trainer: nnfabrik's tables, declared in this schema.
        TrainedModelTransferRecipe: which step follows which (see ``nntransfer.tables.nnfabrik``).
        TrainedModel, Checkpoint: one trained experiment per row, and its checkpoints.
        TransferredTrainedModel, TransferredCheckpoint: one trained transfer step per row, and its checkpoints.
        prepared: step hash -> (experiment name, the step's comment, runtime options, provenance record), remembered by
            ``DataJointStore.prepare`` for the ``make`` calls of this process.
        pending_clears: (table name, key) of jobs whose checkpoints are deleted once their result is
            committed (``TrainedModelMixin.clear_checkpoints``).
        pending_uploads: files results copied to the store inside a transaction not yet ended; removed if it
            rolls back (``TrainedModelMixin.clear_rolled_back_uploads``).

    ``tables["Model"]`` works too: table templates find their nnfabrik tables that way.
    """

    def __init__(self, schema_name: str, connection: dj.Connection) -> None:
        self.schema_name = schema_name
        self.connection = connection
        self.prepared: Dict[str, Tuple[str, str, Dict[str, Dict[str, Any]], Dict[str, Any]]] = {}
        self.pending_clears: List[Tuple[str, Dict[str, Any]]] = []
        self.pending_uploads: List[Tuple[str, str, Any, str]] = []

    def __getitem__(self, name: str) -> Any:
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None

    def __repr__(self) -> str:
        return f"<nntransfer tables of schema {self.schema_name!r}>"

    def step_spec(self, key: Dict[str, Any], runtime: Optional[Dict[str, Dict[str, Any]]] = None) -> StepSpec:
        """What the step (or experiment) ``key`` is made of, read from the config and seed rows; the
        runtime options (not stored) are ``runtime``'s."""
        functions = {}
        for role, table in (("dataset", self.Dataset), ("model", self.Model), ("trainer", self.Trainer)):
            functions[role] = (table & key).fn_config
        return StepSpec(
            functions["dataset"][0], functions["dataset"][1],
            functions["model"][0], functions["model"][1],
            functions["trainer"][0], functions["trainer"][1],
            seed=int((self.Seed & key).fetch1("seed")),
            runtime=copy.deepcopy(dict(runtime or {})),
        )  # fmt: skip

    def comment(self, key: Dict[str, Any], delimiter: str = ".") -> str:
        """The trainer, model and dataset comments of ``key``, joined as nnfabrik joins them."""
        parts = (
            (self.Trainer & key).fetch1("trainer_comment"),
            (self.Model & key).fetch1("model_comment"),
            (self.Dataset & key).fetch1("dataset_comment"),
        )
        return delimiter.join(parts)


def activate(schema_name: Optional[str] = None, create: bool = True, read_only: bool = False) -> Tables:
    """See :func:`nntransfer.tables.activate`."""
    global _last
    name = database.check_schema_name(schema_name or database.schema_name())
    tables = _activated.get(name)
    if tables is not None:
        _last = tables
        return tables
    if read_only:  # not remembered as the active tables: they cannot train or write
        tables = _read_only.get(name)
        if tables is None:
            tables = _read_only[name] = _bind_read_only(name)
        return tables
    tables = _activated[name] = _bind(name, create)
    _read_only.pop(name, None)
    _last = tables
    return tables


def active() -> Tables:
    """See :func:`nntransfer.tables.active`."""
    return _last if _last is not None else activate()


def _bind(name: str, create: bool) -> Tables:
    database.configure()
    connection = database.connect()
    if not database.schema_exists(connection, name):
        if not create:
            raise ValueError(f"schema {name!r} does not exist on the database server; pass the store the recipe ran with (--store datajoint:NAME)")
        database.create_schema(connection, name)
    compat.apply()
    if "nnfabrik.main" not in sys.modules:  # importing it declares nnfabrik's core schema: create it race-free first
        database.create_schema(connection, database.core_schema_name())
    tables = _declare(name, connection)
    logger.info("tables bound to schema %s", name)
    return tables


def _bind_read_only(name: str) -> Tables:
    """The tables of the existing schema ``name`` as the server describes them (``dj.VirtualModule``): the
    same names, rows, parts and external files as the declared classes, without importing nnfabrik (whose
    templates import torch: seconds) or declaring anything."""
    database.configure()
    connection = database.connect()
    if not database.schema_exists(connection, name):
        raise ValueError(f"schema {name!r} does not exist on the database server; pass the store the recipe ran with (--store datajoint:NAME)")
    module = dj.VirtualModule(f"nntransfer_read_{name}", name, connection=connection)
    tables = Tables(name, connection)
    tables.schema = module.schema
    classes = [n for n in TABLE_NAMES if n != "schema"]
    missing = [n for n in classes if not hasattr(module, n)]
    if missing:
        raise ValueError(f"schema {name!r} holds no nntransfer tables (no {', '.join(missing)}); check --schema")
    for class_name in classes:
        setattr(tables, class_name, getattr(module, class_name))
    # what the declared classes carry as attributes, the readers use too
    tables.TrainedModel.checkpoint_table = tables.Checkpoint
    tables.TransferredTrainedModel.checkpoint_table = tables.TransferredCheckpoint
    return tables


def _declare(name: str, connection: dj.Connection) -> Tables:
    """Create and declare the table classes of schema ``name``."""
    # nnfabrik's tables and templates import with a live connection only (nnfabrik.main declares its core
    # schema), and after the compat fixes: they are imported here, at activation.
    core = importlib.import_module("nnfabrik.main")
    CustomSchema = importlib.import_module("nnfabrik.utility.dj_helpers").CustomSchema
    TrainedModelChkptBase = importlib.import_module("nnfabrik.templates.checkpoint").TrainedModelChkptBase
    TransferredTrainedModelChkptBase = importlib.import_module(
        "nnfabrik.templates.transfer.checkpoint"
    ).TransferredTrainedModelChkptBase

    tables = Tables(name, connection)
    context: Dict[str, Any] = {}
    schema = CustomSchema(name, connection=connection)
    heartbeat.declare(connection, name)  # liveness of workers (hidden, like ~jobs)
    # a second connection: checkpoints are stored at once, outside the transaction of the make that trains
    checkpoint_schema = CustomSchema(name, connection=compat.clone_connection(connection))
    tables.schema = schema

    def declare(on, class_name: str, bases: tuple, **attributes: Any) -> Any:
        mixin = bases[0]
        namespace = {"__module__": mixin.__module__, "__doc__": mixin.__doc__, **attributes}
        declared = on(type(class_name, bases, namespace), context=context)
        context[class_name] = declared
        setattr(tables, class_name, declared)
        return declared

    declare(schema, "Seed", (core.Seed,))
    fabrikant = declare(schema, "Fabrikant", (FabrikantMixin, core.Fabrikant))
    for class_name in ("Model", "Dataset", "Trainer"):
        declare(schema, class_name, (ConfigTableMixin, getattr(core, class_name)), fabrikant_table=fabrikant)
    recipe = declare(schema, "TrainedModelTransferRecipe", (TransferRecipeMixin, dj.Lookup))
    context["nnfabrik"] = tables  # the checkpoint definitions name nnfabrik.Trainer, nnfabrik.Seed, ...
    checkpoint = declare(checkpoint_schema, "Checkpoint", (CheckpointMixin, dj.Manual))
    transferred_checkpoint = declare(checkpoint_schema, "TransferredCheckpoint", (TransferredCheckpointMixin, dj.Manual))
    declare(schema, "TrainedModel", (TrainedModelMixin, TrainedModelChkptBase), nnfabrik=tables, checkpoint_table=checkpoint)
    declare(
        schema,
        "TransferredTrainedModel",
        (TransferredTrainedModelMixin, TransferredTrainedModelChkptBase),
        nnfabrik=tables,
        checkpoint_table=transferred_checkpoint,
        transfer_recipe=[recipe],
    )
    return tables
