"""Erasure on a Delta table (storage/delta_erase.py through storage/rewrite.py, ADR 38): only the
files holding the subject are rewritten, in one commit carrying lakestack's properties; a commit
landing meanwhile makes the attempt retry from a fresh read and its files are cleaned up; the
versions before keep the rows until the expiry, which vacuums their files and deletes their log.
Also quarantine replay's one Delta-specific commit, the `_replayed_from` column (ADR 38)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakestack.storage.checkpoints import BATCH_ID, RUN_ID
from lakestack.storage.maintenance import MAINTENANCE
from lakestack.storage.rewrite import (
    REMOVED,
    clean_pending,
    erase_rows,
    erasure_snapshots,
    expire_before,
    find_rows,
    holds_older,
)
from lakestack.storage.warehouse import append

deltalake = pytest.importorskip("deltalake")
from lakestack.storage.delta import DeltaLakeTable, DeltaWarehouse, Partitioning  # noqa: E402

SCHEMA = pa.schema(
    [pa.field("k", pa.int64(), nullable=False), pa.field("d", pa.date32()), pa.field("who", pa.string())]
)
EPOCH = date(1970, 1, 1)
SUBJECT = "bob"


def _rows(*rows: tuple[int, int, str]) -> pa.Table:
    return pa.table(
        {
            "k": pa.array([r[0] for r in rows], pa.int64()),
            "d": pa.array([EPOCH + timedelta(days=r[1]) for r in rows], pa.date32()),
            "who": [r[2] for r in rows],
        },
        schema=SCHEMA,
    )


def _who(table: DeltaLakeTable, version: int | None = None) -> list[str]:
    delta = table.delta if version is None else table.at(version)
    return sorted(pa.table(delta.to_pyarrow_table())["who"].to_pylist())


def _match(data: pa.Table) -> Any:
    return pc.equal(data["who"], SUBJECT)


def _on_disk(root: Path) -> set[str]:
    return {p.name for p in root.rglob("*.parquet") if "_delta_log" not in p.parts and "_lakestack" not in p.parts}


@pytest.fixture
def table(tmp_path: Path) -> DeltaLakeTable:
    """Three files on two days: day 1 (ann, bob), day 1 (cid), day 2 (bob, dee)."""
    warehouse = DeltaWarehouse(tmp_path.as_uri())
    warehouse._table("bronze.people", SCHEMA, {}, Partitioning("d", "day"))
    table = warehouse.load("bronze.people")
    table = append(table, _rows((1, 1, "ann"), (2, 1, SUBJECT)), run_id="r1", batch_id="b1")
    table = append(table, _rows((3, 1, "cid")), run_id="r2", batch_id="b2")
    return append(table, _rows((4, 2, SUBJECT), (5, 2, "dee")), run_id="r3", batch_id="b3")


def test_only_the_files_holding_the_subject_are_rewritten_in_one_commit(table: DeltaLakeTable) -> None:
    before = {t.file.file_path for t in table.scan().plan_files()}
    found = find_rows(table, _match)
    assert (found.rows, len(found.files)) == (2, 2) and table.version == 3  # finding changes nothing

    table, erased = erase_rows(table, _match, run_id="run-e", batch_id="erase:run-e:people", extra={"erase.x": "1"})
    assert (erased.rows, len(erased.files), erased.written) == (2, 2, 2)
    assert (erased.snapshot_before, erased.snapshot_after) == (3, 4)
    assert _who(table) == ["ann", "cid", "dee"]
    after = {t.file.file_path for t in table.scan().plan_files()}
    assert before - after == set(found.files)  # the file of cid alone was not touched
    assert len(after) == len(before)

    commit = deltalake.DeltaTable(table.uri).history(1)[0]
    assert commit[MAINTENANCE] == "erase" and commit[RUN_ID] == "run-e" and commit[BATCH_ID] == "erase:run-e:people"
    assert commit["erase.x"] == "1" and sorted(json.loads(commit[REMOVED])) == sorted(found.files)
    assert [s.snapshot_id for s in erasure_snapshots(table)] == [4]
    log = (Path(table.uri.removeprefix("file://")) / "_delta_log" / f"{4:020d}.json").read_text(encoding="utf-8")
    adds = [json.loads(line)["add"] for line in log.splitlines() if '"add"' in line]
    assert adds and all(a["dataChange"] is False for a in adds)  # rows the table held: not new to readers


def test_a_commit_landing_meanwhile_makes_it_retry_and_the_beaten_attempts_files_go(table: DeltaLakeTable) -> None:
    rival = DeltaLakeTable(table.identifier, table.uri)
    raced: list[int] = []

    def racing(data: pa.Table) -> Any:  # the first scan lets another writer commit before the erasure does
        if not raced:
            raced.append(append(rival, _rows((6, 2, "eve")), run_id="r4", batch_id="b4").version)
        return _match(data)

    root = Path(table.uri.removeprefix("file://"))
    table, erased = erase_rows(table, racing, run_id="run-e", batch_id="erase:run-e:people")
    assert raced == [4] and erased.snapshot_after == 5  # the rival's version, then the erasure's
    assert _who(table) == ["ann", "cid", "dee", "eve"]
    referenced = {Path(t.file.file_path).name for v in (1, 2, 3, 4, 5) for t in table.scan(snapshot_id=v).plan_files()}
    assert _on_disk(root) == referenced  # the first attempt's files were written, never committed, deleted
    assert clean_pending(table) == 0 and not list((root / "_lakestack").glob("lakestack-erase-*"))


def test_older_versions_keep_the_rows_until_the_expiry_removes_them(table: DeltaLakeTable) -> None:
    root = Path(table.uri.removeprefix("file://"))
    table, erased = erase_rows(table, _match, run_id="run-e", batch_id="erase:run-e:people")
    assert _who(table, 3).count(SUBJECT) == 2  # time travel still reads the erased rows
    assert holds_older(table, erasure_snapshots(table)[0])
    removed = {Path(p).name for p in erased.files}
    assert removed <= _on_disk(root)

    table, expired = expire_before(table, erasure_snapshots(table)[0])
    assert expired.snapshots == (1, 2, 3) and expired.files == 2
    assert not removed & _on_disk(root)  # the old files are deleted
    assert not holds_older(table, erasure_snapshots(table)[0])
    with pytest.raises(Exception, match=r"log segment|not found|version"):  # delta-rs's own error types
        table.at(3)
    assert not list((root / "_delta_log").glob(f"{3:020d}.*"))
    assert _who(table) == ["ann", "cid", "dee"] and table.refresh().current_snapshot() is not None
    table = append(table, _rows((7, 3, "fay")), run_id="r5", batch_id="b5")  # the table goes on
    assert _who(table) == ["ann", "cid", "dee", "fay"]

    def dee(data: pa.Table) -> Any:
        return pc.equal(data["who"], "dee")

    table, again = erase_rows(table, dee, run_id="run-f", batch_id="erase:run-f:people")
    assert (again.rows, len(again.files), again.written) == (1, 1, 0)  # nothing left of that file
    table, expired = expire_before(table, erasure_snapshots(table)[-1])
    assert expired.files == 1  # its own file: not the ones the first expiry deleted again
    assert _who(table) == ["ann", "cid", "fay"]


def test_replays_column_is_added_even_when_an_append_landed_since_the_table_was_read(table: DeltaLakeTable) -> None:
    """Quarantine replay on Delta (storage/replayed.py): the `_replayed_from` column's commit is
    compare-and-swap; an ingest's append landing first makes it read the table again and retry."""
    from lakestack.storage.replayed import REPLAYED_FROM, ensure_replayed_column, has_replayed_column

    stale = DeltaLakeTable(table.identifier, table.uri)
    append(table, _rows((8, 3, "gus")), run_id="r6", batch_id="b6")  # lands after `stale` was read
    evolved = ensure_replayed_column(stale)
    assert has_replayed_column(evolved) and evolved.version == table.refresh().version == 5
    assert ensure_replayed_column(evolved).version == 5  # already there: no commit
    rows = evolved.scan().to_arrow()
    assert rows.num_rows == 6 and rows[REPLAYED_FROM].null_count == 6
