"""Masking benchmark: the same `Lake.query` on a Gold table with PII, as `engineer` (clear: a view
over the data files, as without roles) and as one role per masking kind (`partial`, `redact`,
`null`, `hash` = HMAC-SHA256, `tokenize`), each masked table computed in the sandbox before it is
locked (ADR 0020). The roles take turns within each repeat (clear, partial, …, clear, partial, …)
so a busy machine slows them alike; each row is the median of the repeats and its overhead over
clear (`overhead_pct`, target < 20 %)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

KINDS = ("partial", "redact", "null", "hash", "tokenize")
POLICIES = "hash_key: {secret: BENCH_MASKING_KEY}\nroles:\n" + "".join(
    f"  mask_{k}:\n    grants: [{{datasets: [gold.*]}}]\n    masking: {{email: '{k}', phone: '{k}', card: '{k}'}}\n"
    for k in KINDS
)
QUERIES = {
    "distinct emails per country (1 masked column, 4 rows per value)": (
        "SELECT country, count(DISTINCT email) AS people, sum(amount) AS revenue FROM gold.customer_orders GROUP BY 1"
    ),
    "top 10 spenders by email and phone (2 masked columns)": (
        "SELECT email, phone, sum(amount) AS spent FROM gold.customer_orders GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 10"
    ),
    "10 largest orders with their card (1 masked column, every value unique)": (
        "SELECT card, amount FROM gold.customer_orders ORDER BY amount DESC, card LIMIT 10"
    ),
    "revenue per country (no PII column named)": (
        "SELECT country, sum(amount) AS revenue, count(*) AS n FROM gold.customer_orders GROUP BY 1"
    ),
}


def _table(n: int, rng: np.random.Generator) -> pa.Table:
    people = rng.integers(0, n // 4, n)
    ids = pa.array(people).cast(pa.string())
    return pa.table(
        {
            "customer_id": pc.binary_join_element_wise("C", ids, ""),
            "email": pc.binary_join_element_wise("person", ids, "@example.com", ""),
            "phone": pc.binary_join_element_wise("+44 20 ", pc.utf8_lpad(ids, 7, "0"), ""),
            "card": pc.binary_join_element_wise("4", pa.array(rng.permutation(n) + 10**14).cast(pa.string()), ""),
            "country": pa.array(np.array(["US", "GB", "DE", "FR"])[rng.integers(0, 4, n)]),
            "amount": pa.array(rng.integers(100, 50_000, n) / 100.0),
        }
    )


def bench_masking(n_rows: int, repeat: int) -> list[dict[str, Any]]:
    import os

    from lakestack.engine.base import SqlLimits
    from lakestack.pipeline.gold import GoldSettings
    from lakestack.pipeline.lake import Lake
    from lakestack.pipeline.scaffold import copy_example

    repeat = max(repeat, 5)
    os.environ["BENCH_MASKING_KEY"] = "benchmark-masking-key-0123456789"
    rows: list[dict[str, Any]] = []
    roles = {"clear": "engineer", **{k: f"mask_{k}" for k in KINDS}}
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_example("northwind", Path(tmp) / "nw")
        (root / "policies.yaml").write_text(POLICIES, encoding="utf-8")
        lake = Lake.open(root)
        model = SimpleNamespace(identifier="gold.customer_orders", name="customer_orders", settings=GoldSettings())
        data = _table(n_rows, np.random.default_rng(5))
        table = lake.warehouse.gold_table(model, data.schema, pii={"email": "email", "phone": "phone", "card": "card"})
        table.append(data)
        limits = SqlLimits(memory_limit="2GB", timeout_s=600)
        for label, sql in QUERIES.items():
            print(f"  masking · {label}: {', '.join(roles)} in turn, {repeat} times ...", flush=True)
            times: dict[str, list[float]] = {kind: [] for kind in roles}
            for role in roles.values():  # warm-up: catalog, imports, file cache
                lake.query(sql, limits=limits, role=role)
            for _ in range(repeat):
                for kind, role in roles.items():
                    t0 = time.perf_counter()
                    lake.query(sql, limits=limits, role=role)
                    times[kind].append(time.perf_counter() - t0)
            clear = statistics.median(times["clear"])
            for kind in roles:
                seconds = statistics.median(times[kind])
                rows.append(
                    {
                        "benchmark": "masking",
                        "tool": f"{kind}: {label}, {n_rows:,} rows",
                        "rows": n_rows,
                        "median_s": round(seconds, 3),
                        "per_s": round(n_rows / seconds),
                        "ratio": round(seconds / clear, 2),
                        "overhead_pct": round((seconds / clear - 1) * 100, 1),
                        "meets_20pct": seconds / clear < 1.2,
                        "repeats": repeat,
                    }
                )
    return rows
