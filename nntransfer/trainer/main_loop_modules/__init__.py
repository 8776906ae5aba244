"""Main-loop modules: code that plugs into the trainer's batch loop (see ``base`` for the loop and its events).

Built-in modules (names for ``main_loop_modules``): ``NoiseAugmentation``, ``RepresentationMatching``,
``RepresentationMonitor``, ``KnowledgeDistillation``, and ``OutputUnwrapper`` (always added, always last).
Add your own with ``register``.
"""

from nntransfer.trainer.main_loop_modules.base import HOOKS, MainLoopModule, ModuleChain
from nntransfer.trainer.main_loop_modules.knowledge_distillation import KnowledgeDistillation, distillation_loss
from nntransfer.trainer.main_loop_modules.noise_augmentation import NoiseAugmentation, apply_noise, sample_noise_levels
from nntransfer.trainer.main_loop_modules.output_unwrapper import OutputUnwrapper, unwrap_output
from nntransfer.trainer.main_loop_modules.registry import MODULES, available, get, register
from nntransfer.trainer.main_loop_modules.representation_matching import RepresentationMatching, representation_distance
from nntransfer.trainer.main_loop_modules.representation_monitor import RepresentationMonitor

__all__ = [
    "HOOKS",
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
]
