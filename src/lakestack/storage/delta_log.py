"""Reading a Delta table's commits action by action (`_delta_log/<version>.json`), for what a
table version alone does not tell: which files a commit added as new data and which it only
rewrote. An optimize commit's `add` and `remove` actions have `dataChange: false`: its files hold
rows that were already in the table (Delta's streaming readers skip them, as lakestack's readers
skip an Iceberg `replace` snapshot); so do lakestack's own rewrites (a table rewritten to widen
a column's type carries `lakestack.maintenance: widen` in its commitInfo).

- `unread_files`: what an incremental reader (Silver reading Bronze) has not read since a version;
- `data_versions`: for each live file, the newest version whose new rows it holds (a compacted file
  keeps the newest of the files it replaced, as an Iceberg rewrite keeps their data sequence
  number), which `lakestack maintain` uses to compact only what every reader has read.

The log files are read through the table's plain file IO (local or S3). A version whose log file is
gone (cleaned up after a log checkpoint) is reported as missing, and the callers fall back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

MAINTENANCE = "lakestack.maintenance"  # as storage/maintenance.py names it
REWRITES = frozenset({"widen"})  # lakestack commits that rewrite rows they do not change (`delta_evolution`)


@dataclass(frozen=True, slots=True)
class Commit:
    """One version's file actions, paths relative to the table and URL-decoded."""

    version: int
    added: tuple[str, ...]  # adds with dataChange true: new rows
    rewritten: tuple[str, ...]  # adds with dataChange false: rows the table already held
    removed: tuple[str, ...]


def commit(table: Any, version: int) -> Commit | None:
    """The file actions of `version`, or None when its log file cannot be read."""
    path = f"{table.uri.rstrip('/')}/_delta_log/{version:020d}.json"
    try:
        with table.io.new_input(path).open() as stream:
            text = stream.read().decode("utf-8")
    except (FileNotFoundError, OSError):
        return None
    actions = [json.loads(line) for line in text.splitlines() if line.strip()]
    info: dict[str, Any] = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
    rewrite = info.get(MAINTENANCE) in REWRITES
    added: list[str] = []
    rewritten: list[str] = []
    removed: list[str] = []
    for action in actions:
        if "add" in action:
            change = action["add"].get("dataChange", True) and not rewrite
            (added if change else rewritten).append(unquote(action["add"]["path"]))
        elif "remove" in action:
            removed.append(unquote(action["remove"]["path"]))
    return Commit(version, tuple(added), tuple(rewritten), tuple(removed))


def relative(root: str, path: str) -> str:
    """A planned (absolute) data file path as the log names it, URL-decoded."""
    return unquote(path.removeprefix(root.rstrip("/") + "/"))


def unread_files(table: Any, since: int, current: int) -> set[str] | None:
    """Relative paths of the files committed after `since` (up to `current`) that hold rows a reader
    at `since` has not read: data-change adds, and the files a rewrite made from such files (a
    compaction of unread rows). A rewrite of read files only is skipped. None when a version's log
    file is gone."""
    unread: set[str] = set()
    for version in range(since + 1, current + 1):
        found = commit(table, version)
        if found is None:
            return None
        took_unread = any(p in unread for p in found.removed)
        unread.difference_update(found.removed)
        unread.update(found.added)
        if took_unread:
            unread.update(found.rewritten)
    return unread


def data_versions(table: Any, current: int) -> dict[str, int]:
    """For each file live at `current` (relative path), the newest version whose new rows it holds.
    A file added before a version whose log file is gone gets that version (an upper bound)."""
    versions: dict[str, int] = {}
    floor = 0
    for version in range(current + 1):
        found = commit(table, version)
        if found is None:
            floor = version
            continue
        rewritten_from = max((versions.get(p, floor) for p in found.removed), default=version)
        for path in found.removed:
            versions.pop(path, None)
        versions.update(dict.fromkeys(found.added, version))
        versions.update(dict.fromkeys(found.rewritten, rewritten_from))
    return versions


def referenced_files(table: Any, current: int) -> set[str]:
    """Relative paths of every data file a readable version up to `current` references: the live
    files, and what the versions' log files add or remove (a file removed but not vacuumed yet is
    vacuum's to delete). Log files of the oldest versions may be gone (cleaned up after a log
    checkpoint, or by an erasure's expiry): those versions cannot be read, so a file only they
    referenced is referenced by none."""
    live = table.file_paths(None if current == table.version else current)
    out = {relative(table.uri, p) for p in live}
    for version in range(current, -1, -1):
        found = commit(table, version)
        if found is None:
            break
        out.update(found.added, found.rewritten, found.removed)
    return out
