"""governance/: policies.yaml loading (errors at file:line), masking SQL equal to its Python twin and to
HMAC-SHA256, row filters bound as parameters, deny by default."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import duckdb
import pytest
from sqlglot import exp

from lakestack.errors import ProjectError, UsageError
from lakestack.governance.masking import hmac_pads, mask_expression, mask_value
from lakestack.governance.policy import load_policies, parse_row_filter

KEY = b"project-masking-key-for-tests"
VALUES = ["jane.doe@example.com", "+44 20 7946 0958", "4111111111111111", "J", "x@y", "", None, "O'Brien"]


@pytest.mark.parametrize(
    ("method", "pii"),
    [
        ("hash", "email"),
        ("partial", "email"),
        ("partial", "phone"),
        ("partial", "card"),
        ("partial", "name"),
        ("redact", "name"),
        ("null", "email"),
        ("tokenize", "email"),
    ],
)
def test_masking_sql_equals_python(method: str, pii: str) -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, v VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(VALUES)))
    expression = mask_expression(method, exp.column("v"), pii, KEY)
    got = [r[0] for r in con.execute(f"SELECT {expression.sql('duckdb')} FROM t ORDER BY i").fetchall()]
    assert got == [mask_value(method, v, pii, KEY) for v in VALUES]
    if method == "hash":  # exactly HMAC-SHA256 with the project key
        assert got[0] == hmac.new(KEY, VALUES[0].encode(), hashlib.sha256).hexdigest()  # type: ignore[union-attr]
    if method == "partial" and pii == "email":
        assert got[0] == "j***@example.com"
    if method == "partial" and pii == "card":
        assert got[2] == "***1111"


def test_null_mask_keeps_the_column_type() -> None:
    con = duckdb.connect()
    expression = mask_expression("null", exp.column("d"), "dob", None)
    row = con.execute(f"SELECT typeof({expression.sql('duckdb')}) FROM (SELECT DATE '2000-01-02' AS d)").fetchone()
    assert row == ("DATE",)


def write(root: Path, text: str) -> Path:
    (root / "policies.yaml").write_text(text, encoding="utf-8")
    return root


def test_without_a_file_the_default_roles(tmp_path: Path) -> None:
    policy = load_policies(tmp_path)
    assert sorted(policy.roles) == ["analyst", "business", "engineer"]
    assert policy.source is None and policy.default_role == "engineer"
    assert policy.may_read("engineer", "bronze.orders")
    assert not policy.may_read("analyst", "bronze.orders") and policy.may_read("analyst", "silver.orders")
    assert not policy.may_read("business", "silver.orders") and policy.may_read("business", "gold.x")
    with pytest.raises(UsageError, match=r"unknown role 'cfo' \(roles: analyst, business, engineer\)"):
        policy.role("cfo")


def test_deny_by_default_and_column_grants(tmp_path: Path) -> None:
    policy = load_policies(
        write(
            tmp_path,
            "roles:\n  auditor: {}\n  sales:\n    grants:\n      - datasets: [gold.fact_sales]\n"
            "        exclude_columns: [unit_price]\n",
        )
    )
    assert not any(policy.may_read("auditor", d) for d in ("bronze.a", "silver.a", "gold.a", "quarantine.a"))
    access = policy.access("sales", "gold.fact_sales", {"email": "email"}, ["order_id", "unit_price", "email"])
    assert access is not None
    assert [(c.name, c.mode, c.method) for c in access.columns] == [
        ("order_id", "clear", None),
        ("unit_price", "denied", None),
        ("email", "masked", "redact"),  # PII without a masking rule: redacted, never clear
    ]
    assert policy.access("sales", "gold.other", {}, ["x"]) is None


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("roles:\n  a:\n    grants: [{datasets: [gold.x], colums: [y]}]\n", r"policies.yaml:3 .*unknown key 'colums'"),
        ("roles:\n  a:\n    masking: {email: scramble}\n", r"policies.yaml:3 .*'hash', 'partial'.*got 'scramble'"),
        ("roles:\n  a:\n    masking: {email: hash}\n", r"policies.yaml:2 .*no hash_key"),
        ("default_role: cfo\n", r"policies.yaml:1 .*default_role 'cfo' is not a role"),
        (
            "roles:\n  a:\n    row_filters:\n      gold.x: \"region IN (SELECT r FROM read_csv('/etc/passwd'))\"\n",
            r"policies.yaml:4 \(roles.a.row_filters.gold.x\): row filter may not use",
        ),
        ("roles:\n  a:\n    row_filters: {gold.x: \"getenv('HOME') = 'x'\"}\n", r"policies.yaml:3 .*may not use"),
        ("roles:\n  a: !!python/object {}\n", r"policies.yaml:2.*tag"),
    ],
)
def test_bad_policies_name_file_and_line(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(ProjectError, match=where):
        load_policies(write(tmp_path, text))


def test_row_filter_binds_user_attributes_as_parameters() -> None:
    tree, names = parse_row_filter("country = :user.region AND segment <> :user.tier")
    assert names == ["region", "tier"]
    sql = tree.sql("duckdb")
    assert "$user_region" in sql and "$user_tier" in sql
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES ('DE', 'a'), ('FR', 'b'), ('x'' OR ''1''=''1', 'c'))"
        " v(country, segment)"
    )
    hostile = {"user_region": "x' OR '1'='1", "user_tier": "zzz"}  # data, never SQL
    assert con.execute(f"SELECT segment FROM t WHERE {sql}", hostile).fetchall() == [("c",)]
    assert con.execute(f"SELECT segment FROM t WHERE {sql}", {"user_region": "DE", "user_tier": "z"}).fetchall() == [
        ("a",)
    ]


@pytest.mark.parametrize(
    ("sql", "columns"),
    [
        ("SELECT email, country FROM silver.customers", {"email", "country", "silver", "customers"}),
        ("SELECT count(*) FROM gold.x", {"gold", "x"}),
        ("SELECT * FROM gold.x", None),
        ("SELECT t.* FROM gold.x AS t", None),
        ("SELECT COLUMNS('e.*') FROM gold.x", None),
        ("SELECT c FROM silver.customers AS c", None),  # the row as a struct
        ("SELECT FROM WHERE", None),  # sqlglot cannot parse it: every column
    ],
)
def test_query_columns_prunes_only_when_safe(sql: str, columns: set[str] | None) -> None:
    from lakestack.pipeline.access import query_columns

    assert query_columns(sql) == columns


def test_a_projected_arrow_input_leaves_no_raw_copy_in_the_sandbox() -> None:
    """A staged (Arrow) table given with a role's projection: only the masked table remains; the
    Arrow it was computed from is unregistered before the lock."""
    import pyarrow as pa

    from lakestack.engine import open_sandbox
    from lakestack.engine.base import SqlFailed, SqlInput
    from lakestack.governance.policy import ColumnAccess, TableAccess

    raw = pa.table({"id": [1, 2], "email": ["ann@example.com", "bob@example.com"]})
    access = TableAccess(
        "gold.t", (ColumnAccess("id", None, "clear"), ColumnAccess("email", "email", "masked", "hash"))
    )

    def project(source: exp.Expression, estimate: object = None) -> tuple[exp.Expression, dict[str, str]]:
        return access.select(source, KEY), {}

    with open_sandbox([SqlInput("gold.t", raw, projection=project)]) as sandbox:
        got = sandbox.table("SELECT * FROM gold.t ORDER BY id").to_pylist()
        assert got == [
            {"id": i, "email": mask_value("hash", e, "email", KEY)}
            for i, e in ((1, "ann@example.com"), (2, "bob@example.com"))
        ]
        names = sandbox.table("SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()")
        internal = [n for n in names.column("table_name").to_pylist() if n.startswith("_arrow")]
        assert internal == []
        dump = sandbox.table("SELECT sql FROM duckdb_tables() UNION ALL SELECT sql FROM duckdb_views()").to_pylist()
        assert "example.com" not in repr(dump) and KEY.hex() not in repr(dump)
        assert not any(pad.hex() in repr(dump).lower() for pad in hmac_pads(KEY))  # nor HMAC's padded keys
        with pytest.raises(SqlFailed):
            sandbox.table(f'SELECT * FROM "_arrow_{abs(hash("gold.t"))}"')


def test_hash_once_per_distinct_value_equals_hashing_every_row() -> None:
    """`masked_select` hashes each distinct text once and joins it back: the same values, row for
    row, as masking every row (repeats, NULL, '' and numbers hashed as their text, -0.0 ≠ 0.0),
    with the row filter applied and clear and partial columns alongside."""
    from lakestack.governance.masking import masked_select
    from lakestack.governance.policy import parse_row_filter

    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, v VARCHAR, n INTEGER, d DOUBLE, p VARCHAR)")
    rows = [
        (i, VALUES[i % len(VALUES)], i % 3 if i % 5 else None, [0.0, -0.0, 1.5][i % 3], VALUES[-1 - i % 4])
        for i in range(40)
    ]
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
    where, _ = parse_row_filter("i <> :user.skip")
    columns = [
        ("i", None, ""),
        ("v", "hash", "email"),
        ("n", "tokenize", "id"),
        ("d", "hash", "id"),
        ("p", "partial", "name"),
    ]
    query = masked_select(columns, exp.to_table("t"), KEY, where).sql("duckdb")
    assert query.count("SELECT DISTINCT") == 3
    got = con.execute(f"SELECT * FROM ({query}) ORDER BY i", {"user_skip": 7}).fetchall()
    every_row = ", ".join(
        "i" if m is None else f"{mask_expression(m, exp.column(c), p, KEY).sql('duckdb')} AS {c}" for c, m, p in columns
    )
    want = con.execute(f"SELECT {every_row} FROM t WHERE i <> 7 ORDER BY i").fetchall()
    assert got == want and len(got) == 39
    assert got[0][1] == mask_value("hash", VALUES[0], "email", KEY)
    assert {r[3] for r in got if r[0] % 3 == 0} != {r[3] for r in got if r[0] % 3 == 1}  # 0.0 and -0.0
    assert all(r[1] is None for r in got if VALUES[r[0] % len(VALUES)] is None)


def test_a_column_is_hashed_per_distinct_value_only_when_its_values_repeat() -> None:
    """The projection counts the hashed columns first (approx_count_distinct): `email` (4 rows per
    value) is hashed per distinct value, `card` (unique) row by row; the values are HMACs either way."""
    import pyarrow as pa

    from lakestack.governance.policy import ColumnAccess, TableAccess
    from lakestack.pipeline.access import _projection

    con = duckdb.connect()
    emails = [f"p{i % 500}@example.com" for i in range(2000)]
    con.register("raw", pa.table({"email": emails, "card": [f"41{i:014d}" for i in range(2000)]}))
    access = TableAccess(
        "gold.t", (ColumnAccess("email", "email", "masked", "hash"), ColumnAccess("card", "card", "masked", "hash"))
    )

    def estimate(query: exp.Expression, params: dict[str, object]) -> tuple[object, ...]:
        return tuple(con.execute(query.sql("duckdb"), params or None).fetchone() or ())

    select, _ = _projection(access, [KEY], None)(exp.to_table("raw"), estimate)
    sql = select.sql("duckdb")
    assert sql.count("SELECT DISTINCT") == 1 and 'SELECT DISTINCT CAST("email"' in sql
    want = [
        (mask_value("hash", e, "email", KEY), mask_value("hash", f"41{i:014d}", "card", KEY))
        for i, e in enumerate(emails)
    ]
    assert sorted(con.execute(sql).fetchall()) == sorted(want)
