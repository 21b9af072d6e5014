"""The audit spool crashed at each step: a read killed while it shows its rows is still audited (as
unfinished), and a flush killed before its commit, after it, or before it clears the spool leaves
every CLI read in the audit log exactly once, committed by the next command (ADR 0034)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lake_support import cli, small_northwind
from lakestack import Lake, failpoints
from lakestack.pipeline.audit import read_audit

pytestmark = [pytest.mark.crash, pytest.mark.integration]

FLUSH_POINTS = ["audit.before_commit", "audit.after_commit", "audit.spool.before_remove"]


def _query(project: Path, n: int, **env: str) -> Any:
    return cli(project, "query", f"SELECT {n} AS n, count(*) FROM gold.fact_sales", **env)


def _audit(project: Path) -> list[dict[str, Any]]:
    out = cli(project, "audit", "--json", "-n", "0", "--action", "query")
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    return rows


def test_reads_and_flushes_killed_at_each_step_leave_every_read_audited_once(tmp_path: Path) -> None:
    project = small_northwind(tmp_path / "p")
    assert cli(project, "run").returncode in (0, 4)
    log = tmp_path / "hits.log"
    # killed after the read's first line (before its rows are shown) and before its last one
    killed = _query(
        project, 0, LAKESTACK_FAILPOINTS="audit.spool.before_write=kill@2", LAKESTACK_FAILPOINTS_LOG=str(log)
    )
    assert killed.returncode == -9 and failpoints.hits(str(log)) == ["audit.spool.before_write"]
    queries = 1
    for point in FLUSH_POINTS:
        for _ in range(2):
            assert _query(project, queries).returncode == 0
            queries += 1
        log.unlink(missing_ok=True)
        # a command that writes the lake commits the spool when it ends: killed in that flush
        crashed = cli(project, "ingest", LAKESTACK_FAILPOINTS=f"{point}=kill", LAKESTACK_FAILPOINTS_LOG=str(log))
        assert crashed.returncode == -9, crashed.stderr
        assert failpoints.hits(str(log)) == [point]
        rows = _audit(project)  # `lakestack audit` settles the flush, commits, and shows what is left
        assert sorted(r["query"] for r in rows) == sorted(
            f"SELECT {n} AS n, count(*) FROM gold.fact_sales" for n in range(queries)
        )
        assert len({r["audit_id"] for r in rows}) == queries

    committed = [r for r in read_audit(Lake.open(project).warehouse, limit=None) if r["action"] == "query"]
    assert len(committed) == len({r["audit_id"] for r in committed}) == queries  # nothing lost or doubled
    by_n = {r["query"].split()[1]: r for r in committed}
    assert by_n["0"]["result"] == "error" and by_n["0"]["rows"] is None and "ended before" in by_n["0"]["detail"]
    assert all(by_n[str(n)]["result"] == "ok" and by_n[str(n)]["rows"] == 1 for n in range(1, queries))
    assert by_n["1"]["datasets"] == ["gold.fact_sales"]  # resolved with sqlglot when committed
    assert not list((project / ".lakestack" / "audit" / "dev").glob("*.ndjson"))
