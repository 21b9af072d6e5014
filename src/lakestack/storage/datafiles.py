"""What storage hands an engine to have data files written inside an open Iceberg transaction.

An engine (`lakestack.engine`) writes Parquet data files for a query's result; storage adds them to
its transaction, with the checkpoint, and commits. The engine never commits; storage never runs SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class WriteTarget:
    """Where data files go: an Iceberg table inside an open transaction.

    `metadata` is the transaction's pyiceberg `TableMetadata` (schema, partition spec, location,
    properties such as `write.target-file-size-bytes`), `io` the table's `FileIO`, `write_uuid` the
    snapshot producer's `commit_uuid` (data file names carry it), `schema` the table's Arrow schema
    (results are conformed to it: columns cast, a column the result lacks written as null)."""

    metadata: Any
    io: Any
    write_uuid: Any
    schema: Any


# `writer(target)` writes Parquet data files (partitioned by the target's spec, with column
# statistics) and returns their pyiceberg `DataFile`s; storage appends them to its commit.
DataFileWriter = Callable[[WriteTarget], list[Any]]
