"""Reading landing files: CSV, NDJSON and Parquet, plain or gzip, with exact positions.

A reader yields :class:`Chunk` objects: record positions (1-based line or row), the raw text of
each record, and the values to validate. Problems that make the whole file unreadable raise
:class:`FileRejected` with the reason; the caller quarantines the file and goes on.

Files are opened by their real path with `O_NOFOLLOW`, and the opened descriptor's own path is
checked against it (:func:`open_landing`), so a file swapped for a link after it was found is
refused, never read. Bytes are read through a meter (:class:`_Metered`) that enforces
:class:`Limits` as they flow, so a compressed bomb or an endless line is refused after reading at
most the cap, with the line and offset where it was hit.
"""

from __future__ import annotations

import codecs
import csv
import errno
import gzip
import io
import itertools
import os
import stat
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from lakestack.contracts.csvtext import TextRules
from lakestack.contracts.model import Contract, CsvOptions, FileSpec

CHUNK_ROWS = 100_000
CHUNK_BYTES = 64 << 20  # a chunk also ends at this many bytes of raw text (Arrow strings stay < 2 GiB)
RATIO_FLOOR = 16 << 20  # the ratio cap applies once a file has decompressed this many bytes
_DELIMITERS = (",", ";", "\t", "|")
_READ_SIZE = 1 << 20
_HINT = " (a source's `limits:` in lakestack.yaml can raise it)"


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on one landing file; a file over one is quarantined whole (scope `file`) with the cap,
    its value and the line and byte where reading stopped; the run goes on with the other files.

    Set per source in `lakestack.yaml` (`limits: {max_decompressed_bytes: ..., ...}`), else by the
    environment variables LAKESTACK_MAX_DECOMPRESSED_BYTES, LAKESTACK_MAX_RATIO and
    LAKESTACK_MAX_LINE_BYTES, else these defaults.
    """

    # bytes a file holds once decompressed (plain files: their size). On the record path its rows
    # are held until their batch commits (a file is never split across commits): a 107 MiB CSV of
    # 2 M short rows peaked at 0.97 GB RSS through its commit, so 512 MiB keeps one file near 4-5 GB
    # at worst. The column path streams them into data files (ADR 37) but may decline a file and
    # hand it to the record path, so the cap stays.
    max_decompressed_bytes: int = 512 << 20
    max_ratio: float = 100.0  # decompressed / compressed bytes of a .gz file, past the first RATIO_FLOOR
    max_line_bytes: int = 64 << 20  # bytes of one line (a record between 8 MiB and this is quarantined alone)

    @classmethod
    def resolve(cls, configured: Any = None) -> Limits:
        """The limits of a source: its configured values (an object with these attributes, None
        where unset), else the environment's, else the defaults."""
        values: dict[str, Any] = {}
        for name, kind in (("max_decompressed_bytes", int), ("max_ratio", float), ("max_line_bytes", int)):
            value = getattr(configured, name, None)
            if value is None and os.environ.get(f"LAKESTACK_{name.upper()}"):
                value = _env_number(f"LAKESTACK_{name.upper()}", kind)
            if value is not None:
                values[name] = value
        return cls(**values)


