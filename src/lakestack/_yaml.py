"""YAML loading that remembers where every key is, so errors can name the line.

Plain `yaml.safe_load` forgets positions and lets a duplicated key silently win; a project
file with two datasets of one name must fail instead.

Every YAML file lakestack reads comes through here, and project files are code-review material, not
trusted input, so the loader is bounded: the file's size (`MAX_YAML_BYTES`, the project file
`MAX_PROJECT_BYTES`), the values aliases may expand to (`MAX_ALIAS_VALUES`: a "billion laughs"
file stops here instead of filling memory), nesting depth (`MAX_DEPTH`), and tags: only the plain
YAML types (strings, numbers, booleans, null, dates, mappings, sequences); `!!python/...` and any
other tag is refused with the file and line.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lakestack.errors import Location, ProjectError

KeyPath = tuple[str | int, ...]


class SourceMap:
    """Line numbers (1-based) of every key and item in a loaded YAML document."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._lines: dict[KeyPath, int] = {}

    def record(self, path: KeyPath, line: int) -> None:
        self._lines[path] = line

    def line_of(self, path: KeyPath) -> int | None:
        """The line of `path`, or of its nearest recorded parent."""
        for end in range(len(path), -1, -1):
            line = self._lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def locate(self, path: KeyPath) -> Location:
        key = ".".join(str(p) for p in path) or None
        return Location(self.file, self.line_of(path), key=key)


MAX_YAML_BYTES = 10 * 1024 * 1024  # contracts, checks, model settings
MAX_PROJECT_BYTES = 1024 * 1024  # lakestack.yaml
MAX_ALIAS_VALUES = 10_000  # values constructed again through aliases (*name), per file
MAX_DEPTH = 64  # nested mappings/sequences

_STR = "tag:yaml.org,2002:str"
# libyaml's parser when PyYAML has it (twice as fast); the nodes and errors are the same
_COMPOSER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp", "map", "seq")
)


class _Builder:
    """Builds plain values from a composed YAML node graph, with the bounds of this module.

    Aliases compose to shared nodes, so a small file can describe an exponentially large tree; each
    node built a second time counts against `MAX_ALIAS_VALUES`.
    """

    def __init__(self, smap: SourceMap, error: type[ProjectError], first_line: int = 1) -> None:
        self.smap = smap
        self.error = error
        self.offset = first_line  # marks count from 0 at the top of the block
        self.built: set[int] = set()
        self.repeats = 0
        self.active: set[int] = set()  # nodes being built: an alias to one of them is a cycle
        self.expanding = 0  # > 0 while building a node again through an alias
        self.scalars = yaml.SafeLoader("")

    def line(self, node: yaml.Node) -> int:
        return int(node.start_mark.line) + self.offset

    def fail(self, message: str, node: yaml.Node, path: KeyPath) -> ProjectError:
        parts = [str(p) for p in path if p != "<key>"]
        key = ".".join(parts if len(parts) <= 8 else [*parts[:8], "..."]) or None
        # Inside an alias's expansion a node's own line is its anchor's; the alias is under the
        # nearest key or item built from the file itself.
        line = self.smap.line_of(path) if self.expanding else self.line(node)
        return self.error(message, Location(self.smap.file, line, key=key))

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        repeat = self._count(node, path)
        self.expanding += repeat
        try:
            return self._build(node, path)
        finally:
            self.expanding -= repeat

    def _build(self, node: yaml.Node, path: KeyPath) -> Any:
        if node.tag == "tag:yaml.org,2002:value":
            raise self.fail("a bare '=' must be quoted", node, path)
        if node.tag not in _PLAIN_TAGS:
            raise self.fail(
                f"YAML tag '{node.tag.replace('tag:yaml.org,2002:', '!!')}' is not allowed; lakestack files hold "
                "plain values (strings, numbers, booleans, null, dates, mappings, lists)",
                node,
                path,
            )
        self._record(path, node)
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            if len(path) >= MAX_DEPTH:
                raise self.fail(f"nested more than {MAX_DEPTH} levels deep", node, path)
            self.active.add(id(node))
            try:
                return self._mapping(node, path) if isinstance(node, yaml.MappingNode) else self._sequence(node, path)
            finally:
                self.active.discard(id(node))
        if node.tag == _STR:  # most values: no constructor needed
            return node.value
        try:
            return self.scalars.construct_object(node, deep=True)  # type: ignore[no-untyped-call]
        except (yaml.YAMLError, ValueError, OverflowError) as exc:  # e.g. an int of 5,000 digits
            reason = str(exc).splitlines()[0].split(";")[0][:200]  # not Python's "use sys.set_int_max_..." hint
            raise self.fail(f"invalid value: {reason}", node, path) from None

    def _record(self, path: KeyPath, node: yaml.Node) -> None:
        if not self.expanding:  # expanded copies have no line of their own
            self.smap.record(path, self.line(node))

    def _count(self, node: yaml.Node, path: KeyPath) -> int:
        """1 if `node` is being built again (through an alias), else 0."""
        if id(node) in self.active:
            raise self.fail("an alias refers to a value that contains it (a recursive alias)", node, path)
        if id(node) not in self.built:
            self.built.add(id(node))
            return 0
        self.repeats += 1
        if self.repeats > MAX_ALIAS_VALUES:
            raise self.fail(
                f"aliases (*name) expand to more than {MAX_ALIAS_VALUES:,} values; write the values out "
                "or use fewer aliases",
                node,
                path,
            )
        return 1

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self.fail("merge keys (<<) are not supported; write the keys out", key_node, path)
            key = self.build(key_node, (*path, "<key>"))
            if not isinstance(key, str | int | float | bool):
                raise self.error("a mapping key must be a plain value", self.smap.locate(path))
            key = str(key)
            if key in out:
                first = self.smap.line_of((*path, key))
                raise self.error(
                    f"'{key}' is defined twice (first on line {first}); names must be unique",
                    Location(self.smap.file, self.line(key_node), key=".".join(map(str, (*path, key)))),
                )
            self._record((*path, key), key_node)
            out[key] = self.build(value_node, (*path, key))
        return out

    def _sequence(self, node: yaml.SequenceNode, path: KeyPath) -> list[Any]:
        return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]


