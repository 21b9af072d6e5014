"""The project file, `lakestack.yaml`, and its environments.

A project is a folder with `lakestack.yaml` at its root::

    name: northwind
    default_environment: dev
    environments:
      dev:  {warehouse: ./warehouse, catalog: {type: sql, uri: "sqlite:///.lakestack/catalog.db"}}
      prod: {warehouse: "s3://lake/wh", catalog: {type: sql, uri: {secret: CATALOG_URL}}, engine: spark}
    sources:
      orders: {kind: files, landing: landing/orders, contract: orders}
    datasets: {}

Secrets are referenced by name (`{secret: NAME}`) and resolved only when a connection is opened;
a resolved value and its parts are redacted from every error, log record and JSON output
(`lakestack._secrets`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from lakestack._secrets import remember
from lakestack._yaml import MAX_PROJECT_BYTES, load_yaml, pydantic_problem
from lakestack.errors import ConfigError, Location

PROJECT_FILE = "lakestack.yaml"
LAYERS = ("bronze", "silver", "gold")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SecretRef(Frozen):
    """A secret named, never written: `{secret: NAME}`; resolved from the environment."""

    secret: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]

    def resolve(self) -> str:
        value = os.environ.get(self.secret)
        if value is None:
            raise ConfigError(f"secret '{self.secret}' is not set (expected an environment variable of that name)")
        remember(value)  # from now on redacted from every message, log record and JSON output
        return value

    def __str__(self) -> str:
        return f"<secret {self.secret}>"


def reveal(value: str | SecretRef | None) -> str | None:
    """The plain value of a setting that may be a secret reference. Never log the result."""
    return value.resolve() if isinstance(value, SecretRef) else value


class CatalogConfig(Frozen):
    type: Literal["sql", "rest", "glue"] = "sql"
    uri: str | SecretRef | None = None
    properties: dict[str, str | SecretRef] = {}


class OpenLineageConfig(Frozen):
    """Where OpenLineage run events go (`pipeline/openlineage.py`): NDJSON under the warehouse by default."""

    transport: Literal["file", "http", "console", "none"] = "file"
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = None  # http: POST {url}/api/v1/lineage
    api_key_secret: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None  # env var name
    namespace: Annotated[str, Field(pattern=r"^[A-Za-z0-9:;=/@+._-]{1,200}$")] | None = None  # job namespace
    timeout: Annotated[float, Field(gt=0, le=120)] = 5.0  # seconds per HTTP attempt
    retries: Annotated[int, Field(ge=0, le=10)] = 3  # HTTP attempts after the first, with backoff
    spool_max_events: Annotated[int, Field(ge=0, le=10_000_000)] = 10_000  # undelivered events kept on disk
    queue_max_events: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000  # events waiting for the sender thread

    @model_validator(mode="after")
    def _url_for_http(self) -> OpenLineageConfig:
        if self.transport == "http" and self.url is None:
            raise ValueError("the http transport needs 'url' (the lineage server, e.g. http://marquez:5000)")
        return self


class EnvironmentConfig(Frozen):
    warehouse: str = "./warehouse"
    catalog: CatalogConfig = CatalogConfig()
    engine: Literal["duckdb", "spark"] = "duckdb"
    description: str | None = None
    openlineage: OpenLineageConfig = OpenLineageConfig()


class StreamConfig(Frozen):
    """Micro-batch bounds shared by every stream source: commit at `max_records` or `max_seconds`."""

    max_records: Annotated[int, Field(ge=1, le=5_000_000)] = 50_000
    max_seconds: Annotated[float, Field(gt=0, le=3600)] = 1.0
    max_pending: Annotated[int, Field(ge=1)] = 200_000  # records accepted but not committed before 503
    max_record_bytes: Annotated[int, Field(ge=1)] = 8 * 1024 * 1024


class HttpConfig(Frozen):
    """Request limits of the HTTP collector; a request over one gets a 4xx naming it."""

    max_request_bytes: Annotated[int, Field(ge=1)] = 16 * 1024 * 1024
    max_record_bytes: Annotated[int, Field(ge=1)] = 1024 * 1024
    max_records: Annotated[int, Field(ge=1)] = 10_000
    max_depth: Annotated[int, Field(ge=1, le=64)] = 32
    dedup_hours: Annotated[float, Field(gt=0)] = 24.0  # how long a client batch id is remembered
    ack: Literal["durable", "committed"] = "durable"  # answer after the fsynced log, or after the Iceberg commit
    wal_dir: str = ".lakestack/wal"  # the collector's write-ahead log, relative to the project
    workers: Annotated[int, Field(ge=0, le=64)] | None = None  # validating processes; 0: in the server (default 2)


class KafkaConfig(Frozen):
    bootstrap_servers: str | SecretRef
    topics: Annotated[list[str], Field(min_length=1)]
    group_id: str | None = None  # default: lakestack-<project>-<source>
    properties: dict[str, str | int | float | bool | SecretRef] = {}  # passed to confluent-kafka
    connect_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0  # seconds for a broker to answer at start


class KinesisConfig(Frozen):
    stream_name: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    poll_seconds: Annotated[float, Field(ge=0)] = 0.2
    limit: Annotated[int, Field(ge=1, le=10_000)] = 10_000  # records per GetRecords call


class NatsConfig(Frozen):
    url: str | SecretRef = "nats://127.0.0.1:4222"
    stream: str
    subject: str | None = None  # filter subject; default: the whole stream
    durable: str | None = None  # default: lakestack-<source>
    lease_seconds: Annotated[float, Field(ge=1, le=3600)] = 10.0  # owner lease: a successor starts within it


class FileLimits(Frozen):
    """Caps on each file of a files source; unset: LAKESTACK_<NAME> from the environment, else the
    defaults of `lakestack.ingest.readers.Limits`. A file over one is quarantined whole."""

    max_decompressed_bytes: Annotated[int, Field(ge=1)] | None = None
    max_ratio: Annotated[float, Field(gt=1)] | None = None
    max_line_bytes: Annotated[int, Field(ge=1)] | None = None


STREAM_KINDS = ("http", "kafka", "kinesis", "nats")


class SourceConfig(Frozen):
    kind: Literal["files", "http", "kafka", "kinesis", "nats"] = "files"
    contract: str
    landing: str | None = None
    pattern: str | None = None
    format: Literal["csv", "ndjson", "parquet"] | None = None
    limits: FileLimits = FileLimits()  # files sources: caps per landing file
    stream: StreamConfig = StreamConfig()
    http: HttpConfig = HttpConfig()
    kafka: KafkaConfig | None = None
    kinesis: KinesisConfig | None = None
    nats: NatsConfig | None = None
    description: str | None = None
    owner: str | None = None

    @model_validator(mode="after")
    def _settings_for_kind(self) -> SourceConfig:
        if self.kind in ("kafka", "kinesis", "nats") and getattr(self, self.kind) is None:
            raise ValueError(f"a {self.kind} source needs a '{self.kind}:' block with its connection settings")
        return self

    @property
    def is_stream(self) -> bool:
        return self.kind in STREAM_KINDS

    @field_validator("contract")
    @classmethod
    def _contract_ref(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]*(\.v[0-9]+)?", value):
            raise ValueError("a contract is named like 'orders' (latest version) or 'orders.v2'")
        return value


class NormalizeConfig(Frozen):
    """How a Silver model cleans values: trimmed strings, lower- or upper-cased columns."""

    trim: bool = True
    lower: list[str] | None = None  # default: columns the contract classifies as email
    upper: list[str] = []


class DatasetConfig(Frozen):
    """A Silver dataset (declared here) or a Gold dataset (declared by a SQL model, optionally here)."""

    layer: Literal["silver", "gold"]
    source: str | None = None
    key: list[str] | None = None
    order_by: list[str] | None = None
    partition_by: str | None = None
    normalize: NormalizeConfig = NormalizeConfig()
    keys_change_partition: bool = True
    description: str | None = None
    owner: str | None = None


class ProjectConfig(Frozen):
    name: str
    description: str | None = None
    default_environment: str = "dev"
    environments: dict[str, EnvironmentConfig] = {"dev": EnvironmentConfig()}
    sources: dict[str, SourceConfig] = {}
    datasets: dict[str, DatasetConfig] = {}
    _smap: Any = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("a project name is lower-case letters, digits and '_', starting with a letter")
        return value

    @field_validator("sources", "datasets")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"'{name}' is not a valid name (lower-case letters, digits and '_')")
        return value


def load_project_config(root: Path) -> ProjectConfig:
    """Read and check `lakestack.yaml` in `root`; every problem names the file and line."""
    path = root / PROJECT_FILE
    if not path.exists():
        raise ConfigError(
            f"no {PROJECT_FILE} here; run 'lakestack init NAME' or pass --project DIR", Location(str(path))
        )
    data, smap = load_yaml(path, error=ConfigError, display=PROJECT_FILE, max_bytes=MAX_PROJECT_BYTES)
    if not isinstance(data, dict):
        raise ConfigError(
            "the project file must be a mapping of keys (name, environments, ...)", Location(PROJECT_FILE, 1)
        )
    try:
        config = ProjectConfig.model_validate(data)
    except ValidationError as exc:
        message, location = pydantic_problem(exc, smap, ProjectConfig)
        raise ConfigError(message, location) from None
    if config.default_environment not in config.environments:
        raise ConfigError(
            f"default_environment '{config.default_environment}' is not one of: {', '.join(config.environments)}",
            smap.locate(("default_environment",)),
        )
    _check_source_paths(config, smap)
    config._smap = smap
    return config


def _check_source_paths(config: ProjectConfig, smap: Any) -> None:
    for name, source in config.sources.items():
        if source.landing is None:
            continue
        p = Path(source.landing)
        if p.is_absolute() or ".." in p.parts:
            raise ConfigError(
                "a landing folder must be a relative path inside the project (no '..', not absolute)",
                smap.locate(("sources", name, "landing")),
            )


def locate(config: ProjectConfig, *path: str | int) -> Location:
    """Where a key of the loaded project file is, for error messages found after loading."""
    smap = config._smap
    return smap.locate(path) if smap is not None else Location(PROJECT_FILE, key=".".join(map(str, path)))
