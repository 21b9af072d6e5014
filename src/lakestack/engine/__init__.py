"""SQL engines over lakehouse tables: DuckDB (embedded default); Spark joins later."""

from __future__ import annotations
