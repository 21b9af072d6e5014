"""A landing folder as a file-drop source sees it: the files matching the contract's pattern, confined
to the folder, and which of them Bronze's file ledger does not hold yet (by name or content hash).

Kept apart from the ingest (ingest/files.py) so that `lakestack status` lists what waits without
importing pyarrow, pyiceberg or the validators (issue 19: ~0.2 s of every `status`)."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from lakestack.contracts.model import Contract, FileSpec
from lakestack.contracts.patterns import FileMatch, FilePattern
from lakestack.errors import UnsafePathError
from lakestack.failpoints import failpoint
from lakestack.ingest.base import FileOutcome
from lakestack.ingest.readers import FileRejected, open_landing
from lakestack.storage.checkpoints import FileLedger, LedgerEntry, read_checkpoint


@dataclass(frozen=True, slots=True)
class Candidate:
    path: Path
    name: str  # posix path relative to the landing folder
    match: FileMatch
    size: int


class LandingFolder:
    """The files of a landing folder that match a contract's pattern (ingest/files.py reads them)."""

    def __init__(
        self,
        name: str,
        contract: Contract,
        landing: Path,
        pattern: str | None = None,
        format: str | None = None,
        *,
        project: Path | None = None,
    ) -> None:
        base = contract.file or FileSpec(pattern or "*", "ndjson" if contract.kind == "event" else "csv")
        self.spec = FileSpec(pattern or base.pattern, format or base.format, base.csv)  # type: ignore[arg-type]
        self.name = name
        self.contract = contract
        self.landing = landing
        self.project = project  # the landing folder's real path must lie inside it
        self.pattern = FilePattern(self.spec.pattern)

    # -- finding files -------------------------------------------------------------------------
    def discover(self, only: list[str] | None = None) -> tuple[list[Candidate], list[FileOutcome]]:
        """Files to consider, and files refused because they escape the landing folder.

        Confinement is by real path: the landing folder's own real path must lie in the project,
        and each file's in the landing folder. A candidate carries its real path, which is opened
        with O_NOFOLLOW and checked again once open (readers.open_landing), so a file or folder
        swapped for a link after this point is refused at read time.
        """
        root = self._landing_root()
        if root is None:
            return [], []
        paths = [self._explicit(root, n) for n in only] if only else list(self._walk(root))
        found: list[Candidate] = []
        refused: list[FileOutcome] = []
        matches = self.pattern.match_all([p.name for p in paths])
        for path, match in zip(paths, matches, strict=True):
            name = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
            real = path.resolve()
            if not real.is_relative_to(root):
                refused.append(FileOutcome(name, "refused", reason=f"it links outside the landing folder ({root})"))
                continue
            if match is None:
                if only:
                    refused.append(
                        FileOutcome(
                            name, "refused", reason=f"the name does not match the pattern {self.pattern.template}"
                        )
                    )
                continue
            problem, size = _regular_file(real)
            if problem is not None:
                refused.append(FileOutcome(name, "refused", reason=problem))
                continue
            found.append(Candidate(real, name, match, size))
        found.sort(key=lambda c: (c.match.file_date or datetime.min.date(), c.name))
        return found, refused

    def _landing_root(self) -> Path | None:
        """The landing folder's real path (None if it does not exist); refused when it is a link
        out of the project: landing files are data the project owns, not a view on the host."""
        root = self.landing.resolve()
        if self.project is not None:
            home = self.project.resolve()
            if not root.is_relative_to(home):
                raise UnsafePathError(
                    f"the landing folder of source '{self.name}' ({self.landing}) leads to {root}, outside the "
                    f"project ({home}); a landing folder must lie inside the project (mount a folder "
                    "there instead of linking one)"
                )
        return root if root.is_dir() else None

    @staticmethod
    def _walk(root: Path) -> Iterator[Path]:
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
            for file in sorted(files):
                if not file.startswith((".", "_")):
                    yield Path(folder) / file

    @staticmethod
    def _explicit(root: Path, name: str) -> Path:
        pure = PurePosixPath(name)
        if pure.is_absolute() or Path(name).is_absolute() or ".." in pure.parts:
            raise UnsafePathError(f"'{name}' escapes the landing folder: give a name inside {root}")
        return root / pure

    def pending(self, warehouse: Any) -> tuple[list[Candidate], int]:
        """Landing files not yet ingested (by content), and how many files Bronze already holds."""
        identifier = f"bronze.{self.name}"
        if not warehouse.exists(identifier):
            return self.discover()[0], 0
        done = _ledger(warehouse.load(identifier))
        names = {v.name for v in done.values()}
        waiting = [c for c in self.discover()[0] if c.name not in names and self._hash(c) not in done]
        return waiting, len(done)

    def _hash(self, cand: Candidate) -> str:
        """The file's content hash (its identity in the file ledger). A remote landing (S3) may know
        it without reading the file again."""
        return _sha256(cand.path)


def _regular_file(real: Path) -> tuple[str | None, int]:
    """(why it is refused, None if it is not; its size) for a file found in the landing folder."""
    try:
        info = real.stat()
    except OSError as exc:
        return f"cannot be read ({exc.strerror}: a dangling link, or removed meanwhile)", 0
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a FIFO, device or folder is never read)", 0
    return None, info.st_size


def _sha256(path: Path) -> str:
    """The content hash of a landing file, read through the same confined open as its records.
    A file refused at open (swapped for a link meanwhile, or gone) gets a hash of its path and
    the refusal instead: unique, never equal to a content hash, and reading it later is refused
    too, so it is reported rejected with the reason and nothing of it is read."""
    digest = hashlib.sha256()
    try:
        with open_landing(path) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except FileRejected as exc:
        return hashlib.sha256(f"refused\0{path}\0{exc.reason}".encode()).hexdigest()
    return digest.hexdigest()


def _ledger(table: Any) -> dict[str, LedgerEntry]:
    """sha256 → (name, run) of every file a table holds (a copy: the caller adds to it)."""
    failpoint("files.ledger.read")
    return dict(read_checkpoint(table, FileLedger).files)
