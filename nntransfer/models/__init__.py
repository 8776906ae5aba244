"""Model builders: the standard vision models as ``core`` + ``readout``, registered by type name.

``classification_model_builder`` is the model function ``ClassificationModelConfig.fn`` names. Add a
model type with ``register("name", options={...})`` on a function ``build(config, input_shape, n_classes)``;
each type's own options (``ClassificationModelConfig.options``) are declared where it is registered, the
``weight_init`` values in ``WEIGHT_INITS``, and ``check_model_config`` checks a config against them.
"""

# Importing the model modules registers their types.
from nntransfer.models import cnn1d, conv1d, group_cnn, lenet, mlp, paper2d, resnet, vgg, vit  # noqa: F401
from nntransfer.models.base import WEIGHT_INITS, CoreReadoutModel
from nntransfer.models.builder import (
    build_model,
    check_model_config,
    classification_model_builder,
    data_shapes,
    input_shape_and_classes,
)
from nntransfer.models.intermediate import IntermediateLayerWrapper
from nntransfer.models.locally_connected import LocallyConnected1d, LocallyConnected2d
from nntransfer.models.registry import MODELS, ModelSpec, get, model_spec, register, registered_types

__all__ = [
    "classification_model_builder",
    "check_model_config",
    "build_model",
    "data_shapes",
    "input_shape_and_classes",
    "CoreReadoutModel",
    "IntermediateLayerWrapper",
    "LocallyConnected1d",
    "LocallyConnected2d",
    "MODELS",
    "ModelSpec",
    "WEIGHT_INITS",
    "register",
    "get",
    "registered_types",
    "model_spec",
]
