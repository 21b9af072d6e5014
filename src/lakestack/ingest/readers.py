"""Reading landing files: CSV, NDJSON and Parquet, plain or gzip, with exact positions.

A reader yields :class:`Chunk` objects: record positions (1-based line or row), the raw text of
each record, and the values to validate. Problems that make the whole file unreadable raise
:class:`FileRejected` with the reason; the caller quarantines the file and goes on.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from lakestack.contracts.model import Contract, CsvOptions, FileSpec

CHUNK_ROWS = 100_000
_DELIMITERS = (",", ";", "\t", "|")


class FileRejected(Exception):
    """The whole file cannot be read as its contract says; the message says why and where."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(f"line {line}: {reason}" if line else reason)


@dataclass(slots=True)
class Chunk:
    """Up to CHUNK_ROWS records of one file."""

    positions: list[int]
    raws: list[str]
    values: list[Any]  # list[str | None] in contract order (CSV), bytes (NDJSON) or dict (Parquet)
    kind: str  # "text" | "json" | "objects"
    broken: list[tuple[int, str, str, str]]  # (position, raw, rule, message) found while reading


def open_binary(path: Path, compression: str | None) -> BinaryIO:
    if compression == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _guard(read: Iterator[Chunk], line: list[int]) -> Iterator[Chunk]:
    """Translate what a broken file raises mid-read into FileRejected with the line reached."""
    try:
        yield from read
    except EOFError:
        raise FileRejected(
            "the gzip stream is truncated (the file ends before its end-of-stream marker)", line[0] or None
        ) from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise FileRejected(f"not a valid gzip file ({exc})", line[0] or None) from None
    except UnicodeDecodeError as exc:
        raise FileRejected(
            f"not valid text in the contract's encoding ({exc.encoding}: {exc.reason})", line[0] + 1
        ) from None
    except csv.Error as exc:
        raise FileRejected(f"malformed CSV: {exc}", line[0] or None) from None


def read_csv(path: Path, compression: str | None, contract: Contract, spec: FileSpec) -> Iterator[Chunk]:
    opts = spec.csv
    line = [0]
    return _guard(_read_csv(path, compression, contract, opts, line), line)


def _read_csv(
    path: Path, compression: str | None, contract: Contract, opts: CsvOptions, line: list[int]
) -> Iterator[Chunk]:
    """CSV records with their exact line and raw text, also when a quoted field spans lines.

    Lines are read in blocks and parsed by csv.reader in C; `reader.line_num` tells which lines
    each record used, so the raw text is a slice of the block, not a per-line Python callback.
    """
    with open_binary(path, compression) as raw_stream:
        text = io.TextIOWrapper(raw_stream, encoding=opts.encoding, errors="strict", newline="")
        buf: list[str] = []

        def blocks() -> Iterator[list[str]]:
            while block := text.readlines(1 << 22):
                if not buf and not line[0] and block[0].startswith("\ufeff"):
                    block[0] = block[0][1:]
                buf.extend(block)
                yield block

        reader = csv.reader(
            itertools.chain.from_iterable(blocks()), delimiter=opts.delimiter, quotechar=opts.quote, strict=True
        )
        columns = contract.column_names
        base = 0  # line number of buf[0], counted from 0
        if opts.header:
            header = next(reader, None)
            if header is None:
                raise FileRejected(
                    "the file is empty (zero bytes)" if compression is None else "the file has no content"
                )
            line[0] = reader.line_num
            columns = _check_header(header, "".join(buf[: line[0]]), contract, opts)
        order = [columns.index(c) for c in contract.column_names]
        width = len(columns)
        chunk = Chunk([], [], [], "text", [])
        prev = line[0]
        for row in reader:
            n = reader.line_num
            raw = (buf[prev - base] if n == prev + 1 else "".join(buf[prev - base : n - base])).rstrip("\r\n")
            start, prev = prev + 1, n
            line[0] = n
            if len(row) == width:
                chunk.positions.append(start)
                chunk.raws.append(raw)
                chunk.values.append([row[i] or None for i in order])
            elif row and row != [""]:  # a blank line is not a record
                chunk.broken.append((start, raw, "field_count", f"has {len(row)} fields; the header has {width}"))
            if len(chunk.positions) + len(chunk.broken) >= CHUNK_ROWS:
                yield chunk
                chunk = Chunk([], [], [], "text", [])
                del buf[: prev - base]
                base = prev
        if not opts.header and line[0] == 0 and not chunk.positions:
            raise FileRejected("the file is empty (zero bytes)" if compression is None else "the file has no content")
        yield chunk


