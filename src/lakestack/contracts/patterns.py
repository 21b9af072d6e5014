"""File-name patterns such as `orders_{date:%Y%m%d}.csv`: match names and capture the file date."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

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
        self._regex = re.compile("^" + "".join(parts) + r"(?P<compression>\.gz)?$")

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
        m = self._regex.match(name)
        if m is None:
            return None
        file_date = None
        if self._date_format is not None:
            try:
                file_date = datetime.strptime(m.group("date"), self._date_format).date()
            except ValueError:
                return None
        return FileMatch(name, file_date, m.group("compression"))
