"""One big landing file read by several workers: byte ranges that start at a record (ADR 42).

A plain (uncompressed) CSV or NDJSON file of at least `split_bytes()` is cut into as many
segments as there are reading workers. The ingesting process finds the cuts in one pass over the
file (`plan`), counting newlines and quote characters as it goes (numpy, 4 MiB at a time, and
nothing past the last cut), so each segment knows where it starts (a byte just after a newline
that ends a record) and how many newlines lie before it: its records' line numbers are exact
without reading the earlier segments.

Where a record may end:
- NDJSON: at every newline (a JSON text holds none unescaped).
- CSV: at a newline with an even count of quote characters before it in the file. With quotes
  where RFC 4180 puts them (doubled inside a quoted field), that count is odd exactly inside a
  quoted field, so a quoted field spanning lines is never cut. A file that quotes otherwise is
  refused by the column reader's quote check in some segment (ingest/vectorised.py), and then the
  whole file is read again by one worker on the record path, as an unsplit file would be.

A cut that finds no record end within `_SEARCH` bytes (one huge quoted field) is dropped, and a
file whose header the column reader refuses is not split. What the segments read is what one
reader would read, record for record: the column reader cuts its blocks by the same rule, and a
block's records are parsed on their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from lakestack.contracts.model import Contract, FileSpec

SPLIT_BYTES = 64 << 20  # a file smaller than this is read by one worker (LAKESTACK_SPLIT_BYTES)
_READ = 4 << 20
_SEARCH = 64 << 20  # how far past a nominal cut a record end is looked for


@dataclass(frozen=True, slots=True)
class Segment:
    """Bytes [start, end) of a landing file: whole records, `line` newlines before them."""

    index: int
    start: int
    end: int
    line: int
    columns: tuple[str, ...] | None = None  # CSV with a header: its columns (later segments have none)

    @property
    def span(self) -> tuple[int, int]:
        return self.start, self.end


def split_bytes() -> int:
    """The size from which a file is split: LAKESTACK_SPLIT_BYTES, else SPLIT_BYTES (0: never)."""
    configured = os.environ.get("LAKESTACK_SPLIT_BYTES", "").replace("_", "")
    return int(configured) if configured else SPLIT_BYTES


def splittable(spec: FileSpec, compression: str | None, size: int, parts: int) -> bool:
    """Whether a file may be cut at all: plain CSV or NDJSON, big enough, more than one worker."""
    limit = split_bytes()
    return parts > 1 and limit > 0 and size >= limit and compression is None and spec.format in ("csv", "ndjson")


def plan(path: Path, spec: FileSpec, contract: Contract, parts: int) -> list[Segment] | None:
    """The file's segments (None: read it whole). One pass over the file, a block at a time."""
    from lakestack.ingest.readers import FileRejected, open_landing

    try:
        with open_landing(path) as f:
            size = os.fstat(f.fileno()).st_size
            columns = _header_columns(f, spec, contract)
            f.seek(0)
            quote = spec.csv.quote.encode() if spec.format == "csv" and spec.csv.quote else b""
            cuts = [size * k // parts for k in range(1, parts)]
            ends = _record_ends(_blocks(f), cuts, quote)
    except (FileRejected, OSError, _Whole):
        return None  # read whole: the one reader reports what is wrong
    starts = [(0, 0)] + [e for e in ends if e is not None]
    starts = [s for i, s in enumerate(starts) if i == 0 or (starts[i - 1][0] < s[0] < size)]
    if len(starts) < 2:
        return None
    bounds = [s[0] for s in starts[1:]] + [size]
    return [
        Segment(i, start, end, line, columns if i else None)
        for i, ((start, line), end) in enumerate(zip(starts, bounds, strict=True))
    ]


class _Whole(Exception):
    """The file is read whole."""


def _header_columns(f: BinaryIO, spec: FileSpec, contract: Contract) -> tuple[str, ...] | None:
    """A CSV header's columns as the column reader reads them (None: no header or not CSV);
    _Whole when the column reader refuses it."""
    if spec.format != "csv" or not spec.csv.header:
        return None
    from lakestack.ingest.vectorised import _BOM, NotVectorisable, _header

    first = f.read(_READ)
    first = first[len(_BOM) :] if first.startswith(_BOM) else first
    try:
        columns, end = _header(first, contract, spec.csv)
    except (NotVectorisable, UnicodeError, ValueError):
        raise _Whole from None
    if end >= len(first):
        raise _Whole
    return columns


def _blocks(f: BinaryIO) -> Iterator[bytes]:
    while block := f.read(_READ):
        yield block


def _record_ends(blocks: Iterator[bytes], cuts: list[int], quote: bytes) -> list[tuple[int, int] | None]:
    """For each cut, (offset just past the first record end at or after it, newlines before that
    offset); None when none lies within _SEARCH bytes. Newlines and quotes are counted block by block."""
    found: list[tuple[int, int] | None] = []
    offset = newlines = quotes = 0
    pending = list(cuts)
    for block in blocks:
        n = len(block)
        while pending and pending[0] < offset + n:
            at = max(pending[0] - offset, 0)
            end = _end_in(block, at, quotes, quote)
            if end is None:  # not in this block: look on from the next one
                if offset + n - pending[0] > _SEARCH:
                    found.append(None)
                    pending.pop(0)
                    continue
                break
            found.append((offset + end + 1, newlines + block.count(b"\n", 0, end + 1)))
            pending.pop(0)
        if not pending:  # nothing past the last cut is counted
            break
        newlines += _count(block, b"\n")
        quotes += _count(block, quote) if quote else 0
        offset += n
    return found + [None] * len(pending)


def _count(block: bytes, byte: bytes) -> int:
    """Occurrences of `byte` in `block`: numpy compares 4x faster than bytes.count here, and a
    byte that is absent (quotes, in most files) is ruled out faster still by `in`."""
    import numpy as np

    if byte not in block:
        return 0
    return int(np.count_nonzero(np.frombuffer(block, np.uint8) == byte[0]))


def _end_in(block: bytes, at: int, quotes_before: int, quote: bytes) -> int | None:
    """The offset of the first newline at or after `at` outside quotes (None: not in `block`)."""
    parity = (quotes_before + (block.count(quote, 0, at) if quote else 0)) & 1
    while True:
        nl = block.find(b"\n", at)
        if nl < 0:
            return None
        if quote:
            parity = (parity + block.count(quote, at, nl)) & 1
        if not parity:
            return nl
        at = nl + 1
