"""What the model builder and the trainer need to know about the data, returned with the loaders.

``img_dataset_loader`` returns a ``DataLoaders``: the usual ``{"train": {task: DataLoader}, ...}`` dict
(so ``dataloaders["train"][TASK_KEY]`` works as before) plus ``dataloaders.info``, a ``DataInfo`` with the
number of classes, the input shape and the normalisation. A plain dict still works everywhere; readers
then infer what they can from a batch (see ``nntransfer.models.builder.data_shapes``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from nntransfer.defaults import TASK_KEY


def _float_tuple(values: Optional[Any]) -> Optional[Tuple[float, ...]]:
    return None if values is None else tuple(float(v) for v in values)


@dataclass(frozen=True)
class DataInfo:
    """Facts about a data set that do not depend on the split.

    Attributes:
        n_classes: number of classes (after filtering/relabelling): the model's number of logits.
        input_shape: the shape of one input as the loaders yield it: ``(channels, height, width)`` for
            images, the real shape of array data (e.g. ``(1, 40)`` for MNIST-1D signals).
        mean, std: per-channel normalisation applied to the inputs (None: inputs are not normalised),
            so that a trainer can add noise in pixel units.
        task_keys: the task keys of the loaders (``dataloaders[split][task_key]``).
    """

    n_classes: int
    input_shape: Tuple[int, ...]
    mean: Optional[Tuple[float, ...]] = None
    std: Optional[Tuple[float, ...]] = None
    task_keys: Tuple[str, ...] = (TASK_KEY,)

    def __post_init__(self) -> None:
        # Normalise lists (e.g. read back from JSON) to tuples, so equal infos compare and hash equal.
        object.__setattr__(self, "n_classes", int(self.n_classes))
        object.__setattr__(self, "input_shape", tuple(int(n) for n in self.input_shape))
        object.__setattr__(self, "mean", _float_tuple(self.mean))
        object.__setattr__(self, "std", _float_tuple(self.std))
        object.__setattr__(self, "task_keys", tuple(str(k) for k in self.task_keys))
        if self.n_classes < 1:
            raise ValueError(f"DataInfo.n_classes must be positive, got {self.n_classes}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("DataInfo.mean and DataInfo.std are set together (or both None)")

    def to_dict(self) -> Dict[str, Any]:
        """Plain values (tuples), e.g. to store or log."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "DataInfo":
        """Inverse of ``to_dict`` (lists are accepted for tuples); unknown keys are an error."""
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"DataInfo has no field(s) {unknown}; it has {list(cls.__dataclass_fields__)}")
        return cls(**values)


class DataLoaders(dict):
    """``{split: {task_key: DataLoader}}`` (nested splits such as ``c_test`` too) with ``info``.

    A plain ``dict`` subclass, so everything that indexes, iterates or pickles the loaders keeps working;
    note that ``dict(dataloaders)`` or ``{**dataloaders}`` drops ``info``."""

    def __init__(self, loaders: Mapping[str, Any], info: DataInfo, train_ids: Optional[Any] = None) -> None:
        super().__init__(loaders)
        self.info = info
        #: the training examples' indices in the data set's own order (row i of handed-on data belongs to
        #: example ``train_ids[i]``), so a step can check that handed-on data belongs to its examples
        self.train_ids = train_ids

    def __repr__(self) -> str:
        return f"DataLoaders(splits={list(self)}, info={self.info!r})"


def normalization(info: Optional[DataInfo], mean: Sequence[float] = (), std: Sequence[float] = ()
                  ) -> Tuple[Optional[Tuple[float, ...]], Optional[Tuple[float, ...]]]:
    """The per-channel ``(mean, std)`` the inputs were normalised with (pixel = input * std + mean): ``mean`` and
    ``std`` when given (a trainer config's ``input_mean``/``input_std``), else the data set's ``info``; ``(None,
    None)`` when neither says (the inputs are taken as pixels)."""
    if len(mean):
        return _float_tuple(mean), _float_tuple(std)
    if info is not None and info.mean is not None:
        return info.mean, info.std
    return None, None


def data_info(dataloaders: Any) -> Optional[DataInfo]:
    """The ``DataInfo`` that came with ``dataloaders`` (None for a plain dict)."""
    return dataloaders.info if isinstance(dataloaders, DataLoaders) else None
