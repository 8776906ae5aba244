"""`DatasetConfig`: settings every dataset loader reads."""

from nntransfer.configs.base import BaseConfig


class DatasetConfig(BaseConfig):
    """Base of dataset configs; stored in the nnfabrik ``Dataset`` table.

    Fields:
        batch_size: examples per batch for every split.
        valid_size: fraction of the training set held out for validation (seeded split).
        shuffle: shuffle the training set (and the train/validation split).
        num_workers, pin_memory: passed to every ``DataLoader`` (runtime options: not hashed).
        data_dir: folder the data set is read from (a runtime option: not hashed).

    Subclasses may set a different default for any of these before calling ``super().__init__``.

    Data handed over by a previous transfer step is not a field: the tables pass it to the dataset
    function as the separate keyword ``transfer_data``.
    """

    config_name = "dataset"
    table = "Dataset"

    def __init__(self, **kwargs):
        # setdefault: a subclass that sets a different default before calling this keeps it.
        defaults = dict(batch_size=128, valid_size=0.1, shuffle=True, num_workers=0, pin_memory=False, data_dir="./data")
        self.set_defaults(**defaults)
        super().__init__(**kwargs)
