"""nnfabrik's tables in nntransfer's schema, and the transfer recipe that chains steps.

The schema is ``dj.config["custom"]["nnfabrik.my_schema_name"]`` (default ``nntransfer``; the CLI's
``--schema`` sets it) and must be chosen before this module is imported: importing it connects and
declares the tables.

Tables:
    Fabrikant: who added an entry (``fabrikant_name``, ``dj_username``, ...).
    Seed: ``seed``.
    Dataset / Model / Trainer: ``<name>_fn``, ``<name>_hash`` -> ``<name>_config`` (the config's ``to_dict()``),
        ``<name>_comment``, fabrikant.
    TrainedModelTransferRecipe: which (dataset, model, trainer, seed) trains at ``transfer_step`` after which
        previous step (``prev_*`` and ``prev_collapsed_history``), and whether it receives that step's data.
"""

from __future__ import annotations

import getpass
import logging
from typing import TYPE_CHECKING, Any, Dict, Optional

import datajoint as dj

from nntransfer import database
from nntransfer.builder import resolve_config_fn

if TYPE_CHECKING:
    from nntransfer.configs.base import BaseConfig
    from nntransfer.configs.experiment import Experiment

logger = logging.getLogger(__name__)

database.configure()
database.connect()  # one clear line if the server cannot be reached
database.patch_template_modules()

from nnfabrik.main import my_nnfabrik  # noqa: E402

SCHEMA_NAME = database.schema_name()
nnfabrik = my_nnfabrik(SCHEMA_NAME, use_common_fabrikant=False, use_common_seed=False)
schema = nnfabrik.schema
Fabrikant = nnfabrik.Fabrikant
Seed = nnfabrik.Seed
Dataset = nnfabrik.Dataset
Model = nnfabrik.Model
Trainer = nnfabrik.Trainer


@schema
class TrainedModelTransferRecipe(dj.Lookup):
    """Links step ``transfer_step`` of a chain to the step before it; anything may change between steps.

    Attributes:
        transfer_step: the step this entry creates (>= 1).
        data_transfer: the step receives the ``transfer_data`` of the previous step.
        trainer/dataset/model/seed: the step's configs; ``prev_*``: the previous step's.
        prev_collapsed_history: the previous step's ``collapsed_history``.
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

    def add_entry(self, transfer_from: Dict[str, Any], transfer_to: Dict[str, Any], transfer_step: int, data_transfer: bool) -> None:
        entry = {f"prev_{k}": v for k, v in transfer_from.items() if k != "collapsed_history"}
        entry["prev_collapsed_history"] = transfer_from["collapsed_history"]
        entry.update({k: v for k, v in transfer_to.items() if k != "collapsed_history"})
        entry.update(transfer_step=transfer_step, data_transfer=int(data_transfer))
        self.insert1(entry, skip_duplicates=True, ignore_extra_fields=True)


def current_fabrikant() -> str:
    """The Fabrikant of the connected database user, created from the user name if missing."""
    name = Fabrikant.get_current_user()
    if name:
        return name
    dj_user = Fabrikant.connection.get_user().split("@")[0]
    Fabrikant().insert1(
        dict(
            fabrikant_name=dj_user[:32],
            full_name=getpass.getuser(),
            email=f"{dj_user}@localhost",
            affiliation="nntransfer",
            dj_username=dj_user,
        ),
        skip_duplicates=True,
    )
    return dj_user[:32]


def add_config_to_table(config: "BaseConfig", skip_duplicates: bool = True, fabrikant: Optional[str] = None) -> Dict[str, str]:
    """Insert one config into its table (Dataset, Model or Trainer); returns its key.

    Unlike nnfabrik's ``add_entry`` (check, then insert) this is a single ``INSERT IGNORE``, so workers
    filling the same tables at the same time do not collide."""
    resolve_config_fn(config)
    table = {"Dataset": Dataset, "Model": Model, "Trainer": Trainer}[config.table]
    name = config.config_name
    key = config.get_key()
    row = dict(
        key,
        **{
            f"{name}_config": config.to_dict(),
            f"{name}_comment": config.comment[:256],
            f"{name}_fabrikant": fabrikant or current_fabrikant(),
        },
    )
    if not skip_duplicates and (table & key):
        raise ValueError(f"{type(config).__name__} {key} is already in the {config.table} table")
    table.insert1(row, skip_duplicates=True)
    return key


def add_experiment_to_tables(experiment: "Experiment") -> Dict[str, Any]:
    """Insert an experiment's three configs and its seed; returns ``experiment.get_key()``."""
    for config in experiment.configs.values():  # resolve everything before writing anything
        resolve_config_fn(config)
    fabrikant = current_fabrikant()
    for config in experiment.configs.values():
        add_config_to_table(config, fabrikant=fabrikant)
    Seed().insert1({"seed": experiment.seed}, skip_duplicates=True)
    return experiment.get_key()
