"""Landing files read as Arrow columns for the vectorised validation path (contracts/vector.py).

A CSV file is read in blocks of whole records (BLOCK_BYTES, so memory is bounded by the block,
not the file). In each block, record boundaries are found with Arrow compute: a newline ends a
record when it lies outside quotes (an even count of quote characters before it), so a quoted
field spanning lines keeps its record whole and its first line number. The raw text of each
record is a slice of the block (no copy until trimmed), and pyarrow's CSV parser reads the
fields as strings (null markers and types are applied by the validator).

The fast reader takes only what it reads exactly as the record reader (readers.py) does: UTF-8
text, `\\n` or `\\r\\n` line ends, quotes where RFC 4180 puts them, every record with the header's
field count. Anything else (another encoding, a stray quote, a short row, a damaged or oversized
file) raises :class:`NotVectorisable` and the file is read again by the record reader, which
reports it exactly as before (its line, its rule). Nothing read here is kept in that case.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakestack.contracts.model import Contract, CsvOptions, FileSpec
from lakestack.ingest.readers import FileRejected, Limits, _check_header, open_binary

if TYPE_CHECKING:
    from lakestack.ingest.segments import Segment

BLOCK_BYTES = 16 << 20
# Arrays here hold a few 8-byte offsets per line: a block of very short lines (blank lines, one-digit
# rows) would cost far more memory than its bytes, so such a file is read record by record
MIN_MEAN_LINE = 12
_BOM = b"\xef\xbb\xbf"


class NotVectorisable(Exception):
    """The file needs the record reader; the message says why (for the debug log)."""


@dataclass(slots=True)
class ColumnChunk:
    """A block of records: where each starts (1-based line), its raw text, its fields as strings."""

    lines: pa.Array
    raws: pa.Array
    # CSV: one string column per contract column (contract order); NDJSON: the columns as pyarrow's
    # JSON reader typed them, or None when it refused the block
    table: pa.Table | None
    kind: str = "text"  # "text" (CSV) | "json" (NDJSON)

    @property
    def rows(self) -> int:
        return len(self.raws)


def read_csv_columns(
    path: Path,
    compression: str | None,
    contract: Contract,
    spec: FileSpec,
    limits: Limits | None = None,
    segment: Segment | None = None,
) -> Iterator[ColumnChunk]:
    """The file's records in blocks; `segment`: only the records of that byte range (segments.py)."""
    opts = spec.csv
    if codecs.lookup(opts.encoding).name != "utf-8":
        raise NotVectorisable(f"encoding {opts.encoding}")
    try:
        with open_binary(path, compression, limits, span=segment.span if segment else None) as stream:
            yield from _blocks(stream, contract, opts, segment)
    except (FileRejected, EOFError, OSError, zlib.error, gzip.BadGzipFile, UnicodeError, csv.Error, ValueError) as exc:
        raise NotVectorisable(str(exc)) from None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowMemoryError, MemoryError) as exc:
        raise NotVectorisable(f"arrow: {exc}") from None


def _blocks(stream: BinaryIO, contract: Contract, opts: CsvOptions, segment: Segment | None) -> Iterator[ColumnChunk]:
    carry, base = b"", segment.line if segment else 0  # base: newlines before `carry`
    columns: tuple[str, ...] | None = None if opts.header else contract.column_names
    if segment is not None and segment.start:  # a later segment: no header, no BOM
        columns = segment.columns or columns
    first = segment is None or not segment.start
    while True:
        data = stream.read(BLOCK_BYTES)
        buf = carry + data if carry else data
        if first:
            buf = buf[len(_BOM) :] if buf.startswith(_BOM) else buf
            if not buf:
                raise NotVectorisable("empty file")
            first = False
        if not data:
            if not buf:
                return
            block, carry = buf, b""
        else:
            cut = _last_boundary(buf, opts.quote)
            if cut < 0:  # no record ends in this block yet: read on
                if len(buf) > 4 * BLOCK_BYTES:  # a record this long (or a quote never closed): record by record
                    raise NotVectorisable("a record longer than four blocks")
                carry = buf
                continue
            block, carry = buf[: cut + 1], buf[cut + 1 :]
        newlines = _dense(block)
        start = 0
        if columns is None:
            columns, start = _header(block, contract, opts)
        if start < len(block):
            chunk = _parse(block, start, base, columns, contract, opts)
            if chunk.rows:
                yield chunk
        base += newlines
        if not data:
            return


def _drop(keep: pa.Array, raws: pa.Array, lines: pa.Array) -> tuple[pa.Array, pa.Array]:
    if pc.all(keep).as_py():
        return raws, lines
    return raws.filter(keep), lines.filter(keep)


