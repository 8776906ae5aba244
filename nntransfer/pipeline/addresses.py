"""The one place a store's address becomes a store: ``local:DIR``, ``datajoint:SCHEMA`` or ``SCHEME:LOCATION``
of a backend registered by name (:mod:`nntransfer.pipeline.backends`). Importing this module registers the
built-in ``local`` backend; others are registered by their modules or found through their entry points."""

from __future__ import annotations

from typing import Optional, Tuple, Type, Union

from nntransfer.pipeline.backends import SCHEME, store_backend
from nntransfer.pipeline.local import LocalStore  # noqa: F401  (registers ``local``)
from nntransfer.pipeline.store import Store


def parse_address(address: str) -> Tuple[str, str]:
    """``"SCHEME:LOCATION"`` -> ``(scheme, location)``; a one-line ``ValueError`` for an address without a
    scheme, an unknown scheme (with the closest one) or an empty location."""
    scheme, colon, location = str(address).partition(":")
    if not colon or not SCHEME.fullmatch(scheme):
        raise ValueError(f"the store address {address!r} is not SCHEME:LOCATION (e.g. local:./nntransfer_work or datajoint:lab)")
    backend = store_backend(scheme)
    if not location.strip():
        raise ValueError(f"the store address {address!r} names no location; write {scheme}:{backend.location_help}")
    return scheme, location


def open_store(address: Union[str, Store], create: bool = True, read_only: bool = False) -> Store:
    """The store at ``address`` (a Store is returned as it is). ``create=False`` is for reading results: a
    store that does not exist is then a one-line error instead of an empty place to write to.
    ``read_only`` (implies ``create=False``): for commands that never write (``Store.open_for_reading``)."""
    if not isinstance(address, str):
        return address
    scheme, location = parse_address(address)
    backend = store_backend(scheme)
    store = backend.open_for_reading(location) if read_only else backend.open(location, create=create)
    store.location = store.location or location
    return store


def existing_store(address: str) -> Optional[Store]:
    """The store at ``address`` to read finished steps from, or None where nothing was stored yet; nothing
    is created (what a dry run and a fast dev run read)."""
    scheme, location = parse_address(address)
    return open_store(address, create=False) if store_backend(scheme).exists(location) else None




def backend_of(address: str) -> Type[Store]:
    """The Store class of the backend ``address`` names (the address checked as :func:`parse_address` does)."""
    return store_backend(parse_address(address)[0])
