"""Fixes to pyiceberg's behaviour that lakestack depends on, applied once when a catalog is opened.

`Transaction.table_metadata` (pyiceberg 0.10 to 0.12) replays the staged updates onto the table's
metadata and deep-copies the result on every read, and one append reads it about fifteen times. The
copy grows with the table's snapshot history, so a stream table's commit cost grew with every
commit (0.3 s at 300 snapshots, 1.2 s at 800: a source committing every second falls behind). The
fix caches the result per (base metadata, staged updates): both are immutable (frozen pydantic
models, a tuple rebound on every stage), so an identity check is a complete cache key. This is the
change proposed upstream (apache/iceberg-python PR 3302, carried on as PR 3784); drop this module
once the pinned pyiceberg has it.
"""

from __future__ import annotations

from typing import Any

_applied = False


def apply() -> None:
    """Install the fixes (idempotent)."""
    global _applied
    if _applied:
        return
    from pyiceberg.table import Transaction
    from pyiceberg.table.update import update_table_metadata

    def table_metadata(self: Any) -> Any:
        base, updates = self._table.metadata, self._updates
        cached = self.__dict__.get("_lakestack_metadata")
        if cached is not None and cached[0] is base and cached[1] is updates:
            return cached[2]
        metadata = update_table_metadata(base, updates)
        self.__dict__["_lakestack_metadata"] = (base, updates, metadata)
        return metadata

    Transaction.table_metadata = property(table_metadata)  # type: ignore[method-assign,assignment]
    _applied = True
