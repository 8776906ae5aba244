"""What a config remembers while it is being built, shared by the core (``base``) and the original idiom
(``original``): the state object and the wrapper that every config class's ``__init__`` gets.

The state lives in the instance (``config.__dict__[STATE]``) from the start of the outermost ``__init__``
until it returns, never in module or class attributes: what a config accepts depends on its class and the
call, not on which configs the process built before.
"""

from __future__ import annotations

import contextvars
import functools
from typing import Any, Callable, Dict, Optional, Set, Tuple

#: the key of the construction state in a config's ``__dict__``
STATE = "_construction"
#: names that are set like fields but are not fields (not hashed, not in ``to_dict``)
NOT_FIELDS = ("comment",)
MISSING = object()

#: (values are today's form, keep keys that are no field) for the config ``from_dict`` is building
FROM_DICT: contextvars.ContextVar[Optional[Tuple[bool, bool]]] = contextvars.ContextVar("_from_dict", default=None)


class Construction:
    """What one config remembers while it is being built (removed when the outermost ``__init__`` returns)."""

    def __init__(self, canonical: bool = False, carry_unknown: bool = False):
        self.phase = "defaults"  # -> "base" (BaseConfig.__init__ runs) -> "after" (code after super().__init__)
        self.canonical = canonical  # from_dict: values are today's form
        self.carry_unknown = carry_unknown  # from_dict(carry_unknown=True): keep keys that are no field
        self.from_kwargs: Set[str] = set()  # fields a keyword set: no class overrides them
        self.loaded_only: Set[str] = set()  # names load_kwargs set that no class has declared (yet)
        self.class_defaults: Set[str] = set()  # fields whose value is still a set_defaults default (any assignment wins)
        self.defaults: Dict[str, Any] = {}  # a class's default of a field a keyword set first (type check)
        self.alias_given: Set[str] = set()  # original names given (by a keyword or an outer class)
        self.alias_owned: Dict[str, str] = {}  # field -> the original name that set it
        self.memory: Dict[str, Any] = {}  # converters' memory
        self.warned: Set[str] = set()
        self.pending: Dict[str, Any] = {}  # keywords no class had declared when BaseConfig.__init__ ran


def constructing(init: Callable) -> Callable:
    """Wrap a config class's ``__init__``: the outermost call creates the construction state and, when it
    returns, checks the keywords (``_end_construction``)."""

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if STATE in self.__dict__:  # an inner class's __init__ (super().__init__ chain)
            init(self, *args, **kwargs)
            return
        spec = FROM_DICT.get()
        if spec is not None:
            FROM_DICT.set(None)  # configs built inside this one are built normally
        state = Construction(*(spec or ()))
        self.__dict__[STATE] = state
        try:
            init(self, *args, **kwargs)
            self._end_construction(state)
        finally:
            self.__dict__.pop(STATE, None)

    __init__._nntransfer_constructing = True
    return __init__
