"""The `Source` family: where raw data comes from, and how its progress is reported."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from lakestack.errors import UsageError

FileStatus = Literal["landed", "rejected", "skipped", "refused"]


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What happened to one landing file."""

    name: str
    status: FileStatus
    sha256: str | None = None
    size: int = 0
    rows_in: int = 0
    landed: int = 0
    quarantined: int = 0
    reason: str | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class SourceReport:
    """One source's part of a run. Counts reconcile: rows_in = landed + quarantined."""

    source: str
    files: tuple[FileOutcome, ...] = ()
    duration_s: float = 0.0
    snapshots: dict[str, int] = field(default_factory=dict)

    @property
    def rows_in(self) -> int:
        return sum(f.rows_in for f in self.files)

    @property
    def landed(self) -> int:
        return sum(f.landed for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)

    def count(self, status: FileStatus) -> int:
        return sum(1 for f in self.files if f.status == status)


class IngestObserver(Protocol):
    """Receives progress while a source ingests (the CLI draws progress bars from it)."""

    def source_started(self, source: str, files: int, total_bytes: int) -> None: ...

    def file_finished(self, source: str, outcome: FileOutcome) -> None: ...


class NullObserver:
    def source_started(self, source: str, files: int, total_bytes: int) -> None:
        return None

    def file_finished(self, source: str, outcome: FileOutcome) -> None:
        return None


class Source(ABC):
    """A place raw data comes from. Each kind lives in its own module and registers below."""

    kind: str

    @abstractmethod
    def ingest(self, warehouse: Any, run_id: str, observer: IngestObserver) -> SourceReport:
        """Read what is new since the last committed checkpoint and commit it to Bronze."""


# kind → "module:Class"; imported only when used, so `import lakestack` stays light.
SOURCE_KINDS: dict[str, str] = {
    "files": "lakestack.ingest.files:FileSource",
    "http": "lakestack.ingest.http:HttpSource",
    "kafka": "lakestack.ingest.kafka:KafkaSource",
    "kinesis": "lakestack.ingest.kinesis:KinesisSource",
    "nats": "lakestack.ingest.jetstream:NatsSource",
    "rest": "lakestack.ingest.rest:RestSource",
    "database": "lakestack.ingest.database:DatabaseSource",
}


def source_class(kind: str) -> type[Source]:
    try:
        target = SOURCE_KINDS[kind]
    except KeyError:
        raise UsageError(f"unknown source kind '{kind}' (available: {', '.join(sorted(SOURCE_KINDS))})") from None
    module, _, name = target.partition(":")
    cls: type[Source] = getattr(importlib.import_module(module), name)
    return cls
