"""Where a source reads from, as lineage names it: a URL per source kind, never with a credential."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lakestack.lineage.events import EventContext, _outside
from lakestack.pipeline.dataset_io import arrow_columns, source_url, source_urls
from lakestack.pipeline.project import Project

CONTRACT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "x-lakestack-key": ["id"],
    "x-lakestack-file": {"pattern": "x_{date:%Y%m%d}.ndjson", "format": "ndjson"},
    "required": ["id"],
    "properties": {"id": {"type": "string"}},
}


def _project(root: Path, sources: str) -> Project:
    (root / "contracts").mkdir(parents=True)
    for line in sources.splitlines():
        name = line.split(":")[0].strip()
        (root / "contracts" / f"{name}.v1.json").write_text(json.dumps(CONTRACT))
    (root / "lakestack.yaml").write_text("name: shop\nsources:\n" + sources)
    return Project.load(root)


SOURCES = """\
  orders: {kind: files, landing: landing/orders, contract: orders}
  clicks: {kind: http, contract: clicks}
  plain: {kind: kafka, contract: plain, kafka: {bootstrap_servers: "b1:9092,b2:9092", topics: [orders, refunds]}}
  userinfo: {kind: kafka, contract: userinfo, kafka: {bootstrap_servers: "SASL_SSL://alice:pw123@b1:9093", topics: [t]}}
  hidden: {kind: kafka, contract: hidden, kafka: {bootstrap_servers: {secret: KAFKA_BROKERS}, topics: [t]}}
  shards: {kind: kinesis, contract: shards, kinesis: {stream_name: clicks, region: eu-west-1}}
  jet: {kind: nats, contract: jet, nats: {url: "nats://tok3n@n1:4222,nats://n2:4222", stream: S, subject: "shop.>"}}
  jetsecret: {kind: nats, contract: jetsecret, nats: {url: {secret: NATS_URL}, stream: S}}
  jetdefault: {kind: nats, contract: jetdefault, nats: {stream: EVENTS}}
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return _project(tmp_path / "shop", SOURCES)


def test_each_kind_has_its_url(project: Project) -> None:
    assert source_url(project, "orders") == (project.root / "landing" / "orders").as_uri()
    assert source_url(project, "clicks", "http://0.0.0.0:8080") == "http://0.0.0.0:8080/v1/streams/clicks/records"
    assert source_urls(project, "plain") == ["kafka://b1:9092/orders", "kafka://b1:9092/refunds"]
    assert source_url(project, "shards") == "kinesis://eu-west-1/clicks"
    assert source_url(project, "jet") == "nats://n1:4222/shop.>"
    assert source_url(project, "jetdefault") == "nats://127.0.0.1:4222/EVENTS"


def test_no_credential_and_no_secret_is_ever_in_a_url(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BROKERS", "secret-broker:9092")
    monkeypatch.setenv("NATS_URL", "nats://secret-host:4222")
    assert source_url(project, "userinfo") == "kafka://b1:9093/t"
    assert source_url(project, "jet") is not None and "tok3n" not in str(source_url(project, "jet"))
    assert source_url(project, "hidden") is None  # a location kept secret is not shown at all
    assert source_url(project, "jetsecret") is None
    assert source_url(project, "clicks") is None  # a collector not served: nowhere to name
    everything = " ".join(u for name in project.config.sources for u in source_urls(project, name, "http://h:1"))
    for secret in ("alice", "pw123", "tok3n", "secret-broker", "secret-host"):
        assert secret not in everything


def test_lineage_names_a_url_by_its_host_and_path_and_a_landing_folder_by_its_place(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    ctx = EventContext("https://example.com/lakestack", "shop.dev", "file:///wh", root)
    assert _outside("kafka://b1:9092/orders", "kafka.plain", ctx) == ("kafka://b1:9092", "orders")
    assert _outside("kinesis://eu-west-1/clicks", "kinesis.shards", ctx) == ("kinesis://eu-west-1", "clicks")
    assert _outside((root / "landing" / "orders").as_uri(), "landing.orders", ctx) == (root.as_uri(), "landing/orders")
    assert _outside("file:///srv/drop/orders", "landing.orders", ctx) == ("file://", "/srv/drop/orders")
    assert _outside("kafka", "kafka.hidden", ctx) == ("kafka://shop.dev", "kafka.hidden")


def test_arrow_columns_are_named_as_iceberg_names_them() -> None:
    import pyarrow as pa

    schema = pa.schema(
        [
            ("id", pa.string()),
            ("n", pa.int64()),
            ("x", pa.float64()),
            ("d", pa.date32()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("local", pa.timestamp("us")),
            ("amount", pa.decimal128(18, 2)),
            ("ok", pa.bool_()),
            ("tags", pa.list_(pa.string())),
        ]
    )
    assert arrow_columns(schema) == (
        ("id", "string"),
        ("n", "long"),
        ("x", "double"),
        ("d", "date"),
        ("ts", "timestamptz"),
        ("local", "timestamp"),
        ("amount", "decimal(18, 2)"),
        ("ok", "boolean"),
        ("tags", "list<item: string>"),
    )
