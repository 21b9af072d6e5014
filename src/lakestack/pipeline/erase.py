"""GDPR/CCPA erasure: `lakestack erase --subject COLUMN=VALUE` (issue 13 item 8, ADR 0023).

Which rows belong to the subject, per kind of table:

- Bronze, Silver, Gold: rows whose column named COLUMN equals the value, or (when COLUMN has a PII
  class no other column name carries, such as `email`) whose column of that class equals it, the
  way the class flows through Silver and Gold by column lineage; and, when the project has a
  masking key, rows with any text column equal to the value's HMAC (`hash`) or token (`tokenize`),
  so a Gold column that holds a hashed email is found by the email.
- Quarantine: rows whose raw record (`_raw`, JSON or a delimited line) holds the value in a field.
- `_lakestack.check_failures`: failing-row samples whose JSON holds the value, or its sample hash.
- `_lakestack.token_vault`: the tokens of the subject's PII values (those of every erased row)
  that no remaining row holds any more.

Each table holding matches is rewritten in one commit (storage/rewrite.py: only the files holding
them, checkpoint carried forward), the vault first, then Bronze to Gold, each a job of one `erase`
run.
Then every table's snapshots older than its erasure commit are expired and the old files deleted,
at once or, with a retention, by the first `lakestack erase` after it has passed. The receipt goes
to the audit log (`_lakestack.audit`, action `erase`): the subject's column and a SHA-256 of the
value (never the value), and per dataset the rows, files, snapshot ids and when the files went.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from lakestack.failpoints import failpoint
from lakestack.pipeline.erase_targets import Subject, Target, targets, vault_target

log = logging.getLogger(__name__)

EXPIRE_AT = "erase.expire-at"  # summary key of an erasure commit: when its old snapshots may go (epoch ms)
# `_lakestack` tables that hold no row values (names, counts, checks, who read what).
_NO_ROWS = "run records, check results, SLA results, alerts, API keys and the audit log hold no row values"


@dataclass(slots=True)
class Found:
    """One dataset's part of an erasure: what was found, rewritten and expired."""

    dataset: str
    kind: str  # rows, raw records, check samples, tokens
    matched_on: tuple[str, ...]
    rows: int = 0
    files_rewritten: int = 0
    files_written: int = 0
    snapshot_before: int | None = None
    snapshot_after: int | None = None
    expired_snapshots: int = 0
    old_files_removed: int = 0
    old_bytes_removed: int = 0
    removed_at: str | None = None
    expire_at: str | None = None
    kept: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EraseResult:
    run_id: str | None
    dry_run: bool
    column: str
    subject: str  # the digest
    datasets: tuple[Found, ...]
    not_erased: tuple[str, ...]
    # subject keys (`customer_id=C100020`) of the rows found by another column: rows that hold only
    # the key (order lines) are reached by erasing by it. Shown, never put in the receipt.
    linked: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.datasets)

    def receipt(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "column": self.column,
            "subject": self.subject,
            "rows": self.rows,
            "datasets": [asdict(f) for f in self.datasets],
            "not_erased": list(self.not_erased),
        }


@dataclass(frozen=True, slots=True)
class _Done:
    found: Found
    rows: Any  # the matching rows (Arrow)
    match: Any


def erase(lake: Any, subject: Subject, *, dry_run: bool, retention_s: float, top: Any) -> EraseResult:
    """Erase `subject` from every layer (see the module docstring); dry: only find."""
    from lakestack.pipeline.runs import new_run_id

    chosen = targets(lake, subject)
    if dry_run:
        done = [_find(lake, t) for t in chosen]
        vault = vault_target(lake, [d for d in done if d.found.rows], dry=True)
        if vault is not None:
            done.append(_find(lake, vault))
        found = tuple(d.found for d in done if d.found.rows)
        return EraseResult(
            None, True, subject.column, subject.digest, found, _not_erased(lake, done), _linked(lake, subject, done)
        )
    run_id = new_run_id()
    with top("erase", run_id) as run:
        # The vault goes first, from what the other tables hold now: after a crash past this
        # commit, the run again still erases the rest; the other way round, the values to look
        # for in the vault would be gone with the rows they came from.
        present = [_find(lake, t) for t in chosen]
        vault = vault_target(lake, [d for d in present if d.found.rows], dry=True)
        done = [_rewrite(lake, vault, run_id, run, retention_s)] if vault is not None else []
        done += [_rewrite(lake, t, run_id, run, retention_s) for t in chosen]
        by_name = {d.found.dataset: d.found for d in done}
        for name, (expired, kept, pending) in _expire(lake, run_id).items():
            entry = by_name.setdefault(name, Found(name, "earlier erasure", ()))
            entry.expired_snapshots += len(expired.snapshots)
            entry.old_files_removed += expired.files
            entry.old_bytes_removed += expired.bytes
            if expired.snapshots or expired.files:
                entry.removed_at = datetime.now(UTC).isoformat()
            entry.kept.extend(kept)
            entry.expire_at = pending
        datasets = tuple(
            f for f in by_name.values() if f.rows or f.expired_snapshots or f.old_files_removed or f.expire_at
        )
        result = EraseResult(
            run_id,
            False,
            subject.column,
            subject.digest,
            datasets,
            _not_erased(lake, done),
            _linked(lake, subject, done),
        )
        run.progress(rows_erased=result.rows, datasets=len(datasets), subject=subject.digest)
        _audit(lake, result)
    return result


