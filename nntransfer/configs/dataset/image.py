"""`ImageDatasetConfig`: image classification data sets (owned by the datasets issue)."""

from nntransfer.configs.dataset.base import DatasetConfig


class ImageDatasetConfig(DatasetConfig):
    fn = "nntransfer.dataset.img_dataset_loader"

    def __init__(self, **kwargs):
        self.dataset_cls = "Digits"
        self.input_size = 8
        super().__init__(**kwargs)
