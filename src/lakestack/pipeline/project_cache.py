"""The checked project, remembered: `.lakestack/cache/project.json` (ADR 43).

Loading a project parses `lakestack.yaml` (PyYAML), validates it against ~40 pydantic models
(building their validators first) and checks its sources and datasets against the contracts:
~0.1 s of every command, most of a small `lakestack query`'s own work. The result depends only on
those files and on lakestack's own checking code, so once a project has been checked, its validated
configuration is written here as tagged JSON, keyed by a SHA-256 of `lakestack.yaml`'s bytes, every
contract file's name and bytes, and the size and modification time of the modules that check them.
The next load whose key matches rebuilds the same models without validating them again
(`model_construct`, field by field, only classes of `lakestack.config`) and defers the contracts
until something asks for one. Any edit to those files changes the key: the next load checks
everything again (and reports its errors as before) and rewrites the cache.

No secret is written: a field that may hold a `{secret: NAME}` keeps only the reference; where the
file gives such a field a literal instead (a URL with a password, a header or property value), the
project is not cached at all and is checked on every load, as before. JSON, not pickle: reading the
cache runs no code. A cache that cannot be read, parsed or written is only slower.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import types
import typing
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
FORMAT = 1  # the layout of the cache file; a change makes every older file a miss
CACHE_FILE = Path(".lakestack") / "cache" / "project.json"
MAX_KEYED_BYTES = 16 * 1024 * 1024  # above the loader's own caps (1 MiB project file, 10 MiB contract)
_PASSWORD_URL = re.compile(r"://[^/@\s]*:[^/@\s]*@")  # scheme://user:password@host


class Uncacheable(Exception):
    """The configuration holds something the cache must not (a literal where a secret may go) or cannot write."""


def key(root: Path) -> str | None:
    """The SHA-256 of what a checked project depends on; None when a file cannot be read."""
    import lakestack.config
    import lakestack.pipeline.project

    digest = hashlib.sha256(f"lakestack project cache {FORMAT}\0".encode())
    try:
        for module in (lakestack.config.__file__, lakestack.pipeline.project.__file__, __file__):
            info = os.stat(str(module))
            digest.update(f"{module}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
        digest.update(_regular(root / "lakestack.yaml") + b"\0")
        contracts = root / "contracts"
        for path in sorted(contracts.iterdir()) if contracts.is_dir() else []:
            digest.update(path.name.encode() + b"\0")
            digest.update((_regular(path) if path.is_file() else b"<not a file>") + b"\0")
    except OSError:
        return None  # the full load reads (and refuses) it as it always did
    return digest.hexdigest()


def _regular(path: Path) -> bytes:
    """A regular file's bytes, up to MAX_KEYED_BYTES; OSError for anything else (a device, a pipe:
    never read here, so never a hang or an endless read)."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_KEYED_BYTES:
        raise OSError(f"{path} is not a regular file of at most {MAX_KEYED_BYTES} bytes")
    with open(path, "rb") as file:
        data = file.read(MAX_KEYED_BYTES + 1)
    if len(data) > MAX_KEYED_BYTES:
        raise OSError(f"{path} grew past {MAX_KEYED_BYTES} bytes")
    return data


def load(root: Path, expected: str) -> Any:
    """The `ProjectConfig` cached for `root` under `expected`, or None."""
    try:
        document = json.loads(_regular(root / CACHE_FILE).decode("utf-8"))  # never a pipe or an endless read
        if not isinstance(document, dict) or document.get("key") != expected:
            return None
        return restore(document["config"])
    except Exception as exc:  # no cache, another layout, a model changed: check the project again
        log.debug("project cache of %s not used: %s", root, exc)
        return None


