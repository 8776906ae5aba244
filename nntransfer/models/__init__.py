"""Model builders: the standard vision models as ``core`` + ``readout``, registered by type name.

``classification_model_builder`` is the model function ``ClassificationModelConfig.fn`` names. Add a
model type with ``register("name")`` on a function ``build(config, input_shape, n_classes)``.
"""

# Importing the model modules registers their types.
from nntransfer.models import lenet, mlp, resnet, vgg  # noqa: F401
from nntransfer.models.base import CoreReadoutModel
from nntransfer.models.builder import build_model, classification_model_builder, data_shapes
from nntransfer.models.intermediate import IntermediateLayerWrapper
from nntransfer.models.locally_connected import LocallyConnected1d, LocallyConnected2d
from nntransfer.models.registry import get, register, registered_types

__all__ = [
    "classification_model_builder",
    "build_model",
    "data_shapes",
    "CoreReadoutModel",
    "IntermediateLayerWrapper",
    "LocallyConnected1d",
    "LocallyConnected2d",
    "register",
    "get",
    "registered_types",
]
