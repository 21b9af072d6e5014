"""The cached `Transaction.table_metadata` (storage/pyiceberg_fixes.py): one metadata copy per staged
state, a fresh one after each update, and commits that come out as pyiceberg's own."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog

from lakestack.storage import pyiceberg_fixes


def _table(tmp_path: Path):  # type: ignore[no-untyped-def]
    pyiceberg_fixes.apply()
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=tmp_path.as_uri())
    catalog.create_namespace("n")
    return catalog.create_table("n.t", schema=pa.schema([("x", pa.int64())]))


def test_reads_of_one_staged_state_share_one_copy_and_a_new_update_makes_a_new_one(tmp_path: Path) -> None:
    table = _table(tmp_path)
    with table.transaction() as tx:
        first = tx.table_metadata
        assert tx.table_metadata is first  # no second replay and deep copy
        tx.set_properties(owner="me")
        second = tx.table_metadata
        assert second is not first
        assert second.properties["owner"] == "me" and "owner" not in first.properties
    assert table.refresh().metadata.properties["owner"] == "me"


def test_appends_through_the_cached_metadata_commit_every_row_and_snapshot(tmp_path: Path) -> None:
    table = _table(tmp_path)
    for n in range(5):
        table.append(pa.table({"x": pa.array([n, n + 10], pa.int64())}))
    table = table.refresh()
    assert len(table.metadata.snapshots) == 5
    assert sorted(table.scan().to_arrow()["x"].to_pylist()) == sorted([*range(5), *range(10, 15)])
    parents = [s.parent_snapshot_id for s in table.metadata.snapshots]
    assert parents[0] is None and parents[1:] == [s.snapshot_id for s in table.metadata.snapshots[:-1]]