def store(root: Path, expected: str, config: Any) -> None:
    """Write `config` for `root` under `expected`; nothing when it may not or cannot be cached, or
    the project has no `.lakestack` folder yet."""
    if not (root / ".lakestack").is_dir():
        return
    try:
        document = {"key": expected, "config": dump(config)}
    except Uncacheable as exc:
        log.debug("project %s not cached: %s", root, exc)
        (root / CACHE_FILE).unlink(missing_ok=True)
        return
    path = root / CACHE_FILE
    try:
        path.parent.mkdir(exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        log.debug("project cache of %s not written: %s", root, exc)


def dump(value: Any, secret: bool = False) -> Any:
    """A validated model as JSON: models tagged with their class, dicts and tuples tagged too.
    `secret`: the value is (inside) a field that may hold a secret reference."""
    from pydantic import BaseModel

    import lakestack.config as config

    if isinstance(value, BaseModel):
        cls = type(value)
        if getattr(config, cls.__name__, None) is not cls:
            raise Uncacheable(f"{cls.__name__} is not a model of lakestack.config")
        if isinstance(value, config.SecretRef):
            return {"$model": cls.__name__, "fields": {"secret": value.secret}, "set": ["secret"]}
        fields = {
            name: dump(getattr(value, name), _may_hold_secret(info.annotation))
            for name, info in cls.model_fields.items()
        }
        return {"$model": cls.__name__, "fields": fields, "set": sorted(value.model_fields_set)}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise Uncacheable("a mapping with keys that are not text")
        if secret and any(isinstance(v, str) for v in value.values()):  # a header or property given literally
            raise Uncacheable("a literal value where a {secret: NAME} may go")
        return {"$dict": {k: dump(v, secret) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        items = [dump(v, secret) for v in value]
        return items if isinstance(value, list) else {"$tuple": items}
    if isinstance(value, str):
        if secret and not _plain_setting(value):
            raise Uncacheable("a literal value where a {secret: NAME} may go")
        return value
    if value is None or isinstance(value, bool | int | float):
        return value
    raise Uncacheable(f"a value of type {type(value).__name__}")


def _plain_setting(value: str) -> bool:
    """A literal that a secret-capable field may keep in the cache: an address without a password,
    query or HTTP(S) path (a SQLite catalog URI, a broker list, a client id). An HTTP URL can be a
    credential in itself (a Slack hook), so a project giving one literally is not cached."""
    if _PASSWORD_URL.search(value) or "?" in value or value.lower().startswith(("http://", "https://")):
        return False
    return "://" in value or bool(re.fullmatch(r"[A-Za-z0-9_.:,/-]*", value))


def restore(value: Any) -> Any:
    """The inverse of `dump`: models rebuilt with `model_construct` (no validation)."""
    import lakestack.config as config

    if isinstance(value, list):
        return [restore(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$dict" in value:
        return {k: restore(v) for k, v in value["$dict"].items()}
    if "$tuple" in value:
        return tuple(restore(v) for v in value["$tuple"])
    cls = getattr(config, value["$model"])
    if not (isinstance(cls, type) and issubclass(cls, config.Frozen)):
        raise ValueError(f"{value['$model']} is not a model of lakestack.config")
    fields = {name: restore(v) for name, v in value["fields"].items()}
    if set(fields) != set(cls.model_fields):
        raise ValueError(f"{cls.__name__}'s fields changed")
    return cls.model_construct(_fields_set=set(value["set"]), **fields)


class SourceMapOnDemand:
    """The lines of `lakestack.yaml` for an error found after a cached load, read when first asked
    (the file is the one the cache was checked with: its bytes are in the key)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._map: Any = None

    def locate(self, path: tuple[str | int, ...]) -> Any:
        from lakestack._yaml import MAX_PROJECT_BYTES, load_yaml
        from lakestack.config import PROJECT_FILE
        from lakestack.errors import ConfigError, Location

        if self._map is None:
            try:
                _, self._map = load_yaml(
                    self._root / PROJECT_FILE, error=ConfigError, display=PROJECT_FILE, max_bytes=MAX_PROJECT_BYTES
                )
            except (OSError, ConfigError):
                return Location(PROJECT_FILE, key=".".join(map(str, path)))
        return self._map.locate(path)


def _may_hold_secret(annotation: Any) -> bool:
    """Whether a field's type admits a `SecretRef` anywhere (`str | SecretRef`, `dict[str, str | SecretRef]`)."""
    from lakestack.config import SecretRef

    if annotation is SecretRef:
        return True
    origin = typing.get_origin(annotation)
    if origin is None and not isinstance(annotation, types.UnionType):
        return False
    return any(_may_hold_secret(a) for a in typing.get_args(annotation))
