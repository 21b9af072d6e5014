"""Roles on every read path over a small Northwind lake: each role sees exactly what its grants and
masks say (values asserted against the raw rows), hashes join across tables, row filters, deny by
default, hostile queries from restricted roles reaching no raw PII, `policies check`, and Gold
columns declared `masked` ending PII inheritance."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lake_support import cli, small_northwind
from lakestack import Lake
from lakestack.engine.base import SqlError
from lakestack.errors import StorageError, UsageError
from lakestack.governance.masking import mask_value

KEY = "masking-key-of-the-test-project"
POLICIES = """\
hash_key: {secret: NW_MASKING_KEY}
roles:
  marketing:
    grants:
      - datasets: [silver.customers, gold.dim_customers]
        exclude_columns: [phone]
    masking: {email: hash, name: partial}
  support:
    grants: [{datasets: [silver.customers, quarantine.*]}]
    unmasked: [name]
    masking: {"*": "null"}
  regional:
    grants: [{datasets: [silver.customers]}]
    unmasked: ["*"]
    row_filters:
      silver.customers: "country = :user.region"
  nobody: {}
  tokenized:
    grants: [{datasets: [silver.customers, gold.dim_customers]}]
    unmasked: [name, phone]
    masking: {email: tokenize}
  privacy:
    detokenize: [email]
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root: Path = small_northwind(tmp_path_factory.mktemp("governance") / "nw", orders=300)
    with Lake.open(root) as lake:
        lake.run()
    return root


