"""The project's datasets as a reader sees them: what `GET /v1/datasets` and the console show.

Every function takes the caller's `role`: a dataset the role may not read is left out of a listing
and is :class:`DatasetNotFound` when named, exactly like one that does not exist; a column the role
may not read is left out of a schema; rows come through the role's sandbox (pipeline/access.py).
Values are JSON-ready: timestamps as ISO-8601 UTC strings, snapshot ids as strings (a 64-bit id
loses precision in JavaScript).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lakestack.config import PROJECT_SQL_DIALECT
from lakestack.errors import UsageError

LAYERS = ("bronze", "silver", "gold", "quarantine")


class DatasetNotFound(UsageError):
    """No dataset of that name, or one the role may not read (the same answer for both)."""


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def dataset_names(lake: Any, role: str | None) -> list[str]:
    """The warehouse's datasets (no `_lakestack.*` system tables) that `role` may read, sorted."""
    names = [t for t in lake.warehouse.tables() if t.split(".")[0] in LAYERS]
    return sorted(t for t in names if lake.may_read(role, t))


def readable(lake: Any, name: str, role: str | None) -> Any:
    """The Iceberg table `name` if it is a dataset `role` may read; else :class:`DatasetNotFound`."""
    if name.split(".")[0] not in LAYERS or not lake.warehouse.exists(name) or not lake.may_read(role, name):
        raise DatasetNotFound(f"no dataset '{name}' (see GET /v1/datasets)")
    return lake.warehouse.load(name)


def list_datasets(
    lake: Any, role: str | None, *, q: str | None = None, layer: str | None = None
) -> list[dict[str, Any]]:
    """A summary per dataset `role` may read; `q` matches names, owners and descriptions; `layer` filters."""
    out = []
    models = _gold_models(lake)  # parsed once for the listing
    for name in dataset_names(lake, role):
        if layer and name.split(".")[0] != layer:
            continue
        summary = dataset_summary(lake, name, role, models=models)
        text = " ".join(str(summary.get(k) or "") for k in ("name", "owner", "description")).lower()
        if q and q.lower() not in text:
            continue
        out.append(summary)
    return out


def dataset_summary(lake: Any, name: str, role: str | None, *, models: dict[str, Any] | None = None) -> dict[str, Any]:
    """`name`'s layer, rows, contract, owner, PII classes, last commit and its age, current snapshot
    (`models`: the project's Gold models, when the caller has them parsed already)."""
    from lakestack.pipeline.access import table_pii

    table = readable(lake, name, role)
    snap = table.current_snapshot()
    summary = snap.summary.additional_properties if snap and snap.summary else {}
    last = datetime.fromtimestamp(snap.timestamp_ms / 1000, UTC) if snap else None
    hidden = {c["name"] for c in _columns(lake, name, table, role) if c["masking"] == "denied"}
    about = _declared(lake, name, _gold_models(lake) if models is None else models)
    return {
        "name": name,
        "layer": name.split(".")[0],
        "rows": int(summary.get("total-records", 0)),
        "contract": about["contract"],
        "owner": about["owner"],
        "description": about["description"],
        "pii": {k: v for k, v in sorted(table_pii(table).items()) if k not in hidden},
        "last_commit": iso(last),
        "age_s": round((datetime.now(UTC) - last).total_seconds(), 3) if last else None,
        "snapshot_id": str(snap.snapshot_id) if snap else None,
    }


def dataset_detail(lake: Any, name: str, role: str | None, *, snapshots: int = 100) -> dict[str, Any]:
    """The summary with the schema (PII class and the role's masking per column), the snapshot
    history (newest first, at most `snapshots`) and the latest result of each of its checks."""
    from lakestack.pipeline.checks import latest_checks
    from lakestack.pipeline.timetravel import table_history

    out = dataset_summary(lake, name, role)
    table = lake.warehouse.load(name)
    out["schema"] = [
        {k: c[k] for k in ("name", "type", "nullable", "pii", "masking")}
        for c in _columns(lake, name, table, role)
        if c["masking"] != "denied"
    ]
    out["snapshots"] = [
        {
            "snapshot_id": str(h.snapshot_id),
            "committed_at": iso(h.committed_at),
            "operation": h.operation,
            "rows": h.total_rows,
            "added_rows": h.added_rows,
            "deleted_rows": h.deleted_rows,
            "run_id": h.run_id,
            "job": h.job,
            "current": h.current,
        }
        for h in table_history(lake.warehouse, name, snapshots)
    ]
    out["checks"] = latest_checks(lake, role, dataset=name)
    return out


