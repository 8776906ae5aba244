"""`Experiment`: one training run, i.e. dataset + model + trainer config + seed."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from nntransfer.configs.base import BaseConfig
from nntransfer.configs.codec import plain_number
from nntransfer.configs.table_writer import table_writer


class Experiment:
    """A dataset, a model and a trainer config trained with one seed.

    Its key (``get_key()``) is the primary key of its trained-model row: the three config keys plus ``seed``.
    """

    def __init__(
        self,
        dataset: BaseConfig,
        model: BaseConfig,
        trainer: BaseConfig,
        seed: int = 42,
        comment: Optional[str] = None,
    ):
        for role, config, expected in (("dataset", dataset, "dataset"), ("model", model, "model"), ("trainer", trainer, "trainer")):
            if not isinstance(config, BaseConfig) or config.config_name != expected:
                raise ValueError(f"Experiment {role} must be a {expected} config, got {type(config).__name__}")
        seed = plain_number(seed)  # a seed computed with numpy (np.int64) names the same experiment as the int
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"Experiment seed must be an int, got {seed!r}")
        self.dataset = dataset
        self.model = model
        self.trainer = trainer
        self.seed = seed
        self.comment = comment if comment is not None else self._default_comment()

    def _default_comment(self) -> str:
        parts = [c.comment for c in (self.dataset, self.model, self.trainer) if c.comment]
        return ".".join(parts)

    @property
    def configs(self) -> Dict[str, BaseConfig]:
        return {"dataset": self.dataset, "model": self.model, "trainer": self.trainer}

    def get_key(self) -> Dict[str, Any]:
        key: Dict[str, Any] = {}
        for config in self.configs.values():
            key.update(config.get_key())
        key["seed"] = self.seed
        return key

    def update(self, setting: Optional[Dict[str, Dict[str, Any]]] = None) -> "Experiment":
        """Change the configs in place: ``{"dataset": {...}, "model": {...}, "trainer": {...}}`` (each part
        optional, applied with the config's ``update``), as in the original nntransfer; returns self."""
        setting = dict(setting or {})
        unknown = set(setting) - set(self.configs)
        if unknown:
            raise ValueError(f"Experiment.update has unknown part(s) {sorted(unknown)}; use 'dataset', 'model' or 'trainer'")
        for role, values in setting.items():
            self.configs[role].update(values)
        return self

    def get_restrictions(self) -> List[Dict[str, Any]]:
        """``[get_key()]``: a restriction of the trained-model table to this experiment's row, as the
        original nntransfer returned it (a list, which DataJoint reads as "any of")."""
        return [self.get_key()]

    def add_to_table(self) -> Dict[str, Any]:
        """Insert the three configs and the seed into the nnfabrik tables (the writer ``nntransfer.tables``
        installs, ``nntransfer.configs.table_writer``); returns the key."""
        return table_writer().add_experiment(self)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: each config as ``BaseConfig.to_json_dict()``, plus seed and comment."""
        out = {role: config.to_json_dict() for role, config in self.configs.items()}
        out["seed"] = self.seed
        out["comment"] = self.comment
        return out

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "Experiment":
        return cls(
            dataset=BaseConfig.from_json_dict(values["dataset"]),
            model=BaseConfig.from_json_dict(values["model"]),
            trainer=BaseConfig.from_json_dict(values["trainer"]),
            seed=values["seed"],
            comment=values.get("comment"),
        )

    def __eq__(self, other) -> bool:
        return isinstance(other, Experiment) and self.get_key() == other.get_key()

    def __repr__(self) -> str:
        return f"Experiment(comment={self.comment!r}, seed={self.seed}, key={self.get_key()})"
