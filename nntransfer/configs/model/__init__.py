from nntransfer.configs.model.base import ModelConfig
from nntransfer.configs.model.classification import ClassificationModelConfig
from nntransfer.configs.model.orbit import OrbitConfig

__all__ = ["ModelConfig", "ClassificationModelConfig", "OrbitConfig"]
