"""Rich markup in anything a user controls — data values, column names, file names, contract and
project errors, source names, command arguments — prints as the literal text it is: no
`MarkupError` traceback, no style or link taken from data, and error messages keep their brackets
(`pip install 'lakestack[postgres]'`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import ORDERS_CONTRACT, ORDERS_HEADER
from security_support import run_capped

Land = Callable[[str, str, "str | bytes"], Path]
MEMORY_MB = 4096  # DuckDB and Arrow reserve address space per thread; markup, not memory, is tested here
HOSTILE = ["[/x]", "[bold red]LOUD[/]", "[link=http://evil.example]click[/link]", "\\[b]x", "x\\", "[[/]]"]
# A plain terminal shows a link's text without its URL, and a style tag disappears: the raw text
# surviving in the output proves it was not read as markup.


def _query(project: Path, sql: str) -> str:
    out = run_capped("query", sql, cwd=project, memory_mb=MEMORY_MB)
    assert out.code == 0, out.output
    return out.stdout


@pytest.mark.parametrize("value", HOSTILE)
def test_markup_in_a_query_value_prints_literally(project: Path, value: str) -> None:
    sql_value = value.replace("'", "''")
    stdout = _query(project, f"SELECT '{sql_value}' AS a, 1 AS b")
    assert value in stdout


def test_markup_in_a_column_name_prints_literally(project: Path) -> None:
    stdout = _query(project, 'SELECT 1 AS "[/x]", 2 AS "[bold]b[/]", 3 AS "[link=http://e.x]l[/link]"')
    for header in ("[/x]", "[bold]b[/]", "[link=http://e.x]l[/link]"):
        assert header in stdout


def test_markup_in_the_error_of_a_query(project: Path) -> None:
    out = run_capped("query", "SELECT * FROM [/x]", cwd=project, memory_mb=MEMORY_MB)
    assert out.code == 2, out.output
    assert "[" in out.stderr and "error:" in out.stderr


def test_hostile_settings_query_is_not_a_traceback(project: Path) -> None:
    """The issue's case: DuckDB's settings hold bracketed values."""
    out = run_capped("query", "SELECT * FROM duckdb_settings()", cwd=project, memory_mb=MEMORY_MB)
    assert out.code in (0, 2), out.output


def test_landing_values_show_literally_in_bronze_and_quarantine(project: Path, land: Land) -> None:
    rows = [
        "ORD-0001,2,9.99,USD,2026-01-01 10:00:00,[/x]",  # lands: email is free text
        "ORD-0002,2,9.99,USD,2026-01-01 10:00:00,[bold red]LOUD[/]",
        "[link=http://evil.example]x[/link],2,9.99,USD,2026-01-01 10:00:00,a@b.io",  # quarantined: not ORD-nnnn
    ]
    land("orders", "orders_20260101.csv", ORDERS_HEADER + "\n".join(rows) + "\n")
    assert run_capped("ingest", cwd=project, memory_mb=MEMORY_MB).code == 0
    bronze = run_capped("show", "bronze.orders", cwd=project, memory_mb=MEMORY_MB)
    assert bronze.code == 0, bronze.output
    assert "[/x]" in bronze.stdout and "[bold red]LOUD[/]" in bronze.stdout
    quarantine = run_capped("show", "quarantine.orders", cwd=project, memory_mb=MEMORY_MB)
    assert quarantine.code == 0, quarantine.output
    assert "[link=http://evil.example]" in quarantine.stdout


def test_markup_in_a_landing_file_name(project: Path, land: Land) -> None:
    """A file name cannot hold '/', so no closing tag; an opening style or link tag can."""
    contract = ORDERS_CONTRACT.replace('"orders_{date:%Y%m%d}.csv"', '"orders_{date:%Y%m%d}*.csv"')
    assert contract != ORDERS_CONTRACT
    (project / "contracts" / "orders.v1.yaml").write_text(contract)
    names = ["orders_20260101[bold red]A.csv", "orders_20260102[link=http:evil]B.csv"]
    for name in names:  # the same content twice: the second is listed as skipped, naming the first
        land("orders", name, ORDERS_HEADER + "ORD-0001,2,9.99,USD,2026-01-01 10:00:00,a@b.io\n")
    out = run_capped("ingest", cwd=project, memory_mb=MEMORY_MB)
    assert out.code == 0, out.output
    assert all(name in out.stdout for name in names), out.stdout


def test_markup_in_a_contract_error(project: Path) -> None:
    bad = ORDERS_CONTRACT.replace("type: string, nullable: false, regex", 'type: "[bold]str[/x]", regex', 1)
    (project / "contracts" / "orders.v1.yaml").write_text(bad)
    out = run_capped("status", cwd=project)
    assert out.code == 2, out.output
    assert "contracts/orders.v1.yaml" in out.stderr and "[bold]str[/x]" in out.stderr


def test_markup_in_a_source_name_and_argument(project: Path) -> None:
    text = (project / "lakestack.yaml").read_text()
    (project / "lakestack.yaml").write_text(text.replace("  clicks:", '  "[/x]clicks":'))
    out = run_capped("status", cwd=project)
    assert out.code == 2 and "'[/x]clicks' is not a valid name" in out.stderr, out.output
    (project / "lakestack.yaml").write_text(text)
    out = run_capped("ingest", "[bold]nope[/]", cwd=project)
    assert out.code == 2 and "unknown source '[bold]nope[/]'" in out.stderr, out.output
    out = run_capped("-e", "[/x]", "status", "--json", cwd=project)
    assert out.code == 2 and json.loads(out.stdout)["message"].startswith("unknown environment '[/x]'")


def _blocked(tmp_path: Path, *modules: str) -> dict[str, str]:
    """PYTHONPATH with packages of these names that fail to import: a real missing dependency."""
    folder = tmp_path / "blocked"
    for name in modules:
        (folder / name).mkdir(parents=True)
        message = repr(f"No module named '{name}'")
        (folder / name / "__init__.py").write_text(f"raise ModuleNotFoundError({message}, name={name!r})\n")
    return {"PYTHONPATH": str(folder)}


def test_missing_extra_postgres_keeps_its_brackets(project: Path, tmp_path: Path) -> None:
    text = (project / "lakestack.yaml").read_text()
    (project / "lakestack.yaml").write_text(
        text.replace('uri: "sqlite:///.lakestack/catalog.db"', 'uri: "postgresql://postgres@127.0.0.1:5432/test"')
    )
    out = run_capped("status", cwd=project, env=_blocked(tmp_path, "psycopg"))
    assert out.code == 2, out.output
    assert "pip install 'lakestack[postgres]'" in out.stderr


def test_missing_extra_serve_keeps_its_brackets(project: Path, tmp_path: Path) -> None:
    out = run_capped("serve", "--port", "1", cwd=project, env=_blocked(tmp_path, "uvicorn", "fastapi"))
    assert out.code == 2, out.output
    assert "pip install 'lakestack[serve]'" in out.stderr


def test_missing_extra_aws_keeps_its_brackets(project: Path, tmp_path: Path) -> None:
    text = (project / "lakestack.yaml").read_text()
    (project / "lakestack.yaml").write_text(
        text + "  taps: {kind: kinesis, contract: clicks, kinesis: {stream_name: taps}}\n"
    )
    out = run_capped("stream", "taps", "--until-idle", "1", cwd=project, env=_blocked(tmp_path, "boto3"))
    assert out.code == 2, out.output
    assert "pip install 'lakestack[aws]'" in out.stderr


def test_rendering_helpers_never_read_values_as_markup() -> None:
    """The one helper every CLI message goes through: holes are literal, our markup is styled."""
    from rich.console import Console

    from lakestack.cli.render import markup, rows_table

    for value in [*HOSTILE, "pip install 'lakestack[postgres]'"]:
        text = markup("[red]error:[/] {} [bold]{}[/]", value, value)
        assert text.plain == f"error: {value} {value}"
        assert any(span.style == "red" for span in text.spans)
    console = Console(record=True, width=200, markup=True)  # even a console with markup on
    console.print(rows_table("[/x]", [{"[/y]": v} for v in HOSTILE], ["[/y]"]))
    shown = console.export_text()
    assert all(v in shown for v in ["[/x]", "[/y]", *HOSTILE])


def test_the_console_reprints_what_rich_refuses_as_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    """The last resort: even markup forced on by a caller cannot become a traceback."""
    from lakestack.cli.render import make_console

    console = make_console()
    console.print("closing [/x] and [bold]open", markup=True)  # rich raises MarkupError on this
    console.print("[link=http://evil.example]x[/link]")
    out = capsys.readouterr().out
    assert "closing [/x] and [bold]open" in out and "[link=http://evil.example]x[/link]" in out


@pytest.mark.parametrize(
    ("kind", "block", "extra"),
    [
        ("kafka", "confluent_kafka", "kafka"),
        ("nats", "nats", "nats"),
    ],
)
def test_missing_extra_of_a_broker_source(project: Path, tmp_path: Path, kind: str, block: str, extra: str) -> None:
    """Every missing optional module is named with its extra at the CLI's boundary (exit 2), not
    an internal error."""
    settings = {"kafka": "{bootstrap_servers: '127.0.0.1:1', topics: [t]}", "nats": "{stream: S}"}[kind]
    text = (project / "lakestack.yaml").read_text()
    (project / "lakestack.yaml").write_text(text + f"  taps: {{kind: {kind}, contract: clicks, {kind}: {settings}}}\n")
    out = run_capped("stream", "taps", "--until-idle", "1", cwd=project, env=_blocked(tmp_path, block))
    assert out.code == 2, out.output
    assert f"pip install 'lakestack[{extra}]'" in out.stderr and "internal error" not in out.stderr
