"""Which fields nntransfer's own config classes and mixins declare: the fields nntransfer's built-in
functions read.

nntransfer's data set loader, model builders and trainer rebuild their own config class from the values a
table row hands them (``ImageDatasetConfig.from_dict``, ``ClassificationModelConfig.from_dict``, ``OrbitConfig``,
and for the trainer ``ClassificationTrainerConfig`` with the mixins of its main-loop modules), so they read
exactly the fields those classes declare. A field that only a recipe's subclass declares is hashed, reaches
the function and is read by nothing; the run layer refuses it before training
(``nntransfer.pipeline.validation``). The rule itself is documented on ``BaseConfig``.

"nntransfer's own" is the classes defined in ``nntransfer.configs`` (recipes that ship with nntransfer, in
``nntransfer.recipes``, are recipes like any other).
"""

from __future__ import annotations

import functools
import logging
from typing import FrozenSet, List

from nntransfer.configs.base import BaseConfig
from nntransfer.configs.trainer.mixins import mixin_fields

logger = logging.getLogger(__name__)

#: the package whose classes are nntransfer's own config classes and mixins
LIBRARY_PACKAGE = "nntransfer.configs"


def is_library_class(klass: type) -> bool:
    """Whether ``klass`` is one of nntransfer's own config classes or mixins (defined in ``nntransfer.configs``)."""
    module = getattr(klass, "__module__", "") or ""
    return module == LIBRARY_PACKAGE or module.startswith(LIBRARY_PACKAGE + ".")


@functools.lru_cache(maxsize=None)  # a class's declarations do not change
def declared_fields(klass: type) -> FrozenSet[str]:
    """The fields ``klass`` declares, together with the classes it builds on: for a config class those of its
    default instance (``fn`` included), for a mixin those its ``__init__`` declares (``mixin_fields``). A class
    that cannot be built with its defaults declares, as far as this can tell, nothing (logged at DEBUG)."""
    if issubclass(klass, BaseConfig):
        try:
            return frozenset(klass().field_names())
        except Exception as err:  # a user's module-owner mixin written as a BaseConfig subclass, say
            logger.debug("%s cannot be built with its defaults (%s); reading its declarations as a mixin's",
                         klass.__name__, err)
    try:
        return mixin_fields(klass)
    except Exception as err:
        logger.debug("cannot tell the fields %s declares: %s", klass.__name__, err)
        return frozenset()


@functools.lru_cache(maxsize=None)
def library_fields(cls: type) -> FrozenSet[str]:
    """The fields that nntransfer's own classes in ``cls``'s hierarchy (config classes and mixins) declare,
    ``fn`` included: what a built-in function reads of a config of class ``cls``."""
    names = {"fn"}
    for klass in cls.__mro__:
        if klass is not object and is_library_class(klass):
            names |= declared_fields(klass)
    return frozenset(names)


def library_config_classes() -> List[type]:
    """nntransfer's own config classes (``BaseConfig`` and its subclasses in ``nntransfer.configs``), breadth
    first from ``BaseConfig``."""
    found: List[type] = []
    pending = [BaseConfig]
    while pending:
        klass = pending.pop(0)
        if klass not in found and is_library_class(klass):
            found.append(klass)
            pending.extend(klass.__subclasses__())
    return found
