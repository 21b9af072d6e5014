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

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from lakestack._secrets import lookup
from lakestack.errors import ConfigError, Location

PROJECT_FILE = "lakestack.yaml"
LAYERS = ("bronze", "silver", "gold")
# The sqlglot dialect project SQL (Gold models, custom_sql checks, queries) is written in, whatever
# the environment's engine; lakestack.engine transpiles it to the engine's dialect.
PROJECT_SQL_DIALECT = "duckdb"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class Frozen(BaseModel):
    # defer_build: a model's validator is built when a project file is first validated, not at
    # import (~0.1 s for the ~40 models); a read from the validated-config cache never builds one.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class SecretRef(Frozen):
    """A secret named, never written: `{secret: NAME}`; resolved through the environment's secrets
    provider (`lakestack.secrets`: environment variables by default)."""

    secret: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]

    def resolve(self) -> str:
        return lookup(self.secret)  # remembered: redacted from every message, log record and JSON output

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


_DIMENSION = r"^[A-Za-z0-9_.:/-]{1,255}$"
# the CloudWatch dimensions lakestack sets from its metric labels (`monitor/metrics.py`)
METRIC_DIMENSIONS = ("Job", "JobType", "Dataset", "Status", "Source", "Check", "Severity", "Sla")


class CloudWatchConfig(Frozen):
    """The CloudWatch metrics sink (`monitor/cloudwatch.py`): `PutMetricData` through boto3, from a
    background thread every `flush_seconds` (`pip install 'lakestack[aws]'`). Credentials come from
    boto3's own chain (environment, profile, instance role), never from the project file."""

    namespace: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.#:/-]{1,255}$")] = "Lakestack"
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")] | None = None  # default: boto3's
    endpoint_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = None  # a local endpoint
    # added to every metric (at most 20: CloudWatch allows 30, lakestack's own take up to 5)
    dimensions: Annotated[
        dict[Annotated[str, Field(pattern=_DIMENSION)], Annotated[str, Field(pattern=_DIMENSION)]], Field(max_length=20)
    ] = {}
    flush_seconds: Annotated[float, Field(ge=1, le=3600)] = 60.0
    timeout: Annotated[float, Field(gt=0, le=60)] = 5.0  # seconds to connect and to read, per call

    @field_validator("dimensions")
    @classmethod
    def _own_names(cls, value: dict[str, str]) -> dict[str, str]:
        taken = sorted(set(value) & set(METRIC_DIMENSIONS))
        if taken:
            raise ValueError(f"dimension {taken[0]!r} is one lakestack sets itself ({', '.join(METRIC_DIMENSIONS)})")
        return value


class MetricsConfig(Frozen):
    """Metric sinks besides `lakestack serve`'s `/metrics` (always on there): `cloudwatch`."""

    cloudwatch: CloudWatchConfig | None = None


_SECRET_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def duration_seconds(text: str) -> float:
    """`30s`, `15m`, `4h`, `7d`, `2w` in seconds; `0` or `off` is 0 (never)."""
    if str(text).strip().lower() in ("0", "off", "never"):
        return 0.0
    match = _DURATION.match(str(text))
    if match is None:
        raise ValueError(f"'{text}' is not a duration (a number and a unit: 30s, 15m, 4h, 7d, 2w; or off)")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]


class LogSinkConfig(Frozen):
    """Alerts as log records on `lakestack.alerts` (WARNING; resolutions at INFO)."""

    level: Literal["info", "warning", "error"] = "warning"


class WebhookSinkConfig(Frozen):
    """`POST url` with a JSON body: lakestack's own (`format: json`) or Slack's (`format: slack`)."""

    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | SecretRef  # a Slack hook URL is a secret
    format: Literal["json", "slack"] = "json"
    token_secret: Annotated[str, Field(pattern=_SECRET_NAME)] | None = None  # Authorization: Bearer <token>
    headers: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,100}$")], str | SecretRef] = {}
    timeout: Annotated[float, Field(gt=0, le=120)] = 5.0