def _check_header(header: list[str], raw: str, contract: Contract, opts: CsvOptions) -> tuple[str, ...]:
    names = [h.strip() for h in header]
    expected = contract.column_names
    missing = [c for c in expected if c not in names]
    extra = [c for c in names if c not in expected]
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise FileRejected(f"the header names column(s) {', '.join(dupes)} more than once", 1)
    if missing or (extra and contract.strict):
        guess = _guess_delimiter(raw, opts.delimiter)
        if guess is not None:
            raise FileRejected(
                f"the header does not match the contract: it looks delimited by {guess!r}, "
                f"but the contract says {opts.delimiter!r}",
                1,
            )
        parts = []
        if missing:
            parts.append(f"missing column(s): {', '.join(missing)}")
        if extra and contract.strict:
            parts.append(f"column(s) not in the contract: {', '.join(extra)}")
        raise FileRejected(f"the header does not match the contract ({'; '.join(parts)})", 1)
    return tuple(names)


def _guess_delimiter(header: str, declared: str) -> str | None:
    counts = {d: header.count(d) for d in _DELIMITERS if d != declared}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 and header.count(declared) == 0 else None


def read_ndjson(path: Path, compression: str | None, contract: Contract, spec: FileSpec) -> Iterator[Chunk]:
    line = [0]
    return _guard(_read_ndjson(path, compression, line), line)


def _read_ndjson(path: Path, compression: str | None, line: list[int]) -> Iterator[Chunk]:
    with open_binary(path, compression) as stream:
        chunk = Chunk([], [], [], "json", [])
        seen_any = False
        for raw_line in stream:
            seen_any = True
            line[0] += 1
            record = raw_line.rstrip(b"\r\n")
            if line[0] == 1 and record.startswith(b"\xef\xbb\xbf"):
                record = record[3:]
            if not record.strip():
                continue
            chunk.positions.append(line[0])
            chunk.raws.append(record.decode("utf-8", errors="backslashreplace"))
            chunk.values.append(record)
            if len(chunk.positions) >= CHUNK_ROWS:
                yield chunk
                chunk = Chunk([], [], [], "json", [])
        if not seen_any:
            raise FileRejected("the file is empty (zero bytes)" if compression is None else "the file has no content")
        yield chunk


def read_parquet(path: Path, compression: str | None, contract: Contract, spec: FileSpec) -> Iterator[Chunk]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise FileRejected("the file is empty (zero bytes)")
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise FileRejected(f"not a readable Parquet file ({exc})") from None
    names = parquet.schema_arrow.names
    missing = [c for c in contract.column_names if c not in names]
    extra = [c for c in names if c not in contract.column_names]
    if missing or (extra and contract.strict):
        problems = [f"missing column(s): {', '.join(missing)}"] if missing else []
        if extra and contract.strict:
            problems.append(f"column(s) not in the contract: {', '.join(extra)}")
        detail = "; ".join(problems)
        raise FileRejected(f"the file's columns do not match the contract ({detail})")
    return _read_parquet(parquet, contract)


def _read_parquet(parquet: Any, contract: Contract) -> Iterator[Chunk]:
    import msgspec
    import pyarrow as pa

    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=CHUNK_ROWS, columns=list(contract.column_names)):
            rows = batch.to_pylist()
            positions = list(range(row + 1, row + 1 + len(rows)))
            row += len(rows)
            raws = [msgspec.json.encode(r, enc_hook=str).decode() for r in rows]
            yield Chunk(positions, raws, rows, "objects", [])
    except (pa.ArrowInvalid, OSError) as exc:
        raise FileRejected(f"the Parquet file is damaged after row {row} ({exc})") from None


READERS = {"csv": read_csv, "ndjson": read_ndjson, "parquet": read_parquet}
