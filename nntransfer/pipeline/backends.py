"""Store backends by name: the registry a backend joins with ``register_store``, and the ``--store`` options.

A store is named by one address, ``SCHEME:LOCATION``: ``local:./nntransfer_work`` (a work folder),
``datajoint:lab`` (the tables of a schema), or the scheme of a backend from another package. A backend is
one :class:`~nntransfer.pipeline.store.Store` subclass registered by name::

    from nntransfer.pipeline.backends import register_store
    from nntransfer.pipeline.store import Store

    @register_store("jsonfolder")
    class JsonFolderStore(Store):
        ...

Registered backends are found by name; an installed package can also declare its backend in the
``nntransfer.stores`` entry-point group (``jsonfolder = my_package.stores:JsonFolderStore``), and it is
imported the first time its scheme is used. nntransfer's own ``datajoint`` backend is found that way, so the
pipeline never imports the tables (nor DataJoint) for a local run. :mod:`nntransfer.pipeline.addresses`
turns an address into a store (and registers the built-in ``local`` backend); this module imports no store.
"""

from __future__ import annotations

import argparse
import re
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Optional, Type, TypeVar, Union

from nntransfer.defaults import DEFAULT_WORKDIR
from nntransfer.registry import Registry, did_you_mean

if TYPE_CHECKING:
    from nntransfer.pipeline.store import Store

#: the entry-point group installed packages declare their store backends in
ENTRY_POINT_GROUP = "nntransfer.stores"
#: the store of every command and of ``nntransfer.run`` when none is named
DEFAULT_STORE = f"local:{DEFAULT_WORKDIR}"
#: what a scheme looks like: a letter, then letters, digits, ``_``, ``-``, ``+`` or ``.``
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9_+.-]*")

STORES: Registry = Registry("store backend", help=f"register one with @register_store(name) or the {ENTRY_POINT_GROUP!r} entry points")
S = TypeVar("S", bound=type)


def register_store(scheme: str) -> Callable[[S], S]:
    """Class decorator: register a :class:`~nntransfer.pipeline.store.Store` subclass as the backend of the
    addresses ``scheme:LOCATION``. The class gets ``scheme`` as its attribute."""
    if not isinstance(scheme, str) or not SCHEME.fullmatch(scheme):
        raise ValueError(f"a store scheme is a letter followed by letters, digits, '_', '-', '+' or '.', got {scheme!r}")

    def register(cls: S) -> S:
        from nntransfer.pipeline.store import Store

        if not (isinstance(cls, type) and issubclass(cls, Store)):
            raise TypeError(f"@register_store({scheme!r}) needs a Store subclass, got {cls!r}")
        cls.scheme = scheme
        STORES.register(scheme, cls)
        return cls

    return register


def _entry_points() -> Dict[str, metadata.EntryPoint]:
    """The ``nntransfer.stores`` entry points of the installed packages, by name. Every copy of a package's
    metadata is read (``entry_points()`` keeps the first, which may be a stale ``*.egg-info`` of a source
    checkout on ``sys.path``); the first entry of a name wins."""
    found: Dict[str, metadata.EntryPoint] = {}
    for distribution in metadata.distributions():
        for entry in distribution.entry_points:
            if entry.group == ENTRY_POINT_GROUP:
                found.setdefault(entry.name, entry)
    return found


def store_backend(scheme: str) -> Type["Store"]:
    """The Store class of ``scheme``: registered, else loaded from the ``nntransfer.stores`` entry point of
    that name. ``ValueError`` naming the closest scheme for an unknown one."""
    if scheme not in STORES:
        entry = _entry_points().get(scheme)
        if entry is not None:
            try:
                loaded = entry.load()  # importing the module registers its backend
            except ModuleNotFoundError as err:
                if not entry.extras:
                    raise ValueError(f"the store backend {scheme!r} ({entry.value}) cannot be imported: {type(err).__name__}: {err}") from None
                extras = ",".join(entry.extras)  # its packages come with an extra of the distribution
                raise ValueError(f"the {scheme} store needs the packages of the extra '{extras}': "
                                 f"pip install \"{entry.dist.name if entry.dist else 'nntransfer'}[{extras}]\" ({err})") from None  # fmt: skip
            except Exception as err:
                raise ValueError(f"the store backend {scheme!r} ({entry.value}) cannot be imported: {type(err).__name__}: {err}") from None
            if scheme not in STORES:
                register_store(scheme)(loaded)
    if scheme in STORES:
        return STORES.get(scheme)
    names = sorted(set(STORES.available()) | set(_entry_points()))
    raise ValueError(f"unknown store backend {scheme!r}{did_you_mean(scheme, names)} (available: {', '.join(names)}); "
                     f"a backend is a Store subclass registered with @register_store(name) or in the {ENTRY_POINT_GROUP!r} entry points")


def store_address(
    store: Optional[Union[str, "Store"]] = None,
    workdir: Optional[Union[str, Path]] = None,
    schema: Optional[str] = None,
    default: Optional[str] = DEFAULT_STORE,
) -> Optional[Union[str, "Store"]]:
    """The address ``store`` (or the Store itself), or the one its shortcuts make: ``workdir`` is
    ``local:WORKDIR``, ``schema`` is ``datajoint:SCHEMA``; ``default`` when none is given. Naming more than
    one is a ``ValueError``."""
    given = [value for value in (
        store,
        None if workdir is None else f"local:{workdir}",
        None if schema is None else f"datajoint:{schema}",
    ) if value is not None]  # fmt: skip
    if len(given) > 1:
        names = ", ".join(value if isinstance(value, str) else value.where for value in given)
        raise ValueError(f"name one store, not {len(given)} ({names}): a store address, a work folder or a schema")
    return given[0] if given else default


def add_store_arguments(parser: argparse.ArgumentParser, what: str = "read", required: bool = False) -> None:
    """``--store ADDRESS`` and its shortcuts ``--workdir DIR`` (``local:DIR``) and ``--schema NAME``
    (``datajoint:NAME``), one of them at most (``required``: exactly one); :func:`store_address` reads them."""
    where = parser.add_mutually_exclusive_group(required=required)
    default = "" if required else f" (default {DEFAULT_STORE})"
    where.add_argument("--store", metavar="ADDRESS",
                       help=f"{what} the store at this address: local:DIR, datajoint:SCHEMA or SCHEME:LOCATION of a registered backend{default}")
    where.add_argument("--workdir", metavar="DIR", help="the same as --store local:DIR")
    where.add_argument("--schema", metavar="NAME", help="the same as --store datajoint:NAME")