def read_capped(path: Path, limit: int, error: type[ProjectError], display: str) -> str:
    """A project file's text, refusing one over `limit` bytes (checked while reading, so a FIFO or
    /dev/zero behind the name cannot fill memory either)."""
    if path.exists() and not path.is_file():  # a FIFO would block, /dev/zero never ends
        raise error("not a regular file (a folder, device or pipe)", Location(display))
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise error("file not found", Location(display)) from None
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror}", Location(display)) from None
    if len(data) > limit:
        raise error(f"file is larger than {_size(limit)}, the limit for this kind of project file", Location(display))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"not valid UTF-8 ({exc.reason} at byte {exc.start})", Location(display)) from None


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:g} MiB" if n >= 1024 * 1024 else f"{n:,} bytes"


def load_yaml(
    path: Path,
    *,
    error: type[ProjectError] = ProjectError,
    display: str | None = None,
    max_bytes: int = MAX_YAML_BYTES,
) -> tuple[Any, SourceMap]:
    """Load one YAML document; return the data and the map of where each key is."""
    display = display or str(path)
    return load_yaml_text(read_capped(path, max_bytes, error, display), display, error=error)


def load_yaml_text(
    text: str, display: str, *, error: type[ProjectError] = ProjectError, first_line: int = 1
) -> tuple[Any, SourceMap]:
    """Load YAML held in a string (a block inside another file starts at `first_line`)."""
    if len(text.encode("utf-8", errors="replace")) > MAX_YAML_BYTES:
        raise error(f"YAML block is larger than {_size(MAX_YAML_BYTES)}", Location(display, first_line))
    smap = SourceMap(display)
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
        if node is None:
            return None, smap
        return _Builder(smap, error, first_line).build(node, ()), smap
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + first_line if mark else None
        column = mark.column + 1 if mark else None
        raise error(f"invalid YAML: {exc.problem}", Location(display, line, column)) from None
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML: {exc}", Location(display)) from None
    except RecursionError:
        raise error(f"invalid YAML: nested too deeply (at most {MAX_DEPTH} levels)", Location(display)) from None


def pydantic_problem(exc: Any, smap: SourceMap, model: Any) -> tuple[str, Location]:
    """Turn the first error of a pydantic ValidationError into (message, location)."""
    err = exc.errors()[0]
    loc: KeyPath = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        hint = f" (expected one of: {', '.join(allowed)})" if allowed else ""
        return f"unknown key '{loc[-1]}'{hint}", smap.locate(loc)
    if kind == "missing":
        return f"missing required key '{loc[-1]}'", smap.locate(loc[:-1])
    if kind in {"literal_error", "enum"}:
        return f"{err['msg'].lower()}, got {err.get('input')!r}", smap.locate(loc)
    return str(err["msg"]).removeprefix("Value error, "), smap.locate(loc)


def _allowed_keys(model: Any, path: KeyPath) -> list[str]:
    """Walk pydantic models along `path` and return the field names allowed there."""
    current: Any = model
    for part in path:
        fields = getattr(current, "model_fields", None)
        if fields is not None:
            if not (isinstance(part, str) and part in fields):
                return []
            current = _unwrap(fields[part].annotation)
        else:
            args = typing.get_args(current)
            current = _unwrap(args[-1]) if args else None
        if current is None:
            return []
    fields = getattr(current, "model_fields", None)
    if not isinstance(fields, Mapping):
        return []
    return [f.alias or name for name, f in fields.items()]


def _unwrap(annotation: Any) -> Any:
    """`X | None` and `Annotated[X, ...]` to X; containers are left for the walk to descend."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        models = [a for a in typing.get_args(annotation) if hasattr(a, "model_fields")]
        return models[0] if models else typing.get_args(annotation)[0]
    return annotation
