"""File-drop sources whose landing folder is on an SFTP server (`landing: sftp://host[:port]/path`).

The same source as a local landing folder (`ingest/files.py`: pattern, file ledger by content hash,
quarantine with file and line), with discovery and download over SFTP (asyncssh):

- **Only new files are downloaded.** A name already in Bronze's file ledger is not fetched again
  (vendors drop each day's file under a new name); a new name is downloaded and then hashed, so
  the same content under another name is still skipped as on a local drop.
- **Streamed.** Each file is copied in 1 MiB blocks into a private folder (0700, removed at the end
  of the run) and read from there by the local readers, limits and quarantine: memory stays one
  block, whatever the file's size.
- **A file that changes while it is read** (its size or modification time differs between the
  listing and the end of the download, or the bytes read differ from the size listed) is refused
  for this run with a clear reason and left out of the ledger: the next run picks it up.
- **Confinement.** Only regular files under the landing path are listed (symbolic links and hidden
  names are skipped), names are taken relative to it, and a name with an empty, `.` or `..`
  segment is refused.
- **Credentials** are secret references (`sftp: {password: {secret: N}}` or `private_key:`); the
  server's host key is checked against `known_hosts` unless it says `none`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from lakestack.errors import ConfigError, MissingExtraError, StorageError, UnsafePathError
from lakestack.failpoints import failpoint
from lakestack.ingest.base import FileOutcome, IngestObserver, SourceReport
from lakestack.ingest.files import FileSource
from lakestack.ingest.landing import Candidate, _ledger

log = logging.getLogger(__name__)
_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class RemoteFile:
    name: str  # posix path relative to the landing path
    size: int
    mtime: int


class SftpFileSource(FileSource):
    """Files matching a contract's pattern in a folder of an SFTP server."""

    def __init__(self, name: str, contract: Any, landing: str, *args: Any, settings: Any, **kwargs: Any) -> None:
        self.home = kwargs.get("project")
        kwargs["project"] = None  # confinement is to the remote folder, not to a project folder
        super().__init__(name, contract, Path(tempfile.gettempdir()), *args, **kwargs)
        parts = urlsplit(landing)
        self.url = landing.rstrip("/")
        self.host = parts.hostname or ""
        self.port = parts.port or 22
        self.path = "/" + parts.path.strip("/") if parts.path.strip("/") else "."
        self.settings = settings
        self.user = (settings.user if settings is not None else None) or unquote(parts.username or "") or None
        if settings is None or (settings.password is None and settings.private_key is None) or not self.user:
            raise ConfigError(
                f"source '{name}': an SFTP landing folder needs an 'sftp:' block with 'user' (or user@ in the URL) "
                "and 'password' or 'private_key' as a secret reference, e.g. sftp: {user: drops, password: "
                "{secret: SFTP_PASSWORD}}"
            )
        self.where = f"{self.user}@{self.host}:{self.port}{self.path if self.path != '.' else ''}"
        self._skip: set[str] = set()
        self._stage: Path | None = None
        self._owner = 0
        self._changed: list[FileOutcome] = []

    # -- finding files -------------------------------------------------------------------------
    def discover(self, only: list[str] | None = None) -> tuple[list[Candidate], list[FileOutcome]]:
        """New files on the server matching the pattern, each downloaded into the run's private folder."""
        if only:
            for n in only:
                self._explicit(Path("/"), n)  # '..' or absolute: refused with a clear line
        return asyncio.run(self._discover(only))

    async def _discover(self, only: list[str] | None) -> tuple[list[Candidate], list[FileOutcome]]:
        async with self._connect() as conn, conn.start_sftp_client() as sftp:
            remote = await self._list(sftp)
            refused: list[FileOutcome] = []
            if only:
                wanted = {PurePosixPath(n).as_posix() for n in only}
                refused += [
                    FileOutcome(n, "refused", reason="no such file in the SFTP landing folder")
                    for n in sorted(wanted - set(remote))
                ]
                remote = {k: v for k, v in remote.items() if k in wanted}
            names = sorted(remote)
            matches = self.pattern.match_all([PurePosixPath(n).name for n in names])
            found: list[Candidate] = []
            for name, match in zip(names, matches, strict=True):
                if match is None:
                    if only:
                        reason = f"the name does not match the pattern {self.pattern.template}"
                        refused.append(FileOutcome(name, "refused", reason=reason))
                    continue
                if name in self._skip and not only:
                    continue  # in the ledger: not downloaded again
                local, problem = await self._download(sftp, remote[name])
                if problem is not None:
                    refused.append(FileOutcome(name, "refused", size=remote[name].size, reason=problem))
                    continue
                found.append(Candidate(local, name, match, remote[name].size))
        found.sort(key=lambda c: (c.match.file_date or datetime.min.date(), c.name))
        return found, refused

    def _connect(self) -> Any:
        try:
            import asyncssh
        except ImportError as exc:
            raise MissingExtraError(f"the SFTP landing folder of source '{self.name}'", "sftp") from exc
        s = self.settings
        options: dict[str, Any] = {
            "username": self.user,
            "known_hosts": self._known_hosts(),
            "connect_timeout": s.connect_timeout,
            "agent_path": None,
        }
        if s.password is not None:
            options["password"] = s.password.resolve()
        if s.private_key is not None:
            passphrase = s.passphrase.resolve() if s.passphrase is not None else None
            try:
                key = asyncssh.import_private_key(s.private_key.resolve(), passphrase)
            except (asyncssh.KeyImportError, ValueError) as exc:
                raise ConfigError(
                    f"source '{self.name}': the SFTP private key (secret {s.private_key.secret}) cannot be read: "
                    f"{type(exc).__name__}"
                ) from None
            options["client_keys"] = [key]
        else:
            options["client_keys"] = None
        return _Connection(self, asyncssh.connect(self.host, self.port, **options))

    def _known_hosts(self) -> Any:
        value = self.settings.known_hosts
        if value.strip().lower() == "none":
            log.warning("source %s: the SFTP server's host key is not checked (known_hosts: none)", self.name)
            return None
        path = Path(value).expanduser()
        if not path.is_absolute() and self.home is not None:
            path = Path(self.home) / path
        if not path.is_file():
            raise ConfigError(
                f"source '{self.name}': known_hosts file {value} not found (it holds the SFTP server's host key; "
                "write 'known_hosts: none' to skip the check, not recommended)"
            )
        return str(path)

    async def _list(self, sftp: Any) -> dict[str, RemoteFile]:
        """name → (size, mtime) of every regular file under the landing path (no links, no hidden names)."""
        out: dict[str, RemoteFile] = {}
        folders = [""]
        while folders:
            rel = folders.pop()
            try:
                entries = await sftp.readdir(self._remote(rel) if rel else self.path)
            except Exception as exc:
                raise StorageError(f"cannot list the SFTP landing folder {self.where}/{rel}: {_reason(exc)}") from None
            for entry in entries:
                fname = entry.filename
                if fname in (".", "..") or fname.startswith((".", "_")) or "/" in fname:
                    continue
                name = f"{rel}/{fname}" if rel else fname
                mode = entry.attrs.permissions or 0
                if stat.S_ISDIR(mode):
                    folders.append(name)
                elif stat.S_ISREG(mode):
                    out[name] = RemoteFile(name, entry.attrs.size or 0, entry.attrs.mtime or 0)
        return out

    def _remote(self, name: str) -> str:
        return str(PurePosixPath(self.path) / name) if self.path != "." else name

    async def _download(self, sftp: Any, file: RemoteFile) -> tuple[Path, str | None]:
        """Stream a file into the run's private folder; (path, why it is not ingested this run)."""
        local = self._local(file.name)
        got = 0
        try:
            async with sftp.open(self._remote(file.name), "rb") as src:
                with open(local, "wb") as out:
                    while block := await src.read(_BLOCK):
                        out.write(block)
                        got += len(block)
            failpoint("sftp.after_download")
            after = await sftp.stat(self._remote(file.name))
        except Exception as exc:
            local.unlink(missing_ok=True)
            return local, f"could not be downloaded ({_reason(exc)}); the next run tries again"
        if got != file.size or after.size != file.size or (after.mtime or 0) != file.mtime:
            local.unlink(missing_ok=True)
            return local, (
                f"it changed while being downloaded (listed {file.size:,} bytes, read {got:,}, now "
                f"{after.size or 0:,}; a drop still being written?): not ingested this run, the next run picks it up"
            )
        return local.resolve(), None

    def _local(self, name: str) -> Path:
        problem = _unsafe(name)
        if problem:
            raise UnsafePathError(f"the SFTP file {name} {problem}")
        if self._stage is None:
            self._stage = Path(tempfile.mkdtemp(prefix=f"lakestack-{self.name}-"))
            self._owner = os.getpid()  # a forked reader process never removes the parent's copies
        local = self._stage.joinpath(*PurePosixPath(name).parts)
        if not local.resolve().is_relative_to(self._stage.resolve()):
            raise UnsafePathError(f"the SFTP file {name} would leave the download folder")
        local.parent.mkdir(parents=True, exist_ok=True)
        return local

    # -- ingesting -----------------------------------------------------------------------------
    def _known_names(self, warehouse: Any) -> set[str]:
        identifier = f"bronze.{self.name}"
        if not warehouse.exists(identifier):
            return set()
        return {entry.name for entry in _ledger(warehouse.load(identifier)).values()}

    def ingest(
        self, warehouse: Any, run_id: str, observer: IngestObserver, only: list[str] | None = None
    ) -> SourceReport:
        try:
            self._skip = self._known_names(warehouse)
            return super().ingest(warehouse, run_id, observer, only)
        finally:
            self.cleanup()

    def pending(self, warehouse: Any) -> tuple[list[Candidate], int]:
        try:
            self._skip = self._known_names(warehouse)
            return super().pending(warehouse)
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        if self._stage is not None and self._owner == os.getpid():
            shutil.rmtree(self._stage, ignore_errors=True)
            self._stage = None

    def __del__(self) -> None:
        self.cleanup()


class _Connection:
    """asyncssh's connection as an async context manager whose failures are ours (exit 3, one line)."""

    def __init__(self, source: SftpFileSource, pending: Any) -> None:
        self.source, self.pending, self.conn = source, pending, None

    async def __aenter__(self) -> Any:
        try:
            self.conn = await self.pending
        except Exception as exc:
            raise StorageError(
                f"the SFTP landing folder of source '{self.source.name}' ({self.source.where}) cannot be reached: "
                f"{_reason(exc)}"
            ) from None
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()
            await self.conn.wait_closed()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _unsafe(name: str) -> str | None:
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return "is refused: its name has an empty, '.' or '..' segment, which could lead outside the landing folder"
    return None
