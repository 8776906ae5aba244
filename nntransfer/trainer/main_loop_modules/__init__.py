"""Main-loop modules: code that plugs into the trainer's batch loop (``base`` draws the loop and its events).

Every module file of this package is imported here, so that its ``@register`` runs: a new built-in method
is one file, with no list to edit. A transfer method is one file too (its pure loss function, its module and
its config mixin; see the README's "Writing a transfer method"): ``@register`` names the module, and
``main_loop_modules`` in a trainer config (or the mixin) lists it.

Built-in modules (names for ``main_loop_modules``; each has a config mixin in ``nntransfer.configs.trainer``):
``NoiseAugmentation``, ``RepresentationMatching``, ``RepresentationMonitor``, ``KnowledgeDistillation``,
``RDL``, ``AttentionTransfer``, ``LayerMatching``, ``CKATransfer``, ``ParameterDistance``, ``OrbitLearning``,
``OrbitTransfer``.
"""

import importlib
import pkgutil

from nntransfer.trainer.main_loop_modules.base import (
    HOOKS,
    MODEL,
    NONE,
    OUTPUT,
    OUTPUTS,
    BatchState,
    LoopContext,
    MainLoopModule,
    ModelOutput,
    ModuleChain,
    read_output,
)
from nntransfer.trainer.main_loop_modules.registry import MODULES, available, get, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "HOOKS",
    "NONE",
    "OUTPUTS",
    "MODEL",
    "OUTPUT",
    "BatchState",
    "LoopContext",
    "MainLoopModule",
    "ModelOutput",
    "ModuleChain",
    "read_output",
    "MODULES",
    "register",
    "get",
    "available",
]
