"""The micro-batch writer against a real SQLite catalog: checkpoints, duplicates, resume."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lakestack.ingest.stream import StreamRecord, StreamWriter, stream_positions
from lakestack.pipeline.lake import Lake
from lakestack.storage.warehouse import history
from stream_support import bronze_ids, payload, quarantine_rows, stream_project


def _writer(root: Path, run_id: str = "run-1") -> StreamWriter:
    lake = Lake.open(root)
    cfg = lake.project.config.sources["events"]
    return StreamWriter(lake.warehouse, "events", lake.project.contract("events"), "nats", cfg.stream, run_id)


def test_commit_carries_positions_and_resume_drops_redelivered(tmp_path: Path) -> None:
    root = stream_project(tmp_path / "p", "nats", {"stream": "EVENTS"})
    writer = _writer(root)
    records = [StreamRecord("EVENTS", i, payload(i)) for i in range(1, 6)]
    records.append(StreamRecord("EVENTS", 6, b'{"event_id": "e6", "ts": "x"}'))
    writer.add(records)
    result = writer.flush()
    assert result is not None
    assert (result.landed, result.quarantined) == (5, 1)
    assert stream_positions(writer.bronze) == {"EVENTS": 6}
    assert stream_positions(writer.quarantine) == {"EVENTS": 6}

    again = _writer(root, "run-2")  # a restart: the broker redelivers 4..8
    assert again.committed == {"EVENTS": 6}
    again.add([StreamRecord("EVENTS", i, payload(i)) for i in range(4, 9)])
    again.flush()
    assert again.stats.duplicates == 3
    assert sorted(bronze_ids(root)) == sorted(f"e{i}" for i in [1, 2, 3, 4, 5, 7, 8])
    bad = quarantine_rows(root)
    assert [r["_source_position"] for r in bad] == ["EVENTS@6"]
    assert "ts" in bad[0]["_reason"] or "amount" in bad[0]["_reason"]


def test_requarantine_is_skipped_after_a_crash_between_the_two_commits(tmp_path: Path) -> None:
    root = stream_project(tmp_path / "p", "nats", {"stream": "EVENTS"})
    writer = _writer(root)
    writer.add([StreamRecord("EVENTS", 1, payload(1)), StreamRecord("EVENTS", 2, b"not json")])
    # commit only the quarantine part, as a process killed between the two commits would
    from lakestack.storage.checkpoints import StreamBatch
    from lakestack.storage.warehouse import append

    bad = writer._bad[0]
    from datetime import UTC, datetime

    from lakestack.ingest.rows import stamp

    append(
        writer.quarantine,
        stamp(bad, "run-1", datetime.now(UTC)),
        run_id="run-1",
        batch_id="x:q",
        checkpoint=StreamBatch("nats", {"EVENTS": 2}),
    )
    restarted = _writer(root, "run-2")
    assert restarted.committed == {}
    restarted.add([StreamRecord("EVENTS", 1, payload(1))])  # a smaller batch than before the crash
    restarted.flush()
    restarted.add([StreamRecord("EVENTS", 2, b"not json"), StreamRecord("EVENTS", 3, b"[")])
    restarted.flush()
    assert bronze_ids(root) == ["e1"]
    assert sorted(r["_source_position"] for r in quarantine_rows(root)) == ["EVENTS@2", "EVENTS@3"]


def test_partitions_resume_independently(tmp_path: Path) -> None:
    root = stream_project(tmp_path / "p", "kafka", {"bootstrap_servers": "x:1", "topics": ["t"]})
    writer = _writer(root)
    writer.add([StreamRecord("t/0", 10, payload(1)), StreamRecord("t/1", 3, payload(2))])
    assert writer.due() is False
    writer.flush()
    writer.add([StreamRecord("t/1", 4, payload(3))])
    writer.flush()
    assert stream_positions(_writer(root).bronze) == {"t/0": 10, "t/1": 4}
    assert writer.flush() is None


def test_a_writer_never_writes_back_its_stale_view_of_partitions_it_did_not_advance(tmp_path: Path) -> None:
    # two members of one Kafka group: each owns one partition and loaded the checkpoint at start
    root = stream_project(tmp_path / "p", "kafka", {"bootstrap_servers": "x:1", "topics": ["t"]})
    first = _writer(root)
    first.add([StreamRecord("t/0", 0, payload(0)), StreamRecord("t/1", 0, payload(1))])
    first.flush()
    a, b = _writer(root, "run-a"), _writer(root, "run-b")
    a.add([StreamRecord("t/0", i, payload(10 + i)) for i in range(1, 5)])
    a.flush()
    b.add([StreamRecord("t/1", 1, payload(20))])  # b still believes t/0 is at 0
    b.flush()
    assert stream_positions(_writer(root).bronze) == {"t/0": 4, "t/1": 1}


def test_a_writer_that_lost_its_partition_drops_what_the_new_owner_committed_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    # a Kafka member missed its session: its partition went to another member, which read the
    # checkpoint and committed first. The first member's flush must not land those records again.
    root = stream_project(tmp_path / "p", "kafka", {"bootstrap_servers": "x:1", "topics": ["t"]})
    zombie, owner = _writer(root, "run-z"), _writer(root, "run-n")
    zombie.add([StreamRecord("t/0", i, payload(i)) for i in range(10)] + [StreamRecord("t/0", 10, b"{bad")])
    zombie.add([StreamRecord("t/1", 0, payload(100))])
    owner.add([StreamRecord("t/0", i, payload(i)) for i in range(6)])
    owner.flush()
    result = zombie.flush()
    assert result is not None
    assert (result.landed, result.quarantined) == (5, 1)  # e6..e9 and e100 land; the bad record at 10
    assert zombie.stats.duplicates == 6
    s = zombie.stats
    assert s.received == s.landed + s.quarantined + s.duplicates + s.buffered == 12
    ids = bronze_ids(root)
    assert len(ids) == len(set(ids)) == 11
    assert stream_positions(_writer(root).bronze) == {"t/0": 10, "t/1": 0}

    # the owner went further than the zombie ever read: nothing of t/0 lands, and t/0 is not rewound
    owner.add([StreamRecord("t/0", i, payload(i)) for i in range(11, 30)])
    owner.flush()
    zombie.add([StreamRecord("t/0", i, payload(i)) for i in range(11, 15)])
    assert zombie.flush() is not None
    assert zombie.stats.duplicates == 10
    assert stream_positions(_writer(root).bronze)["t/0"] == 29
    ids = bronze_ids(root)
    assert len(ids) == len(set(ids))


class _RivalCommitsAfterTheFence(StreamWriter):
    """A writer whose rival commits the same partition between its fence and its Bronze commit."""

    rival: StreamWriter | None = None

    def _fence(self, bronze: Any) -> None:
        super()._fence(bronze)
        if self.rival is not None:
            rival, self.rival = self.rival, None
            rival.flush()


def test_a_rival_commit_between_the_fence_and_the_commit_is_fenced_too(tmp_path: Path) -> None:
    root = stream_project(tmp_path / "p", "kafka", {"bootstrap_servers": "x:1", "topics": ["t"]})
    lake = Lake.open(root)
    cfg = lake.project.config.sources["events"]
    zombie = _RivalCommitsAfterTheFence(
        lake.warehouse, "events", lake.project.contract("events"), "kafka", cfg.stream, "run-z"
    )
    owner = _writer(root, "run-n")
    zombie.add([StreamRecord("t/0", i, payload(i)) for i in range(10)])
    owner.add([StreamRecord("t/0", i, payload(i)) for i in range(6)])
    zombie.rival = owner
    result = zombie.flush()  # its first commit attempt conflicts; the retry fences again
    assert result is not None and result.landed == 4
    assert zombie.stats.duplicates == 6
    ids = bronze_ids(root)
    assert len(ids) == len(set(ids)) == 10
    assert stream_positions(_writer(root).bronze) == {"t/0": 9}


def test_bronze_tables_made_before_lakestack_retried_its_own_commits_are_upgraded(tmp_path: Path) -> None:
    root = stream_project(tmp_path / "p", "kafka", {"bootstrap_servers": "x:1", "topics": ["t"]})
    lake = Lake.open(root)
    contract = lake.project.contract("events")
    table = lake.warehouse.bronze_table(contract)
    assert table.metadata.properties["commit.retry.num-retries"] == "0"
    with table.transaction() as tx:  # as an older lakestack created it
        tx.remove_properties("commit.retry.num-retries")
    assert "commit.retry.num-retries" not in lake.warehouse.load("bronze.events").metadata.properties
    assert lake.warehouse.bronze_table(contract).metadata.properties["commit.retry.num-retries"] == "0"


class _RivalQuarantinesAfterTheFence(StreamWriter):
    """A zombie whose rival (the partition's new owner) commits quarantine, and Bronze when
    `bronze_too`, between the zombie's fence and its quarantine commit."""

    rival: StreamWriter | None = None
    bronze_too = True

    def _fence(self, bronze: Any) -> None:
        super()._fence(bronze)
        if self.rival is not None:
            rival, self.rival = self.rival, None
            if self.bronze_too:
                rival.flush()
            else:  # the rival is stopped between its two commits
                rival._commit_quarantine(datetime.now(UTC), "rival")


def _zombie(root: Path, cls: type[_RivalQuarantinesAfterTheFence]) -> _RivalQuarantinesAfterTheFence:
    lake = Lake.open(root)
    cfg = lake.project.config.sources["events"]
    return cls(lake.warehouse, "events", lake.project.contract("events"), "kafka", cfg.stream, "run-z")


def _mixed(start: int, stop: int) -> list[StreamRecord]:
    """Records of t/0 where every third one breaks the contract."""
    return [StreamRecord("t/0", i, payload(i) if i % 3 else b'{"bad": %d}' % i) for i in range(start, stop)]


@pytest.mark.parametrize("bronze_too", [True, False], ids=["rival-committed-both", "rival-stopped-between"])
def test_a_zombie_never_quarantines_again_what_the_new_owner_quarantined(tmp_path: Path, bronze_too: bool) -> None:
    # the chaos harness's Kafka zombie: paused past its session, woken after its partition moved,
    # it committed 15 rejects the new owner had already quarantined (pyiceberg retried blindly)
    root = stream_project(tmp_path / "p", "kafka", {"bootstrap_servers": "x:1", "topics": ["t"]})
    zombie = _zombie(root, _RivalQuarantinesAfterTheFence)
    zombie.bronze_too = bronze_too
    owner = _writer(root, "run-n")
    zombie.add(_mixed(0, 30))
    owner.add(_mixed(0, 21))
    zombie.rival = owner
    result = zombie.flush()
    assert result is not None
    positions = sorted(int(r["_source_position"].split("@")[1]) for r in quarantine_rows(root))
    assert positions == [i for i in range(30) if i % 3 == 0], "a reject was quarantined twice (or lost)"
    ids = bronze_ids(root)
    assert len(ids) == len(set(ids)) == len([i for i in range(30) if i % 3])
    s = zombie.stats
    assert s.received == s.landed + s.quarantined + s.duplicates + s.buffered == 30


def test_quarantine_commits_are_compare_and_swap(tmp_path: Path) -> None:
    root = stream_project(tmp_path / "p", "kafka", {"bootstrap_servers": "x:1", "topics": ["t"]})
    lake = Lake.open(root)
    quarantine = lake.warehouse.quarantine_table("events")
    assert quarantine.metadata.properties["commit.retry.num-retries"] == "0"
    with quarantine.transaction() as tx:  # as an older lakestack created it
        tx.remove_properties("commit.retry.num-retries")
    assert lake.warehouse.quarantine_table("events").metadata.properties["commit.retry.num-retries"] == "0"


def test_a_batch_whose_records_were_all_fenced_away_commits_nothing(tmp_path: Path) -> None:
    # the rival commits all of the zombie's records between its fence and its commit: the retry
    # fences every record away and must not land an empty snapshot
    root = stream_project(tmp_path / "p", "kafka", {"bootstrap_servers": "x:1", "topics": ["t"]})
    lake = Lake.open(root)
    cfg = lake.project.config.sources["events"]
    zombie = _RivalCommitsAfterTheFence(
        lake.warehouse, "events", lake.project.contract("events"), "kafka", cfg.stream, "run-z"
    )
    owner = _writer(root, "run-n")
    zombie.add([StreamRecord("t/0", i, payload(i)) for i in range(5)])
    owner.add([StreamRecord("t/0", i, payload(i)) for i in range(10)])
    zombie.rival = owner
    result = zombie.flush()
    assert result is not None and result.landed == 0
    assert zombie.stats.duplicates == 5
    bronze = Lake.open(root).warehouse.load("bronze.events")
    assert [c.run_id for c in history(bronze)] == ["run-n"], "the zombie committed a snapshot"
    assert sorted(bronze_ids(root)) == sorted(f"e{i}" for i in range(10))


def test_a_writer_whose_owner_epoch_was_superseded_commits_nothing(tmp_path: Path) -> None:
    from lakestack.ingest.stream import OwnershipLost, newest_epoch

    root = stream_project(tmp_path / "p", "nats", {"stream": "EVENTS"})
    paused, successor = _writer(root, "run-old"), _writer(root, "run-new")
    paused.epoch, successor.epoch = 3, 4
    paused.add([StreamRecord("EVENTS", i, payload(i)) for i in range(1, 9)] + [StreamRecord("EVENTS", 9, b"[")])
    successor.add([StreamRecord("EVENTS", i, payload(i)) for i in range(1, 4)])
    successor.flush()
    with pytest.raises(OwnershipLost, match="newer owner"):
        paused.flush()  # woken after the lease moved on: neither its rejects nor its records land
    assert sorted(bronze_ids(root)) == ["e1", "e2", "e3"]
    assert quarantine_rows(root) == []
    assert newest_epoch(Lake.open(root).warehouse.load("bronze.events")) == 4


def test_namespaces_tolerate_a_rival_creating_them_at_the_same_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two processes started together on a fresh project: both see no namespace, one insert fails
    # with "IntegrityError UNIQUE constraint failed: iceberg_namespace_properties"
    from lakestack.storage.catalog import open_catalog
    from lakestack.storage.warehouse import Warehouse

    root = stream_project(tmp_path / "p", "kafka", {"bootstrap_servers": "x:1", "topics": ["t"]})
    lake = Lake.open(root)  # reads the project only; its warehouse is never opened here
    rival = open_catalog(lake.env, root, lake.project.name)
    catalog = open_catalog(lake.env, root, lake.project.name)
    real_exists = catalog.namespace_exists

    def exists_after_the_rival(namespace: Any) -> bool:
        if not real_exists(namespace):
            rival.create_namespace(namespace)  # the rival inserts between this check and the insert
            return False
        return bool(real_exists(namespace))

    monkeypatch.setattr(catalog, "namespace_exists", exists_after_the_rival, raising=False)
    Warehouse(catalog).ensure_namespaces()
    monkeypatch.undo()
    assert {ns[0] for ns in catalog.list_namespaces()} == {"bronze", "quarantine", "silver", "gold", "_lakestack"}
