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

_DIGITS = {"%Y": 4, "%m": 2, "%d": 2, "%H": 2, "%j": 3, "%y": 2}  # the ASCII digits each date directive matches
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
        parts: list[str] = []  # the regex, RE2's (many names)
        # the same steps one character each (`_walk`, few names): a literal, None (a `*`) or "" (a digit)
        self._tokens: list[str | None] = []
        self._date_span: tuple[int, int] | None = None  # the tokens the date capture starts and stops at
        pos = 0
        for m in _PLACEHOLDER.finditer(template):
            self._text(template[pos : m.start()], parts)
            if self._date_format is not None:
                raise ValueError("a file pattern captures at most one {date:...}")
            self._date_format = m.group(1)
            start, steps = len(self._tokens), _date_steps(m.group(1))
            parts.append(
                "(?P<date>" + "".join(rf"\d{{{_DIGITS[s]}}}" if s in _DIGITS else re.escape(s) for s in steps) + ")"
            )
            self._tokens.extend(t for s in steps for t in ([""] * _DIGITS[s] if s in _DIGITS else [s]))
            self._date_span = (start, len(self._tokens))
            pos = m.end()
        self._text(template[pos:], parts)
        self._regex = "^" + "".join(parts) + r"(?P<compression>\.gz)?$"
        from lakestack.contracts.regex import problem

        why = problem(self._regex)
        if why is not None:
            raise ValueError(f"the pattern does not compile: {why}")

    def _text(self, text: str, parts: list[str]) -> None:
        """Literal template text with `*` wildcards, as regex (lazy `.*?`) and as tokens."""
        parts.append(".*?".join(re.escape(chunk) for chunk in text.split("*")))
        self._tokens.extend(None if c == "*" else c for c in text)

    def match(self, name: str) -> FileMatch | None:
        """The match for a file name, or None. A name whose date does not parse does not match."""
        return self.match_all([name])[0]

    def match_all(self, names: list[str]) -> list[FileMatch | None]:
        """`match` of many names: a few walked in Python (no pyarrow import: ~0.1 s of a `status`), many
        in one RE2 pass (a landing folder may hold many thousand files); both match as the regex."""
        if len(names) <= SMALL_LISTING:
            return [self._walk(n) if _encodable(n) else None for n in names]
        return self._match_all_re2(names)

    def _walk(self, name: str) -> FileMatch | None:
        """The regex's first match of `name` (its lazy `*`s consume as little as they can, the optional
        `.gz` is taken when it is what is left), found by a search over (token, position) states, each
        visited at most once: time linear in the pattern's length times the name's, as on RE2."""
        tokens, n, end = self._tokens, len(name), len(self._tokens)
        failed: set[tuple[int, int]] = set()
        path = [[0, 0, 0]]  # (token, position, next choice) from the start to the state being tried
        while path:
            frame = path[-1]
            ti, ni, choice = frame
            if ti == end:
                rest = name[ni:]
                if rest in ("", ".gz"):
                    return self._file_match(name, {"date": self._captured(path, name), "compression": rest})
                nxt = None
            elif tokens[ti] is None:  # `.*?`: consume nothing first, then one character more (not a newline)
                frame[2] += 1
                if choice == 0:
                    nxt = (ti + 1, ni)
                elif choice == 1 and ni < n and name[ni] != "\n":
                    nxt = (ti, ni + 1)
                else:
                    nxt = None
            else:
                frame[2] += 1
                ok = (
                    choice == 0 and ni < n and (tokens[ti] == name[ni] or (tokens[ti] == "" and "0" <= name[ni] <= "9"))
                )
                nxt = (ti + 1, ni + 1) if ok else None
            if nxt is None:
                failed.add((ti, ni))
                path.pop()
            elif nxt not in failed:
                path.append([nxt[0], nxt[1], 0])
        return None

    def _captured(self, path: list[list[int]], name: str) -> str:
        if self._date_span is None:
            return ""
        start, stop = self._date_span
        first: dict[int, int] = {}
        for ti, ni, _ in path:
            first.setdefault(ti, ni)
        return name[first[start] : first[stop]]

    def _match_all_re2(self, names: list[str]) -> list[FileMatch | None]:
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


SMALL_LISTING = 2_000  # names matched in Python (above: one RE2 pass through pyarrow)


def _date_steps(fmt: str) -> list[str]:
    """A `{date:...}` format as its directives (`%Y`) and literal characters; an unknown directive is refused."""
    out, i = [], 0
    while i < len(fmt):
        token = fmt[i : i + 2]
        if token in _DIGITS:
            out.append(token)
            i += 2
        elif fmt[i] == "%":
            raise ValueError(f"unsupported date directive '{token}' (use %Y %m %d %H %j %y)")
        else:
            out.append(fmt[i])
            i += 1
    return out


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
