"""`lakestack apply`: carry out the plan (pipeline/plan.py) in one environment, behind its gates.

Under the project lock the plan is made again (what was shown may be stale) and refused as a whole
when any change is refused. An empty plan does nothing at all: no commit, no run record. Otherwise
one `apply` run, in this order:

1. schema: create the new Bronze, quarantine and Silver tables (empty) and evolve the ones on an
   older contract version (one metadata commit each, as `ingest` and `promote` do);
2. gate: the checks of every existing dataset whose declared checks changed or whose schema
   evolved (`lakestack check`); a `fail` check that fails stops here (exit 4);
3. Silver backfills (`lakestack backfill --all`, with its own gate(silver));
4. Gold builds of the new, changed and downstream models, in dependency order, in full
   (`lakestack build --full-refresh`, write-audit-publish: gate(gold) before each commit);
5. drops (only with --allow-destructive): the table leaves the catalog; its files stay under the
   warehouse, and the record names its last metadata file;
6. `_lakestack.applied`: one row per change carried out. A change a gate blocked is not recorded,
   so the next plan shows it again.

A plan that creates, evolves or drops a table first commits its intent to `_lakestack.applied`
(pipeline/applied.py): those changes show in the catalog, not in the next plan, so an apply killed
before its record would otherwise leave them unrecorded. The next apply, under the lock and before
its own plan, records what the catalog shows the killed one did (a table created or evolved, a Gold
table created and published, a table dropped) under the killed run's id; the checks of the tables it
evolved gate this apply. Backfills and rebuilds need no recovery: unrecorded, they are planned again
and redone in full, which gives the same rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from lakestack.failpoints import failpoint
from lakestack.pipeline.applied import AppliedRow, closing_row, intent_row, open_intents, record_applied
from lakestack.pipeline.events import DatasetIO
from lakestack.pipeline.plan import Change, Plan, PlanRefused, make_plan
from lakestack.pipeline.runs import new_run_id

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    plan: Plan
    run_id: str | None  # None: nothing to apply, nothing done
    applied: tuple[str, ...] = ()  # targets carried out and recorded
    blocked: tuple[str, ...] = ()  # datasets whose gate failed
    skipped: tuple[str, ...] = ()  # targets left for the next apply (a gate upstream failed)
    built: tuple[Any, ...] = ()  # the Gold builds (BuildResult)
    record_snapshot: int | None = None  # the `_lakestack.applied` commit

    @property
    def noop(self) -> bool:
        return self.run_id is None


def apply_plan(lake: Any, *, allow_destructive: bool = False, run_id: str | None = None) -> ApplyResult:
    """Make the plan under the project lock and carry it out as an `apply` run."""
    with lake.locked("apply"):
        evolved = recover_killed(lake)
        plan = make_plan(lake, allow_destructive=allow_destructive)
        if plan.refused:
            raise PlanRefused(plan)
        if plan.empty:
            return ApplyResult(plan, None)
        run_id = run_id or new_run_id()
        with lake._top("apply", run_id) as top:
            result = _Apply(lake, plan, top, run_id, evolved).run()
            if result.blocked:
                top.fail(f"quality gate failed: blocked {', '.join(result.blocked)}", blocked=True)
        return result


class _Apply:
    def __init__(self, lake: Any, plan: Plan, top: Any, run_id: str, evolved: set[str] | None = None) -> None:
        self.lake, self.plan, self.top, self.run_id = lake, plan, top, run_id
        self.evolved = evolved or set()  # evolutions a killed apply made: they gate this one
        self.done: list[Change] = []
        self.blocked: list[str] = []
        self.built: list[Any] = []
        self.details: dict[str, dict[str, Any]] = {}

    def run(self) -> ApplyResult:
        intent = self._intent()
        self._schema()
        if self._gate():
            self._backfills()
            self._builds()
        if not self.blocked:
            self._drops()
            self.done += self.plan.of("adopt", "policies")
        rows = [AppliedRow(c.record, c.kind, c.fingerprint, self.details.get(c.target, _detail(c))) for c in self.done]
        if intent:
            rows.append(closing_row(self.run_id))
        failpoint("apply.record.before_commit")  # every change made: the record is next
        snapshot = record_applied(self.lake.warehouse, self.plan.environment, self.run_id, rows)
        failpoint("apply.record.after_commit")
        done = {c.target for c in self.done}
        return ApplyResult(
            self.plan,
            self.run_id,
            tuple(c.target for c in self.done),
            tuple(self.blocked),
            tuple(c.target for c in self.plan.changes if c.target not in done),
            tuple(self.built),
            snapshot,
        )

    def _intent(self) -> bool:
        """Commit the plan's changes before the first one, when some of them (a create, an evolve, a
        drop) would leave no trace in the next plan: see `recover_killed`."""
        if not self.plan.of("create", "evolve", "drop"):
            return False
        for change in self.plan.of("drop"):  # where its files stay, known before they leave the catalog
            table = self.lake.warehouse.load(change.target)
            self.details[change.target] = {**_detail(change), "metadata_location": table.metadata_location}
        changes = [
            {
                "record": c.record,
                "kind": c.kind,
                "target": c.target,
                "fingerprint": c.fingerprint,
                "detail": self.details.get(c.target, _detail(c)),
            }
            for c in self.plan.changes
        ]
        rows = [intent_row(self.run_id, changes)]
        record_applied(self.lake.warehouse, self.plan.environment, self.run_id, rows, batch="apply-intent")
        failpoint("apply.intent.after_commit")
        return True

    def _schema(self) -> None:
        """New tables, then evolved ones: Bronze before Silver (Silver reads Bronze's columns)."""
        from lakestack.pipeline.evolution import evolve_bronze, evolve_silver
        from lakestack.pipeline.silver import model_from_config

        lake, warehouse = self.lake, self.lake.warehouse
        schema = [c for c in self.plan.of("create", "evolve") if not c.target.startswith("gold.")]
        if not schema:
            return
        with lake.events.job("apply", "apply.schema", parent=self.top.run) as job:
            for change in schema:
                layer, _, name = change.target.partition(".")
                if layer == "bronze":
                    if change.kind == "create":
                        warehouse.bronze_table(lake.project.contract(name))
                    else:
                        evolve_bronze(lake.project.contracts, warehouse, [lake.project.contract(name)])
                elif layer == "quarantine":
                    warehouse.quarantine_table(name)
                else:
                    model = model_from_config(name, lake.project)
                    if change.kind == "create":
                        warehouse.silver_table(model)
                    else:
                        evolve_silver(warehouse, model)
                snap = warehouse.load(change.target).current_snapshot()
                job.dataset(DatasetIO(change.target, "output", snap.snapshot_id if snap else None, rows=0))
                self.done.append(change)
                failpoint("apply.schema.after_commit")

    def _gate(self) -> bool:
        """The checks of the datasets holding rows whose checks changed or whose schema evolved."""
        checks = self.lake.dataset_checks()
        wanted = {c.dataset for c in self.plan.of("checks", "evolve")} | self.evolved
        datasets = sorted(d for d in wanted if d in checks and _holds_rows(self.lake.warehouse, d))
        if datasets:
            found = self.lake.check(datasets, run_id=self.run_id)
            self.blocked += sorted({r.dataset for r in found if r.blocks})
        if self.blocked:
            return False
        self.done += [c for c in self.plan.of("checks")]
        return True

    def _backfills(self) -> None:
        for change in self.plan.of("backfill"):
            result = self.lake.backfill(change.target, None, None, downstream=False, run_id=self.run_id)
            self.details[change.target] = {**_detail(change), "snapshot_id": result.snapshot_id}
            if result.blocked:
                self.blocked += list(result.blocked)
            else:
                self.done.append(change)
            failpoint("apply.backfill.after_commit")

    def _builds(self) -> None:
        """The new, changed and downstream Gold models, in full, unless an upstream is blocked."""
        changes = {c.target: c for c in self.plan.changes if c.target.startswith("gold.") and c.kind != "adopt"}
        if not changes:
            return
        models = self.lake.gold_models()
        blocked = set(self.blocked)
        wanted = []
        for name in (m.name for m in _order(models)):
            model = models[name]
            if model.identifier in changes and not any(u in blocked for u in model.upstream):
                wanted.append(name)
            elif any(u in blocked for u in model.upstream):
                blocked.add(model.identifier)
        if not wanted:
            return
        self.built = list(self.lake.build(wanted, full_refresh=True, run_id=self.run_id))
        failpoint("apply.gold.after_builds")
        for result in self.built:
            change = changes[result.dataset]
            if result.mode == "blocked":
                self.blocked.append(result.dataset)
                continue
            self.details[change.target] = {**_detail(change), "snapshot_id": result.snapshot_id}
            self.done.append(change)

    def _drops(self) -> None:
        drops = self.plan.of("drop")
        if not drops:
            return
        with self.lake.events.job("apply", "apply.drop", parent=self.top.run) as job:
            for change in drops:
                snap = self.lake.warehouse.load(change.target).current_snapshot()
                self.lake.warehouse.drop(change.target)  # files stay: registrable again
                job.dataset(DatasetIO(change.target, "input", snap.snapshot_id if snap else None))
                self.done.append(change)
                failpoint("apply.drop.after_commit")


def recover_killed(lake: Any) -> set[str]:
    """Record the changes of each apply that died before its record and that the catalog shows done,
    under that apply's run id, and close its intent (one commit per killed apply). The tables it
    evolved: their checks gate this apply, as they gated the killed one."""
    evolved: set[str] = set()
    for intent in open_intents(lake.warehouse):
        pending = {(c.kind, c.target) for c in make_plan(lake, allow_destructive=True).changes}
        tables = set(lake.warehouse.tables())
        rows = [
            AppliedRow(c["record"], c["kind"], c["fingerprint"], c["detail"])
            for c in intent.changes
            if _carried_out(lake.warehouse, c, pending, tables)
        ]
        evolved |= {r.object.removeprefix("schema:") for r in rows if r.kind == "evolve"}
        rows.append(closing_row(intent.run_id, "recovered"))
        record_applied(lake.warehouse, lake.environment, intent.run_id, rows, batch="apply-recover")
        log.info("apply %s ended before its record: %d of its changes recorded", intent.run_id, len(rows) - 1)
    return evolved


def _carried_out(warehouse: Any, change: dict[str, Any], pending: set[tuple[Any, str]], tables: set[str]) -> bool:
    """A create, evolve or drop of a killed apply that the catalog shows done. A created Gold table
    counts once published (it has a snapshot); the schema steps create empty tables."""
    kind, target = change["kind"], change["target"]
    if kind == "drop":
        return target not in tables
    if kind not in ("create", "evolve") or target not in tables or (kind, target) in pending:
        return False
    return kind == "evolve" or not target.startswith("gold.") or warehouse.load(target).current_snapshot() is not None


def _holds_rows(warehouse: Any, identifier: str) -> bool:
    """An existing table with rows: an empty one (just created) has nothing for checks to judge yet;
    its checks gate the first run that fills it."""
    if not warehouse.exists(identifier):
        return False
    snap = warehouse.load(identifier).current_snapshot()
    summary = snap.summary.additional_properties if snap is not None and snap.summary else {}
    return int(summary.get("total-records", 0)) > 0


def _order(models: dict[str, Any]) -> list[Any]:
    from lakestack.pipeline.gold import build_order

    return build_order(models)


def _detail(change: Change) -> dict[str, Any]:
    out: dict[str, Any] = {"detail": change.detail}
    if change.steps:
        out["steps"] = list(change.steps)
    if change.partitions:
        out["partitions"] = list(change.partitions)
    return out
