"""cli/direct.py's parser: plain read commands parse as Typer would; anything else is left to Typer."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakestack.cli.direct import Call, parse

SQL = "SELECT count(*) FROM gold.fact_sales"


def test_a_query_with_global_and_own_options() -> None:
    call = parse(["-p", "nw", "-e", "prod", "query", SQL, "--json", "--limit=5", "-f", "csv"], {})
    assert call == Call("query", Path("nw"), "prod", kwargs={"sql": SQL, "json_out": True, "limit": 5, "output": "csv"})


def test_options_on_either_side_of_the_argument_repeat_as_click_repeats_them() -> None:
    argv = ["query", "--as-of", "2h", "--role", "a", SQL, "--as-of", "x=1", "--role", "b", "-o", "out.csv"]
    call = parse(argv, {})
    assert call is not None
    assert call.kwargs == {"sql": SQL, "as_of": ["2h", "x=1"], "role": "b", "out": Path("out.csv")}


def test_each_read_command() -> None:
    assert parse(["status"], {}) == Call("status")
    assert parse(["tables", "--pii", "--json"], {}) == Call("tables", kwargs={"pii": True, "json_out": True})
    show = parse(["show", "bronze.orders", "-n", "3", "--user-attr", "region=EU"], {})
    assert show == Call("show", kwargs={"table": "bronze.orders", "limit": 3, "user_attr": ["region=EU"]})
    assert parse(["--wait", "2.5", "--run-id", "r1", "status"], {}) == Call("status", wait=2.5, run_id="r1")


def test_environment_variables_fill_what_the_command_line_leaves_out() -> None:
    environ = {"LAKESTACK_PROJECT": "/p", "LAKESTACK_ENV": "prod", "LAKESTACK_WAIT": "3", "LAKESTACK_RUN_ID": ""}
    assert parse(["status"], environ) == Call("status", Path("/p"), "prod", 3.0)
    assert parse(["-p", "/q", "status"], environ) == Call("status", Path("/q"), "prod", 3.0)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["query", "--help"],
        ["-h"],
        ["ingest"],
        ["-p", "nw"],
        ["query"],  # no SQL
        ["query", SQL, "SELECT 2"],  # two arguments
        ["query", SQL, "--bogus"],
        ["query", SQL, "--limit", "-1"],
        ["query", SQL, "--limit", "ten"],
        ["query", SQL, "--limit"],
        ["query", SQL, "--timeout", "0.05"],  # below its minimum
        ["query", SQL, "--json=1"],
        ["query", SQL, "--role", "--json"],  # a value that looks like an option
        ["query", "-"],
        ["query", "--", SQL],
        ["show", "t", "-n5"],
        ["show", "t", "-p", "nw"],  # a global option after the command
        ["tables", "extra"],
        ["status", "--pii"],
        ["-p=nw", "status"],
        ["--wait", "-1", "status"],
    ],
)
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert parse(argv, {}) is None


def test_a_bad_environment_value_is_left_to_typer() -> None:
    assert parse(["status"], {"LAKESTACK_WAIT": "soon"}) is None
