"""Every name a recipe uses is checked before anything is written or trained.

For each config: its ``fn`` must import, and the function may carry a checker, ``fn.check_config(values)``
(``values``: the config's fields and runtime options), defined beside the implementation: the data set
loader checks ``dataset_cls`` against the data set registry, the model builder the model type, the
trainer the optimizer, losses, scheduler, cycler and main-loop modules. A problem is one ``ValueError``
line that names the config class, the field and what exists.
"""

from __future__ import annotations

from typing import Set

from nntransfer.configs.base import BaseConfig
from nntransfer.configs.codec import make_hash
from nntransfer.pipeline.step import resolve_function
from nntransfer.recipes.loading import Recipe


def check_config(config: BaseConfig) -> None:
    """Raise ``ValueError`` (one line) if ``config``'s function or a name it refers to does not exist."""
    name = type(config).__name__
    if not config.fn:
        raise ValueError(f"{name} names no function: set the class attribute fn = 'package.module.function'")
    try:
        function = resolve_function(config.fn, config.config_name)
    except ValueError as err:
        raise ValueError(f"{name}.fn: {err}") from None
    checker = getattr(function, "check_config", None)
    if checker is not None:
        try:
            checker({**config.to_dict(), **config.runtime_options()})
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None


def validate_recipe(recipe: Recipe) -> None:
    """Check every config of every step of ``recipe`` (each distinct config once)."""
    if not recipe.transfer_experiments:
        raise ValueError(f"recipe {recipe.name} defines no experiments")
    seen: Set[str] = set()
    for chain in recipe.transfer_experiments.values():
        for step in chain:
            for config in step.configs.values():
                marker = type(config).__qualname__ + make_hash(config.to_dict())
                if marker not in seen:
                    check_config(config)
                    seen.add(marker)
