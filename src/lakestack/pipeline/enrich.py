"""Enrichment lookups (`lakestack enrich DATASET`): a Silver dataset's `lookup:` calls an API once
per key, keeps the answers in a cache table, and a Gold model joins it.

For each distinct key of the `keys` columns of `silver.<dataset>` (rows with a null key part are
left out), a key whose cached answer is younger than `ttl` is not asked again. The others are
asked with `GET url?param=value...` through the REST client (`ingest/restclient.py`: auth from
secrets, the token bucket and 429 Retry-After, retries with backoff and jitter), at most
`max_calls` requests a run; the keys left over are asked by the next run.

- `_lakestack.lookup_<name>`: one row per key (the key columns, the `fields` taken from the answer
  by dotted path, the whole answer in `response`, `fetched_at`, `expires_at`). Only 2xx answers
  are cached: a key whose lookup failed (404, 5xx after retries, an unreadable answer) is asked
  again by a later run, never cached as a failure. One replace commit per run.
- `_lakestack.lookup_calls`: one row per request sent (key, status, latency, cost units, error),
  appended before the cache commit, so a crash between the two leaves the calls audited (a later
  run asks those keys again and audits that too).

A 401/403 stops the run at once (exit 3, one line). The API key is sent in a header (or query) and
never written: not in the audit rows, errors, logs or the cache (answers are redacted of every
remembered secret before they are stored).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakestack.config import duration_seconds
from lakestack.errors import UsageError
from lakestack.ingest.ratelimit import Budget
from lakestack.ingest.restclient import RestAuthError, RestClient, RestError, Settings

if TYPE_CHECKING:
    from lakestack.config import LookupConfig

log = logging.getLogger(__name__)

CALLS_TABLE = "_lakestack.lookup_calls"
COMMIT_CALLS = 100  # calls audited (and answers cached) per commit
_TS = pa.timestamp("us", tz="UTC")
CALLS_SCHEMA = pa.schema(
    [
        ("lookup", pa.string()),
        ("dataset", pa.string()),
        ("key", pa.string()),  # the key's values as a JSON object
        ("status", pa.int32()),  # None: no answer (timeouts, refused connections)
        ("latency_ms", pa.float64()),
        ("attempts", pa.int32()),
        ("cost_units", pa.float64()),
        ("outcome", pa.string()),  # cached, failed, refused
        ("error", pa.string()),
        ("run_id", pa.string()),
        ("called_at", _TS),
    ]
)


@dataclass(frozen=True, slots=True)
class EnrichReport:
    """One `lakestack enrich` run. keys = cached + fetched + failed + left (budget)."""

    run_id: str
    dataset: str
    lookup: str
    table: str
    keys: int
    cached: int
    fetched: int
    failed: int
    left: int
    calls: int
    cost_units: float
    duration_s: float
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}


def cache_table_name(lookup: LookupConfig) -> str:
    return f"_lakestack.lookup_{lookup.name}"


def cache_schema(lookup: LookupConfig) -> pa.Schema:
    columns = [(k, pa.string()) for k in lookup.keys] + [(f, pa.string()) for f in lookup.fields]
    columns += [("response", pa.string()), ("status", pa.int32()), ("fetched_at", _TS), ("expires_at", _TS)]
    return pa.schema(columns)


def enrich(lake: Any, dataset: str, run_id: str) -> EnrichReport:
    """Fill `dataset`'s lookup cache for keys it does not hold fresh; see the module docstring."""
    started = time.perf_counter()
    lookup = _lookup_of(lake, dataset)
    warehouse = lake.warehouse
    keys = _keys(lake, dataset, lookup)
    cache = warehouse.system_table(cache_table_name(lookup), cache_schema(lookup))
    now = datetime.now(UTC)
    held = _fresh(cache, lookup, now)
    wanted = [k for k in keys if k not in held]
    budget = Budget(lookup.max_calls)
    settings = Settings(
        lookup.rate_limit,
        lookup.burst,
        lookup.retries,
        lookup.timeout,
        max_response_bytes=int(lookup.max_response_mb * 2**20),
    )
    calls: list[dict[str, Any]] = []  # not yet audited
    answers: dict[tuple[str, ...], dict[str, Any]] = {}  # not yet cached
    audited: list[dict[str, Any]] = []
    fetched = failed = 0
    note = None

    def commit() -> None:  # every COMMIT_CALLS calls and at the end: a crash loses at most that many
        nonlocal cache
        audited.extend(calls)
        _audit(warehouse, calls, run_id)
        if answers:
            cache = _commit_cache(warehouse, cache, lookup, answers, run_id, len(audited))
            answers.clear()

    with RestClient(f"lookup {lookup.name}", lookup.url, settings, lookup.auth, budget=budget) as client:
        for n, key in enumerate(wanted):
            result = _call(client, lookup, key, run_id, dataset)
            if result is None:
                note = f"call budget ({lookup.max_calls}) spent; {len(wanted) - n} keys are asked by the next run"
                break
            call, answer = result
            calls.append(call)
            if answer is None:
                failed += 1
                if call["outcome"] == "refused":
                    commit()
                    raise RestAuthError(call["error"])
            else:
                answers[key] = answer
                fetched += 1
            if len(calls) >= COMMIT_CALLS:
                commit()
    commit()
    return EnrichReport(
        run_id,
        dataset,
        lookup.name,
        cache_table_name(lookup),
        len(keys),
        len(keys) - len(wanted),
        fetched,
        failed,
        len(wanted) - fetched - failed,
        sum(c["attempts"] for c in audited),
        sum(c["cost_units"] for c in audited),
        time.perf_counter() - started,
        note,
    )