def _env_number(variable: str, kind: type[Any]) -> Any:
    from lakestack.errors import ConfigError

    raw = os.environ[variable]
    try:
        value = kind(raw.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{variable}={raw!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"{variable}={raw!r} must be greater than 0")
    return value


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


def open_landing(path: Path) -> BinaryIO:
    """Open a landing file found at its real path `path` (inside the landing folder), refusing
    what changed since: the last component swapped for a link (`O_NOFOLLOW`), a folder on the way
    swapped (the descriptor's own path, from /proc/self/fd, differs), or not a regular file (a FIFO
    would block, a device never ends). A hard link is read: it is the same file, put in the landing
    folder by someone who may write there."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise FileRejected(_open_problem(exc)) from None
    try:
        _check_opened(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb", buffering=0)


def _open_problem(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "refused: it was replaced by a symbolic link after it was found (landing files are read by real path)"
    if exc.errno == errno.ENOENT:
        return "the file disappeared after it was found"
    return f"cannot be opened ({exc.strerror})"


def _check_opened(fd: int, path: Path) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise FileRejected("refused: not a regular file (a FIFO, device or folder is never read)")
    proc = f"/proc/self/fd/{fd}"
    if os.path.exists(proc):
        opened = os.readlink(proc)
    else:  # no /proc (macOS): the path must still lead to the very file that was opened
        now = os.stat(path)
        opened = str(path) if (now.st_dev, now.st_ino) == (info.st_dev, info.st_ino) else "another file"
    if opened != str(path):
        raise FileRejected(
            f"refused: a folder on its way was replaced after the file was found (it now opens {opened})"
        )


def open_binary(
    path: Path,
    compression: str | None,
    limits: Limits | None = None,
    *,
    prescan: bool = True,
    span: tuple[int, int] | None = None,
) -> BinaryIO:
    """The file's decompressed bytes, metered against `limits` (see :class:`Limits`).

    A compressed file is first inflated once without keeping anything (`prescan`): a bomb is
    refused in constant memory before a record is parsed; otherwise up to the cap of parsed rows
    would be held (3.6 times the bytes inflated, measured) before the cap is hit. `span` (start,
    end): only these bytes of a plain file (a segment starting at a line start, ingest/segments.py).
    """
    limits = limits or Limits()
    raw = open_landing(path)
    try:
        size = os.fstat(raw.fileno()).st_size
        if compression is None and size > limits.max_decompressed_bytes:
            raise FileRejected(
                f"the file is {size:,} bytes, over max_decompressed_bytes ({limits.max_decompressed_bytes:,}){_HINT}"
            )
        if compression == ".gz" and prescan:
            _prescan(raw, limits, size)
            raw.seek(0)
        inner: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if compression == ".gz" else raw  # type: ignore[assignment]
        if span is not None:
            if compression is not None:
                raise ValueError("a compressed file is read whole")
            raw.seek(span[0])
            inner = _Span(raw, span[1] - span[0])  # type: ignore[assignment]
        metered = _Metered(inner, raw, limits, size if compression == ".gz" else None)
    except BaseException:
        raw.close()
        raise
    return io.BufferedReader(metered, _READ_SIZE)  # type: ignore[return-value]


def _prescan(raw: BinaryIO, limits: Limits, size: int) -> None:
    """Inflate a gzip file to its end, keeping nothing: FileRejected at the first cap it breaks."""
    meter = _Metered(gzip.GzipFile(fileobj=raw, mode="rb"), None, limits, size)  # type: ignore[arg-type]
    block = bytearray(_READ_SIZE)
    try:
        while meter.readinto(block):
            pass
    except EOFError:
        raise FileRejected(
            "the gzip stream is truncated (the file ends before its end-of-stream marker)", meter.newlines or None
        ) from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise FileRejected(f"not a valid gzip file ({exc})", meter.newlines or None) from None


class _Span(io.RawIOBase):
    """At most `length` bytes of `raw` from where it stands (closed with the _Metered over it)."""

    def __init__(self, raw: BinaryIO, length: int) -> None:
        super().__init__()
        self._raw, self._left = raw, length

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = self._raw.read(want) if want else b""
        self._left -= len(data)
        return data


class _Metered(io.RawIOBase):
    """Decompressed bytes counted as they are read: total, ratio to the compressed size and the
    length of the current line. Counting newlines per block runs in C; a block is never longer
    than a line may be, so only the line a block starts in and the one it ends in can be over."""

    def __init__(self, inner: BinaryIO, raw: BinaryIO | None, limits: Limits, compressed: int | None) -> None:
        super().__init__()
        self._inner, self._raw, self._limits = inner, raw, limits  # raw: closed with this stream
        self._compressed = compressed
        self._ratio_cap = None if compressed is None else max(RATIO_FLOOR, limits.max_ratio * max(compressed, 1))
        self.total = 0
        self.newlines = 0
        self._tail = 0  # bytes since the last newline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(min(len(buffer), _READ_SIZE, self._limits.max_line_bytes))
        n = len(data)
        buffer[:n] = data
        if n:
            self._count(data)
        return n

    def _count(self, data: bytes) -> None:
        limits, start = self._limits, self.total
        self.total += len(data)
        found = _newlines(data)
        if found:
            first = data.index(b"\n")
            if self._tail + first > limits.max_line_bytes:
                self._line_over(self.newlines + 1, start + first)
            self.newlines += found
            self._tail = len(data) - data.rindex(b"\n") - 1
        else:
            self._tail += len(data)
        if self._tail > limits.max_line_bytes:
            self._line_over(self.newlines + 1, self.total)
        if self.total > limits.max_decompressed_bytes:
            raise FileRejected(
                f"the file holds more than max_decompressed_bytes ({limits.max_decompressed_bytes:,}) "
                f"once decompressed; reading stopped at byte {self.total:,}, line {self.newlines + 1:,}{_HINT}",
                self.newlines + 1,
            )
        if self._ratio_cap is not None and self.total > self._ratio_cap:
            raise FileRejected(
                f"the file decompresses to more than max_ratio ({limits.max_ratio:g}) times its "
                f"{self._compressed:,} bytes; reading stopped at byte {self.total:,}, "
                f"line {self.newlines + 1:,}{_HINT}",
                self.newlines + 1,
            )

    def _line_over(self, line: int, offset: int) -> None:
        raise FileRejected(
            f"line {line:,} is longer than max_line_bytes ({self._limits.max_line_bytes:,}); "
            f"reading stopped at byte {offset:,}{_HINT}",
            line,
        )

    def close(self) -> None:
        try:
            if self._inner is not self._raw:
                self._inner.close()
        finally:
            if self._raw is not None:
                self._raw.close()
            super().close()


def _newlines(data: bytes) -> int:
    import numpy as np  # a third of bytes.count's time on a 1 MiB block

    return int(np.count_nonzero(np.frombuffer(data, np.uint8) == 10))


def _guard(read: Iterator[Chunk], line: list[int], decode_line: Any = None) -> Iterator[Chunk]:
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
        # Text is decoded a block ahead of the parser: line[0] lags; find the exact line.
        at = decode_line() if decode_line is not None else None
        where = at if at is not None else line[0] + 1
        raise FileRejected(f"not valid text in the contract's encoding ({exc.encoding}: {exc.reason})", where) from None
    except csv.Error as exc:
        raise FileRejected(f"malformed CSV: {exc}", line[0] or None) from None


def read_csv(
    path: Path, compression: str | None, contract: Contract, spec: FileSpec, limits: Limits | None = None
) -> Iterator[Chunk]:
    opts = spec.csv
    line = [0]
    return _guard(
        _read_csv(path, compression, contract, opts, line, limits),
        line,
        lambda: decode_error_line(path, compression, opts.encoding),
    )


def decode_error_line(path: Path, compression: str | None, encoding: str) -> int | None:
    """The 1-based line holding the first byte `encoding` cannot decode (None if none is found).

    Only called once a file failed: it decodes the file again, counting line ends as the CSV
    reader does (\n, \r\n and a lone \r), up to the offending byte.
    """
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    lines, after_cr = 1, False
    unbounded = Limits(max_decompressed_bytes=1 << 62, max_ratio=1e12, max_line_bytes=1 << 62)
    with open_binary(path, compression, unbounded, prescan=False) as stream:
        while block := stream.read(_READ_SIZE):
            try:
                text = decoder.decode(block)
            except UnicodeDecodeError as exc:
                text = exc.object[: exc.start].decode(encoding, errors="ignore")
                return lines + _line_ends(text, after_cr)
            lines += _line_ends(text, after_cr)
            after_cr = text.endswith("\r") or (after_cr and not text)
    return None


def _line_ends(text: str, after_cr: bool) -> int:
    ends = text.count("\n") + text.count("\r") - text.count("\r\n")
    return ends - 1 if after_cr and text.startswith("\n") else ends


def _read_csv(
    path: Path,
    compression: str | None,
    contract: Contract,
    opts: CsvOptions,
    line: list[int],
    limits: Limits | None,
) -> Iterator[Chunk]:
    """CSV records with their exact line and raw text, also when a quoted field spans lines.

    Lines are read in blocks and parsed by csv.reader in C; `reader.line_num` tells which lines
    each record used, so the raw text is a slice of the block, not a per-line Python callback.
    Lines already parsed are dropped at every block, so blank lines cost no memory.
    """
    with open_binary(path, compression, limits) as raw_stream:
        text = io.TextIOWrapper(raw_stream, encoding=opts.encoding, errors="strict", newline="")
        buf: list[str] = []
        state = [0, 0]  # [base: line number of buf[0] counted from 0, prev: last line parsed]

        def blocks() -> Iterator[list[str]]:
            while block := text.readlines(1 << 22):
                if not buf and not line[0] and block[0].startswith("\ufeff"):
                    block[0] = block[0][1:]
                del buf[: state[1] - state[0]]  # lines before the record being parsed are done
                state[0] = state[1]
                buf.extend(block)
                yield block

        reader = csv.reader(
            itertools.chain.from_iterable(blocks()), delimiter=opts.delimiter, quotechar=opts.quote, strict=True
        )
        columns = contract.column_names
        if opts.header:
            header = next(reader, None)
            if header is None:
                raise FileRejected(
                    "the file is empty (zero bytes)" if compression is None else "the file has no content"
                )
            line[0] = state[1] = reader.line_num
            columns = _check_header(header, "".join(buf[: line[0]]), contract, opts)
        order = [columns.index(c) for c in contract.column_names]
        rules = TextRules(contract, opts)  # null markers, boolean words, separators, formats
        spell = None if rules.plain else rules.row
        width = len(columns)
        chunk = Chunk([], [], [], "text", [])
        size = 0
        for row in reader:
            n, prev, base = reader.line_num, state[1], state[0]
            if not row:  # a blank line is not a record
                state[1] = line[0] = n
                continue
            raw = (buf[prev - base] if n == prev + 1 else "".join(buf[prev - base : n - base])).rstrip("\r\n")
            start = prev + 1
            state[1] = line[0] = n
            size += len(raw)
            if len(row) == width:
                chunk.positions.append(start)
                chunk.raws.append(raw)
                if spell is None:
                    chunk.values.append([row[i] or None for i in order])
                else:
                    chunk.values.append(spell([row[i] for i in order]))
            elif row != [""]:
                chunk.broken.append((start, raw, "field_count", f"has {len(row)} fields; the header has {width}"))
            if len(chunk.positions) + len(chunk.broken) >= CHUNK_ROWS or size >= CHUNK_BYTES:
                yield chunk
                chunk, size = Chunk([], [], [], "text", []), 0
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


def read_ndjson(
    path: Path, compression: str | None, contract: Contract, spec: FileSpec, limits: Limits | None = None
) -> Iterator[Chunk]:
    line = [0]
    return _guard(_read_ndjson(path, compression, line, limits), line)


def _read_ndjson(path: Path, compression: str | None, line: list[int], limits: Limits | None) -> Iterator[Chunk]:
    with open_binary(path, compression, limits) as stream:
        chunk = Chunk([], [], [], "json", [])
        seen_any = False
        size = 0
        for raw_line in stream:  # the meter under `stream` stops a line past max_line_bytes
            seen_any = True
            line[0] += 1
            record = raw_line.rstrip(b"\r\n")
            if line[0] == 1 and record.startswith(b"\xef\xbb\xbf"):
                record = record[3:]
            if not record or record.isspace():
                continue
            chunk.positions.append(line[0])
            chunk.raws.append(record.decode("utf-8", errors="backslashreplace"))
            chunk.values.append(record)
            size += len(record)
            if len(chunk.positions) >= CHUNK_ROWS or size >= CHUNK_BYTES:
                yield chunk
                chunk, size = Chunk([], [], [], "json", []), 0
        if not seen_any:
            raise FileRejected("the file is empty (zero bytes)" if compression is None else "the file has no content")
        yield chunk


def read_parquet(
    path: Path, compression: str | None, contract: Contract, spec: FileSpec, limits: Limits | None = None
) -> Iterator[Chunk]:
    raw = open_landing(path)
    try:
        parquet = _open_parquet(raw, contract, limits or Limits())
    except BaseException:
        raw.close()
        raise
    return _read_parquet(parquet, contract, raw)


def _open_parquet(raw: BinaryIO, contract: Contract, limits: Limits) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    size = os.fstat(raw.fileno()).st_size
    if size == 0:
        raise FileRejected("the file is empty (zero bytes)")
    try:
        parquet = pq.ParquetFile(raw)
    except (pa.ArrowInvalid, OSError) as exc:
        raise FileRejected(f"not a readable Parquet file ({exc})") from None
    _check_parquet_size(parquet, size, limits)
    names = parquet.schema_arrow.names
    missing = [c for c in contract.column_names if c not in names]
    extra = [c for c in names if c not in contract.column_names]
    if missing or (extra and contract.strict):
        problems = [f"missing column(s): {', '.join(missing)}"] if missing else []
        if extra and contract.strict:
            problems.append(f"column(s) not in the contract: {', '.join(extra)}")
        detail = "; ".join(problems)
        raise FileRejected(f"the file's columns do not match the contract ({detail})")
    return parquet


def _check_parquet_size(parquet: Any, size: int, limits: Limits) -> None:
    """Parquet pages decompress too: the row groups' uncompressed size (from the footer) is held
    to the same caps before a page is read."""
    meta = parquet.metadata
    total = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if total > limits.max_decompressed_bytes:
        raise FileRejected(
            f"its row groups hold {total:,} bytes uncompressed, over max_decompressed_bytes "
            f"({limits.max_decompressed_bytes:,}){_HINT}"
        )
    if total > max(RATIO_FLOOR, limits.max_ratio * size):
        raise FileRejected(
            f"its row groups hold {total:,} bytes uncompressed, more than max_ratio ({limits.max_ratio:g}) "
            f"times its {size:,} bytes{_HINT}"
        )


def _read_parquet(parquet: Any, contract: Contract, raw: BinaryIO) -> Iterator[Chunk]:
    with raw:
        yield from _parquet_chunks(parquet, contract)


def _parquet_chunks(parquet: Any, contract: Contract) -> Iterator[Chunk]:
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
