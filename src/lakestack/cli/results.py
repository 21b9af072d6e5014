"""Writing a query's result: streamed batch by batch, so memory follows the batch and not the result.

`lakestack query` gets a `ResultStream` (record batches within row/byte limits, a timer that also
covers the writing) and hands it to one writer per format. A file is written beside its target and
renamed into place only when complete; a bad `--output` path is refused before the query runs.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from lakestack.engine.base import QUERY_LIMITS, QUERY_TO_FILE_LIMITS, SqlLimits
from lakestack.engine.records import pylist as pylist  # where the CLI always found it
from lakestack.errors import RunError, UsageError

FORMATS = ("table", "csv", "json", "parquet")
SMALL_RESULT_ROWS = 2048  # a result of at most this many rows printed from DuckDB's Python values, no pyarrow
ROW_GROUP_ROWS = 131_072  # Parquet row groups: big enough to read well, small enough to buffer
ROW_GROUP_BYTES = 64 * 1024 * 1024
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


@dataclass(slots=True)
class Written:
    """What a writer did: rows written, how many of them were shown (tables), the file if any."""

    rows: int
    shown: int
    output: str | None
    truncated: Any  # engine.base.Truncation | None


def parse_size(text: str, option: str = "--max-bytes") -> int:
    """`256MB`, `4GiB`, `1000000` → bytes (K/M/G/T are powers of 1024)."""
    m = _SIZE.match(text)
    if not m:
        raise UsageError(f"{option} '{text}' is not a size (like 500000, 256MB, 4GB; 0 means no limit)")
    unit = (m.group(2) or "").upper().replace("I", "").replace("B", "")
    return int(float(m.group(1)) * _UNITS[unit])


def query_limits(to_file: bool, max_rows: int | None, max_bytes: str | None, timeout_s: float) -> SqlLimits:
    """The limits of one `lakestack query`: the defaults for a terminal or a file, as raised by the
    user (0 = no limit: the result is still streamed, so memory stays bounded)."""
    base = QUERY_TO_FILE_LIMITS if to_file else QUERY_LIMITS
    rows = base.max_rows if max_rows is None else (max_rows or None)
    size = base.max_bytes if max_bytes is None else (parse_size(max_bytes) or None)
    return SqlLimits(base.memory_limit, base.threads, timeout_s, rows, size)


def check_output(out: Path | None, fmt: str) -> None:
    """Refuse a format/--output combination or an --output path that cannot be written, before the
    query runs (a missing folder, a directory, a folder we may not write in)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format '{fmt}' (table, csv, json, parquet)")
    if out is None:
        if fmt == "parquet":
            raise UsageError("--format parquet needs --output FILE")
        return
    if fmt == "table":
        raise UsageError("--output needs --format csv, json or parquet")
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise UsageError(f"--output {out} is a directory; give a file name")
    if not parent.is_dir():
        raise UsageError(f"--output {out}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise UsageError(f"--output {out}: no permission to write there")


def write_result(result: Any, fmt: str, out: Path | None, *, show: int, console: Any) -> Written:
    """Write the stream `result` in `fmt` to `out` (atomically) or to stdout / the console."""
    if fmt == "table":
        return _table(result, show, console)
    if out is None:
        rows = to_stdout(lambda sink: _write(result, fmt, sink))
        return Written(rows, 0, None, result.truncated)
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        try:
            sink = open(partial, "wb")  # noqa: SIM115 - closed below, renamed only when complete
        except OSError as exc:
            raise UsageError(f"--output {out}: cannot write: {exc.strerror}") from None
        with sink:
            rows = _write(result, fmt, sink)
        os.replace(partial, out)
    except OSError as exc:
        raise RunError(f"writing {out} failed: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return Written(rows, 0, str(out), result.truncated)


def to_stdout(write: Callable[[IO[bytes]], int]) -> int:
    """Run `write` on stdout; a reader that went away (`| head`) ends the output quietly, as Unix
    tools do, instead of an error at every later write and at exit."""
    try:
        rows = write(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return rows
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _write(result: Any, fmt: str, sink: IO[bytes]) -> int:
    if fmt == "csv":
        return _csv(result, sink)
    if fmt == "json":
        return _ndjson(result, sink)
    return _parquet(result, sink)


def _csv(result: Any, sink: IO[bytes]) -> int:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    nested = [f.name for f in result.schema if pa.types.is_nested(f.type)]
    if nested:
        raise UsageError(f"CSV cannot hold the nested column(s) {', '.join(nested)}; use --format json or parquet")
    rows = 0
    with pacsv.CSVWriter(sink, result.schema) as writer:
        for batch in result:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def _ndjson(result: Any, sink: IO[bytes]) -> int:
    from lakestack.cli.jsonable import to_jsonable

    rows = 0
    for records in row_batches(result):
        lines = [json.dumps(to_jsonable(r), default=str) for r in records]
        sink.write(("\n".join(lines) + "\n").encode() if lines else b"")
        rows += len(records)
    return rows


def row_batches(result: Any) -> Iterator[list[dict[str, Any]]]:
    """The stream's rows as Python values, a batch at a time: its `records` when it came whole
    as Python values (a small result), else each Arrow batch as `pylist` reads it."""
    if result.records is not None:
        yield result.records
        return
    for batch in result:
        yield pylist(batch)


def _parquet(result: Any, sink: IO[bytes]) -> int:
    """Batches buffered into row groups of ~ROW_GROUP_ROWS (or ROW_GROUP_BYTES), then written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, pending, size = 0, [], 0
    with pq.ParquetWriter(sink, result.schema) as writer:
        for batch in result:
            pending.append(batch)
            size += batch.nbytes
            rows += batch.num_rows
            if sum(b.num_rows for b in pending) >= ROW_GROUP_ROWS or size >= ROW_GROUP_BYTES:
                writer.write_table(pa.Table.from_batches(pending, schema=result.schema))
                pending, size = [], 0
        if pending:
            writer.write_table(pa.Table.from_batches(pending, schema=result.schema))
    return rows


def _table(result: Any, show: int, console: Any) -> Written:
    """The first `show` rows as a table; the rest are counted (up to the row limit), not kept."""
    from lakestack.cli.render import rows_table, to_jsonable

    kept: list[dict[str, Any]] = []
    rows = 0
    if result.records is not None:  # a small result, whole as Python values
        kept, rows = [to_jsonable(r) for r in result.records[:show]], len(result.records)
    else:
        for batch in result:
            if len(kept) < show:
                kept += [to_jsonable(r) for r in pylist(batch.slice(0, show - len(kept)))]
            rows += batch.num_rows
    title = f"{rows:,} row{'' if rows == 1 else 's'}" if rows <= len(kept) else f"first {len(kept):,} of {rows:,} rows"
    if result.truncated is not None:
        title += " (truncated)"
    console.print(title, markup=False, highlight=False)  # above the table: a title would wrap to its width
    console.print(rows_table("", kept, result.columns))
    return Written(rows, len(kept), None, result.truncated)


def truncation_notice(written: Written) -> str | None:
    """One line for stderr when the result stopped at a limit, naming the option that raises it."""
    t = written.truncated
    if t is None:
        return None
    if t.limit == "max_rows":
        return (
            f"result truncated at {t.rows:,} rows (--max-rows {t.value:,}); raise it with --max-rows N (0 = no limit)"
        )
    return (
        f"result truncated at {t.rows:,} rows: its data reached --max-bytes {t.value:,}; "
        "raise it with --max-bytes SIZE (like 2GB; 0 = no limit)"
    )


def summary(written: Written, columns: list[str], duration_s: float) -> dict[str, Any]:
    """The `--json` document of a query whose rows went to a file."""
    t = written.truncated
    return {
        "output": written.output,
        "columns": columns,
        "rows": written.rows,
        "truncated": t is not None,
        "truncated_at": t.rows if t else None,
        "limit": t.limit if t else None,
        "limit_value": t.value if t else None,
        "duration_s": round(duration_s, 3),
    }


def json_document(result: Any, sink: IO[bytes]) -> int:
    """`--json` without a file: `{"columns": [...], "rows": [...], "rows_returned": n, "truncated": ...}`,
    streamed (the rows are written as they come; the counts follow them)."""
    from lakestack.cli.jsonable import to_jsonable

    columns = result.columns
    sink.write(b'{"columns": ' + json.dumps(columns).encode() + b', "rows": [')
    rows = 0
    for records in row_batches(result):
        for r in records:
            sink.write((b",\n  " if rows else b"\n  ") + json.dumps(to_jsonable(r), default=str).encode())
            rows += 1
    t = result.truncated
    tail = {
        "rows_returned": rows,
        "truncated": t is not None,
        "truncated_at": t.rows if t else None,
        "limit": t.limit if t else None,
        "limit_value": t.value if t else None,
    }
    sink.write(b"\n], " + json.dumps(tail)[1:].encode() + b"\n")
    return rows