def dataset_rows(
    lake: Any, name: str, role: str | None, *, limit: int, offset: int, user: dict[str, str] | None = None
) -> dict[str, Any]:
    """A page of `name`'s rows as `role` may read them (masked, filtered by the row filters over
    `user`'s attributes), with the total count.
    The page is read through the role's locked-down sandbox, as `lakestack show --role` is."""
    from sqlglot import exp

    from lakestack.engine.base import SqlLimits

    table = readable(lake, name, role)
    columns = {c["name"]: c for c in _columns(lake, name, table, role)}
    source = exp.to_table(name, dialect=PROJECT_SQL_DIALECT)
    page = exp.select("*").from_(source).limit(limit).offset(offset).sql(PROJECT_SQL_DIALECT)
    counted = exp.select(exp.Count(this=exp.Star()).as_("n")).from_(source).sql(PROJECT_SQL_DIALECT)
    limits = SqlLimits(timeout_s=30.0, max_rows=limit)
    data = lake.query(page, limits=limits, role=role, user=user)
    total = int(lake.query(counted, limits=SqlLimits(timeout_s=30.0), role=role, user=user).column(0)[0].as_py())
    return {
        "columns": [
            {"name": f.name, "type": str(f.type), "masking": _masking(columns.get(f.name))} for f in data.schema
        ],
        "rows": [list(r.values()) for r in data.to_pylist()],
        "offset": offset,
        "limit": limit,
        "total": total,
        "next": f"/v1/datasets/{name}/rows?limit={limit}&offset={offset + limit}" if offset + limit < total else None,
    }


def _masking(column: dict[str, Any] | None) -> str | None:
    return None if column is None else column["masking"]


def _columns(lake: Any, name: str, table: Any, role: str | None) -> list[dict[str, Any]]:
    """Each column with its type, nullability, PII class and how `role` sees it: None (in clear),
    the masking method, or `denied`."""
    from lakestack.pipeline.access import table_access, table_pii

    pii = table_pii(table)
    chosen = lake.role(role)
    access = None
    if chosen is not None:
        try:
            access = table_access(lake.policy, chosen, name, table, {})
        except UsageError:  # a row filter on user attributes the API cannot supply: masking as declared
            access = None
    modes = {c.name: c for c in access.columns} if access is not None else {}
    out = []
    for field in table.schema().fields:
        seen = modes.get(field.name)
        if seen is None or seen.mode == "clear":
            masking = None
        else:
            masking = "denied" if seen.mode == "denied" else (seen.method or "redact")
        out.append(
            {
                "name": field.name,
                "type": str(field.field_type),
                "nullable": not field.required,
                "pii": pii.get(field.name),
                "masking": masking,
            }
        )
    return out


def _declared(lake: Any, name: str, models: dict[str, Any]) -> dict[str, Any]:
    """The contract, owner and description the project declares for a dataset (None where it does not)."""
    layer, _, short = name.partition(".")
    config = lake.project.config
    source = short if layer in ("bronze", "quarantine") else None
    owner = description = None
    if layer == "silver" and short in config.datasets:
        declared = config.datasets[short]
        source, owner, description = declared.source or short, declared.owner, declared.description
    elif layer == "gold":
        if short in config.datasets:
            owner, description = config.datasets[short].owner, config.datasets[short].description
        model = models.get(short)
        if model is not None:
            owner = owner or model.settings.owner
            description = description or model.settings.description
    contract = None
    if source is not None and source in config.sources:
        try:
            found = lake.project.contract(source)
        except Exception:  # an unreadable contract file: the dataset is still listed
            found = None
        if found is not None:
            contract = {"name": found.source, "version": found.version, "ref": found.ref}
            owner = owner or found.owner
            description = description or found.description
        if layer in ("bronze", "quarantine"):
            owner = config.sources[source].owner or owner
            description = config.sources[source].description or description
    return {"contract": contract, "owner": owner, "description": description}


def _gold_models(lake: Any) -> dict[str, Any]:
    try:
        return dict(lake.gold_models())
    except Exception:  # a broken model file: the built tables are still listed
        return {}
