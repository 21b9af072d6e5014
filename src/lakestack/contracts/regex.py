"""Contract regexes (`regex:` of a batch column, `pattern`/`format` of a JSON Schema string) run on
RE2, through Arrow's compute kernels: matching takes time linear in the value whatever the pattern,
so a pattern such as `^(a+)+$` cannot hang an ingest (Python's backtracking `re` took minutes on a
40-character value). DuckDB's `regexp_matches`, which quality checks compile to, is RE2 as well, so
a pattern means the same in a contract and in a check.

Where RE2 differs from Python's `re` (and is stricter, so the difference shows at contract load):
backreferences (`\\1`), lookaround (`(?=`, `(?!`, `(?<=`), possessive quantifiers and atomic groups
are refused; `\\Z` is spelled `\\z`; a repetition is at most `{1000}`. `\\d`, `\\w` and `\\s` match
ASCII only (Python's also match other Unicode digits, letters and spaces; use `\\p{Nd}`, `\\p{L}`);
`$` matches only at the very end (Python's also before a final newline).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

# Patterns known to compile on RE2: checked in this process, or trusted from the project's cache of
# earlier verdicts (pipeline/project.py), so loading a project imports no pyarrow.compute (~0.2 s).
_VALID: set[str] = set()


def trust(patterns: Iterable[str]) -> None:
    """Take these patterns as compiling on RE2 (verdicts of an earlier process with the same pyarrow)."""
    _VALID.update(p for p in patterns if isinstance(p, str))


def known_valid() -> frozenset[str]:
    return frozenset(_VALID)


def problem(pattern: str) -> str | None:
    """Why RE2 cannot run `pattern` (None when it can), in words for a contract author."""
    if not isinstance(pattern, str):
        return f"a regular expression is a string, not {type(pattern).__name__}"
    if pattern in _VALID:
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        # compiled when the kernel starts, whatever the data; an array of nulls, not of Python
        # strings: converting Python objects makes pyarrow import pandas (~0.15 s per command)
        pc.match_substring_regex(pa.nulls(1, pa.string()), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        why = str(exc).removeprefix("Invalid regular expression: ")
        return f"invalid regular expression for RE2, the linear-time engine lakestack uses ({why}){_hint(why)}"
    _VALID.add(pattern)
    return None


def _hint(why: str) -> str:
    if "perl operator" in why:
        return "; lookahead and lookbehind are not supported"
    if "escape sequence: \\" in why and why.rstrip()[-1:].isdigit():
        return "; backreferences are not supported"
    if "escape sequence: \\Z" in why:
        return "; write \\z for the end of the text"
    if "bad repetition operator" in why:
        return "; possessive quantifiers are not supported"
    return ""


def misses(values: Sequence[str | None], pattern: str) -> list[int]:
    """Indexes of the strings `pattern` finds no match in (searched anywhere, like `re.search`);
    None values are not checked. One RE2 pass over the whole column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        column = pa.array(values, pa.string())
    except (UnicodeEncodeError, pa.ArrowInvalid):  # a lone surrogate: that value cannot match
        return [i for i, v in enumerate(values) if v is not None and (not _encodable(v) or misses([v], pattern))]
    found = pc.match_substring_regex(column, pattern)
    missed = pc.invert(pc.fill_null(found, True))
    return pc.indices_nonzero(missed).to_pylist()  # type: ignore[no-any-return]


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def search(pattern: str, value: str) -> bool:
    """Whether `pattern` matches somewhere in one value (the slow path that explains a record)."""
    return not misses([value], pattern) if _cached_ok(pattern) else False


@lru_cache(maxsize=256)
def _cached_ok(pattern: str) -> bool:
    return problem(pattern) is None
