"""`lakestack plan`: what applying the project to an environment would change (ADR 27).

SQLMesh's plan with data contracts in it. The project (contracts, Silver datasets, Gold models,
checks, policies) is compared with what the environment's catalog holds:

- a table the project defines and the catalog lacks → `create`;
- a Bronze or Silver table on an older contract version → `evolve`, through the contract's
  compatibility rules (a breaking version is refused, as `ingest` refuses it);
- a Silver definition (key, order, normalisation, partition) that differs from the one last applied
  → `backfill` (re-derived from Bronze, every event day), and the Gold models reading it rebuild;
- a Gold model whose canonical SQL or settings differ from the ones last applied → `rebuild`, with
  the partitions the table holds (all of them need the new SQL), and its downstream models too;
- checks or policies that differ from the ones last applied → `checks` / `policies` (apply runs
  the checks as its gate; policies are validated against the project);
- a table in the catalog the project no longer defines → `drop`, refused unless `--allow-destructive`.

Fingerprints (`sha256` of a canonical form: sqlglot's rendering of a model without comments and
formatting, so a reformatted model is no change) are compared with `_lakestack.applied`
(pipeline/applied.py). A table built before any apply has no record: `adopt` records its current
definition without rebuilding it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from lakestack.errors import LakestackError, UsageError

Kind = Literal["create", "evolve", "backfill", "rebuild", "adopt", "checks", "policies", "drop"]
KINDS: tuple[Kind, ...] = ("create", "evolve", "backfill", "rebuild", "adopt", "checks", "policies", "drop")
LAYERS = ("bronze", "quarantine", "silver", "gold")  # the namespaces a project's tables live in


@dataclass(frozen=True, slots=True)
class Change:
    """One thing an apply would do to the environment."""

    kind: Kind
    target: str  # bronze.orders, gold.daily_order_metrics, checks:silver.orders, policies
    detail: str
    steps: tuple[str, ...] = ()  # schema steps, contract changes
    partitions: tuple[str, ...] = ()  # what a rebuild or backfill recomputes ("all" for everything)
    fingerprint: str | None = None  # what apply records for the target
    destructive: bool = False
    refused: str | None = None  # why apply will not do it

    @property
    def dataset(self) -> str:
        return self.target.removeprefix("checks:")

    @property
    def record(self) -> str:
        """The object `_lakestack.applied` keeps it under: a table's definition (Silver's derivation,
        a model's SQL) is the table's name; a schema evolution is `schema:<table>` beside it."""
        return f"schema:{self.target}" if self.kind == "evolve" else self.target


@dataclass(frozen=True, slots=True)
class Plan:
    """The changes that bring one environment to the project, in the order apply makes them."""

    project: str
    environment: str
    changes: tuple[Change, ...] = ()
    allow_destructive: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.changes

    @property
    def refused(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.refused)

    def of(self, *kinds: Kind) -> list[Change]:
        return [c for c in self.changes if c.kind in kinds]


class PlanRefused(UsageError):
    """The plan holds changes apply refuses (a destructive one without --allow-destructive, a
    breaking contract version, invalid policies): exit 2, nothing applied."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        reasons = "; ".join(f"{c.target}: {c.refused}" for c in plan.refused)
        super().__init__(f"the plan for environment {plan.environment} is refused, nothing was applied: {reasons}")