def _lookup_of(lake: Any, dataset: str) -> LookupConfig:
    cfg = lake.project.config.datasets.get(dataset)
    if cfg is None or cfg.layer != "silver":
        silver = [n for n, d in lake.project.config.datasets.items() if d.layer == "silver"]
        raise UsageError(f"unknown silver dataset '{dataset}' (silver datasets: {', '.join(silver) or 'none'})")
    if cfg.lookup is None:
        raise UsageError(
            f"silver dataset '{dataset}' declares no lookup (add a 'lookup:' block to it in lakestack.yaml)"
        )
    lookup: LookupConfig = cfg.lookup
    return lookup


def _keys(lake: Any, dataset: str, lookup: LookupConfig) -> list[tuple[str, ...]]:
    """The distinct keys of the Silver dataset, as strings, in a stable order."""
    identifier = f"silver.{dataset}"
    if not lake.warehouse.exists(identifier):
        raise UsageError(f"{identifier} does not exist yet: run 'lakestack promote {dataset}' first")
    table = lake.read(identifier, columns=list(lookup.keys))
    missing = [k for k in lookup.keys if k not in table.column_names]
    if missing:
        raise UsageError(f"lookup '{lookup.name}' is keyed by {', '.join(missing)}, which {identifier} does not have")
    columns = [table.column(k).to_pylist() for k in lookup.keys]
    keys = {tuple(str(v) for v in row) for row in zip(*columns, strict=True) if None not in row}
    return sorted(keys)


def _fresh(cache: Any, lookup: LookupConfig, now: datetime) -> set[tuple[str, ...]]:
    """Keys whose cached answer is younger than the lookup's ttl (today's: a ttl change applies)."""
    ttl = timedelta(seconds=duration_seconds(lookup.ttl)) if duration_seconds(lookup.ttl) else timedelta.max / 2
    rows = cache.scan(selected_fields=(*lookup.keys, "fetched_at")).to_arrow().to_pylist()
    return {
        tuple(r[k] for k in lookup.keys) for r in rows if r["fetched_at"] is not None and r["fetched_at"] + ttl > now
    }


