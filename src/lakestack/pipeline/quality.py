"""Evaluating checks: on demand (`lakestack check`) and at the gates of `lakestack run`.

Every evaluation is appended to `_lakestack.check_results`; a bounded sample of failing rows, with
PII columns masked, goes to `_lakestack.check_failures`.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lakestack._yaml import load_yaml, pydantic_problem
from lakestack.config import PROJECT_SQL_DIALECT
from lakestack.errors import ProjectError
from lakestack.failpoints import failpoint
from lakestack.quality.model import (
    AcceptedValues,
    CheckFile,
    CheckResult,
    CustomSql,
    NotNull,
    ReferentialIntegrity,
    SchemaMatches,
    Unique,
    VolumeAnomaly,
)

RESULTS = "_lakestack.check_results"
FAILURES = "_lakestack.check_failures"
SAMPLE_ROWS = 100


@dataclass(frozen=True, slots=True)
class DatasetChecks:
    dataset: str
    checks: tuple[Any, ...]
    source: str  # the file they came from, or "contract <ref>" for generated ones


def load_check_files(root: Path) -> list[DatasetChecks]:
    """`checks/*.yaml`, each checked against the check model; errors name the file and line."""
    out = []
    folder = root / "checks"
    for path in sorted(folder.glob("*.y*ml")) if folder.is_dir() else []:
        display = str(path.relative_to(root))
        data, smap = load_yaml(path, display=display)
        try:
            spec = CheckFile.model_validate(data)
        except ValidationError as exc:
            message, location = pydantic_problem(exc, smap, CheckFile)
            raise ProjectError(message, location) from None
        for i, check in enumerate(spec.checks):  # so a refused check can name its file and line
            check._location = smap.locate(("checks", i, "sql") if isinstance(check, CustomSql) else ("checks", i))
        out.append(DatasetChecks(spec.dataset, tuple(spec.checks), display))
    return out


def contract_checks(dataset: str, contract: Any, key: tuple[str, ...]) -> DatasetChecks:
    """What the contract already says, as checks on a Silver dataset: key → unique, required → not_null,
    string enums → accepted_values."""
    checks: list[Any] = [Unique(type="unique", columns=list(key))] if key else []
    required = [f.name for f in contract.fields if f.required and not f.nullable]
    if required:
        checks.append(NotNull(type="not_null", columns=required))
    for f in contract.fields:
        if f.constraints.enum is not None and all(isinstance(v, str) for v in f.constraints.enum):
            checks.append(AcceptedValues(type="accepted_values", column=f.name, values=list(f.constraints.enum)))
    return DatasetChecks(dataset, tuple(checks), f"contract {contract.ref}")


class Evaluation:
    """Evaluates the checks of one dataset against its current snapshot (or a staged Arrow table)."""

    def __init__(self, warehouse: Any, run_id: str, *, sample_rows: int = SAMPLE_ROWS, environment: Any = None) -> None:
        self.warehouse = warehouse
        self.environment = environment  # its `engine:` evaluates the checks
        self.run_id = run_id
        self.sample_rows = sample_rows
        self.now = datetime.now(UTC)

    def run(
        self,
        dataset: str,
        checks: Iterable[Any],
        *,
        contract: Any = None,
        staged: Any = None,
        pii: dict[str, str] | None = None,
    ) -> list[CheckResult]:
        from lakestack.engine import create_engine
        from lakestack.engine.base import CHECK_LIMITS

        checks = list(checks)
        found: dict[str, Any] = {}

        def inputs(named: list[str]) -> list[Any]:
            tables, found["snapshot"], found["pii"] = self._inputs(dataset, checks, named, staged, pii)
            return tables

        with create_engine(self.environment, purpose="checks", limits=CHECK_LIMITS) as engine:
            label = f"checks of {dataset}"
            custom = [engine.transpile(c.sql, label=label) for c in checks if isinstance(c, CustomSql)]
            with engine.open_sandbox(inputs, CHECK_LIMITS, label=label, naming=custom) as sandbox:
                snapshot, pii = found["snapshot"], found["pii"]
                results, samples = [], []
                for check in checks:
                    result, rows = self._one(sandbox, engine, dataset, check, snapshot, contract)
                    results.append(result)
                    samples += [(result.check, row) for row in rows]
        self._record(results, samples, pii or {})
        return results

    def _inputs(
        self, dataset: str, checks: list[Any], named: list[str], staged: Any, pii: dict[str, str] | None
    ) -> tuple[list[Any], int | None, dict[str, str]]:
        """The tables the checks may read: the dataset (or its staged state), the tables referential
        checks point at, and those `named` by `custom_sql`; with the dataset's snapshot and PII columns."""
        from lakestack.engine.base import SqlInput

        tables = {dataset, *named} | {
            ".".join(c.references.split(".")[:2]) for c in checks if isinstance(c, ReferentialIntegrity)
        }
        inputs: list[Any] = []
        snapshot = None
        for identifier in sorted(tables):
            if identifier == dataset and staged is not None:
                inputs.append(SqlInput(identifier, staged))
                continue
            if "." not in identifier or not self.warehouse.exists(identifier):
                continue
            table = self.warehouse.load(identifier)
            inputs.append(SqlInput(identifier, table))
            if identifier == dataset:
                snap = table.current_snapshot()
                snapshot = snap.snapshot_id if snap else None
                if pii is None:
                    pii = {
                        k.removeprefix("lakestack.pii."): v
                        for k, v in table.properties.items()
                        if k.startswith("lakestack.pii.")
                    }
        return inputs, snapshot, pii or {}

    def _one(
        self, sandbox: Any, engine: Any, dataset: str, check: Any, snapshot: int | None, contract: Any
    ) -> tuple[CheckResult, list[dict[str, Any]]]:
        from lakestack.engine.base import SqlRefused
        from lakestack.quality.compile import compile_check

        started = time.perf_counter()
        name, kind = check.check_name, check.type
        observed: float | None
        rows: list[dict[str, Any]]
        status: Any
        try:
            if isinstance(check, SchemaMatches):
                observed, threshold, ok, message = self._schema(dataset, contract)
                failing, rows = 0, []
            elif isinstance(check, VolumeAnomaly):
                observed, threshold, ok, message = self._volume(dataset, check, snapshot)
                failing, rows = 0, []
            else:
                sandbox.label = f"check {name} on {dataset}"
                if isinstance(check, CustomSql):
                    sandbox.check(engine.transpile(check.sql, label=sandbox.label))  # its own text, unwrapped
                compiled = compile_check(check, dataset, now=self.now)
                value = sandbox.table(_render(engine, compiled.observed, sandbox.label)).column(0)[0].as_py()
                observed = float(value) if value is not None else None
                ok, threshold, message = compiled.passes(observed), compiled.threshold, ""
                failing = int(observed or 0) if compiled.failing is not None else 0
                rows = (
                    sandbox.table(_render(engine, compiled.failing.limit(self.sample_rows), sandbox.label)).to_pylist()
                    if compiled.failing is not None and failing
                    else []
                )
            status = "pass" if ok else ("fail" if check.severity == "fail" else "warn")
            if ok is None:
                status = "skipped"
        except SqlRefused as exc:  # project SQL reaching outside the lake stops the run: nothing is recorded
            raise ProjectError(exc.reason, getattr(check, "_location", None)) from None
        except Exception as exc:  # a check that cannot run is reported, and blocks like a failure
            observed, threshold, failing, rows, message = None, "", 0, [], str(exc).splitlines()[0]
            status = "error"
        result = CheckResult(
            dataset,
            name,
            kind,
            check.severity,
            status,
            observed,
            threshold,
            failing,
            snapshot,
            time.perf_counter() - started,
            message,
        )
        return result, rows

    def _schema(self, dataset: str, contract: Any) -> tuple[float, str, bool, str]:
        if contract is None:
            return 0.0, "columns and types of the contract", True, "no contract for this dataset"
        from lakestack.storage.schema import contract_schema

        actual = {f.name: str(f.field_type) for f in self.warehouse.load(dataset).schema().fields}
        problems = []
        for f in contract_schema(contract).fields:
            if f.name not in actual:
                problems.append(f"missing column {f.name}")
            elif actual[f.name] != str(f.field_type):
                problems.append(f"{f.name} is {actual[f.name]}, the contract says {f.field_type}")
        return float(len(problems)), f"columns and types of {contract.ref}", not problems, "; ".join(problems)

    def _volume(self, dataset: str, check: VolumeAnomaly, snapshot: int | None) -> tuple[Any, str, Any, str]:
        """Rows added since the last evaluation, against the history of earlier evaluations."""
        table = self.warehouse.load(dataset)
        current = _total_rows(table, snapshot)
        history = [r for r in self.history(dataset, check.check_name) if r["snapshot_id"] is not None]
        previous = history[-1]["snapshot_id"] if history else None
        added = current - (_total_rows(table, previous) if previous is not None else 0)
        past = [r["observed"] for r in history if r["observed"] is not None]
        if len(past) < check.min_history:
            return added, f"needs {check.min_history} earlier runs (has {len(past)})", True, "not enough history"
        mean = statistics.fmean(past)
        if check.method == "zscore":
            spread = statistics.pstdev(past) or 1.0
            score = abs(added - mean) / spread
            return added, f"|z| ≤ {check.threshold} (mean {mean:.0f})", score <= check.threshold, f"z = {score:.2f}"
        change = abs(added - mean) / (mean or 1.0) * 100
        return added, f"within ±{check.threshold}% of {mean:.0f}", change <= check.threshold, f"{change:.1f}% off"

    def history(self, dataset: str, check: str) -> list[dict[str, Any]]:
        if not self.warehouse.exists(RESULTS):
            return []
        from pyiceberg.expressions import And, EqualTo

        rows = (
            self.warehouse.load(RESULTS)
            .scan(row_filter=And(EqualTo("dataset", dataset), EqualTo("check", check)))  # type: ignore[call-arg, arg-type]
            .to_arrow()
            .to_pylist()
        )
        return sorted(rows, key=lambda r: r["evaluated_at"])

    def _record(
        self, results: list[CheckResult], samples: list[tuple[str, dict[str, Any]]], pii: dict[str, str]
    ) -> None:
        import pyarrow as pa

        from lakestack.storage.warehouse import append

        if not results:
            return
        results_schema, failures_schema = _schemas()
        now = self.now
        rows = [
            {
                "run_id": self.run_id,
                "dataset": r.dataset,
                "snapshot_id": r.snapshot_id,
                "check": r.check,
                "check_type": r.check_type,
                "severity": r.severity,
                "status": r.status,
                "observed": r.observed,
                "threshold": r.threshold,
                "failing_rows": r.failing_rows,
                "duration_s": r.duration_s,
                "message": r.message,
                "evaluated_at": now,
            }
            for r in results
        ]
        failpoint("checks.before_write")
        table = self.warehouse.system_table(RESULTS, results_schema)
        batch = hashlib.sha256(f"{self.run_id}{results[0].dataset}{now.isoformat()}".encode()).hexdigest()[:20]
        append(table, pa.Table.from_pylist(rows, schema=results_schema), run_id=self.run_id, batch_id=batch)
        if samples:
            failures = [
                {
                    "run_id": self.run_id,
                    "dataset": results[0].dataset,
                    "check": check,
                    "row": json.dumps(mask_row(row, pii), default=str, sort_keys=True),
                    "evaluated_at": now,
                }
                for check, row in samples
            ]
            target = self.warehouse.system_table(FAILURES, failures_schema)
            append(
                target,
                pa.Table.from_pylist(failures, schema=failures_schema),
                run_id=self.run_id,
                batch_id=batch + ":f",
            )
        failpoint("checks.after_write")