def _find(lake: Any, target: Target) -> _Done:
    from lakestack.storage.rewrite import find_rows

    table = lake.warehouse.load(target.dataset)
    found = find_rows(table, target.match)
    return _Done(
        Found(
            target.dataset,
            target.kind,
            target.matched_on,
            rows=found.rows,
            files_rewritten=len(found.files),
            snapshot_before=found.snapshot_before,
        ),
        found.matched,
        target.match,
    )


def _rewrite(lake: Any, target: Target, run_id: str, run: Any, retention_s: float) -> _Done:
    """One table's erasure commit; an `erase` job of the run when the table held the subject."""
    from lakestack.pipeline.events import DatasetIO
    from lakestack.storage.maintenance import footprint
    from lakestack.storage.rewrite import erase_rows

    table = lake.warehouse.load(target.dataset)
    started = time.perf_counter()
    before = footprint(table).records
    expire_at = int(time.time() * 1000 + retention_s * 1000)
    batch_id = f"erase:{run_id}:{target.dataset}"
    extra = {EXPIRE_AT: str(expire_at)}
    table, erased = erase_rows(table, target.match, run_id=run_id, batch_id=batch_id, extra=extra)
    found = Found(
        target.dataset,
        target.kind,
        target.matched_on,
        rows=erased.rows,
        files_rewritten=len(erased.files),
        files_written=max(erased.written, 0),
        snapshot_before=erased.snapshot_before,
        snapshot_after=erased.snapshot_after,
    )
    if erased.rows:
        with lake.events.job("erase", f"erase.{target.dataset}", parent=run.run) as job:
            job.dataset(DatasetIO(target.dataset, "input", erased.snapshot_before, rows=before))
            job.dataset(DatasetIO(target.dataset, "output", erased.snapshot_after, rows=footprint(table).records))
            job.progress(
                rows_erased=erased.rows, files_rewritten=len(erased.files), files_written=max(erased.written, 0)
            )
            job.stage("rewrite", time.perf_counter() - started)
    return _Done(found, erased.matched, target.match)


def _expire(lake: Any, run_id: str) -> dict[str, tuple[Any, list[str], str | None]]:
    """For every table with an erasure commit whose retention has passed: its manifests sealed, the
    snapshots before expired, the old files deleted (and those a crash left, swept). Per table: what
    expired, what was kept and why, and when a pending erasure's old snapshots may go."""
    from pyiceberg.exceptions import CommitFailedException, CommitStateUnknownException

    from lakestack.errors import CommitConflictError
    from lakestack.storage.rewrite import (
        Expired,
        clean_pending,
        erasure_snapshots,
        expire_before,
        holds_older,
        removed_files,
        seal,
        sweep,
    )

    now_ms = int(time.time() * 1000)
    out: dict[str, tuple[Any, list[str], str | None]] = {}
    for identifier in lake.warehouse.tables():
        table = lake.warehouse.load(identifier)
        unfinished = clean_pending(table)
        erasures = erasure_snapshots(table)
        if not erasures:
            if unfinished:
                out[identifier] = (Expired(files=unfinished), [], None)
            continue
        due = [s for s in erasures if _expire_at(s) <= now_ms]
        later = [s for s in erasures if _expire_at(s) > now_ms and holds_older(table, s)]
        pending = datetime.fromtimestamp(_expire_at(later[0]) / 1000, UTC).isoformat() if later else None
        expired, kept = Expired(), []
        removed = removed_files(due)
        if due:
            try:
                extra = {EXPIRE_AT: str(_expire_at(due[-1]))}
                table, sealed = seal(table, removed, run_id=run_id, batch_id=f"erase:{run_id}:seal", extra=extra)
                last = sealed or due[-1]
                if holds_older(table, last):
                    failpoint("erase.before_expire")
                    table, expired = expire_before(table, last)
                    kept = [f"snapshot {sid}: {why}" for sid, why in expired.kept]
            except (CommitFailedException, CommitStateUnknownException, CommitConflictError) as exc:  # a writer won
                table = table.refresh()
                kept = [f"the older snapshots: another commit won the race ({exc}); run `lakestack erase` again"]
                pending = datetime.now(UTC).isoformat()
        files, size = sweep(table, removed) if removed else (0, 0)
        files += unfinished
        if expired.snapshots or files or pending or kept:
            total = Expired(expired.snapshots, expired.files + files, expired.bytes + size, expired.kept)
            out[identifier] = (total, kept, pending)
    return out