class EmailSinkConfig(Frozen):
    """A plain-text mail through an SMTP server (STARTTLS unless turned off)."""

    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    starttls: bool = True
    user: str | None = None
    password_secret: Annotated[str, Field(pattern=_SECRET_NAME)] | None = None
    sender: Annotated[str, Field(alias="from", pattern=r"^[^\s@]+@[^\s@]+$")]
    to: Annotated[list[Annotated[str, Field(pattern=r"^[^\s@,;]+@[^\s@,;]+$")]], Field(min_length=1)]
    timeout: Annotated[float, Field(gt=0, le=120)] = 10.0


class SnsSinkConfig(Frozen):
    """`Publish` to an SNS topic through boto3 (`pip install 'lakestack[aws]'`)."""

    topic_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")]
    region: str | None = None  # default: the topic ARN's region
    endpoint_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = None


AlertSource = Literal["run", "gate", "sla", "quarantine"]
ALERT_SOURCES: tuple[AlertSource, ...] = ("run", "gate", "sla", "quarantine")


class AlertSinkConfig(Frozen):
    """One named sink: exactly one of `log`, `webhook`, `email`, `sns`; `sources` narrows what it gets."""

    log: LogSinkConfig | None = None
    webhook: WebhookSinkConfig | None = None
    email: EmailSinkConfig | None = None
    sns: SnsSinkConfig | None = None
    sources: list[AlertSource] | None = None  # default: every source the alerts block enables

    @model_validator(mode="after")
    def _one_kind(self) -> AlertSinkConfig:
        if sum(x is not None for x in (self.log, self.webhook, self.email, self.sns)) != 1:
            raise ValueError("a sink is exactly one of: log, webhook, email, sns (e.g. 'ops: {webhook: {url: ...}}')")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("log", "webhook", "email", "sns") if getattr(self, k) is not None)


class QuarantineAlertConfig(Frozen):
    """When an ingest's quarantined share of records is an incident: above `max_share`, or above
    `min_share` and `spike_factor` times the median share of the source's ingests over `history`."""

    max_share: Annotated[float, Field(gt=0, le=1)] = 0.05
    spike_factor: Annotated[float, Field(gt=1)] | None = 3.0
    min_share: Annotated[float, Field(ge=0, le=1)] = 0.005
    history: str = "7d"
    min_history: Annotated[int, Field(ge=1)] = 3  # earlier ingests needed before a spike can be told
    min_records: Annotated[int, Field(ge=1)] = 100  # smaller batches are not judged

    @field_validator("history")
    @classmethod
    def _history(cls, value: str) -> str:
        if duration_seconds(value) <= 0:
            raise ValueError("history must be a duration such as 7d")
        return value


class AlertsConfig(Frozen):
    """Alerts (`pipeline/alerting.py`, `monitor/`): one per incident, re-sent every `renotify` while
    it stays open, and a resolution when it recovers."""

    sinks: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")], AlertSinkConfig] = {}
    sources: list[AlertSource] = list(ALERT_SOURCES)
    renotify: str = "4h"
    quarantine: QuarantineAlertConfig = Field(default_factory=QuarantineAlertConfig)
    retries: Annotated[int, Field(ge=0, le=10)] = 3  # delivery attempts after the first, with backoff
    queue_max: Annotated[int, Field(ge=1, le=100_000)] = 1000  # notifications waiting per sink
    drain_timeout: Annotated[float, Field(ge=0, le=600)] = 5.0  # seconds a closing lake waits for delivery

    @field_validator("renotify")
    @classmethod
    def _renotify(cls, value: str) -> str:
        duration_seconds(value)
        return value

    @property
    def renotify_s(self) -> float:
        return duration_seconds(self.renotify)


