from nntransfer.configs.model.base import ModelConfig
from nntransfer.configs.model.classification import ClassificationModelConfig

__all__ = ["ModelConfig", "ClassificationModelConfig"]