def _dense(block: bytes) -> int:
    """The newlines in `block`; NotVectorisable when a big block's lines are very short."""
    newlines = int(np.count_nonzero(np.frombuffer(block, np.uint8) == 10))  # 3x faster than bytes.count
    if len(block) > 1 << 20 and newlines * MIN_MEAN_LINE > len(block):
        raise NotVectorisable(f"lines shorter than {MIN_MEAN_LINE} bytes on average")
    return newlines


def _bytes(block: bytes) -> pa.Array:
    return pa.Array.from_buffers(pa.uint8(), len(block), [None, pa.py_buffer(block)])


def _last_boundary(buf: bytes, quote: str) -> int:
    """The offset of the last newline outside quotes (-1 if none)."""
    if quote.encode() not in buf:
        return buf.rfind(b"\n")
    ends = _boundaries(_bytes(buf), ord(quote))
    return int(ends[-1].as_py()) if len(ends) else -1


def _byte(value: int) -> pa.Scalar:
    return pa.scalar(value, pa.uint8())  # an int64 scalar would widen the whole block first (25x slower)


def _marks(u8: pa.Array, quote: int) -> tuple[pa.Array, pa.Array, pa.Array]:
    """The offsets of newlines and quotes, whether each is a quote, and the quotes up to it."""
    at = pc.indices_nonzero(pc.or_(pc.equal(u8, _byte(10)), pc.equal(u8, _byte(quote))))
    is_quote = pc.equal(u8.take(at), _byte(quote))
    return at, is_quote, pc.cumulative_sum(pc.cast(is_quote, pa.int32()))


def _boundaries(u8: pa.Array, quote: int) -> pa.Array:
    """Offsets of the newlines that end a record (outside quotes)."""
    at, is_quote, quotes = _marks(u8, quote)
    outside = pc.and_(pc.invert(is_quote), pc.equal(pc.bit_wise_and(quotes, 1), 0))
    return at.filter(outside)


def _header(block: bytes, contract: Contract, opts: CsvOptions) -> tuple[tuple[str, ...], int]:
    end = _first_boundary(block, opts.quote)
    text = block[:end].decode("utf-8").rstrip("\r\n")
    fields = next(csv.reader([text], delimiter=opts.delimiter, quotechar=opts.quote, strict=True), None)
    if not fields or "\n" in text or "\r" in text:
        raise NotVectorisable("header")
    return _check_header(fields, text, contract, opts), end + 1


def _first_boundary(block: bytes, quote: str) -> int:
    """The offset of the first record boundary of `block` (its header's end)."""
    if quote.encode() not in block:
        found = block.find(b"\n")
        return len(block) if found < 0 else found
    ends = _boundaries(_bytes(block), ord(quote))
    return int(ends[0].as_py()) if len(ends) else len(block)


def _parse(
    block: bytes, start: int, base: int, columns: tuple[str, ...], contract: Contract, opts: CsvOptions
) -> ColumnChunk:
    u8 = _bytes(block)
    returns = block.count(b"\r")
    if returns and returns != block.count(b"\r\n"):
        raise NotVectorisable("a lone carriage return (old Mac line ends)")
    if b"\x00" in block:
        raise NotVectorisable("a NUL byte")
    quoted = opts.quote.encode() in block
    if quoted:
        _check_quotes(u8, ord(opts.quote), ord(opts.delimiter))
    ends = _boundaries(u8, ord(opts.quote)) if quoted else pc.indices_nonzero(pc.equal(u8, _byte(10)))
    newlines = pc.indices_nonzero(pc.equal(u8, _byte(10))) if quoted else ends
    ends, newlines = ends.cast(pa.int64()), newlines.cast(pa.int64())
    after = pc.greater_equal(ends, start)
    starts = pa.concat_arrays([pa.array([start], pa.int64()), pc.add(ends.filter(after), 1)])
    # line of each start: the newlines before it, plus one
    before = pc.sum(pc.less(newlines, start)).as_py() or 0
    nl_index = pc.indices_nonzero(pc.is_in(newlines, value_set=ends.filter(after)) if quoted else after)
    lines = pa.concat_arrays([pa.array([before], pa.int64()), pc.add(nl_index.cast(pa.int64()), 1)])
    lines = pc.add(lines, base + 1)
    offsets = pa.concat_arrays([starts, pa.array([len(block)], pa.int64())]).cast(pa.int32())
    raws = pa.StringArray.from_buffers(len(starts), offsets.buffers()[1], pa.py_buffer(block))
    raws.validate(full=True)  # UTF-8 (else the record reader reports the exact line)
    raws = pc.ascii_rtrim(raws, characters="\r\n")  # the line end (ASCII: no UTF-8 decoding needed)
    raws, lines = _drop(pc.greater(pc.binary_length(raws), 0), raws, lines)  # a blank line is not a record
    if len(raws) and pc.max(pc.binary_length(raws)).as_py() > csv.field_size_limit():
        raise NotVectorisable("a record longer than the csv module's field limit")
    if not len(raws):
        return ColumnChunk(lines, raws, None)
    table = _fields(block[start:], columns, contract, opts, quoted)
    if table.num_rows != len(raws):
        raise NotVectorisable(f"{table.num_rows} rows parsed, {len(raws)} records found")
    return ColumnChunk(lines, raws, table)