class MaintenanceConfig(Frozen):
    """`lakestack maintain` (pipeline/maintain.py): durations like 12h, 7d, 2w; `off`: for ever."""

    snapshot_retention: str = "7d"  # time travel reaches this far back; older snapshots are expired
    keep_last: Annotated[int, Field(ge=1, le=1_000_000)] = 1  # snapshots kept whatever their age
    target_file_mb: Annotated[int, Field(ge=1, le=8192)] = 128  # compaction's target data file size
    orphan_min_age: str = "1d"  # an unreferenced file younger than this may be a commit in progress
    history_retention: str = "90d"  # rows of _lakestack history tables (runs, check and SLA results)
    every: str = "off"  # `lakestack serve` runs `maintain` (all tables) this often; `off`: never

    @field_validator("snapshot_retention", "orphan_min_age", "history_retention", "every")
    @classmethod
    def _duration(cls, value: str) -> str:
        duration_seconds(value)
        return value


class SecretsConfig(Frozen):
    """Where `{secret: NAME}` values come from (`lakestack.secrets`): `env` (environment variables),
    `file` (`path`: a folder of files named after the secrets, or one `NAME=value` file; mode 600),
    `aws-secretsmanager` (secret id `prefix + NAME`; boto3's credentials)."""

    provider: Literal["env", "file", "aws-secretsmanager"] = "env"
    path: str | None = None
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")] | None = None
    endpoint_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = None
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9/_+=.@-]{0,200}$")] = ""

    @model_validator(mode="after")
    def _path_for_file(self) -> SecretsConfig:
        if self.provider == "file" and not self.path:
            raise ValueError("the file provider needs 'path' (a folder of secret files, or one NAME=value file)")
        return self


class ServeConfig(Frozen):
    """`lakestack serve` (serve/auth.py): each API key's token bucket refills `rate_limit` requests
    per second up to `burst`; audit rows are committed every `audit_flush_seconds`."""

    rate_limit: Annotated[float, Field(gt=0, le=1_000_000)] = 100.0
    burst: Annotated[int, Field(ge=1, le=10_000_000)] = 200
    audit_flush_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0


class S3Config(Frozen):
    """How lakestack reaches S3 (or an S3-compatible store) for an `s3://` warehouse or landing
    folder (`storage/filesystems.py`); credentials are secret references, never written in the file.
    Without keys, pyarrow/boto3's own chain applies (environment, profile, instance role)."""

    endpoint_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = None  # default: AWS
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")] | None = None
    access_key_id: SecretRef | None = None
    secret_access_key: SecretRef | None = None
    session_token: SecretRef | None = None
    connect_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 5.0


class SparkConfig(Frozen):
    """`engine: spark` (engine/spark_session.py): `master` is `local[N]` or a cluster's URL
    (`spark://host:7077`, `yarn`); `conf` is passed to the session as is. `catalog: planned` (the
    default) has lakestack plan Iceberg scans and Spark read the files; `native` reads through the
    Iceberg Spark runtime, which must be on the cluster's classpath (EMR, Glue); commits stay lakestack's."""

    master: Annotated[str, Field(min_length=1, max_length=500)] = "local[2]"
    app_name: Annotated[str, Field(min_length=1, max_length=200)] = "lakestack"
    conf: dict[str, str | int | float | bool] = {}
    catalog: Literal["planned", "native"] = "planned"


