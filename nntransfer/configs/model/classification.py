"""`ClassificationModelConfig`: image classification models (owned by the models issue)."""

from nntransfer.configs.model.base import ModelConfig


class ClassificationModelConfig(ModelConfig):
    fn = "nntransfer.models.classification_model_builder"

    def __init__(self, **kwargs):
        self.type = "lenet5"
        super().__init__(**kwargs)
