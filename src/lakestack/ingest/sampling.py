"""Reading a sample of landing files for `lakestack contracts infer` (contracts/infer.py drafts
from it): CSV (the delimiter and header most files agree on; UTF-8, else Windows-1252), NDJSON
(records; absent keys kept apart from nulls) and Parquet (Arrow types kept), a file or a folder.
Files that cannot be read are left out and named in the sample's notes."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lakestack.contracts.infer import DELIMITERS, FORMATS, MAX_FILES, MISSING, SAMPLE_ROWS, Sample
from lakestack.errors import UsageError


def landing_files(path: Path) -> tuple[str, list[Path], list[str]]:
    """The format and the files to sample under `path` (a file or a folder), with notes."""
    if not path.exists():
        raise UsageError(f"{path} does not exist")
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file() and p.name[0] not in "._")
    by_format: dict[str, list[Path]] = {}
    for p in files:
        fmt = FORMATS.get(Path(p.name.removesuffix(".gz")).suffix.lower())
        if fmt is not None:
            by_format.setdefault(fmt, []).append(p)
    if not by_format:
        raise UsageError(f"no CSV, NDJSON or Parquet files in {path} (expected .csv, .ndjson, .jsonl or .parquet)")
    fmt = max(by_format, key=lambda f: len(by_format[f]))
    notes = [f"{len(v)} {f} file(s) in the folder left out: the draft is for the {fmt} files" for f, v in
             by_format.items() if f != fmt]  # fmt: skip
    chosen = by_format[fmt]
    if len(chosen) > MAX_FILES:  # spread the sample over the whole period: first, last and evenly between
        step = (len(chosen) - 1) / (MAX_FILES - 1)
        chosen = [chosen[round(i * step)] for i in range(MAX_FILES)]
    return fmt, chosen, notes


def sample_files(path: Path, limit: int = SAMPLE_ROWS) -> Sample:
    """Read up to `limit` records of the files under `path` into columns of values."""
    fmt, files, notes = landing_files(path)
    if fmt == "parquet":
        return _sample_parquet(files, limit, notes)
    if fmt == "ndjson":
        return _sample_ndjson(files, limit, notes)
    return _sample_csv(files, limit, notes)


MAX_BYTES = 8 << 20  # read at most this much of one file (whole lines): a sample, not the file
HEAD_BYTES = 64 << 10


def _head(path: Path, size: int) -> bytes:
    """The first `size` bytes of a file (decompressed), cut after its last whole line."""
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw: bytes = f.read(size + 1)
    if len(raw) > size:
        raw = raw[: raw.rfind(b"\n", 0, size) + 1]
    return raw


def _open_text(path: Path, size: int = MAX_BYTES) -> tuple[str, str]:
    """The file's first lines and their encoding: UTF-8 (a BOM dropped), else Windows-1252."""
    raw = _head(path, size)
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace"), "cp1252"


def _readable(files: Sequence[Path], notes: list[str], size: int = MAX_BYTES) -> Iterator[tuple[Path, str, str]]:
    for p in files:
        try:
            text, encoding = _open_text(p, size)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            notes.append(f"{p.name} could not be read ({type(exc).__name__}): left out of the sample")
            continue
        yield p, text, encoding


def _delimiter(header: str) -> str:
    return max(DELIMITERS, key=header.count)


def _sample_csv(files: Sequence[Path], limit: int, notes: list[str]) -> Sample:
    heads = {p: t.partition("\n")[0].strip() for p, t, _ in _readable(files, notes, HEAD_BYTES)}
    if not heads:
        raise UsageError("none of the files could be read")
    (delimiter, header_line), _ = Counter((_delimiter(h), h) for h in heads.values()).most_common(1)[0]
    header = next(csv.reader([header_line], delimiter=delimiter), [])
    if not header:
        raise UsageError("the files have no header line (contracts infer reads CSV files with a header)")
    columns: dict[str, list[Any]] = {h: [] for h in header}
    same = [p for p, h in heads.items() if h == header_line]
    for p in heads:
        if p not in same:
            notes.append(f"{p.name}: its header differs from the other files' (not '{delimiter}'-delimited "
                         "like them?): left out of the sample; ingest will reject it")  # fmt: skip
    encodings, bad_rows = Counter[str](), 0
    for _path, text, encoding in _readable(same, notes):
        if len(columns[header[0]]) >= limit:
            break
        encodings[encoding] += 1
        for row in csv.reader(io.StringIO(text.partition("\n")[2]), delimiter=delimiter):
            if len(columns[header[0]]) >= limit:
                break
            if len(row) != len(header):
                bad_rows += 1
                continue
            for h, v in zip(header, row, strict=True):
                columns[h].append(v)
    if bad_rows:
        notes.append(f"{bad_rows:,} sampled record(s) had a different number of fields: left out of the sample")
    encoding = encodings.most_common(1)[0][0] if encodings else "utf-8"
    if encoding != "utf-8":
        notes.append(f"the files are not UTF-8: read as {encoding} (guessed)")
    if delimiter != ",":
        notes.append(f"delimiter {delimiter!r} (the most frequent in the header line)")
    names = tuple(p.name for p in heads)
    return Sample("csv", names, columns, delimiter=delimiter, encoding=encoding, notes=tuple(notes))


def _sample_ndjson(files: Sequence[Path], limit: int, notes: list[str]) -> Sample:
    records: list[dict[str, Any]] = []
    names = [p.name for p in files]
    for p, text, _ in _readable(files, notes):
        if len(records) >= limit:
            break
        for i, line in enumerate(text.splitlines(), 1):
            if len(records) >= limit:
                break
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                notes.append(f"{p.name} line {i} is not JSON: left out of the sample (ingest quarantines it)")
                continue
            if isinstance(value, dict):
                records.append(value)
    order: dict[str, None] = {}
    for r in records:
        order.update(dict.fromkeys(r))
    columns = {k: [r.get(k, MISSING) for r in records] for k in order}
    return Sample("ndjson", tuple(names), columns, notes=tuple(notes))


def _sample_parquet(files: Sequence[Path], limit: int, notes: list[str]) -> Sample:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables: list[Any] = []
    names = []
    for p in files:
        wanted = limit - sum(t.num_rows for t in tables)
        try:
            batches = pq.ParquetFile(p).iter_batches(batch_size=max(1, min(wanted, 65_536)))
            first = next(batches, None) if wanted > 0 else None
        except (OSError, pa.ArrowException) as exc:
            notes.append(f"{p.name} is not readable Parquet ({type(exc).__name__}): left out of the sample")
            continue
        names.append(p.name)
        if first is not None:
            tables.append(pa.Table.from_batches([first]).slice(0, wanted))
    if not tables:
        raise UsageError("none of the Parquet files could be read")
    table = pa.concat_tables(tables, promote_options="permissive")
    columns = {n: table.column(n).to_pylist() for n in table.column_names}
    types = {n: str(table.schema.field(n).type) for n in table.column_names}
    return Sample("parquet", tuple(names), columns, arrow_types=types, notes=tuple(notes))
