"""The ``nntransfer`` command (``main.main``)."""