def _check_quotes(u8: pa.Array, quote: int, delimiter: int) -> None:
    """Quotes only where RFC 4180 puts them: an opening quote starts a field (after a delimiter, a
    line end or a quote it escapes), a closing quote ends one (before a delimiter, a line end or
    the quote it escapes). Python's csv (strict) refuses the rest or reads it differently."""
    n = len(u8)
    marks, is_quote, counts = _marks(u8, quote)
    at, count = marks.filter(is_quote), counts.filter(is_quote)
    opening = pc.equal(pc.bit_wise_and(count, 1), 1)
    if len(at) and pc.bit_wise_and(count[-1], 1).as_py():
        raise NotVectorisable("a quoted field does not end")
    prev_at = pc.subtract(pc.max_element_wise(at, 1), 1)
    prev = pc.if_else(pc.equal(at, 0), pa.scalar(10, pa.uint8()), u8.take(prev_at))
    next_at = pc.min_element_wise(pc.add(at, 1), max(n - 1, 0))
    nxt = pc.if_else(pc.equal(at, n - 1), pa.scalar(10, pa.uint8()), u8.take(next_at))
    before_ok = pc.is_in(prev, value_set=pa.array([delimiter, 10, quote], pa.uint8()))
    after_ok = pc.is_in(nxt, value_set=pa.array([delimiter, 10, 13, quote], pa.uint8()))
    fine = pc.if_else(opening, before_ok, after_ok)
    if not pc.all(fine).as_py():
        raise NotVectorisable("a quote where RFC 4180 puts none")


def _fields(data: bytes, columns: tuple[str, ...], contract: Contract, opts: CsvOptions, quoted: bool) -> pa.Table:
    import pyarrow.csv as pacsv

    names = list(contract.column_names)
    read = pacsv.ReadOptions(column_names=list(columns), use_threads=False, block_size=max(len(data), 1 << 20) + 1)
    parse = pacsv.ParseOptions(
        delimiter=opts.delimiter,
        quote_char=opts.quote,
        double_quote=True,
        escape_char=False,
        newlines_in_values=quoted,
        ignore_empty_lines=True,
    )
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in columns},
        null_values=[],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        include_columns=names,
        check_utf8=True,
    )
    table = pacsv.read_csv(pa.BufferReader(data), read_options=read, parse_options=parse, convert_options=convert)
    return table.select(names)


def columns_reader(fmt: str) -> Any:
    """The column reader of a file format (None: read record by record)."""
    return {"csv": read_csv_columns, "ndjson": read_ndjson_columns, "parquet": read_parquet_columns}.get(fmt)


# -- NDJSON ------------------------------------------------------------------------------------
def read_ndjson_columns(
    path: Path,
    compression: str | None,
    contract: Contract,
    spec: FileSpec,
    limits: Limits | None = None,
    segment: Segment | None = None,
) -> Iterator[ColumnChunk]:
    """NDJSON in blocks of whole lines; each block parsed by pyarrow's JSON reader. A block it
    refuses (a duplicate key, a number where a string belongs, two objects on a line) keeps its
    lines and raw text with no table: the validator sends its records to the record path.
    `segment`: only the lines of that byte range (segments.py)."""
    try:
        with open_binary(path, compression, limits, span=segment.span if segment else None) as stream:
            yield from _json_blocks(stream, contract, segment)
    except (FileRejected, EOFError, OSError, zlib.error, gzip.BadGzipFile, UnicodeError, ValueError) as exc:
        raise NotVectorisable(str(exc)) from None
    except (pa.ArrowMemoryError, MemoryError) as exc:
        raise NotVectorisable(f"arrow: {exc}") from None


def _json_blocks(stream: BinaryIO, contract: Contract, segment: Segment | None = None) -> Iterator[ColumnChunk]:
    carry, base, first = b"", segment.line if segment else 0, segment is None or not segment.start
    while True:
        data = stream.read(BLOCK_BYTES)
        buf = carry + data if carry else data
        if first:
            if not buf:
                raise NotVectorisable("empty file")
            buf, first = (buf[len(_BOM) :] if buf.startswith(_BOM) else buf), False
        if data:
            cut = buf.rfind(b"\n")
            if cut < 0:  # a line longer than a block (max_line_bytes caps it)
                carry = buf
                continue
            block, carry = buf[: cut + 1], buf[cut + 1 :]
        elif buf:
            block, carry = buf, b""
        else:
            return
        newlines = _dense(block)
        chunk = _json_block(block, base, contract)
        if len(chunk.raws):
            yield chunk
        base += newlines
        if not data:
            return