def _expire_at(snapshot: Any) -> int:
    summary = snapshot.summary.additional_properties if snapshot.summary else {}
    return int(summary.get(EXPIRE_AT, snapshot.timestamp_ms))


def _not_erased(lake: Any, done: list[_Done]) -> tuple[str, ...]:
    """What erasure cannot reach, said plainly: the landing files the subject's rows came from,
    and what holds no row values."""
    files: set[str] = set()
    for d in done:
        rows = d.rows
        if rows is None or not d.found.rows or "_source_file" not in rows.column_names:
            continue
        source = d.found.dataset.partition(".")[2]
        for name in rows["_source_file"].to_pylist():
            if name and source in lake.project.config.sources:
                landing = lake.project.config.sources[source].landing or f"landing/{source}"
                files.add(f"{landing.rstrip('/')}/{name}")
    out = [
        f"landing file {f}: not lakestack's (the file-ingest ledger keeps it from being read again); "
        "delete or redact it where it is kept"
        for f in sorted(files)
    ]
    out.append("lineage events (OpenLineage NDJSON) hold dataset names, schemas and counts, no row values")
    out.append(_NO_ROWS)
    aggregated = _aggregates(lake, {d.found.dataset for d in done if d.found.rows})
    out.extend(
        f"{g}: built from erased rows, holds no subject column (aggregates); the next build of it uses the erased "
        "upstream"
        for g in aggregated
    )
    return tuple(out)


def _linked(lake: Any, subject: Subject, done: list[_Done]) -> tuple[str, ...]:
    """The subject keys (`key=value`) of the rows found, when the subject was named by another column."""
    from lakestack.pipeline.erase_targets import subject_columns

    keys = [c for c, cls in subject_columns(lake).items() if cls is None and c != subject.column]
    found: set[str] = set()
    for d in done:
        if d.rows is None or not d.found.rows or d.found.kind != "rows":
            continue
        for key in keys:
            if key in d.rows.column_names:
                found |= {f"{key}={v}" for v in d.rows[key].to_pylist() if v is not None}
    return tuple(sorted(found))


def _aggregates(lake: Any, erased: set[str]) -> list[str]:
    """Gold models reading an erased table that themselves had nothing to erase."""
    try:
        models = lake.gold_models()
    except Exception:  # models that cannot be loaded: nothing to say about them
        return []
    return sorted(
        m.identifier for m in models.values() if m.identifier not in erased and any(u in erased for u in m.upstream)
    )


def _audit(lake: Any, result: EraseResult) -> None:
    """The erasure receipt, spooled (fsynced) and committed to the audit log now (not at the end of
    the command); killed before the commit, the next flush commits it (ADR 0034)."""
    from lakestack.pipeline.audit import AuditEntry, os_user

    entry = AuditEntry(
        action="erase",
        result="ok",
        os_user=os_user(),
        datasets=tuple(f.dataset for f in result.datasets),
        columns=(result.column,),
        rows=result.rows,
        detail=json.dumps(result.receipt(), sort_keys=True, default=str),
    )
    lake.audit.write(entry)
    failpoint("erase.receipt.before_commit")
    lake.audit.flush()
    failpoint("erase.receipt.after_commit")
