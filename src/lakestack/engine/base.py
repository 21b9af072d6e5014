"""The `Engine` family: where SQL over lakehouse tables runs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class Engine(ABC):
    """Runs SQL over Iceberg tables that lakestack plans; each engine declares what it can do."""

    name: str
    supports_delete_files: bool = False

    @abstractmethod
    def register(self, name: str, table: Any) -> None:
        """Make an Iceberg table queryable under `name` (e.g. `bronze_orders`)."""

    @abstractmethod
    def sql(self, query: str) -> Any:
        """Run one query and return an Arrow table."""

    @abstractmethod
    def close(self) -> None: ...