class EnvironmentConfig(Frozen):
    warehouse: str = "./warehouse"
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    s3: S3Config = Field(default_factory=S3Config)
    engine: Literal["duckdb", "spark"] = "duckdb"
    spark: SparkConfig = Field(default_factory=SparkConfig)  # read only when engine is spark
    format: Literal["iceberg", "delta"] = "iceberg"  # the table format (storage/delta.py for delta, ADR 35)
    description: str | None = None
    openlineage: OpenLineageConfig = Field(default_factory=OpenLineageConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    alerts: AlertsConfig | None = None  # no block: no alerts
    maintenance: MaintenanceConfig = Field(default_factory=MaintenanceConfig)
    secrets: SecretsConfig = Field(default_factory=SecretsConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)


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
    region: str | None = None  # None: boto3's own (AWS_REGION / AWS_DEFAULT_REGION / the profile's)
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


class RestAuthConfig(Frozen):
    """How a REST source authenticates (ingest/rest.py); every credential is a secret reference.
    `api_key`: `key` sent in header or query parameter `name`; `bearer`: `Authorization: Bearer token`;
    `oauth2`: the client-credentials grant at `token_url`, the token refreshed before it expires
    and once on a 401."""

    type: Literal["api_key", "bearer", "oauth2"]
    key: SecretRef | None = None  # api_key
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")] = "X-API-Key"  # api_key: header/param
    location: Literal["header", "query"] = "header"  # api_key
    token: SecretRef | None = None  # bearer
    token_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = None  # oauth2
    client_id: str | SecretRef | None = None  # oauth2
    client_secret: SecretRef | None = None  # oauth2
    scope: str | None = None  # oauth2

    @model_validator(mode="after")
    def _fields_for_type(self) -> RestAuthConfig:
        needed = {"api_key": ("key",), "bearer": ("token",), "oauth2": ("token_url", "client_id", "client_secret")}
        missing = [f for f in needed[self.type] if getattr(self, f) is None]
        if missing:
            raise ValueError(f"auth type {self.type} needs {', '.join(repr(m) for m in missing)}")
        return self


class RestPaginatorConfig(Frozen):
    """How the next page is found (dlt's paginator types): `cursor` (a value at `cursor_path` in the
    body, sent as `cursor_param`), `page_number` (`page_param` from `base_page`), `offset`
    (`offset_param`/`limit_param`), `header_link` (the `Link: <...>; rel="next"` header), `json_link`
    (a next URL at `next_url_path` in the body), `single_page`. Page and offset paging stop at an
    empty page, or at `total_path`'s total."""

    type: Literal["cursor", "page_number", "offset", "header_link", "json_link", "single_page"] = "single_page"
    cursor_path: str = "next_cursor"
    cursor_param: str = "cursor"
    page_param: str = "page"
    base_page: Annotated[int, Field(ge=0)] = 1
    offset_param: str = "offset"
    limit_param: str = "limit"
    limit: Annotated[int, Field(ge=1, le=1_000_000)] = 100
    total_path: str | None = None
    next_url_path: str = "next"


class RestIncrementalConfig(Frozen):
    """An incremental cursor: the newest `cursor_path` value of the records a pull committed is kept
    in Bronze's checkpoint and sent as `start_param` on the next pull (`initial_value` the first time)."""

    cursor_path: str
    start_param: str
    initial_value: str | int | None = None


class RestResourceConfig(Frozen):
    """One endpoint: `path` under the base URL, query `params`, the records at `data_selector` (a
    dotted path in the body; none: the body is the list), how it pages, and its incremental cursor."""

    path: str
    params: dict[str, str | int | float | bool] = {}
    data_selector: str | None = None
    paginator: RestPaginatorConfig = Field(default_factory=RestPaginatorConfig)
    incremental: RestIncrementalConfig | None = None


class RestConfig(Frozen):
    """A REST pull source (`kind: rest`, ingest/rest.py): requests go out at most `rate_limit` per
    second (bursts of `burst`), a 429 waits its Retry-After, a 5xx or timeout is retried `retries`
    times with exponential backoff and jitter; a run sends at most `max_requests` requests and
    commits every `commit_pages` pages (with its cursors, so a crash or a spent budget resumes there)."""

    base_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    auth: RestAuthConfig | None = None
    headers: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,100}$")], str | SecretRef] = {}
    resources: Annotated[
        dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")], RestResourceConfig], Field(min_length=1)
    ]
    rate_limit: Annotated[float, Field(gt=0, le=10_000)] = 10.0
    burst: Annotated[int, Field(ge=1, le=10_000)] = 10
    retries: Annotated[int, Field(ge=0, le=20)] = 5
    backoff_seconds: Annotated[float, Field(ge=0, le=60)] = 0.5  # the first retry's base delay; doubles
    max_backoff_seconds: Annotated[float, Field(ge=0, le=3600)] = 30.0
    max_retry_after_seconds: Annotated[float, Field(ge=0, le=3600)] = 120.0  # a longer Retry-After stops the run
    timeout: Annotated[float, Field(gt=0, le=600)] = 30.0
    max_requests: Annotated[int, Field(ge=1)] | None = None  # the per-run request budget; none: unlimited
    commit_pages: Annotated[int, Field(ge=1, le=10_000)] = 20
    keep_pages: bool = False  # every page's body in _lakestack.pages_<source>, to replay a data_selector change
    max_pages: Annotated[int, Field(ge=1)] = 100_000  # per resource and run: a loop guard
    max_response_mb: Annotated[float, Field(gt=0, le=4096)] = 64.0  # a larger page (decompressed) ends the run


