"""A whole small Northwind run with every secret coming from the file provider (the masking HMAC key,
a webhook token, the PostgreSQL catalog URL with its password): each secret is used, and its value
appears in no output (stdout, stderr, `--json`, log records, run records, quarantine, the audit log,
lineage NDJSON and every other file under the project, alert payloads): 0 occurrences."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from alert_support import Webhook, wait_for
from lake_support import cli, create_database, drop_database, small_northwind

HMAC_KEY = "hmac-Kq7vX2pL9-northwind-mask"
WEBHOOK_TOKEN = "whk-Zr4Tq8Lm3-token-of-ops"
PASSWORD = "pgPw-Hj5Rt2Wq9-catalog"
POLICIES = """\
hash_key: {secret: NW_MASKING_KEY}
roles:
  marketing:
    grants: [{datasets: [silver.customers]}]
    masking: {email: hash, "*": redact}
"""


def _postgres() -> str | None:
    """A fresh database URL on the test server with a password in it (trust auth ignores it), or None."""
    url = os.environ.get("LAKESTACK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5432), timeout=2):
            pass
    except OSError as exc:
        if os.environ.get("LAKESTACK_REQUIRE_SERVICES"):
            pytest.fail(f"postgres is not reachable ({exc}); LAKESTACK_REQUIRE_SERVICES is set")
        return None
    database = create_database(url)
    user = urlparse(database).username or "postgres"
    return database.replace(f"//{user}@", f"//{user}:{PASSWORD}@", 1)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, Webhook, str | None]]:
    root = small_northwind(tmp_path / "nw", orders=300)
    secrets = root / "secrets"
    secrets.mkdir()
    catalog = _postgres()
    values = {"NW_MASKING_KEY": HMAC_KEY, "WEBHOOK_TOKEN": WEBHOOK_TOKEN}
    if catalog is not None:
        values["CATALOG_URL"] = catalog
    for name, value in values.items():
        (secrets / name).write_text(value + "\n")
        (secrets / name).chmod(0o600)
    hook = Webhook()
    config = yaml.safe_load((root / "lakestack.yaml").read_text())
    dev = config["environments"][config.get("default_environment", "dev")]
    dev["secrets"] = {"provider": "file", "path": "secrets"}
    if catalog is not None:
        dev["catalog"] = {"type": "sql", "uri": {"secret": "CATALOG_URL"}}
    dev["alerts"] = {
        "sinks": {"ops": {"webhook": {"url": hook.url, "token_secret": "WEBHOOK_TOKEN"}}},
        "quarantine": {"max_share": 0.0001, "min_records": 1},
    }
    (root / "lakestack.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "policies.yaml").write_text(POLICIES)
    yield root, hook, catalog
    hook.stop()
    if catalog is not None:
        drop_database(catalog.replace(f":{PASSWORD}@", "@"))


def test_no_secret_value_reaches_any_output(
    project: tuple[Path, Webhook, str | None], caplog: pytest.LogCaptureFixture
) -> None:
    root, hook, catalog = project
    secrets = [HMAC_KEY, WEBHOOK_TOKEN] + ([PASSWORD, catalog] if catalog else [])
    outputs: list[str] = []
    commands = [
        ("run", "--json"),
        ("run",),
        ("runs", "--json", "--all"),
        ("runs",),
        ("status", "--json"),
        ("tables", "--json"),
        ("show", "quarantine.orders", "--json"),
        ("show", "quarantine.orders"),
        ("query", "SELECT email FROM silver.customers ORDER BY email LIMIT 5", "--role", "marketing", "--json"),
        ("query", "SELECT email FROM silver.customers ORDER BY email LIMIT 5", "--role", "marketing"),
        ("query", "SELECT no_such_column FROM silver.customers", "--role", "marketing"),
        ("alerts", "test", "--json"),
        ("alerts", "--json"),
        ("audit", "--json"),
        ("policies", "check", "--json"),
    ]
    for args in commands:
        done = cli(root, *args, timeout=600, LAKESTACK_DEBUG="1")
        assert done.returncode in (0, 2, 4) or args[:2] == ("query", "SELECT no_such_column FROM silver.customers")
        outputs += [done.stdout, done.stderr]
    # each secret was used: the token reached the hook, the HMAC key masked emails, the catalog holds the lake
    assert wait_for(lambda: len(hook.received) >= 2)
    assert all(h.get("Authorization") == f"Bearer {WEBHOOK_TOKEN}" for h in hook.headers)
    masked = cli(root, "query", "SELECT email FROM silver.customers LIMIT 5", "--role", "marketing", "--json")
    clear = cli(root, "query", "SELECT email FROM silver.customers LIMIT 5", "--json")
    assert masked.returncode == clear.returncode == 0 and "@" in clear.stdout and "@" not in masked.stdout
    outputs += [masked.stdout, masked.stderr]
    if catalog is not None:
        import psycopg

        with psycopg.connect(catalog.replace(f":{PASSWORD}@", "@")) as conn:
            assert conn.execute("SELECT count(*) FROM iceberg_tables").fetchone()[0] > 5
    # the library's log records too, at DEBUG, in this process
    from lakestack import Lake
    from lakestack.errors import LakestackError

    caplog.set_level(logging.DEBUG)
    with Lake.open(root) as lake:
        lake.query("SELECT email FROM silver.customers LIMIT 3", role="marketing")
        with pytest.raises(LakestackError) as raised:
            lake.query("SELECT nope FROM silver.customers", role="marketing")
        outputs.append(str(raised.value))
    outputs += [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    outputs += [str(p) for p in hook.received]
    files = [p for p in root.rglob("*") if p.is_file() and "secrets" not in p.relative_to(root).parts]
    assert any(p.suffix == ".parquet" for p in files) and any("lineage" in p.parts for p in files)
    for secret in secrets:
        assert secret is not None
        found = [i for i, text in enumerate(outputs) if secret in text]
        assert found == [], f"a secret in output {found[:3]}"
        needle = secret.encode()
        in_files = [str(p.relative_to(root)) for p in files if needle in p.read_bytes()]
        assert in_files == [], f"a secret in {in_files[:5]}"
