"""File-name patterns such as `orders_{date:%Y%m%d}.csv`: match names and capture the file date.

Names are matched on RE2 (contracts/regex.py): landing file names are written by whoever drops
files, and a pattern with several `*` made Python's backtracking `re` run for minutes on a name of
200 underscores (`*_*_*_*_*.csv`: over 60 s; on RE2 microseconds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

_DIRECTIVES = {"%Y": r"\d{4}", "%m": r"\d{2}", "%d": r"\d{2}", "%H": r"\d{2}", "%j": r"\d{3}", "%y": r"\d{2}"}
_PLACEHOLDER = re.compile(r"\{date:([^}]+)\}")
COMPRESSIONS = (".gz",)


@dataclass(frozen=True, slots=True)
class FileMatch:
    name: str
    file_date: date | None
    compression: str | None


class FilePattern:
    """A file-name template: literal text, `*` wildcards and one optional `{date:<strftime>}`."""

    def __init__(self, template: str) -> None:
        if "/" in template or "\\" in template:
            raise ValueError("a file pattern names files, not folders: no '/' in it")
        self.template = template
        self._date_format: str | None = None
        parts: list[str] = []
        pos = 0
        for m in _PLACEHOLDER.finditer(template):
            parts.append(self._literal(template[pos : m.start()]))
            if self._date_format is not None:
                raise ValueError("a file pattern captures at most one {date:...}")
            self._date_format = m.group(1)
            parts.append(f"(?P<date>{self._date_regex(m.group(1))})")
            pos = m.end()
        parts.append(self._literal(template[pos:]))
        self._regex = "^" + "".join(parts) + r"(?P<compression>\.gz)?$"
        from lakestack.contracts.regex import problem

        why = problem(self._regex)
        if why is not None:
            raise ValueError(f"the pattern does not compile: {why}")

    @staticmethod
    def _literal(text: str) -> str:
        return ".*?".join(re.escape(chunk) for chunk in text.split("*"))

    @staticmethod
    def _date_regex(fmt: str) -> str:
        out, i = [], 0
        while i < len(fmt):
            token = fmt[i : i + 2]
            if token in _DIRECTIVES:
                out.append(_DIRECTIVES[token])
                i += 2
            elif fmt[i] == "%":
                raise ValueError(f"unsupported date directive '{token}' (use %Y %m %d %H %j %y)")
            else:
                out.append(re.escape(fmt[i]))
                i += 1
        return "".join(out)

    def match(self, name: str) -> FileMatch | None:
        """The match for a file name, or None. A name whose date does not parse does not match."""
        return self.match_all([name])[0]

    def match_all(self, names: list[str]) -> list[FileMatch | None]:
        """`match` of many names in one RE2 pass (a landing folder may hold many thousand files)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            column = _string_array(pa, names)
        except UnicodeEncodeError:  # a name that is not valid UTF-8 on disk matches no pattern
            return [self.match(n) if _encodable(n) else None for n in names] if len(names) > 1 else [None]
        return [
            self._file_match(n, found)
            for n, found in zip(names, pc.extract_regex(column, self._regex).to_pylist(), strict=True)
        ]

    def _file_match(self, name: str, found: dict[str, str] | None) -> FileMatch | None:
        if found is None:
            return None
        file_date = None
        if self._date_format is not None:
            try:
                file_date = datetime.strptime(found["date"], self._date_format).date()
            except ValueError:
                return None
        return FileMatch(name, file_date, found["compression"] or None)


def _string_array(pa: Any, names: list[str]) -> Any:
    """`pa.array(names, pa.string())` built from the UTF-8 bytes: converting Python objects makes
    pyarrow import pandas (~0.3 s of a `lakestack status`). Raises UnicodeEncodeError as it does."""
    from array import array
    from itertools import accumulate

    encoded = [n.encode("utf-8") for n in names]
    offsets = array("q", [0, *accumulate(len(e) for e in encoded)])
    return pa.LargeStringArray.from_buffers(len(names), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded)))


def _encodable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