def mask_row(row: dict[str, Any], pii: dict[str, str]) -> dict[str, Any]:
    """A failing row with PII values replaced by a short, stable hash (`hash:1a2b3c4d5e6f`)."""
    return {k: (mask_value(v) if k in pii and v is not None else v) for k, v in row.items()}


def mask_value(value: Any) -> str:
    return "hash:" + hashlib.sha256(str(value).encode()).hexdigest()[:12]


def _total_rows(table: Any, snapshot_id: int | None) -> int:
    snap = table.snapshot_by_id(snapshot_id) if snapshot_id is not None else table.current_snapshot()
    summary = snap.summary.additional_properties if snap and snap.summary else {}
    return int(summary.get("total-records", 0))


def _render(engine: Any, query: Any, label: str) -> str:
    """A compiled check (a sqlglot tree in the project's dialect) as SQL for `engine`'s sandbox."""
    return str(engine.transpile(query.sql(PROJECT_SQL_DIALECT), label=label))


def _schemas() -> tuple[Any, Any]:
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    results = pa.schema(
        [
            ("run_id", pa.string()),
            ("dataset", pa.string()),
            ("snapshot_id", pa.int64()),
            ("check", pa.string()),
            ("check_type", pa.string()),
            ("severity", pa.string()),
            ("status", pa.string()),
            ("observed", pa.float64()),
            ("threshold", pa.string()),
            ("failing_rows", pa.int64()),
            ("duration_s", pa.float64()),
            ("message", pa.string()),
            ("evaluated_at", ts),
        ]
    )
    failures = pa.schema(
        [
            ("run_id", pa.string()),
            ("dataset", pa.string()),
            ("check", pa.string()),
            ("row", pa.string()),
            ("evaluated_at", ts),
        ]
    )
    return results, failures


