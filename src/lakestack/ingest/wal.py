"""The HTTP collector's write-ahead log: what was acknowledged and is not in Iceberg yet (ADR 9)."""

from __future__ import annotations

import itertools
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Wal:
    """An append-only log in segment files: each entry is position, length, CRC32 and payload.

    Appends are written and fsynced once per call. A torn entry at the end (a crash mid-write)
    fails its CRC and is cut off on reading. Segments whose entries are all committed are deleted.
    """

    HEADER = struct.Struct(">QII")

    def __init__(self, folder: Path, segment_bytes: int = 64 * 1024 * 1024) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        folder.mkdir(parents=True, exist_ok=True)
        self._next = 0
        self._file: Any = None
        self._size = 0
        for _, entries in self._segments_with_entries():
            if entries:
                self._next = entries[-1][0] + 1

    def _segments(self) -> list[Path]:
        return sorted(self.folder.glob("*.wal"))

    def _segments_with_entries(self) -> Iterator[tuple[Path, list[tuple[int, bytes]]]]:
        for path in self._segments():
            yield path, list(self._read(path))

    def _read(self, path: Path) -> Iterator[tuple[int, bytes]]:
        data = path.read_bytes()
        offset, header = 0, self.HEADER
        while offset + header.size <= len(data):
            position, length, crc = header.unpack_from(data, offset)
            payload = data[offset + header.size : offset + header.size + length]
            if len(payload) < length or zlib.crc32(payload) != crc:
                log.warning("%s: cut off a torn entry at byte %d", path.name, offset)
                with path.open("r+b") as f:
                    f.truncate(offset)
                return
            yield position, payload
            offset += header.size + length

    def read_after(self, position: int) -> Iterator[tuple[int, bytes]]:
        for _, entries in self._segments_with_entries():
            for pos, payload in entries:
                if pos > position:
                    yield pos, payload

    def append(self, payloads: list[bytes]) -> int:
        """Write entries and fsync; returns the position of the first."""
        if self._file is None or self._size >= self.segment_bytes:
            self._roll()
        first = self._next
        parts = []
        for i, payload in enumerate(payloads):
            parts.append(self.HEADER.pack(first + i, len(payload), zlib.crc32(payload)))
            parts.append(payload)
        block = b"".join(parts)
        self._file.write(block)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._size += len(block)
        self._next = first + len(payloads)
        return first

    def _roll(self) -> None:
        if self._file is not None:
            self._file.close()
        path = self.folder / f"{self._next:020d}.wal"
        self._file = path.open("ab")
        self._size = path.stat().st_size
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)  # the new segment's name is durable too
        finally:
            os.close(fd)

    def trim(self, committed: int) -> None:
        """Delete segments whose entries are all at or below `committed` (never the open one)."""
        segments = self._segments()
        for path, following in itertools.pairwise(segments):
            if int(following.stem) - 1 <= committed:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
