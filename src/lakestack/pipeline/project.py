"""A loaded project: its file, contracts and models, checked against each other up front."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lakestack.config import ProjectConfig, SourceConfig, load_project_config, locate
from lakestack.contracts import Contract, ContractRegistry
from lakestack.errors import ConfigError, Location, ProjectError


@dataclass(frozen=True, slots=True)
class Project:
    root: Path
    config: ProjectConfig
    contracts: ContractRegistry
    models: dict[str, Path]

    @classmethod
    def load(cls, root: Path | str = ".") -> Project:
        """Load and check everything in the project folder; raise ProjectError naming file and line.

        A project checked before with the very same files comes from `.lakestack/cache/project.json`
        (pipeline/project_cache.py, ADR 43): not validated again, its contracts loaded when asked."""
        from lakestack.pipeline import project_cache

        root = Path(root).resolve()
        key = project_cache.key(root)
        cached = project_cache.load(root, key) if key is not None else None
        if cached is not None:
            cached._smap = project_cache.SourceMapOnDemand(root)  # lines for errors found later
            return cls(root, cached, _ContractsWhenAsked(root), _models(root))
        config = load_project_config(root)
        contracts = _contracts(root)
        for name, source in config.sources.items():
            _check_source(config, name, source, contracts)
        for name, dataset in config.datasets.items():
            if dataset.layer == "silver":
                _check_silver(config, name, contracts)
        if key is not None and project_cache.key(root) == key:  # the files did not change meanwhile
            project_cache.store(root, key, config)
        return cls(root, config, contracts, _models(root))

    @property
    def name(self) -> str:
        return self.config.name

    def contract(self, source: str) -> Contract:
        return self.contracts.get(self.config.sources[source].contract)

    def landing(self, source: str) -> Path:
        configured = self.config.sources[source].landing
        return self.root / (configured or f"landing/{source}")


def _contracts(root: Path) -> ContractRegistry:
    with _regex_verdicts(root):
        return ContractRegistry.load(root / "contracts", root)


class _ContractsWhenAsked(ContractRegistry):
    """The contracts of a project served from the cache, loaded at their first use: the cache's key
    covers the contract files, and they were checked with the project (a query never needs them)."""

    def __init__(self, root: Path) -> None:  # no super().__init__: `_contracts` is loaded when read
        self._root = root
        self._loaded: dict[str, dict[int, Contract]] | None = None

    @property
    def _contracts(self) -> dict[str, dict[int, Contract]]:
        if self._loaded is None:
            self._loaded = _contracts(self._root)._contracts
        return self._loaded

    @_contracts.setter
    def _contracts(self, value: dict[str, dict[int, Contract]]) -> None:
        self._loaded = value


@contextmanager
def _regex_verdicts(root: Path) -> Iterator[None]:
    """Contract regexes known to compile on RE2 are kept in `.lakestack/cache/re2.json`, keyed by the
    pyarrow installed (whose RE2 checked them): a project loads without importing pyarrow.compute.
    A cache that cannot be read or written is only slower."""
    import importlib.util
    import json
    import os

    from lakestack.contracts import regex

    path = root / ".lakestack" / "cache" / "re2.json"
    spec = importlib.util.find_spec("pyarrow")
    try:
        origin = spec.origin if spec is not None and spec.origin else ""
        key = f"{origin}:{os.stat(origin).st_mtime_ns}" if origin else ""
    except OSError:
        key = ""
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if key and cached.get("pyarrow") == key:
            regex.trust(cached.get("valid", []))
    except (OSError, ValueError, AttributeError):
        pass  # no cache yet, or not ours
    before = regex.known_valid()
    yield
    after = regex.known_valid()
    if key and after != before and path.parent.parent.is_dir():  # only in a project that has .lakestack
        try:
            path.parent.mkdir(exist_ok=True)
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps({"pyarrow": key, "valid": sorted(after)}), encoding="utf-8")
            os.replace(temporary, path)
        except OSError:
            pass


def _check_source(config: ProjectConfig, name: str, source: SourceConfig, contracts: ContractRegistry) -> None:
    if not contracts.has(source.contract):
        base = source.contract.split(".v")[0]
        versions = contracts.versions(base)
        hint = (
            f"available versions: {', '.join(f'v{v}' for v in versions)}"
            if versions
            else f"expected contracts/{base}.v1.json (events) or contracts/{base}.v1.yaml (batch files)"
        )
        raise ConfigError(
            f"source '{name}' names contract '{source.contract}', which does not exist ({hint})",
            locate(config, "sources", name, "contract"),
        )
    contract = contracts.get(source.contract)
    if source.kind == "files" and contract.file is None and source.pattern is None:
        raise ConfigError(
            f"source '{name}' reads files, but contract {contract.ref} says nothing about files "
            "(add x-lakestack-file to the contract or a pattern to the source)",
            locate(config, "sources", name),
        )


def _check_silver(config: ProjectConfig, name: str, contracts: ContractRegistry) -> None:
    dataset = config.datasets[name]
    source = dataset.source or name
    if source not in config.sources:
        raise ConfigError(
            f"silver dataset '{name}' reads source '{source}', which is not declared under sources",
            locate(config, "datasets", name, "source" if dataset.source else "layer"),
        )
    contract = contracts.get(config.sources[source].contract)
    columns = set(contract.column_names) | {"_ingested_at", "_source_file", "_source_line"}
    for key in ("key", "order_by", "partition_by"):
        value = getattr(dataset, key)
        if key == "partition_by" and value == "none":
            continue
        for column in [value] if isinstance(value, str) else value or []:
            if column not in columns:
                raise ConfigError(
                    f"{key} names '{column}', which is not a column of contract {contract.ref}",
                    locate(config, "datasets", name, key),
                )
    lookup = dataset.lookup
    for column in lookup.keys if lookup is not None else []:
        if lookup is not None and column not in columns:
            raise ConfigError(
                f"lookup '{lookup.name}' is keyed by '{column}', which is not a column of contract {contract.ref}",
                locate(config, "datasets", name, "lookup", "keys"),
            )
    if not (dataset.key or contract.key):
        raise ConfigError(
            f"silver dataset '{name}' needs a key (set key here or x-lakestack-key / key in contract {contract.ref})",
            locate(config, "datasets", name),
        )
    partition = dataset.partition_by or contract.event_time
    if partition == "none":
        return
    if partition is None or contract.field(partition).type not in ("timestamp", "date"):
        raise ConfigError(
            f"silver dataset '{name}' is partitioned by day of a timestamp or date column: set "
            f"partition_by (or event_time in contract {contract.ref})",
            locate(config, "datasets", name),
        )


def _models(root: Path) -> dict[str, Path]:
    """Model files under models/, by dataset name; two files for one name are an error."""
    found: dict[str, Path] = {}
    folder = root / "models"
    if not folder.is_dir():
        return found
    for path in sorted(folder.rglob("*")):
        if path.suffix not in (".sql", ".yaml", ".yml") or path.name.startswith("."):
            continue
        if path.suffix != ".sql" and path.with_suffix(".sql").exists():
            continue  # a sidecar of a SQL model
        name = path.stem
        if name in found:
            raise ProjectError(
                f"two models are named '{name}' (also {found[name].relative_to(root)}); dataset names must be unique",
                Location(str(path.relative_to(root))),
            )
        found[name] = path
    return found
