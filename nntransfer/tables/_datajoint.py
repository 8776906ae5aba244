"""DataJoint, imported for this package without the libraries it imports for what nntransfer never does.

Importing DataJoint 0.14 imports matplotlib's ``pyplot`` (schema diagrams), ``minio`` (S3 stores) and
``deepdiff`` (checking tripartite ``make`` methods) at once: about half of what it takes here
(``bench/startup.py``: 1.65 s plain, 0.86 s as imported below), paid by every command on the tables,
``status`` included. While DataJoint loads, each
of them is a stand-in that imports the real module on its first attribute access (DataJoint reads them only
inside its functions), so diagrams, S3 stores and ``make`` checks still work, and pay then. The stand-ins
live only in DataJoint's own modules: once it has loaded, ``import matplotlib.pyplot`` anywhere imports the
real module as usual. A process that has imported DataJoint already keeps it as it is.

Every module of this package imports DataJoint as ``from nntransfer.tables._datajoint import dj``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import types

#: what DataJoint imports when it is imported but uses only inside functions nntransfer does not call
DEFERRED = ("matplotlib", "matplotlib.pyplot", "minio", "deepdiff")


class _ImportedOnFirstUse(types.ModuleType):
    """Stands in for a module; the first attribute read imports the real one and reads from it."""

    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):  # the import system's questions (__path__, __file__, ...): no module behind
            raise AttributeError(attribute)
        submodule = sys.modules.get(f"{self.__name__}.{attribute}")
        if isinstance(submodule, _ImportedOnFirstUse):  # ``from matplotlib import pyplot`` while DataJoint loads
            return submodule
        return getattr(importlib.import_module(self.__name__), attribute)


def _installed(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it (nor, for ``a.b``, its package)."""
    package, _, _ = name.partition(".")
    return importlib.util.find_spec(package) is not None


def _import_datajoint() -> types.ModuleType:
    if "datajoint" in sys.modules:
        return sys.modules["datajoint"]
    # a missing library stays missing: DataJoint reacts as it would (no diagrams without matplotlib)
    standing_in = [name for name in DEFERRED if name not in sys.modules and _installed(name)]
    for name in standing_in:
        sys.modules[name] = _ImportedOnFirstUse(name)
    datajoint_logger = logging.getLogger("datajoint")
    propagate = datajoint_logger.propagate
    datajoint_logger.propagate = False  # what it logs while it loads (config file, environment) stays silent
    try:
        import datajoint
    finally:
        datajoint_logger.propagate = propagate
        for name in standing_in:
            if isinstance(sys.modules.get(name), _ImportedOnFirstUse):
                del sys.modules[name]
    return datajoint


dj = _import_datajoint()