def _call(
    client: RestClient, lookup: LookupConfig, key: tuple[str, ...], run_id: str, dataset: str
) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """(the audit row, the cache row or None when it failed); None when the budget is spent."""
    columns = dict(zip(lookup.keys, key, strict=True))
    params = {p: columns[c] for p, c in lookup.params.items()} if lookup.params else dict(columns)
    sent = client.requests
    started = time.perf_counter()
    call: dict[str, Any] = {
        "lookup": lookup.name,
        "dataset": dataset,
        "key": json.dumps(columns, sort_keys=True),
        "run_id": run_id,
        "called_at": datetime.now(UTC),
        "status": None,
        "error": None,
    }
    answer = None
    try:
        got = client.get(lookup.url, params, ok=(404, 400, 410, 422))
    except RestAuthError as exc:
        call.update(outcome="refused", error=str(exc), status=401)
        got = None
    except RestError as exc:
        call.update(outcome="failed", error=str(exc))
        got = None
    else:
        if got is None and client.requests == sent:
            return None  # the budget was spent before this key
        if got is None:
            call.update(outcome="failed", error="the call budget was spent while retrying")
    if got is not None:
        call["status"] = got.status
        answer = _cache_row(lookup, columns, got.status, got.content) if 200 <= got.status < 300 else None
        if answer is None:
            call.update(outcome="failed", error=call["error"] or f"{got.status}: {got.content[:200]!r}")
        else:
            call["outcome"] = "cached"
    attempts = client.requests - sent
    call.update(
        latency_ms=(time.perf_counter() - started) * 1000,
        attempts=attempts,
        cost_units=attempts * lookup.cost_per_call,
    )
    if call["error"]:
        from lakestack._secrets import redact

        call["error"] = redact(str(call["error"]))
    return call, answer


def _cache_row(lookup: LookupConfig, key: dict[str, str], status: int, content: bytes) -> dict[str, Any] | None:
    import msgspec

    from lakestack._secrets import redact
    from lakestack.ingest.rest import get_path

    try:
        body = msgspec.json.decode(content)
    except msgspec.DecodeError:
        return None  # an unreadable answer is a failure: asked again next run
    row: dict[str, Any] = dict(key)
    for name, path in lookup.fields.items():
        value = get_path(body, path)
        row[name] = None if value is None else (value if isinstance(value, str) else json.dumps(value))
    now = datetime.now(UTC)
    ttl = duration_seconds(lookup.ttl)
    row.update(
        response=redact(content.decode("utf-8", "replace")),
        status=status,
        fetched_at=now,
        expires_at=now + timedelta(seconds=ttl) if ttl else None,
    )
    return row


def _audit(warehouse: Any, calls: list[dict[str, Any]], run_id: str) -> None:
    from lakestack.storage.warehouse import append

    if not calls:
        return
    table = warehouse.system_table(CALLS_TABLE, CALLS_SCHEMA)
    rows = pa.Table.from_pylist(calls, schema=CALLS_SCHEMA)
    append(table, rows, run_id=run_id, batch_id=f"{run_id}:lookup-calls:{len(calls)}:{calls[0]['key'][:80]}")
    log.info("%s: %d lookup calls audited", CALLS_TABLE, len(calls))
    calls.clear()


def _commit_cache(
    warehouse: Any,
    cache: Any,
    lookup: LookupConfig,
    answers: dict[tuple[str, ...], dict[str, Any]],
    run_id: str,
    upto: int,
) -> Any:
    """Replace the cache with its rows for other keys plus the fresh answers, in one commit."""
    from lakestack.storage.warehouse import replace_files

    schema = cache_schema(lookup)
    files = [task.file for task in cache.scan().plan_files()]
    kept = cache.scan().to_arrow()
    if kept.num_rows:
        fresh = set(answers)
        mask = [tuple(r[k] for k in lookup.keys) not in fresh for r in kept.select(list(lookup.keys)).to_pylist()]
        kept = kept.filter(pa.array(mask, pa.bool_())).select(schema.names).cast(schema)
    new = pa.Table.from_pylist(list(answers.values()), schema=schema)
    data = pa.concat_tables([kept, new]) if kept.num_rows else new
    return replace_files(cache, files, data, run_id=run_id, batch_id=f"{run_id}:lookup:{lookup.name}:{upto}")