def _failing_rows(engine: Any, warehouse: Any, dataset: str, drops: list[Any]) -> Any:
    """The rows the `drop` checks fail, each with a `_check` column naming the check, as Arrow;
    computed in the project-SQL sandbox (a `custom_sql` drop check is project SQL)."""
    from sqlglot import exp

    from lakestack.engine.base import CHECK_LIMITS, SqlInput, SqlRefused
    from lakestack.quality.compile import compile_check

    fixed = {dataset} | {".".join(c.references.split(".")[:2]) for c in drops if isinstance(c, ReferentialIntegrity)}

    def inputs(named: list[str]) -> list[Any]:
        tables = sorted(fixed | set(named))
        return [SqlInput(t, warehouse.load(t)) for t in tables if "." in t and warehouse.exists(t)]

    label = f"drop checks of {dataset}"
    custom = [engine.transpile(c.sql, label=label) for c in drops if isinstance(c, CustomSql)]
    parts = []
    for check in drops:
        failing = compile_check(check, dataset).failing
        assert failing is not None
        parts.append(
            exp.select("*", exp.alias_(exp.Literal.string(check.check_name), "_check")).from_(failing.subquery("f"))
        )
    union = parts[0]
    for part in parts[1:]:
        union = exp.Union(this=union, expression=part, distinct=False, by_name=True)  # type: ignore[assignment]
    with engine.open_sandbox(inputs, CHECK_LIMITS, label=label, naming=custom) as sandbox:
        try:
            for sql in custom:
                sandbox.check(sql)
            return sandbox.table(_render(engine, union, label))
        except SqlRefused as exc:
            raise ProjectError(exc.reason) from None


