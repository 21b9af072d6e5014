"""What a job tells listeners about the tables it read and wrote: snapshot, rows and columns, and
where a source reads from (a URL with no credentials in it).

Every `DatasetIO` a job reports carries its columns, so an OpenLineage event has a schema facet
for each input and output, and column lineage can resolve `SELECT *` over what a job read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit

from lakestack.config import SecretRef, SourceConfig
from lakestack.pipeline.events import DatasetIO

if TYPE_CHECKING:
    from lakestack.pipeline.project import Project

Columns = tuple[tuple[str, str], ...]

# Arrow type names as Iceberg spells them (what `table.schema()` gives for committed tables)
_ARROW_NAMES = {
    "int8": "int",
    "int16": "int",
    "int32": "int",
    "int64": "long",
    "float": "float",
    "halffloat": "float",
    "double": "double",
    "bool": "boolean",
    "string": "string",
    "large_string": "string",
    "string_view": "string",
    "binary": "binary",
    "large_binary": "binary",
    "date32[day]": "date",
}


def table_columns(table: Any) -> Columns:
    """An Iceberg table's current columns as (name, type)."""
    return schema_columns(table.schema())


def schema_columns(schema: Any) -> Columns:
    """An Iceberg schema's columns as (name, type)."""
    return tuple((f.name, str(f.field_type)) for f in schema.fields)


def arrow_columns(schema: Any) -> Columns:
    """A pyarrow schema's columns as (name, type), types named as Iceberg names them where they map."""
    return tuple((f.name, _arrow_type(f.type)) for f in schema)


def _arrow_type(arrow: Any) -> str:
    text = str(arrow)
    if text in _ARROW_NAMES:
        return _ARROW_NAMES[text]
    if text.startswith("timestamp["):
        return "timestamptz" if getattr(arrow, "tz", None) else "timestamp"
    if text.startswith("decimal"):
        return f"decimal({arrow.precision}, {arrow.scale})"
    return text


def table_io(
    warehouse: Any,
    identifier: str,
    role: Literal["input", "output"],
    snapshot_id: int | None = None,
    **counts: int | None,
) -> DatasetIO:
    """A table as a job's input or output: its columns (when it exists) and the given snapshot and counts."""
    columns = table_columns(warehouse.load(identifier)) if warehouse.exists(identifier) else ()
    return DatasetIO(identifier, role, snapshot_id, columns=columns, **counts)  # type: ignore[arg-type]


def source_url(project: Project, name: str, collector: str | None = None) -> str | None:
    """Where a source reads from, as a URL without credentials: `file://` + the landing folder,
    `kafka://broker:port/topic` (the first topic), `kinesis://region/stream`, `nats://host:port/subject`,
    `http://host:port/v1/streams/<source>/records` (with `collector`, the served base URL).

    None when the location is itself a secret (`{secret: NAME}`) or not known (a collector not served)."""
    urls = source_urls(project, name, collector)
    return urls[0] if urls else None


def source_urls(project: Project, name: str, collector: str | None = None) -> list[str]:
    """Every location a source reads from (one per Kafka topic); see `source_url`."""
    cfg: SourceConfig = project.config.sources[name]
    if cfg.kind == "database":  # the URL is a secret: the table (or query) by the source's name
        return [f"database://{quote(name)}/{quote(cfg.database.table or 'query') if cfg.database else 'query'}"]
    if cfg.kind == "rest" and cfg.rest is not None:  # the API's base URL (credentials go in headers)
        return [cfg.rest.base_url.rstrip("/")]
    if not cfg.is_stream:
        if cfg.landing and cfg.landing.startswith(("s3://", "sftp://")):  # its URL as written
            return [cfg.landing.rstrip("/")]
        return [project.landing(name).as_uri()]
    if cfg.kind == "http":
        return [f"{collector.rstrip('/')}/v1/streams/{quote(name)}/records"] if collector else []
    if cfg.kind == "kafka" and cfg.kafka is not None:
        broker = _host(cfg.kafka.bootstrap_servers)
        return [f"kafka://{broker}/{quote(topic, safe='')}" for topic in cfg.kafka.topics] if broker else []
    if cfg.kind == "kinesis" and cfg.kinesis is not None:
        return [f"kinesis://{cfg.kinesis.region}/{quote(cfg.kinesis.stream_name, safe='')}"]
    if cfg.kind == "nats" and cfg.nats is not None:
        server = _host(cfg.nats.url)
        subject = cfg.nats.subject or cfg.nats.stream
        return [f"nats://{server}/{quote(subject, safe='.*>')}"] if server else []
    return []


def _host(servers: str | SecretRef) -> str | None:
    """`host:port` of the first server of a list (`a:9092,b:9092`, `nats://user:pw@a:4222`): no
    scheme, no user or password or token. None for a secret reference: its value is never shown."""
    if isinstance(servers, SecretRef):
        return None
    first = servers.split(",")[0].strip().split("://", 1)[-1]  # a scheme may be SASL_SSL: not a URL scheme
    parts = urlsplit(f"//{first}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number: nothing safe to show
        return None
    if not host:
        return None
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host
