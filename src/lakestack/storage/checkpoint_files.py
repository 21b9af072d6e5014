"""Checkpoint side files: the file ledger and folded client batch ids, as Parquet files in the
table's `metadata/` folder, referenced from the compact checkpoint (`storage.checkpoints`, ADR 18).

A side file is written through the table's FileIO before the commit that references it and never
changes after; a file whose commit failed is an orphan (orphan removal may delete it once it is old
enough; `checkpoints.referenced_files` lists those snapshots reference).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from lakestack.failpoints import failpoint

if TYPE_CHECKING:
    from lakestack.storage.checkpoints import LedgerEntry

_CACHE: OrderedDict[str, Any] = OrderedDict()  # side files never change once written: path → content
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 16


def _side_path(table: Any, what: str) -> str:
    # a Delta table names its own folder (`storage.delta`); an Iceberg table's is `metadata/`
    folder = getattr(table, "side_files_location", None) or f"{table.metadata.location.rstrip('/')}/metadata"
    return f"{folder}/lakestack-{what}-{uuid.uuid4().hex}.parquet"


def _write_side(table: Any, what: str, data: Any) -> str:
    import pyarrow.parquet as pq

    path = _side_path(table, what)
    with table.io.new_output(path).create(overwrite=False) as out:
        pq.write_table(data, out, compression="zstd")
    failpoint("checkpoints.side_file.after_write")  # written; the commit that references it is next
    return path


def _read_side(table: Any, path: str, convert: Callable[[dict[str, list[Any]]], Any]) -> Any:
    """A side file's content (its columns as lists), converted once (they are read at every commit
    attempt)."""
    with _CACHE_LOCK:
        if path in _CACHE:
            _CACHE.move_to_end(path)
            return _CACHE[path]
    columns = getattr(table.io, "parquet_columns", None)  # storage.readpath's local reads: no pyarrow
    if columns is not None:
        data = convert(columns(path))
    else:
        import pyarrow.parquet as pq

        with table.io.new_input(path).open() as f:
            # one file: ParquetFile, not read_table (its dataset layer imports pandas: ~0.3 s of a `status`)
            read = pq.ParquetFile(f).read()
        data = convert({name: read[name].to_pylist() for name in read.column_names})
    with _CACHE_LOCK:
        _CACHE[path] = data
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return data


def write_ledger(table: Any, ledger: Mapping[str, LedgerEntry]) -> str:
    import pyarrow as pa

    shas = list(ledger)
    data = pa.table(
        {
            "sha256": pa.array(shas, pa.string()),
            "name": pa.array([ledger[s].name for s in shas], pa.string()),
            "run": pa.array([ledger[s].run for s in shas], pa.string()),
        }
    )
    return _write_side(table, "ledger", data)


def read_ledger(table: Any, path: str) -> Mapping[str, LedgerEntry]:
    """The ledger a side file holds (shared: copy before changing it)."""

    def convert(data: dict[str, list[Any]]) -> dict[str, LedgerEntry]:
        from lakestack.storage.checkpoints import LedgerEntry  # the kinds import this module

        columns = [data[c] for c in ("sha256", "name", "run")]
        return {sha: LedgerEntry(name, run) for sha, name, run in zip(*columns, strict=True)}

    result: Mapping[str, LedgerEntry] = _read_side(table, path, convert)
    return result


def write_http(table: Any, batches: Mapping[str, tuple[int, int]]) -> str:
    import pyarrow as pa

    keys = list(batches)
    data = pa.table(
        {
            "key": pa.array(keys, pa.string()),
            "committed_ms": pa.array([batches[k][0] for k in keys], pa.int64()),
            "until_ms": pa.array([batches[k][1] for k in keys], pa.int64()),
        }
    )
    return _write_side(table, "http-batches", data)


def read_http(table: Any, path: str) -> Mapping[str, tuple[int, int]]:
    def convert(data: dict[str, list[Any]]) -> dict[str, tuple[int, int]]:
        columns = [data[c] for c in ("key", "committed_ms", "until_ms")]
        return {key: (committed, until) for key, committed, until in zip(*columns, strict=True)}

    result: Mapping[str, tuple[int, int]] = _read_side(table, path, convert)
    return result