def _json_block(block: bytes, base: int, contract: Contract) -> ColumnChunk:
    """One block of whole lines: each line's number and text, its fields by pyarrow's JSON reader.
    Line boundaries come from one numpy scan of the block; the raw text is the block itself with
    the newline offsets (copied once, by the trim of the line ends)."""
    u8 = np.frombuffer(block, np.uint8)
    ends = np.flatnonzero(u8 == 10)
    offsets = np.empty(len(ends) + 2, np.int32)
    offsets[0], offsets[-1] = 0, len(block)
    offsets[1:-1] = ends + 1
    n = len(offsets) - 1
    raws = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(block))
    raws.validate(full=True)  # UTF-8 (else the record reader quarantines the very line)
    raws = pc.ascii_rtrim(raws, characters="\r\n")
    lines = np.arange(base + 1, base + 1 + n, dtype=np.int64)
    keep = _not_blank(raws, u8[np.minimum(offsets[:-1], len(block) - 1)])
    if keep is not None:
        raws, lines = raws.filter(pa.array(keep)), lines[keep]
    longest = int(np.diff(offsets).max()) if n else 0
    return ColumnChunk(pa.array(lines), raws, _json_table(block, contract, longest, len(raws)), "json")


# bytes.isspace(): a line of these alone is not a record
_SPACE = np.zeros(256, np.bool_)
_SPACE[list(b" \t\r\n\x0b\x0c")] = True


def _not_blank(raws: pa.Array, first: Any) -> Any:
    """Which records are not blank (a numpy mask), or None when none is. Only a record that is
    empty or starts with white space may be blank; a regex decides those (rare) cases."""
    offsets = np.frombuffer(raws.buffers()[1], np.int32, count=len(raws) + 1, offset=4 * raws.offset)
    empty = offsets[1:] == offsets[:-1]
    spaced = _SPACE[first] & ~empty
    if not spaced.any():
        return None if not empty.any() else ~empty
    blank = pc.match_substring_regex(raws, r"^[ \t\r\n\x0b\x0c]*$").to_numpy(zero_copy_only=False)
    return ~blank


# pyarrow's JSON reader works through a block in pieces of this size (a line must fit in one):
# about 10 % less CPU than one piece of 16 MiB (median 75 ms vs 84 ms per 100,000 benchmark rows)
_JSON_READ_BYTES = 1 << 20


def _json_table(block: bytes, contract: Contract, longest: int, records: int) -> pa.Table | None:
    """The block's columns as pyarrow's JSON reader types them; None when it refuses the block."""
    import pyarrow.json as pajson

    from lakestack.contracts.vector import json_schema

    try:  # a line must fit in one of the reader's blocks
        table = pajson.read_json(
            pa.BufferReader(block),
            read_options=pajson.ReadOptions(use_threads=False, block_size=_piece(longest)),
            parse_options=pajson.ParseOptions(
                explicit_schema=json_schema(contract),
                unexpected_field_behavior="error" if contract.strict else "ignore",
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # record by record
        return None
    if table.num_rows != records:
        return None
    return table.select(list(contract.column_names))


def _piece(longest: int) -> int:
    """The JSON reader's piece for a block whose longest line is `longest` bytes (the reader takes
    an int32; a line it cannot hold makes it refuse the block, which then goes record by record)."""
    return min(max(_JSON_READ_BYTES, 2 * longest + 2), (1 << 31) - 1)


# -- Parquet -----------------------------------------------------------------------------------
def read_parquet_columns(
    path: Path, compression: str | None, contract: Contract, spec: FileSpec, limits: Limits | None = None
) -> Iterator[ColumnChunk]:
    """Parquet row batches as they are typed in the file. The raw record kept in Bronze is each
    row as JSON, rendered as the record reader renders it (readers._parquet_chunks)."""
    import msgspec

    from lakestack.ingest.readers import CHUNK_ROWS, _open_parquet, open_landing

    try:
        raw = open_landing(path)
    except FileRejected as exc:
        raise NotVectorisable(str(exc)) from None
    with raw:
        try:
            parquet = _open_parquet(raw, contract, limits or Limits())
            row = 0
            for batch in parquet.iter_batches(batch_size=CHUNK_ROWS, columns=list(contract.column_names)):
                rows = batch.to_pylist()
                texts = [msgspec.json.encode(r, enc_hook=str).decode() for r in rows]
                lines = pa.array(range(row + 1, row + 1 + len(rows)), pa.int64())
                row += len(rows)
                yield ColumnChunk(lines, pa.array(texts, pa.string()), pa.Table.from_batches([batch]), "objects")
        except (FileRejected, OSError, pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowMemoryError) as exc:
            raise NotVectorisable(str(exc)) from None
