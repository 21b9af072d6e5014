"""The project's lineage as a graph: source → Bronze → Silver → Gold → published tables, with
column-level lineage for Gold (lineage/columns.py over each model's SQL).

It is read from the project's declarations (sources, Silver datasets, Gold models' upstreams,
`publish:` blocks), so it shows what will flow as well as what has. A dataset the reader's role may
not read is left out, with its edges (a source goes with its Bronze table, a published table with
its dataset).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from lakestack.errors import UsageError

DIRECTIONS = ("both", "upstream", "downstream")


def lineage_graph(lake: Any, role: str | None, *, columns: bool = True) -> dict[str, Any]:
    """`{"nodes": [...], "edges": [...], "columns": [...]}` of the whole project, as `role` may see it."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[tuple[str, str]] = []
    config = lake.project.config

    def node(identifier: str, kind: str, name: str, **extra: Any) -> str:
        nodes.setdefault(identifier, {"id": identifier, "kind": kind, "name": name, "layer": kind, **extra})
        return identifier

    for source, cfg in config.sources.items():
        bronze = node(f"bronze.{source}", "bronze", f"bronze.{source}")
        edges.append((node(f"source:{source}", "source", source, source_kind=cfg.kind), bronze))
    for name in lake.silver_datasets():
        silver = node(f"silver.{name}", "silver", f"silver.{name}")
        source = config.datasets[name].source or name
        edges.append((node(f"bronze.{source}", "bronze", f"bronze.{source}"), silver))
    models = _models(lake)
    for name, model in models.items():
        gold = node(f"gold.{name}", "gold", f"gold.{name}")
        for upstream in model.upstream:
            edges.append((node(upstream, upstream.split(".")[0], upstream), gold))
    for target, spec in (getattr(config, "publish", None) or {}).items():
        schema = getattr(spec, "db_schema", "public")
        for dataset, table in spec.datasets.items():
            where = table.table or f"{schema}.{dataset.split('.', 1)[1]}"
            where = where if "." in where else f"{schema}.{where}"
            published = node(f"postgres:{target}.{where}", "postgres", where, target=target, dataset=dataset)
            edges.append((node(dataset, dataset.split(".")[0], dataset), published))
    visible = {i for i in nodes if _visible(lake, role, i, nodes[i])}
    return {
        "nodes": [nodes[i] for i in sorted(visible, key=_order)],
        "edges": [{"from": a, "to": b} for a, b in dict.fromkeys(edges) if a in visible and b in visible],
        "columns": _column_edges(lake, models, visible) if columns else [],
    }


def dataset_lineage(lake: Any, role: str | None, dataset: str, direction: str = "both") -> dict[str, Any]:
    """The part of the graph upstream and/or downstream of `dataset` (a `layer.name` or a node id)."""
    from lakestack.pipeline.datasets import DatasetNotFound

    if direction not in DIRECTIONS:
        raise UsageError(f"direction '{direction}' is not one of {', '.join(DIRECTIONS)}")
    graph = lineage_graph(lake, role)
    ids = {n["id"] for n in graph["nodes"]}
    if dataset not in ids:
        raise DatasetNotFound(f"no dataset '{dataset}' (see GET /v1/datasets)")
    keep = {dataset}
    pairs = [(e["from"], e["to"]) for e in graph["edges"]]
    if direction in ("both", "upstream"):
        keep |= _reach(dataset, {(b, a) for a, b in pairs})
    if direction in ("both", "downstream"):
        keep |= _reach(dataset, set(pairs))
    return {
        "dataset": dataset,
        "direction": direction,
        "nodes": [n for n in graph["nodes"] if n["id"] in keep],
        "edges": [e for e in graph["edges"] if e["from"] in keep and e["to"] in keep],
        "columns": [c for c in graph["columns"] if _table(c["from"]) in keep and _table(c["to"]) in keep],
    }


def _reach(start: str, pairs: set[tuple[str, str]]) -> set[str]:
    out: set[str] = set()
    todo = deque([start])
    while todo:
        here = todo.popleft()
        for a, b in pairs:
            if a == here and b not in out:
                out.add(b)
                todo.append(b)
    return out


def _table(column: str) -> str:
    return column.rsplit(".", 1)[0]


def _order(identifier: str) -> tuple[int, str]:
    layer = identifier.split(":")[0] if ":" in identifier else identifier.split(".")[0]
    rank = {"source": 0, "bronze": 1, "silver": 2, "gold": 3, "postgres": 4}
    return rank.get(layer, 5), identifier


def _visible(lake: Any, role: str | None, identifier: str, node: dict[str, Any]) -> bool:
    if node["kind"] == "source":
        identifier = f"bronze.{node['name']}"
    elif node["kind"] == "postgres":
        identifier = node["dataset"]
    try:
        return bool(lake.may_read(role, identifier))
    except UsageError:
        return False


def _models(lake: Any) -> dict[str, Any]:
    from lakestack.errors import ProjectError

    try:
        return dict(lake.gold_models())
    except ProjectError:  # a broken model file: the graph without Gold
        return {}


def _column_edges(lake: Any, models: dict[str, Any], visible: set[str]) -> list[dict[str, Any]]:
    """Gold columns → the upstream columns they are made from (direct lineage), for visible models."""
    from lakestack.lineage.columns import column_lineage

    out = []
    for name, model in models.items():
        target = f"gold.{name}"
        if target not in visible or not all(u in visible for u in model.upstream):
            continue
        upstream = {u: _column_names(lake, u) for u in model.upstream}
        try:
            found = column_lineage(model.sql, upstream)
        except Exception:  # sqlglot cannot follow every model: no column lineage for it, never a guess
            continue
        for column, sources in found.fields.items():
            for (table, source_column), kinds in sources.items():
                out.append(
                    {
                        "from": f"{table}.{source_column}",
                        "to": f"{target}.{column}",
                        "transformation": kinds[0].subtype if kinds else None,
                    }
                )
    return out


def _column_names(lake: Any, identifier: str) -> list[str]:
    if not lake.warehouse.exists(identifier):
        return []
    return [f.name for f in lake.warehouse.load(identifier).schema().fields]
