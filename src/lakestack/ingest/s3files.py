"""File-drop sources whose landing folder is an S3 prefix (`landing: s3://bucket/prefix`).

The same source as a local landing folder (`ingest/files.py`: pattern, file ledger by content hash,
quarantine with file and line), with discovery and reading through pyarrow's S3 filesystem:

- **Confinement.** Only objects whose key lies under `prefix/` are listed (a sibling prefix
  `prefix-old/` is not inside `prefix`), names are taken relative to it, and a key with an empty,
  `.` or `..` segment is refused: names are also local file names (below) and must stay inside.
- **Reading.** An object to be read is copied into a private folder (created 0700, removed
  at the end of the run) and read from there by the same readers,
  limits and quarantine as a local file: the readers' guarantees (O_NOFOLLOW, size caps, gzip
  bomb pre-scan, file/line in every error) apply unchanged, and memory stays one buffer.
- **Not downloading twice.** A file's identity is its content hash (the file ledger). With a
  `hash_cache` file, the hash of each object is kept with its size and last-modified time; an
  object listed again with both unchanged is not downloaded to be hashed again, so a run over a
  landing prefix of N ingested objects lists them and downloads only new or changed ones. An object
  rewritten in place keeps neither its size nor its time (S3 sets LastModified on every PUT) and
  is downloaded again; a lost or corrupt cache only costs downloads.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from lakestack.errors import StorageError, UnsafePathError
from lakestack.ingest.base import FileOutcome, IngestObserver, SourceReport
from lakestack.ingest.files import FileSource
from lakestack.ingest.landing import Candidate
from lakestack.storage import filesystems

_COPY_BLOCK = 1 << 20


class S3FileSource(FileSource):
    """Files matching a contract's pattern under an S3 prefix."""

    def __init__(
        self,
        name: str,
        contract: Any,
        landing: str,
        *args: Any,
        env: Any,
        hash_cache: Path | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["project"] = None  # confinement is to the prefix, not to a project folder
        super().__init__(name, contract, Path(tempfile.gettempdir()), *args, **kwargs)
        self.url = landing.rstrip("/")
        self.bucket, self.prefix = filesystems.split(self.url)
        self.env = env
        self._fs: Any = None
        self._stage: Path | None = None
        self._owner = 0
        self._stats: dict[str, tuple[int, int]] = {}  # name → (size, last-modified ns) from the listing
        self.hash_cache = hash_cache
        self._hashes: dict[str, dict[str, Any]] | None = None  # name → {size, mtime_ns, sha256}
        self.downloads = 0  # objects copied this run (tests and benchmarks read it)
        self._dirty = False

    # -- finding files -------------------------------------------------------------------------
    def discover(self, only: list[str] | None = None) -> tuple[list[Candidate], list[FileOutcome]]:
        """Objects under the prefix matching the pattern, each copied into the run's private folder."""
        keys = self._list()
        if only:
            for n in only:
                self._explicit(Path("/"), n)  # '..' or absolute: refused with a clear line
            wanted = {PurePosixPath(n).as_posix() for n in only}
            refused = [
                FileOutcome(n, "refused", reason="no such object under the landing prefix")
                for n in sorted(wanted - set(keys))
            ]
            keys = {k: v for k, v in keys.items() if k in wanted}
        else:
            refused = []
        found: list[Candidate] = []
        names = sorted(keys)
        matches = self.pattern.match_all([PurePosixPath(n).name for n in names])
        for name, match in zip(names, matches, strict=True):
            problem = _unsafe(name)
            if problem:
                refused.append(FileOutcome(name, "refused", reason=problem))
                continue
            if match is None:
                if only:
                    reason = f"the name does not match the pattern {self.pattern.template}"
                    refused.append(FileOutcome(name, "refused", reason=reason))
                continue
            found.append(Candidate(self._local(name), name, match, keys[name]))  # copied when needed
        found.sort(key=lambda c: (c.match.file_date or datetime.min.date(), c.name))
        return found, refused

    def _list(self) -> dict[str, int]:
        """name (relative to the prefix) → size, for every object under `prefix/` (and its
        last-modified time in `_stats`)."""
        import pyarrow.fs as pafs

        fs = self._filesystem()
        base = f"{self.bucket}/{self.prefix}".rstrip("/")
        try:
            infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        except Exception as exc:
            raise StorageError(
                f"cannot list the landing folder {self.url} of source '{self.name}': {filesystems._reason(exc)}"
            ) from None
        out: dict[str, int] = {}
        for info in infos:
            if info.type != pafs.FileType.File or not info.path.startswith(base + "/"):
                continue
            name = info.path[len(base) + 1 :]
            if _unsafe(name) is None and any(part.startswith((".", "_")) for part in name.split("/")):
                continue  # hidden files and folders are skipped, as in a local landing folder
            out[name] = info.size or 0
            self._stats[name] = (info.size or 0, int(info.mtime_ns or 0))
        return out

    # -- content hashes ------------------------------------------------------------------------
    def _hash(self, cand: Candidate) -> str:
        """The object's content hash: from the cache when its size and time are unchanged, else
        from a copy (which the read then uses)."""
        from lakestack.ingest.landing import _sha256

        stat = self._stats.get(cand.name)
        known = self._cache().get(cand.name)
        if stat is not None and stat[1] and known and (known.get("size"), known.get("mtime_ns")) == stat:
            return str(known["sha256"])
        sha = _sha256(self._copy(cand.name))
        if stat is not None:
            self._cache()[cand.name] = {"size": stat[0], "mtime_ns": stat[1], "sha256": sha}
            self._dirty = True
        return sha

    def _cache(self) -> dict[str, dict[str, Any]]:
        if self._hashes is None:
            self._hashes = {}
            if self.hash_cache is not None:
                try:
                    loaded = json.loads(self.hash_cache.read_text())
                    if isinstance(loaded, dict) and loaded.get("url") == self.url:
                        self._hashes = {str(k): v for k, v in loaded.get("objects", {}).items() if isinstance(v, dict)}
                except (OSError, ValueError):
                    pass  # none yet, or unreadable: hashes are made again
        return self._hashes

    def _save_cache(self) -> None:
        """Keep the hashes of the objects still listed (written whole, then renamed into place)."""
        if not self._dirty or self.hash_cache is None or self._hashes is None or self._owner not in (0, os.getpid()):
            return
        self._dirty = False
        objects = {k: v for k, v in self._hashes.items() if k in self._stats}
        try:
            self.hash_cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.hash_cache.with_name(self.hash_cache.name + ".tmp")
            tmp.write_text(json.dumps({"url": self.url, "objects": objects}))
            tmp.replace(self.hash_cache)
        except OSError:
            pass  # a read-only project folder: the next run hashes again

    def _read_all(self, files: list[tuple[Candidate, str]]) -> Any:
        for cand, _ in files:  # a hash from the cache did not copy the object: copy it to be read
            self._copy(cand.name)
        return super()._read_all(files)

    def _local(self, name: str) -> Path:
        """Where the object is (or will be) copied in the run's private folder."""
        if self._stage is None:
            self._stage = Path(tempfile.mkdtemp(prefix=f"lakestack-{self.name}-"))
            self._owner = os.getpid()  # a forked reader process never removes the parent's copies
        local = self._stage.joinpath(*PurePosixPath(name).parts)
        if not local.resolve().is_relative_to(self._stage.resolve()):
            raise UnsafePathError(f"the object {name} would leave the landing copy folder")
        return local.resolve()

    def _copy(self, name: str) -> Path:
        """Copy an object into the run's private folder (read from there like a local file)."""
        local = self._local(name)
        if local.exists():
            return local
        local.parent.mkdir(parents=True, exist_ok=True)
        self.downloads += 1
        try:
            fs = self._filesystem()
            with fs.open_input_stream(self._key(name), compression=None) as src, open(local, "wb") as out:
                while block := src.read(_COPY_BLOCK):
                    out.write(block)
        except OSError as exc:
            raise StorageError(f"cannot read {self.url}/{name}: {filesystems._reason(exc)}") from None
        return local

    def _key(self, name: str) -> str:
        return "/".join(p for p in (self.bucket, self.prefix, name) if p)

    def _filesystem(self) -> Any:
        if self._fs is None:
            self._fs = filesystems.check_reachable(self.env, self.url, f"landing folder of source '{self.name}'")
        return self._fs

    # -- ingesting -----------------------------------------------------------------------------
    def ingest(
        self, warehouse: Any, run_id: str, observer: IngestObserver, only: list[str] | None = None
    ) -> SourceReport:
        try:
            return super().ingest(warehouse, run_id, observer, only)
        finally:
            self.cleanup()

    def pending(self, warehouse: Any) -> tuple[list[Candidate], int]:
        try:
            return super().pending(warehouse)
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        self._save_cache()
        if self._stage is not None and self._owner == os.getpid():
            shutil.rmtree(self._stage, ignore_errors=True)
            self._stage = None

    def __del__(self) -> None:
        self.cleanup()


def _unsafe(name: str) -> str | None:
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return "refused: its key has an empty, '.' or '..' segment, which could lead outside the landing prefix"
    return None
