"""Where ``add_to_table`` of a config or an experiment writes: the DataJoint tables, which install their writer
when ``nntransfer.tables`` is imported. Configs sit below the tables and never import them."""

from __future__ import annotations

from typing import Any, Dict, Optional, Protocol


class TableWriter(Protocol):
    """What the tables provide to ``add_to_table``."""

    def add_config(self, config: Any, skip_duplicates: bool = True) -> Dict[str, str]:
        """Insert one config into its table (``config.table``); returns its key."""

    def add_experiment(self, experiment: Any) -> Dict[str, Any]:
        """Insert an experiment's three configs and its seed; returns ``experiment.get_key()``."""


_WRITER: Optional[TableWriter] = None


def install_table_writer(writer: TableWriter) -> None:
    """Make ``writer`` the target of every ``add_to_table`` (``nntransfer.tables`` calls this on import)."""
    global _WRITER
    _WRITER = writer


def table_writer() -> TableWriter:
    """The installed writer; a one-line ``RuntimeError`` saying what to import when there is none."""
    if _WRITER is None:
        raise RuntimeError(
            "add_to_table writes to the DataJoint tables: import nntransfer.tables first "
            "(the configured schema is activated on first use, or call nntransfer.tables.activate(NAME))"
        )
    return _WRITER