def drop_failing_rows(
    warehouse: Any, model: Any, checks: list[Any], results: list[CheckResult], run_id: str, environment: Any = None
) -> int:
    """For `drop` checks that failed on a Silver dataset: move the failing rows to quarantine.<source>.

    The rows leave Silver in one snapshot that rewrites only the files holding them, and land in the
    source's quarantine table with the check's name as the rule. Returns the number of rows moved.
    """
    import pyarrow as pa
    from sqlglot import exp

    from lakestack.engine import create_engine
    from lakestack.storage.warehouse import append, replace_files

    failed = {r.check for r in results if r.severity == "drop" and r.failing_rows}
    drops = [c for c in checks if c.severity == "drop" and c.check_name in failed and c.row_level]
    if not drops:
        return 0
    table = warehouse.load(model.identifier)
    keys = [exp.column(k, quoted=True) for k in model.key]
    with create_engine(environment, purpose="checks") as engine:
        dropped = _failing_rows(engine, warehouse, model.identifier, drops)  # project SQL: in the sandbox
        engine.register_arrow("dropped", dropped)  # our own SQL from here on
        files = [t.file for t in table.scan().plan_files()]
        holding = engine.files_holding([f.file_path for f in files], list(model.key), "dropped")
        touched = [f for f in files if f.file_path in holding]
        engine.register_files("touched", [f.file_path for f in touched], table)  # by field id once evolved
        kept = engine.fetch(
            exp.select("*").from_("touched").join("dropped", using=[k.copy() for k in keys], join_type="anti")
        )
        moved = dropped.to_pylist()
    replace_files(table, touched, kept, run_id=run_id, batch_id=f"drop:{model.identifier}:{run_id}")
    now = datetime.now(UTC)
    by_key: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in moved:  # a row failing several drop checks is moved once, with every check as an error
        by_key.setdefault(tuple(r[k] for k in model.key), []).append(r)
    rows = []
    for found in by_key.values():
        first, names = found[0], [r["_check"] for r in found]
        rows.append(
            {
                "_source": model.source,
                "_source_file": first.get("_source_file"),
                "_source_line": first.get("_source_line"),
                "_file_hash": None,
                "_scope": "record",
                "_raw": json.dumps({k: v for k, v in first.items() if k != "_check"}, default=str, sort_keys=True),
                "_errors": [{"path": "$", "rule": f"check:{n}", "message": f"failed check {n}"} for n in names],
                "_reason": f"dropped by check {names[0]} on {model.identifier}"
                + (f" (+{len(names) - 1} more)" if len(names) > 1 else ""),
                "_contract_version": model.contract.version,
                "_run_id": run_id,
                "_ingested_at": now,
            }
        )
    quarantine = warehouse.quarantine_table(model.source)
    append(
        quarantine,
        pa.Table.from_pylist(rows, schema=quarantine.schema().as_arrow()),
        run_id=run_id,
        batch_id=f"drop:{model.identifier}:{run_id}:q",
    )
    return len(rows)