def fingerprint(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_fingerprint(model: Any) -> str:
    """A Gold model's canonical SQL (sqlglot's rendering: comments and layout do not count) and settings."""
    import sqlglot

    from lakestack.config import PROJECT_SQL_DIALECT

    canonical = sqlglot.parse_one(model.sql, read=PROJECT_SQL_DIALECT).sql(PROJECT_SQL_DIALECT, comments=False)
    return fingerprint({"sql": canonical, "settings": model.settings.model_dump(mode="json")})


def silver_fingerprint(model: Any) -> str:
    """What a Silver dataset's rows are derived by (not its description or owner)."""
    keys = ("source", "key", "order_by", "partition_by", "trim", "lower", "upper", "keys_change_partition")
    return fingerprint({k: getattr(model, k) for k in keys})


def checks_fingerprints(lake: Any) -> dict[str, tuple[str, int]]:
    """Declared checks per dataset (checks/*.yaml): fingerprint and count. Contract-implied checks
    follow the contract and are not listed."""
    from lakestack.pipeline.quality import load_check_files

    lake.dataset_checks()  # validates them against the project (file and line)
    grouped: dict[str, list[Any]] = {}
    for declared in load_check_files(lake.project.root):
        grouped.setdefault(declared.dataset, []).extend(c.model_dump(mode="json") for c in declared.checks)
    return {d: (fingerprint(checks), len(checks)) for d, checks in grouped.items()}


def policies_fingerprint(root: Any) -> str | None:
    from lakestack.governance.policy import FILE

    path = root / FILE
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def make_plan(lake: Any, *, allow_destructive: bool = False) -> Plan:
    """The plan for `lake`'s environment. Opening the catalog comes first: an unreachable one is a
    StorageError (exit 3) before anything else is read."""
    from lakestack.pipeline.applied import read_applied

    warehouse = lake.warehouse
    applied = read_applied(warehouse)
    tables = set(warehouse.tables())
    changes: list[Change] = []
    changes += _sources(lake, tables)
    silver = _silver(lake, tables, applied)
    changes += silver
    changes += _gold(lake, tables, applied, {c.target for c in silver if c.kind == "backfill"})
    changes += _checks(lake, applied)
    changes += _policies(lake, applied)
    changes += _drops(lake, tables, allow_destructive)
    return Plan(lake.project.name, lake.environment, tuple(changes), allow_destructive)


def _sources(lake: Any, tables: set[str]) -> list[Change]:
    from lakestack.storage.evolution import table_contract_version

    out: list[Change] = []
    for name in lake.project.config.sources:
        contract = lake.project.contract(name)
        bronze = f"bronze.{name}"
        if bronze not in tables:
            out.append(Change("create", bronze, f"new table, contract {contract.ref}", fingerprint=contract.ref))
        else:
            held = table_contract_version(lake.warehouse.load(bronze))
            if held is not None and held != contract.version:
                out.append(_evolution(lake, bronze, held, contract))
        if f"quarantine.{name}" not in tables:
            out.append(Change("create", f"quarantine.{name}", f"new table: the records {name} rejects"))
    return out


def _evolution(lake: Any, identifier: str, held: int, contract: Any) -> Change:
    """A table on contract version `held` brought to `contract`: the compatibility verdict first
    (every earlier version when the mode is transitive), then the schema steps."""
    from lakestack.pipeline.evolution import comparisons_since
    from lakestack.storage.evolution import plan_evolution

    detail = f"{contract.source}.v{held} → {contract.ref}"
    if held > contract.version:
        why = f"the table follows {contract.source}.v{held}, newer than the project's {contract.ref}"
        return Change("evolve", identifier, detail, refused=why)
    comparisons = comparisons_since(lake.project.contracts, contract, held)
    listed = tuple(
        f"{'BREAKING ' if ch in c.breaking else ''}{ch.path}: {ch.kind} ({ch.old or '-'} → {ch.new or '-'})"
        for c in comparisons
        for ch in c.changes
    )
    broken = [c for c in comparisons if not c.compatible]
    if broken:
        why = f"{contract.ref} is not {broken[0].mode}-compatible (see 'lakestack contracts check {contract.source}')"
        return Change("evolve", identifier, detail, listed, refused=why)
    try:
        steps = plan_evolution(lake.warehouse.load(identifier).schema(), contract)
    except LakestackError as exc:
        return Change("evolve", identifier, detail, listed, refused=str(exc))
    shown = tuple(f"{s.action} {s.column}: {s.detail}" for s in steps)
    verdict = f"{detail}, compatible ({contract.compatibility})"
    return Change("evolve", identifier, verdict, shown or listed, fingerprint=contract.ref)


def _silver(lake: Any, tables: set[str], applied: dict[str, Any]) -> list[Change]:
    from lakestack.pipeline.silver import model_from_config
    from lakestack.storage.evolution import table_contract_version

    out: list[Change] = []
    for name in lake.silver_datasets():
        model = model_from_config(name, lake.project)
        target, mark = model.identifier, silver_fingerprint(model)
        if target not in tables:
            out.append(Change("create", target, f"new table from bronze.{model.source}", fingerprint=mark))
            continue
        held = table_contract_version(lake.warehouse.load(target))
        if held is not None and held != model.contract.version:
            out.append(_evolution(lake, target, held, model.contract))
        before = applied.get(target)
        if before is None:
            out.append(
                Change("adopt", target, "built outside plan/apply: its definition is recorded", fingerprint=mark)
            )
        elif before.fingerprint != mark:
            detail = "definition changed (key, order, normalisation or partition): re-derived from Bronze"
            out.append(Change("backfill", target, detail, partitions=("all event days",), fingerprint=mark))
    return out


def _gold(lake: Any, tables: set[str], applied: dict[str, Any], backfilled: set[str]) -> list[Change]:
    from lakestack.pipeline.gold import build_order

    out: list[Change] = []
    changed = set(backfilled)  # what a model reading it must be rebuilt for
    for model in build_order(lake.gold_models()):
        target, mark = model.identifier, model_fingerprint(model)
        before = applied.get(target)
        moved = sorted(u for u in model.upstream if u in changed)
        if target not in tables:
            out.append(Change("create", target, "new model: built in full", partitions=("all",), fingerprint=mark))
            changed.add(target)
        elif before is not None and before.fingerprint != mark:
            out.append(Change("rebuild", target, "SQL changed", partitions=_partitions(lake, target), fingerprint=mark))
            changed.add(target)
        elif moved:
            detail = f"reads {', '.join(moved)}, which changes"
            out.append(Change("rebuild", target, detail, partitions=_partitions(lake, target), fingerprint=mark))
            changed.add(target)
        elif before is None:
            detail = "built outside plan/apply: its SQL is recorded as it is now, nothing rebuilt"
            out.append(Change("adopt", target, detail, fingerprint=mark))
    return out


def _partitions(lake: Any, identifier: str) -> tuple[str, ...]:
    """The partitions a full rebuild of a Gold table recomputes: each one it holds (2026-01-02,
    2026-01, 2026), or `all` for an unpartitioned table."""
    from lakestack.storage.partitioning import granularity_of, start_of_value

    table = lake.warehouse.load(identifier)
    grain = granularity_of(table.spec())
    if grain is None:
        return ("all",)
    width = {"day": 10, "month": 7, "year": 4}[grain]
    values = {t.file.partition[0] for t in table.scan().plan_files()}
    days = sorted(start_of_value(v, grain) for v in values if v is not None)
    return tuple(d.isoformat()[:width] for d in days) or ("all",)


def _checks(lake: Any, applied: dict[str, Any]) -> list[Change]:
    out: list[Change] = []
    declared = checks_fingerprints(lake)
    for dataset, (mark, count) in sorted(declared.items()):
        before = applied.get(f"checks:{dataset}")
        if before is None or before.fingerprint != mark:
            what = "new" if before is None else "changed"
            out.append(Change("checks", f"checks:{dataset}", f"{count} declared checks, {what}", fingerprint=mark))
    for name in sorted(applied):
        if name.startswith("checks:") and name.removeprefix("checks:") not in declared:
            out.append(Change("checks", name, "its declared checks were removed", fingerprint=None))
    return out


def _policies(lake: Any, applied: dict[str, Any]) -> list[Change]:
    mark = policies_fingerprint(lake.project.root)
    before = applied.get("policies")
    if (before.fingerprint if before is not None else None) == mark:
        return []
    from lakestack.contracts.model import PII_CLASSES
    from lakestack.governance.check import check_policy
    from lakestack.pipeline.access import project_datasets

    detail = "policies.yaml removed: the default roles" if mark is None else "policies.yaml changed"
    problems = check_policy(lake.policy, project_datasets(lake), PII_CLASSES) if mark is not None else []
    refused = "; ".join(str(p) for p in problems) or None
    return [Change("policies", "policies", detail, fingerprint=mark, refused=refused)]


def project_tables(lake: Any) -> set[str]:
    """Every table the project defines."""
    sources = lake.project.config.sources
    names = {f"{layer}.{s}" for s in sources for layer in ("bronze", "quarantine")}
    names |= {f"silver.{d}" for d in lake.silver_datasets()}
    return names | {f"gold.{m}" for m in lake.gold_models()}


def _drops(lake: Any, tables: set[str], allow: bool) -> list[Change]:
    defined = project_tables(lake)
    out = []
    for identifier in sorted(tables):
        if identifier.partition(".")[0] in LAYERS and identifier not in defined:
            table = lake.warehouse.load(identifier)
            snap = table.current_snapshot()
            rows = int(snap.summary.additional_properties.get("total-records", 0)) if snap and snap.summary else 0
            detail = f"no longer in the project ({rows:,} rows)"
            why = None if allow else "dropping a table is destructive: apply it with --allow-destructive"
            out.append(Change("drop", identifier, detail, destructive=True, refused=why))
    return out
