"""Gold picks its partition granularity from the data: a small daily mart is partitioned by month
(or year), a big one by day; incremental builds replace whole months; a pinned granularity and an
old day-partitioned table keep working. In-process over a real SQLite catalog and Parquet files."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakestack.errors import ProjectError
from lakestack.pipeline.gold import GoldBuild, load_gold_model
from lakestack.storage.partitioning import Periods, granularity_of
from lakestack.storage.warehouse import Warehouse, partitions_changed

MIB = 1024 * 1024  # the smallest `maintenance.target_file_mb` an environment may set
START = date(2025, 1, 1)
MODEL = """/* ---
materialized: incremental
partition_by: day
incremental_on: [silver.orders]
{extra}
--- */
SELECT day, customer, sum(amount) AS amount, count(*) AS orders
FROM silver.orders
WHERE day >= DATE '{since}'
GROUP BY day, customer
"""


def _orders(days: int, customers: int, first: date = START) -> pa.Table:
    """One order per customer and day: the mart has `customers` rows (~28 bytes each) per day."""
    n = days * customers
    return pa.table(
        {
            "day": pa.array([first + timedelta(days=i // customers) for i in range(n)], pa.date32()),
            "customer": pa.array([i % customers for i in range(n)], pa.int64()),
            "amount": pa.array([float(i % 97) for i in range(n)], pa.float64()),
        }
    )


class Project:
    """A warehouse with `silver.orders` (day-partitioned, as Silver is) and one Gold model file."""

    def __init__(self, root: Path, orders: pa.Table) -> None:
        from pyiceberg.catalog.sql import SqlCatalog
        from pyiceberg.transforms import DayTransform

        (root / "warehouse").mkdir(parents=True)
        (root / "models" / "gold").mkdir(parents=True)
        self.root = root
        catalog = SqlCatalog("t", uri=f"sqlite:///{root}/catalog.db", warehouse=f"file://{root}/warehouse")
        self.warehouse = Warehouse(catalog)
        self.warehouse.ensure_namespaces()
        silver = catalog.create_table("silver.orders", schema=orders.schema, properties={"format-version": "2"})
        with silver.update_spec() as spec:
            spec.add_field("day", DayTransform(), "day_day")
        self.runs = 0
        self.late(orders)

    def model(self, extra: str = "", *, name: str = "mart", since: date = START) -> Any:
        path = self.root / "models" / "gold" / f"{name}.sql"
        path.write_text(MODEL.format(extra=extra, since=since.isoformat()), encoding="utf-8")
        return load_gold_model(path, self.root)

    def build(
        self, extra: str = "", *, name: str = "mart", since: date = START, target: int = MIB, full_refresh: bool = False
    ) -> Any:
        self.runs += 1
        model = self.model(extra, name=name, since=since)
        return GoldBuild(model, self.warehouse, f"run-{self.runs}", self.root, target_bytes=target).run(full_refresh)

    def late(self, rows: pa.Table) -> None:
        """Rows committed to Silver (one file per day, as Silver writes them)."""
        from lakestack.storage.warehouse import replace_files

        self.runs += 1
        replace_files(self.warehouse.load("silver.orders"), [], rows, run_id=f"s{self.runs}", batch_id=f"s{self.runs}")

    def mart(self, name: str = "mart") -> Any:
        return self.warehouse.load(f"gold.{name}")

    def files(self, name: str = "mart") -> dict[str, Any]:
        """Data file path → partition value."""
        return {t.file.file_path: t.file.partition[0] for t in self.mart(name).scan().plan_files()}


def _hash(table: Any, snapshot_id: int | None = None) -> tuple[int, str]:
    rows = sorted(tuple(str(v) for v in r.values()) for r in table.scan(snapshot_id=snapshot_id).to_arrow().to_pylist())
    return len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Silver with a year of orders, shared: each test builds its own mart (and adds late rows on
    days no other test's mart reads)."""
    # ~5.6 kB of mart a day: a year is over 1 MiB, a month well under
    return Project(tmp_path_factory.mktemp("year"), _orders(365, 200))


def test_a_year_of_small_daily_data_is_month_partitioned_and_equals_a_day_partitioned_build(year: Project) -> None:
    result = year.build(name="monthly")
    assert (result.mode, result.granularity) == ("full", "month")
    assert granularity_of(year.mart("monthly").spec()) == "month"
    assert len(year.files("monthly")) <= 12 + 2
    assert sorted(set(year.files("monthly").values())) == list(range(660, 672))  # months since 1970-01: 2025-01…12

    pinned = year.build("partition_granularity: day", name="daily")
    assert pinned.granularity == "day" and granularity_of(year.mart("daily").spec()) == "day"
    assert len(year.files("daily")) == 365  # pinning day keeps day partitions
    assert _hash(year.mart("monthly")) == _hash(year.mart("daily"))


def test_a_late_row_rebuilds_only_its_month(year: Project) -> None:
    year.build(name="late")
    before = year.files("late")
    built = year.mart("late").current_snapshot().snapshot_id
    assert year.build(name="late").mode == "skipped"
    year.late(pa.table({"day": pa.array([date(2025, 3, 10)], pa.date32()), "customer": [7], "amount": [1000.0]}))

    result = year.build(name="late")
    assert (result.mode, result.granularity, result.partitions) == ("incremental", "month", 1)
    after = year.files("late")
    march = 662  # months since 1970-01
    assert {p: v for p, v in after.items() if v != march} == {p: v for p, v in before.items() if v != march}
    assert not {p for p, v in after.items() if v == march} & set(before)  # March's file was replaced
    march_days = {(date(2025, 3, 1) - date(1970, 1, 1)).days + i for i in range(31)}
    assert partitions_changed(year.mart("late"), built) == march_days  # what a reader of this mart rebuilds
    row = year.mart("late").scan(row_filter="day == '2025-03-10' and customer == 7").to_arrow()
    assert row.column("orders").to_pylist() == [2] and row.column("amount").to_pylist()[0] >= 1000.0

    incremental = _hash(year.mart("late"))
    refreshed = year.build(name="late", full_refresh=True)
    assert refreshed.mode == "full" and refreshed.granularity == "month"
    assert _hash(year.mart("late")) == incremental  # incremental = full rebuild, row for row