STREAM_KINDS = ("http", "kafka", "kinesis", "nats")

_TABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62}){0,2}$"


class DatabaseConfig(Frozen):
    """A database pull source (`ingest/database.py`): a `table` or a `query` of PostgreSQL (ADBC) or
    MySQL/MariaDB (PyMySQL), read in batches of `batch_rows` and committed to Bronze every
    `commit_rows`, in full (every run pulls the whole table, resuming an interrupted pull) or
    incrementally by `cursor` (rows after the high-water mark committed with the previous rows).
    Rows are ordered by (cursor, key), so rows sharing a cursor value are neither lost nor repeated."""

    url: SecretRef  # postgresql://user:pw@host:port/db or mysql://...: it holds a password
    table: Annotated[str, Field(pattern=_TABLE_NAME)] | None = None  # table, schema.table or db.schema.table
    query: Annotated[str, Field(min_length=1, max_length=100_000)] | None = None  # one SELECT
    mode: Literal["full", "incremental"] = "full"
    cursor: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")] | None = None
    key: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")]] | None = None  # default: the contract's
    batch_rows: Annotated[int, Field(ge=1, le=1_000_000)] = 50_000  # rows read (and validated) at a time
    commit_rows: Annotated[int, Field(ge=1, le=50_000_000)] = 500_000  # rows per Bronze commit
    connect_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0

    @field_validator("url", mode="before")
    @classmethod
    def _secret(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError("the database URL must be a secret reference, e.g. 'url: {secret: CRM_DB_URL}'")
        return value

    @model_validator(mode="after")
    def _what_and_how(self) -> DatabaseConfig:
        if (self.table is None) == (self.query is None):
            raise ValueError("a database source reads exactly one of 'table' or 'query'")
        if self.mode == "incremental" and self.cursor is None:
            raise ValueError("an incremental database source needs 'cursor' (a column that grows, e.g. updated_at)")
        return self


class SftpConfig(Frozen):
    """How a files source reaches an `sftp://host[:port]/path` landing folder (`ingest/sftp.py`):
    a password or a private key (PEM/OpenSSH text) from secrets, and the server's host key checked
    against `known_hosts` (a file relative to the project) unless `known_hosts: none` is written."""

    user: Annotated[str, Field(min_length=1, max_length=200)] | None = None  # default: the URL's user
    password: SecretRef | None = None
    private_key: SecretRef | None = None
    passphrase: SecretRef | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    connect_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0


class SourceConfig(Frozen):
    kind: Literal["files", "http", "kafka", "kinesis", "nats", "database", "rest"] = "files"
    contract: str
    landing: str | None = None
    pattern: str | None = None
    format: Literal["csv", "ndjson", "parquet"] | None = None
    limits: FileLimits = Field(default_factory=FileLimits)  # files sources: caps per landing file
    stream: StreamConfig = Field(default_factory=StreamConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    kafka: KafkaConfig | None = None
    kinesis: KinesisConfig | None = None
    nats: NatsConfig | None = None
    database: DatabaseConfig | None = None  # kind: database
    sftp: SftpConfig | None = None  # files sources whose landing is sftp://host[:port]/path
    rest: RestConfig | None = None  # kind: rest
    description: str | None = None
    owner: str | None = None

    @model_validator(mode="after")
    def _settings_for_kind(self) -> SourceConfig:
        if self.kind in ("kafka", "kinesis", "nats", "database", "rest") and getattr(self, self.kind) is None:
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


class LookupConfig(Frozen):
    """An enrichment lookup of a Silver dataset (pipeline/enrich.py, `lakestack enrich DATASET`):
    `GET url?<param>=<value>` per distinct key of the `keys` columns not fresh in the cache table
    `_lakestack.lookup_<name>` (`ttl`), at most `max_calls` calls a run, each logged with its
    status, latency and `cost_per_call` units to `_lakestack.lookup_calls`. `params` maps a query
    parameter to a key column (default: each key column under its own name); `fields` maps a cache
    column to a dotted path in the answer. A Gold model joins the cache table."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")]
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    keys: Annotated[list[Annotated[str, Field(pattern=_NAME.pattern)]], Field(min_length=1)]
    params: dict[str, str] = {}
    fields: dict[Annotated[str, Field(pattern=_NAME.pattern)], str] = {}
    auth: RestAuthConfig | None = None
    ttl: str = "30d"
    cost_per_call: Annotated[float, Field(ge=0)] = 1.0
    max_calls: Annotated[int, Field(ge=0)] | None = None  # the per-run budget; none: unlimited
    rate_limit: Annotated[float, Field(gt=0, le=10_000)] = 5.0
    burst: Annotated[int, Field(ge=1, le=10_000)] = 5
    retries: Annotated[int, Field(ge=0, le=20)] = 3
    timeout: Annotated[float, Field(gt=0, le=600)] = 10.0
    max_response_mb: Annotated[float, Field(gt=0, le=4096)] = 8.0  # a larger answer (decompressed) ends the run

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str) -> str:
        duration_seconds(value)
        return value


class DatasetConfig(Frozen):
    """A Silver dataset (declared here) or a Gold dataset (declared by a SQL model, optionally here)."""

    layer: Literal["silver", "gold"]
    source: str | None = None
    key: list[str] | None = None
    order_by: list[str] | None = None
    partition_by: str | None = None
    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig)
    keys_change_partition: bool = True
    lookup: LookupConfig | None = None  # silver: an enrichment lookup (pipeline/enrich.py)
    description: str | None = None
    owner: str | None = None


_PG_NAME = r"^[a-z_][a-z0-9_]{0,62}$"


class PublishTableConfig(Frozen):
    """How one dataset is published (pipeline/publish.py): `replace` loads a staging table and swaps
    it in, in one transaction; `incremental` replaces the changed day partitions (`by: partition`)
    or upserts by `primary_key` (`by: key`)."""

    table: Annotated[str, Field(pattern=r"^([a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$")] | None = None
    mode: Literal["replace", "incremental"] = "replace"
    by: Literal["partition", "key"] = "partition"
    primary_key: list[Annotated[str, Field(pattern=_PG_NAME)]] = []
    indexes: list[Annotated[list[Annotated[str, Field(pattern=_PG_NAME)]], Field(min_length=1)]] = []

    @model_validator(mode="after")
    def _key_for_upsert(self) -> PublishTableConfig:
        if self.mode == "incremental" and self.by == "key" and not self.primary_key:
            raise ValueError("an upsert ('mode: incremental, by: key') needs 'primary_key'")
        return self


class PublishTargetConfig(Frozen):
    """A database Gold (or Silver) datasets are published to, read as `role` (its masking applies).
    `optional`: `lakestack run` skips it with a note when its URL secret is unset or it cannot be
    reached (`lakestack publish` still fails)."""

    url: SecretRef  # postgresql://user:password@host:port/db, never written in the file
    kind: Literal["postgres", "mysql"] = "postgres"  # mysql: MySQL or MariaDB; `schema` is the database
    db_schema: Annotated[str, Field(alias="schema", pattern=_PG_NAME)] = "public"
    role: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
    optional: bool = False
    datasets: Annotated[dict[str, PublishTableConfig], Field(min_length=1)]

    @field_validator("datasets")
    @classmethod
    def _layers(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not re.fullmatch(r"(gold|silver)\.[a-z][a-z0-9_]*", name):
                raise ValueError(f"'{name}' cannot be published: name a Gold or Silver dataset (gold.x, silver.x)")
        return value

    @field_validator("url", mode="before")
    @classmethod
    def _secret(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError("the target URL must be a secret reference, e.g. 'url: {secret: ANALYTICS_DB_URL}'")
        return value


SCHEDULE_JOBS = ("run", "ingest", "maintain", "sla")


class ScheduleConfig(Frozen):
    """One job `lakestack serve` runs on a cron (`orchestrate/scheduler.py`): `schedules:` maps a job
    (`run`, `ingest`, `ingest SOURCE`, `maintain`, `sla`) to a cron expression, or to `{cron, missed,
    timezone}`. Five fields, or six with seconds last; `missed`: what a fire time that passed while
    serve was down or the job still ran becomes: `skip` (recorded) or `run_once` (one catch-up run)."""

    cron: Annotated[str, Field(min_length=1, max_length=200)]
    missed: Literal["skip", "run_once"] = "skip"
    timezone: Annotated[str, Field(min_length=1, max_length=64)] = "UTC"

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        return {"cron": value} if isinstance(value, str) else value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value) or len(value.split()) > 6:
            raise ValueError(f"'{value}' is not a cron expression (minute hour day month weekday [second])")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except (ValueError, LookupError):
            raise ValueError(f"unknown time zone '{value}' (an IANA name such as UTC or Europe/Berlin)") from None
        return value


def _schedule_job(name: str) -> str:
    job, _, source = name.partition(" ")
    if job not in SCHEDULE_JOBS or (source and (job != "ingest" or not _NAME.match(source.strip()))):
        raise ValueError(f"'{name}' is not a job to schedule (run, ingest, ingest SOURCE, maintain or sla)")
    return name


class ProjectConfig(Frozen):
    name: str
    description: str | None = None
    default_environment: str = "dev"
    environments: dict[str, EnvironmentConfig] = Field(default_factory=lambda: {"dev": EnvironmentConfig()})
    sources: dict[str, SourceConfig] = {}
    datasets: dict[str, DatasetConfig] = {}
    publish: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")], PublishTargetConfig] = {}
    schedules: dict[Annotated[str, AfterValidator(_schedule_job)], ScheduleConfig] = {}  # run by `lakestack serve`
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
    from lakestack._yaml import MAX_PROJECT_BYTES, load_yaml, pydantic_problem  # PyYAML: not for a cached project

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
    for job in config.schedules:  # `ingest SOURCE` names a source of the project
        source = job.partition(" ")[2]
        if source and source not in config.sources:
            raise ConfigError(
                f"schedule '{job}': no source '{source}' (sources: {', '.join(config.sources) or 'none'})",
                smap.locate(("schedules", job)),
            )
    config._smap = smap
    return config


def _check_source_paths(config: ProjectConfig, smap: Any) -> None:
    for name, source in config.sources.items():
        if source.landing is None:
            continue
        if source.landing.startswith("sftp://"):  # a remote folder: confined to it by ingest/sftp.py
            if not re.fullmatch(r"sftp://([^@/:\s]+@)?[A-Za-z0-9.-]+(:\d{1,5})?(/[^\s]*)?", source.landing) or ".." in (
                source.landing.split("/")
            ):
                raise ConfigError(
                    "an SFTP landing folder is written sftp://[user@]host[:port]/path (no '..', no password)",
                    smap.locate(("sources", name, "landing")),
                )
            continue
        if source.landing.startswith("s3://"):  # an S3 prefix: confined to it by ingest/s3files.py
            if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?", source.landing) or ".." in (
                source.landing.split("/")
            ):
                raise ConfigError(
                    "an S3 landing folder is written s3://bucket/prefix (no '..')",
                    smap.locate(("sources", name, "landing")),
                )
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
