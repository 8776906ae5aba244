"""Main-loop modules: code that plugs into the trainer's batch loop (see ``base`` for the loop and its events).

Built-in modules (names for ``main_loop_modules``; each has a config mixin in ``nntransfer.configs.trainer.mixins``):

- ``NoiseAugmentation``: Gaussian noise on the training inputs.
- ``RepresentationMatching``: match the representations of clean and noisy inputs.
- ``RepresentationMonitor``: log statistics of intermediate representations.
- ``KnowledgeDistillation``: distil a teacher's softened logits (the step's teacher online, the initial
  model, or the logits handed over by the previous step).
- ``RDL``: representational distance learning (match the teacher's dissimilarity matrices).
- ``AttentionTransfer``: match the teacher's spatial attention maps.
- ``LayerMatching``: match the teacher's layers or logits directly (L2 or cosine).
- ``ParameterDistance``: L2-SP or EWC towards the weights the step starts from.
- ``OrbitLearning``, ``OrbitTransfer``: orbit transfer (mixins in ``nntransfer.configs.trainer.orbit``): learn
  a group of transformations under which the teacher is equivariant, then train the student on its orbits.
- ``OutputUnwrapper``: always added, always last.

Add your own with ``register``.
"""

from nntransfer.trainer.main_loop_modules.attention_transfer import (
    AttentionTransfer,
    attention_distance,
    attention_map,
    attention_transfer_loss,
)
from nntransfer.trainer.main_loop_modules.base import (
    HOOKS,
    OUTPUT,
    EpochSums,
    MainLoopModule,
    ModuleChain,
    layer_output,
)
from nntransfer.trainer.main_loop_modules.knowledge_distillation import KnowledgeDistillation, distillation_loss
from nntransfer.trainer.main_loop_modules.layer_matching import (
    LayerMatching,
    TeacherLayerModule,
    layer_matching_loss,
    model_logits,
)
from nntransfer.trainer.main_loop_modules.noise_augmentation import NoiseAugmentation, apply_noise, sample_noise_levels
from nntransfer.trainer.main_loop_modules.orbit import (
    OrbitLearning,
    OrbitTransfer,
    equivariance_loss,
    identity_loss,
    invertibility_loss,
)
from nntransfer.trainer.main_loop_modules.output_unwrapper import OutputUnwrapper, unwrap_output
from nntransfer.trainer.main_loop_modules.parameter_distance import ParameterDistance, ewc_penalty, l2sp_penalty
from nntransfer.trainer.main_loop_modules.rdl import RDL, rdl_loss, representational_dissimilarity
from nntransfer.trainer.main_loop_modules.registry import MODULES, available, get, register
from nntransfer.trainer.main_loop_modules.representation_matching import RepresentationMatching, representation_distance
from nntransfer.trainer.main_loop_modules.representation_monitor import RepresentationMonitor

__all__ = [
    "HOOKS",
    "EpochSums",
    "OrbitLearning",
    "OrbitTransfer",
    "equivariance_loss",
    "identity_loss",
    "invertibility_loss",
    "OUTPUT",
    "layer_output",
    "MainLoopModule",
    "ModuleChain",
    "MODULES",
    "register",
    "get",
    "available",
    "OutputUnwrapper",
    "unwrap_output",
    "NoiseAugmentation",
    "apply_noise",
    "sample_noise_levels",
    "RepresentationMatching",
    "representation_distance",
    "RepresentationMonitor",
    "KnowledgeDistillation",
    "distillation_loss",
    "TeacherLayerModule",
    "model_logits",
    "RDL",
    "representational_dissimilarity",
    "rdl_loss",
    "AttentionTransfer",
    "attention_map",
    "attention_distance",
    "attention_transfer_loss",
    "LayerMatching",
    "layer_matching_loss",
    "ParameterDistance",
    "l2sp_penalty",
    "ewc_penalty",
]