def test_a_big_result_per_day_stays_day_partitioned_and_a_tiny_one_goes_to_year(tmp_path: Path) -> None:
    big = Project(tmp_path / "big", _orders(3, 2_000))  # ~56 kB a day: a month would pass 1 MiB
    assert big.build().granularity == "day"
    assert len(big.files()) == 3
    tiny = Project(tmp_path / "tiny", _orders(60, 5))  # ~140 bytes a day: a whole year fits one file
    assert tiny.build().granularity == "year"
    assert len(tiny.files()) == 1
    tiny.late(pa.table({"day": pa.array([date(2025, 2, 1)], pa.date32()), "customer": [1], "amount": [5.0]}))
    late = tiny.build()
    assert (late.mode, late.partitions) == ("incremental", 1)
    assert tiny.mart().scan().to_arrow().num_rows == 60 * 5  # the late order joined an existing (day, customer)


def test_an_old_day_partitioned_table_still_builds_incrementally(year: Project) -> None:
    december = date(2025, 12, 1)
    year.build("partition_granularity: day", name="old", since=december)  # as every build made it before
    before = year.files("old")
    year.late(pa.table({"day": pa.array([date(2025, 12, 2)], pa.date32()), "customer": [3], "amount": [1.0]}))

    result = year.build(name="old", since=december)  # settings back to the default (auto): the table keeps its days
    assert (result.mode, result.granularity, result.partitions) == ("incremental", "day", 1)
    after = year.files("old")
    assert len(after) == 31 and len(set(before) - set(after)) == 1
    assert granularity_of(year.mart("old").spec()) == "day"


def test_pinning_another_granularity_repartitions_in_one_commit_and_time_travel_reads_the_old(year: Project) -> None:
    autumn = date(2025, 10, 1)
    year.build(name="re", since=autumn)
    monthly = year.mart("re").current_snapshot().snapshot_id
    assert len(year.files("re")) == 3
    content = _hash(year.mart("re"))

    result = year.build("partition_granularity: year", name="re", since=autumn)  # no upstream change; the pin differs
    assert (result.mode, result.granularity) == ("full", "year")
    table = year.mart("re")
    assert granularity_of(table.spec()) == "year" and len(year.files("re")) == 1
    assert table.current_snapshot().parent_snapshot_id == monthly  # one commit, history kept
    assert _hash(table) == content == _hash(table, monthly)

    year.late(pa.table({"day": pa.array([date(2025, 10, 5)], pa.date32()), "customer": [1], "amount": [2.0]}))
    back = year.build("partition_granularity: day", name="re", since=autumn)  # back to day: full again
    assert (back.mode, back.granularity) == ("full", "day") and len(year.files("re")) == 92
    assert year.build("partition_granularity: day", name="re", since=autumn).mode == "skipped"


def test_a_bad_granularity_is_an_error_at_its_file_and_line(tmp_path: Path) -> None:
    project = Project(tmp_path / "bad", _orders(1, 1))
    with pytest.raises(ProjectError) as bad:
        project.model("partition_granularity: weekly")
    assert "mart.sql" in str(bad.value) and ":5" in str(bad.value) and "partition_granularity" in str(bad.value)
    path = project.root / "models" / "gold" / "full.sql"
    path.write_text("/* ---\npartition_granularity: month\n--- */\nSELECT 1 AS x\n", encoding="utf-8")
    with pytest.raises(ProjectError, match="partition_granularity needs partition_by"):
        load_gold_model(path, project.root)
    path.write_text("/* ---\npartition_by: customer\n--- */\nSELECT day, customer FROM silver.orders\n")
    with pytest.raises(ProjectError, match=r"full\.sql:1: partition_by: 'customer' is not a DATE column"):
        GoldBuild(load_gold_model(path, project.root), project.warehouse, "r", project.root).run()
    assert not project.warehouse.exists("gold.full")


def test_periods_map_days_to_their_months_and_merge_adjacent_ranges() -> None:
    days = [date(2025, 1, 31), date(2025, 2, 1), date(2025, 2, 28), date(2025, 12, 31)]
    months = Periods.covering(days, "month")
    assert months.ranges() == [(date(2025, 1, 1), date(2025, 3, 1)), (date(2025, 12, 1), date(2026, 1, 1))]
    assert months.values == {660, 661, 671} and len(months) == 3
    assert Periods.covering(days, "year").ranges() == [(date(2025, 1, 1), date(2026, 1, 1))]
    assert Periods.covering([], "day").ranges() == []


def test_the_environments_target_file_size_picks_the_granularity_in_a_run(tmp_path: Path) -> None:
    from lake_support import small_northwind
    from lakestack import Lake
    from maintenance_support import set_maintenance

    root = small_northwind(tmp_path / "northwind")  # fact_sales ~65 kB a day, daily_order_metrics ~400 bytes
    set_maintenance(root, target_file_mb=1)  # the default 128 would make both year-partitioned
    built = {b.dataset: b for b in Lake.open(root).run().built}
    assert built["gold.fact_sales"].granularity == "day"  # a month of it would pass 1 MiB
    assert built["gold.daily_order_metrics"].granularity == "year"
    assert built["gold.dim_customers"].granularity is None  # no partition_by