@pytest.fixture
def policies(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The project with POLICIES as its policies.yaml (removed afterwards)."""
    monkeypatch.setenv("NW_MASKING_KEY", KEY)
    (project / "policies.yaml").write_text(POLICIES, encoding="utf-8")
    yield project
    (project / "policies.yaml").unlink()


def rows(lake: Lake, sql: str, **kw: Any) -> list[dict[str, Any]]:
    return list(lake.query(sql, **kw).to_pylist())


RAW = "SELECT customer_id, first_name, email, phone, country FROM {} ORDER BY customer_id"


def test_default_roles_matrix(project: Path) -> None:
    """No policies.yaml: engineer reads all in clear (as before roles), analyst Silver and Gold with PII
    masked (partial email/phone, names redacted), business Gold only with PII redacted."""
    lake = Lake.open(project)
    for table in ("silver.customers", "gold.dim_customers"):
        raw = rows(lake, RAW.format(table))
        assert len(raw) > 50 and all("@" in r["email"] for r in raw)
        assert rows(lake, RAW.format(table), role="engineer") == raw
        analyst = rows(lake, RAW.format(table), role="analyst")
        assert analyst == [
            {
                **r,
                "first_name": "***",
                "email": mask_value("partial", r["email"], "email", None),
                "phone": mask_value("partial", r["phone"], "phone", None),
            }
            for r in raw
        ]
        assert analyst[0]["email"].startswith(raw[0]["email"][0] + "***@")
    gold = rows(lake, RAW.format("gold.dim_customers"), role="business")
    clear = rows(lake, RAW.format("gold.dim_customers"))
    redact = {k: "***" for k in ("first_name", "email", "phone")}
    assert gold == [{**r, **{k: v for k, v in redact.items() if r[k] is not None}} for r in clear]
    for role, table in (
        ("business", "silver.customers"),
        ("analyst", "bronze.customers"),
        ("business", "quarantine.orders"),
    ):
        with pytest.raises(SqlError, match="does not exist") as denied:
            lake.query(f"SELECT * FROM {table}", role=role)
        missing = table.split(".")[0] + ".no_such_table"
        with pytest.raises(SqlError) as absent:
            lake.query(f"SELECT * FROM {missing}", role=role)
        assert str(denied.value).replace(table, "X") == str(absent.value).replace(
            missing, "X"
        )  # never reveal existence
    with pytest.raises(UsageError, match=r"unknown role 'cfo' \(roles: analyst, business, engineer\)"):
        lake.query("SELECT 1", role="cfo")


def test_custom_roles_hash_joins_column_grants_and_deny_by_default(policies: Path) -> None:
    lake = Lake.open(policies)
    raw = rows(lake, RAW.format("silver.customers"), role="engineer")
    got = rows(
        lake, "SELECT customer_id, first_name, email, country FROM silver.customers ORDER BY 1", role="marketing"
    )
    expected_hash = {
        r["customer_id"]: hmac.new(KEY.encode(), r["email"].encode(), hashlib.sha256).hexdigest() for r in raw
    }
    assert {r["customer_id"]: r["email"] for r in got} == expected_hash
    assert [r["first_name"] for r in got] == [mask_value("partial", r["first_name"], "name", None) for r in raw]
    # deterministic: the hashed email joins Silver to Gold
    joined = rows(
        lake,
        "SELECT count(*) AS n FROM silver.customers s JOIN gold.dim_customers g ON s.email = g.email",
        role="marketing",
    )
    assert joined == [{"n": len(rows(lake, "SELECT 1 FROM gold.dim_customers"))}]
    with pytest.raises(SqlError, match=r"phone"):
        lake.query("SELECT phone FROM silver.customers", role="marketing")  # excluded column: absent
    star = lake.query("SELECT * FROM silver.customers LIMIT 1", role="marketing")
    assert "phone" not in star.column_names and "email" in star.column_names
    support = rows(lake, RAW.format("silver.customers"), role="support")
    assert [r["first_name"] for r in support] == [r["first_name"] for r in raw]  # name: unmasked
    assert {r["email"] for r in support} == {None} and {r["phone"] for r in support} == {None}
    for table in ("silver.customers", "gold.dim_customers", "bronze.customers"):
        with pytest.raises(SqlError, match="does not exist"):
            lake.query(f"SELECT count(*) FROM {table}", role="nobody")


def test_row_filters_bind_user_attributes(policies: Path) -> None:
    lake = Lake.open(policies)
    everyone = rows(lake, "SELECT customer_id, country FROM silver.customers")
    country = everyone[0]["country"]
    got = rows(lake, "SELECT customer_id, country FROM silver.customers", role="regional", user={"region": country})
    assert sorted(r["customer_id"] for r in got) == sorted(
        r["customer_id"] for r in everyone if r["country"] == country
    )
    assert 0 < len(got) < len(everyone)
    assert rows(lake, "SELECT * FROM silver.customers", role="regional", user={"region": "x' OR '1'='1"}) == []
    with pytest.raises(UsageError, match=r"--user-attr region=VALUE"):
        lake.query("SELECT * FROM silver.customers", role="regional")


def test_show_samples_and_quarantine_go_through_the_role(policies: Path) -> None:
    lake = Lake.open(policies)
    shown = lake.read("silver.customers", limit=3, role="marketing").to_pylist()
    assert len(shown) == 3 and all(re.fullmatch(r"[0-9a-f]{64}", r["email"]) for r in shown)
    assert all("phone" not in r for r in shown)
    with pytest.raises(StorageError, match="does not exist"):
        lake.read("bronze.customers", role="marketing")
    quarantined = lake.read("quarantine.orders", limit=5, role="support").to_pylist()
    assert quarantined and {r["_raw"] for r in quarantined} == {None}  # the record as received: class raw
    assert any(r["_raw"] for r in lake.read("quarantine.orders", limit=5, role="engineer").to_pylist())
    run_id = rows(lake, "SELECT run_id FROM _lakestack.check_failures LIMIT 1")[0]["run_id"]
    all_failures = lake.check_failures(run_id, role="engineer")
    assert all_failures and lake.check_failures(run_id, role="nobody") == []
    assert lake.check_results(run_id, role="nobody") == []
    support = lake.check_failures(run_id, role="support")
    readable = {
        f["dataset"]
        for f in all_failures
        if f["dataset"] == "silver.customers" or f["dataset"].startswith("quarantine.")
    }
    assert {f["dataset"] for f in support} == readable
    analyst = lake.check_failures(run_id, role="analyst")  # Silver and Gold only: samples of other layers left out
    assert {f["dataset"] for f in analyst} == {
        f["dataset"] for f in all_failures if f["dataset"].split(".")[0] in ("silver", "gold")
    }


def raw_pii(lake: Lake) -> set[str]:
    found = rows(lake, "SELECT email, phone, first_name, last_name FROM silver.customers")
    return {v for r in found for v in r.values() if v and len(v) > 3}


def hostile(project: Path) -> list[str]:
    silver = str(next((project / "warehouse" / "silver").rglob("customers*/**/*.parquet")))
    return [
        "SELECT * FROM silver.customers",
        "WITH c AS (SELECT * FROM silver.customers) SELECT * FROM c",
        "SELECT * FROM gold.dim_customers g JOIN silver.customers s USING (customer_id)",
        "SELECT * FROM duckdb_columns()",
        "SELECT * FROM duckdb_tables()",
        "SELECT * FROM duckdb_views()",
        "SELECT * FROM duckdb_settings()",
        "SELECT current_setting('allowed_paths') AS p",
        f"SELECT * FROM read_parquet('{silver}')",
        f"SELECT * FROM parquet_metadata('{silver}')",
        f"SELECT * FROM parquet_schema('{silver}')",
        "SELECT * FROM query_table('silver.customers')",
        "SELECT * FROM query('SELECT * FROM silver.customers')",
        "SELECT (SELECT string_agg(email, ',') FROM silver.customers) AS e",
        "SELECT c FROM silver.customers c",
        "SELECT * FROM (SELECT unnest(list(email)) AS e FROM silver.customers)",
        "SELECT * FROM duckdb_functions() WHERE function_name ILIKE '%customers%'",
        "SELECT * FROM bronze.customers",
        "SELECT _raw FROM quarantine.customers",
    ]


@pytest.mark.parametrize("role", ["analyst", "business", "marketing", "nobody"])
def test_hostile_queries_reach_no_raw_pii(policies: Path, role: str) -> None:
    lake = Lake.open(policies)
    secrets = raw_pii(lake)
    assert len(secrets) > 100
    for sql in hostile(policies):
        try:
            text = json.dumps(lake.query(sql, role=role).to_pylist(), default=str)
        except SqlError as exc:
            text = str(exc)
        leaked = [s for s in secrets if s in text]
        assert not leaked, (role, sql, leaked[:3])
        assert KEY not in text, (role, sql)


def test_cli_roles_and_policies_check(policies: Path) -> None:
    done = cli(policies, "query", "--role", "analyst", "--json", "SELECT email FROM silver.customers LIMIT 2")
    assert done.returncode == 0, done.stderr
    assert all(re.fullmatch(r".\*\*\*@.+", r["email"]) for r in json.loads(done.stdout)["rows"])
    done = cli(policies, "query", "--role", "cfo", "SELECT 1")
    assert done.returncode == 2 and "unknown role 'cfo' (roles: analyst, business, engineer, marketing" in done.stderr
    done = cli(
        policies, "query", "--role", "regional", "--user-attr", "region=ZZ", "--json", "SELECT * FROM silver.customers"
    )
    assert done.returncode == 0 and json.loads(done.stdout)["rows"] == []
    done = cli(policies, "show", "--role", "business", "silver.customers")
    assert done.returncode != 0 and "does not exist" in done.stderr
    done = cli(policies, "policies", "check", "--json")
    assert done.returncode == 0, done.stderr
    matrix = {(r["role"], r["dataset"], r["column"]): r["access"] for r in json.loads(done.stdout)["access"]}
    assert matrix[("marketing", "silver.customers", "email")] == "masked (hash)"
    assert matrix[("marketing", "silver.customers", "phone")] == "denied"
    assert matrix[("marketing", "silver.customers", "customer_id")] == "clear"
    assert matrix[("marketing", "bronze.customers", "*")] == "denied"
    assert matrix[("engineer", "bronze.customers", "_raw")] == "clear"
    assert matrix[("regional", "silver.customers", "email")].startswith("clear (rows: country = :user.region")
    done = cli(policies, "tables", "--pii", "--json")
    assert {"pii": "email", "dataset": "gold.dim_customers", "column": "email"} in json.loads(done.stdout)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            "roles:\n  a:\n    grants: [{datasets: [silver.nope]}]\n",
            r"policies.yaml:3 \(roles.a.grants.0.datasets.0\): unknown dataset 'silver.nope'",
        ),
        (
            "roles:\n  a:\n    grants:\n      - datasets: [silver.customers]\n        columns: [emial]\n",
            r"policies.yaml:5 .*unknown column 'emial' in silver.customers",
        ),
        ("roles:\n  a:\n    masking: {passport: redact}\n", r"policies.yaml:3 .*unknown PII class 'passport'"),
        (
            'roles:\n  a:\n    row_filters: {silver.customers: "region = :user.region"}\n',
            r"policies.yaml:3 .*unknown column 'region' in silver.customers",
        ),
    ],
)
def test_policies_check_errors_name_file_and_line(project: Path, text: str, where: str) -> None:
    (project / "policies.yaml").write_text(text, encoding="utf-8")
    try:
        done = cli(project, "policies", "check")
    finally:
        (project / "policies.yaml").unlink()
    assert done.returncode == 2, done.stdout + done.stderr
    assert re.search(where, done.stderr), done.stderr
    assert "Traceback" not in done.stderr


def test_gold_columns_declared_masked_end_pii_inheritance(project: Path) -> None:
    model = project / "models" / "gold" / "customer_keys.sql"
    model.write_text(
        "/* ---\ncolumns: {email_key: masked, people: aggregated}\n--- */\n"
        "SELECT country, md5(email) AS email_key, count(first_name) AS people, max(phone) AS some_phone\n"
        "FROM silver.customers GROUP BY ALL\n",
        encoding="utf-8",
    )
    try:
        with Lake.open(project) as lake:
            lake.build()
            pii = {r["column"]: r["pii"] for r in lake.schema("gold.customer_keys")}
    finally:
        model.unlink()
    assert pii == {"country": None, "email_key": None, "people": None, "some_phone": "phone"}


def test_tokenize_and_detokenize_only_for_the_allowed_role(policies: Path) -> None:
    lake = Lake.open(policies)
    raw = {r["customer_id"]: r["email"] for r in rows(lake, "SELECT customer_id, email FROM silver.customers")}
    got = rows(lake, "SELECT customer_id, email FROM silver.customers", role="tokenized")
    key = KEY.encode()
    assert {r["customer_id"]: r["email"] for r in got} == {
        c: mask_value("tokenize", e, "email", key) for c, e in raw.items()
    }
    assert all(re.fullmatch(r"tok_[0-9a-f]{32}", r["email"]) for r in got)
    joined = rows(
        lake, "SELECT count(*) AS n FROM silver.customers s JOIN gold.dim_customers g USING (email)", role="tokenized"
    )
    assert joined[0]["n"] == len(rows(lake, "SELECT 1 FROM gold.dim_customers"))
    env = {"NW_MASKING_KEY": KEY}
    done = cli(policies, "policies", "vault", "--json", **env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"added": len(set(raw.values()))}
    assert json.loads(cli(policies, "policies", "vault", "--json", **env).stdout) == {"added": 0}  # idempotent
    tokens = [r["email"] for r in got[:3]]
    done = cli(policies, "policies", "detokenize", "--role", "privacy", "--json", *tokens, **env)
    assert done.returncode == 0, done.stderr
    assert [r["value"] for r in json.loads(done.stdout)] == [raw[r["customer_id"]] for r in got[:3]]
    for role in ("tokenized", "marketing", "engineer"):  # not allowed: same answer as an unknown token
        done = cli(policies, "policies", "detokenize", "--role", role, "--json", tokens[0], **env)
        assert done.returncode == 2 and raw[got[0]["customer_id"]] not in done.stdout + done.stderr
        assert json.loads(done.stdout) == [{"token": tokens[0], "pii": None, "value": None}]
    done = cli(policies, "policies", "detokenize", "--role", "privacy", "--json", "tok_" + "0" * 32, **env)
    assert done.returncode == 2 and json.loads(done.stdout) == [
        {"token": "tok_" + "0" * 32, "pii": None, "value": None}
    ]
    for role in ("analyst", "tokenized", "privacy"):
        with pytest.raises(SqlError, match="does not exist"):
            lake.query("SELECT * FROM _lakestack.token_vault", role=role)
