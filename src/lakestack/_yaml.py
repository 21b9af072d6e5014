"""YAML loading that remembers where every key is, so errors can name the line.

Plain `yaml.safe_load` forgets positions and lets a duplicated key silently win; a project
file with two datasets of one name must fail instead.
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


def _construct(node: yaml.Node, path: KeyPath, smap: SourceMap, error: type[ProjectError]) -> Any:
    smap.record(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _construct(key_node, (*path, "<key>"), smap, error)
            if not isinstance(key, str | int | float | bool):
                raise error("a mapping key must be a plain value", smap.locate(path))
            key = str(key)
            if key in out:
                first = smap.line_of((*path, key))
                raise error(
                    f"'{key}' is defined twice (first on line {first}); names must be unique",
                    Location(smap.file, key_node.start_mark.line + 1, key=".".join(map(str, (*path, key)))),
                )
            smap.record((*path, key), key_node.start_mark.line + 1)
            out[key] = _construct(value_node, (*path, key), smap, error)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), smap, error) for i, item in enumerate(node.value)]
    return yaml.SafeLoader(b"").construct_object(node, deep=True)  # type: ignore[no-untyped-call]


def load_yaml(
    path: Path, *, error: type[ProjectError] = ProjectError, display: str | None = None
) -> tuple[Any, SourceMap]:
    """Load one YAML document; return the data and the map of where each key is."""
    display = display or str(path)
    smap = SourceMap(display)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error("file not found", Location(display)) from None
    except UnicodeDecodeError as exc:
        raise error(f"not valid UTF-8 ({exc.reason} at byte {exc.start})", Location(display)) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        raise error(f"invalid YAML: {exc.problem}", Location(display, line, column)) from None
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML: {exc}", Location(display)) from None
    if node is None:
        return None, smap
    return _construct(node, (), smap, error), smap


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
