"""A loaded project: its file, contracts and models, checked against each other up front."""

from __future__ import annotations

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
        """Load and check everything in the project folder; raise ProjectError naming file and line."""
        root = Path(root).resolve()
        config = load_project_config(root)
        contracts = ContractRegistry.load(root / "contracts", root)
        for name, source in config.sources.items():
            _check_source(config, name, source, contracts)
        models = _models(root)
        for name, path in models.items():
            if name in config.sources:
                raise ProjectError(
                    f"model '{name}' has the name of a source; give each a name of its own",
                    Location(str(path.relative_to(root))),
                )
        return cls(root, config, contracts, models)

    @property
    def name(self) -> str:
        return self.config.name

    def contract(self, source: str) -> Contract:
        return self.contracts.get(self.config.sources[source].contract)

    def landing(self, source: str) -> Path:
        configured = self.config.sources[source].landing
        return self.root / (configured or f"landing/{source}")


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
