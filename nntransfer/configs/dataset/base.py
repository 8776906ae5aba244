"""`DatasetConfig`: settings every dataset loader reads."""

from nntransfer.configs.base import BaseConfig


class DatasetConfig(BaseConfig):
    """Base of dataset configs; stored in the nnfabrik ``Dataset`` table.

    Fields:
        batch_size: examples per batch for every split.
        valid_size: fraction of the training set held out for validation (seeded split).
        shuffle: shuffle the training set (and the train/validation split).
        num_workers, pin_memory: passed to every ``DataLoader``.
        data_dir: folder the data set is read from.

    Data handed over by a previous transfer step is not a field: the tables pass it to the dataset
    function as the separate keyword ``transfer_data``.
    """

    config_name = "dataset"
    table = "Dataset"

    def __init__(self, **kwargs):
        self.batch_size = 128
        self.valid_size = 0.1
        self.shuffle = True
        self.num_workers = 0
        self.pin_memory = False
        self.data_dir = "./data"
        super().__init__(**kwargs)
