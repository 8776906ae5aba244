"""nnfabrik's tables in nntransfer's schema, the transfer recipe that chains steps, and filling them.

The table classes are declared by :func:`nntransfer.tables.activate` (nnfabrik's base classes can only be
imported with a live connection); this module holds their behaviour as plain mixins. The names recipes
import keep working::

    from nntransfer.tables.nnfabrik import Dataset, Model, Trainer, Seed, Fabrikant, TrainedModelTransferRecipe, schema

Reading one of them activates the configured schema (``dj.config["custom"]["nnfabrik.my_schema_name"]``,
default ``nntransfer``) on first use, or returns the tables of the schema activated last. Importing this
module connects to nothing.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Tuple

from nntransfer.configs.transfer_experiment import TransferExperiment
from nntransfer.pipeline.validation import check_config
from nntransfer.tables import active
from nntransfer.tables._datajoint import dj

if TYPE_CHECKING:
    from nntransfer.configs.base import BaseConfig
    from nntransfer.configs.experiment import Experiment
    from nntransfer.tables.activation import Tables

logger = logging.getLogger(__name__)

#: names this module hands out from the active tables (PEP 562 ``__getattr__``)
TABLE_NAMES = ("Fabrikant", "Seed", "Dataset", "Model", "Trainer", "TrainedModelTransferRecipe", "schema")
__all__ = list(TABLE_NAMES) + ["add_config_to_table", "add_experiment_to_tables", "add_transfer_experiments"]


def __getattr__(name: str) -> Any:
    if name in TABLE_NAMES:
        return getattr(active(), name)
    if name == "SCHEMA_NAME":
        return active().schema_name
    if name == "nnfabrik":  # the old module-level name of nnfabrik's table namespace
        return active()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------- table behaviour


class FabrikantMixin:
    """Who added an entry; one row per person, looked up by their database user.

    Attributes:
        fabrikant_name (varchar(32)): short name of the contributor (primary key).
        full_name (varchar(128)): full name.
        email (varchar(64)): e-mail address.
        affiliation (varchar(32)): lab or institution.
        dj_username (varchar(64)): the database user the contributor connects as.

    nnfabrik's ``get_current_user`` reads the shared ``nnfabrik_core.fabrikant`` table; this one reads the
    schema's own table, whose rows the other tables' foreign keys point to.
    """

    @classmethod
    def database_user(cls) -> str:
        return cls.connection.get_user().split("@")[0]

    @classmethod
    def get_current_user(cls) -> Optional[str]:
        """The ``fabrikant_name`` of the connected database user in this schema, or None."""
        names = (cls & {"dj_username": cls.database_user()}).fetch("fabrikant_name")
        return str(names[0]) if len(names) else None

    @classmethod
    def current_user(cls) -> str:
        """The ``fabrikant_name`` of the connected database user, created from the user name if missing."""
        name = cls.get_current_user()
        if name:
            return name
        user = cls.database_user()
        # a second candidate in case another person's row already uses the plain user name
        for candidate in (user[:32], f"{user[:25]}_{hashlib.md5(user.encode()).hexdigest()[:6]}"):
            cls.insert1(
                dict(
                    fabrikant_name=candidate,
                    full_name=getpass.getuser()[:128],
                    email=f"{user}@localhost"[:64],
                    affiliation="nntransfer",
                    dj_username=user,
                ),
                skip_duplicates=True,
            )
            name = cls.get_current_user()
            if name:
                logger.info("added %r for database user %r to %s", name, user, cls.full_table_name)
                return name
        raise ValueError(f"cannot add a Fabrikant row for database user {user!r} to {cls.full_table_name}")


class ConfigTableMixin:
    """A config table (``Dataset``, ``Model`` or ``Trainer``): one row per config.

    Attributes:
        <name>_fn (varchar): dotted path of the function the config is passed to.
        <name>_hash (varchar(64)): ``make_hash`` of the config (primary key with ``<name>_fn``).
        <name>_config (longblob): the config's ``to_dict()``.
        <name>_fabrikant: who added it (-> ``Fabrikant``).
        <name>_comment (varchar(256)): short description.
        <name>_ts (timestamp): when it was added.

    nnfabrik's ``add_entry`` looks the fabrikant up in the shared core table; this one in the schema's own.
    """

    #: the schema's Fabrikant table, set at activation
    fabrikant_table = None

    def add_entry(self, *args, **kwargs):
        name = f"{self.table_name}_fabrikant"
        if len(args) < 4 and kwargs.get(name) is None:
            kwargs[name] = self.fabrikant_table.current_user()
        return super().add_entry(*args, **kwargs)


class TransferRecipeMixin:
    """Links step ``transfer_step`` of a chain to the step before it; anything may change between steps.

    Attributes:
        transfer_step (int): the step this entry creates (>= 1).
        data_transfer (bool): the step receives the ``transfer_data`` of the previous step.
        trainer/dataset/model/seed: the step's configs (-> ``Trainer``, ``Dataset``, ``Model``, ``Seed``).
        prev_trainer/prev_dataset/prev_model/prev_seed: the previous step's.
        prev_collapsed_history (varchar(64)): the previous step's ``collapsed_history``.
    """

    definition = """
    transfer_step: int
    data_transfer: bool
    -> Trainer
    -> Trainer.proj(prev_trainer_fn='trainer_fn', prev_trainer_hash='trainer_hash')
    -> Dataset
    -> Dataset.proj(prev_dataset_fn='dataset_fn', prev_dataset_hash='dataset_hash')
    -> Model
    -> Model.proj(prev_model_fn='model_fn', prev_model_hash='model_hash')
    -> Seed
    -> Seed.proj(prev_seed='seed')
    prev_collapsed_history: varchar(64)
    """

    @property
    def post_restr(self) -> dj.AndList:
        return dj.AndList([])  # dataset, model, trainer and seed may all change between steps

    @staticmethod
    def entry(transfer_from: Dict[str, Any], transfer_to: Dict[str, Any], transfer_step: int, data_transfer: bool) -> Dict[str, Any]:
        """The row linking ``transfer_from`` (a step's restriction, with ``collapsed_history``) to the
        experiment key ``transfer_to``."""
        entry = {f"prev_{k}": v for k, v in transfer_from.items() if k not in ("collapsed_history", "transfer_step", "data_transfer")}
        entry["prev_collapsed_history"] = transfer_from["collapsed_history"]
        entry.update({k: v for k, v in transfer_to.items() if k not in ("collapsed_history", "transfer_step", "data_transfer")})
        entry.update(transfer_step=int(transfer_step), data_transfer=int(bool(data_transfer)))
        return entry

    def add_entry(self, transfer_from: Dict[str, Any], transfer_to: Dict[str, Any], transfer_step: int, data_transfer: bool) -> None:
        self.insert1(self.entry(transfer_from, transfer_to, transfer_step, data_transfer), skip_duplicates=True)


# ----------------------------------------------------------------------------- filling the tables


def _config_row(config: "BaseConfig", fabrikant: str) -> Dict[str, Any]:
    name = config.config_name
    return dict(
        config.get_key(),
        **{
            f"{name}_config": config.to_dict(),
            f"{name}_comment": config.comment[:256],
            f"{name}_fabrikant": fabrikant,
        },
    )


def _insert(table, rows: Iterable[Dict[str, Any]]) -> None:
    """Insert those of ``rows`` (deduplicated on the primary key) that are not in ``table`` yet, skipping
    duplicates, so that workers filling the same tables at the same time do not collide. Rows already there
    are not written again: DataJoint's ``skip_duplicates`` locks every row it finds (exclusively), and a
    worker starting up would then deadlock with the checkpoint inserts of workers training (whose foreign
    keys lock the same config rows, shared)."""
    primary = table.primary_key
    unique: Dict[Tuple, Dict[str, Any]] = {}
    for row in rows:
        unique.setdefault(tuple(row[k] for k in primary), row)
    if not unique:
        return
    stored = (table & [dict(zip(primary, key)) for key in unique]).fetch(*primary, as_dict=True)
    for found in stored:
        unique.pop(tuple(_plain(found[k]) for k in primary), None)
    if unique:
        table.insert(list(unique.values()), skip_duplicates=True)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def add_config_to_table(
    config: "BaseConfig", skip_duplicates: bool = True, fabrikant: Optional[str] = None, tables: Optional["Tables"] = None
) -> Dict[str, str]:
    """Insert one config into its table (Dataset, Model or Trainer) after checking it; returns its key.

    ``tables`` defaults to the active tables. ``skip_duplicates=False`` makes an existing row an error."""
    check_config(config)
    tables = tables or active()
    table = getattr(tables, config.table)
    key = config.get_key()
    if not skip_duplicates and (table & key):
        raise ValueError(f"{type(config).__name__} {key} is already in the {config.table} table")
    _insert(table, [_config_row(config, fabrikant or tables.Fabrikant.current_user())])
    return key


def add_experiment_to_tables(experiment: "Experiment", tables: Optional["Tables"] = None) -> Dict[str, Any]:
    """Insert an experiment's three configs and its seed (all checked first); returns ``experiment.get_key()``."""
    for config in experiment.configs.values():
        check_config(config)
    tables = tables or active()
    fabrikant = tables.Fabrikant.current_user()
    for config in experiment.configs.values():
        _insert(getattr(tables, config.table), [_config_row(config, fabrikant)])
    _insert(tables.Seed, [{"seed": experiment.seed}])
    return experiment.get_key()


def add_transfer_experiments(tables: "Tables", chains: Iterable[TransferExperiment], fabrikant: Optional[str] = None) -> None:
    """Insert the configs and seeds of every step of ``chains`` and one recipe entry per step after the
    first, a few multi-row inserts in all. Every config is checked before anything is written; run it in
    a transaction to write all or nothing."""
    chains = list(chains)
    checked = set()
    for chain in chains:
        for step in chain:
            for config in step.configs.values():
                marker = (type(config).__qualname__, config.get_key()[f"{config.config_name}_hash"])
                if marker not in checked:
                    check_config(config)
                    checked.add(marker)
    fabrikant = fabrikant or tables.Fabrikant.current_user()
    rows: Dict[str, List[Dict[str, Any]]] = {"Dataset": [], "Model": [], "Trainer": [], "Seed": [], "Recipe": []}
    for chain in chains:
        for level, step in enumerate(chain):
            for config in step.configs.values():
                rows[config.table].append(_config_row(config, fabrikant))
            rows["Seed"].append({"seed": step.seed})
            if level:
                rows["Recipe"].append(
                    TransferRecipeMixin.entry(
                        transfer_from=chain.get_restrictions(level - 1),
                        transfer_to=step.get_key(),
                        transfer_step=level,
                        data_transfer=chain.step_key(level)["data_transfer"],
                    )
                )
    for name in ("Seed", "Dataset", "Model", "Trainer"):
        _insert(getattr(tables, name), rows[name])
    _insert(tables.TrainedModelTransferRecipe, rows["Recipe"])
