"""Finds the contracts of a project: `contracts/<source>.v<N>.json|yaml`, newest version by default."""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

from lakestack.contracts.model import Contract
from lakestack.contracts.patterns import FilePattern
from lakestack.errors import ContractError, Location

_FILE_NAME = re.compile(r"^(?P<source>[a-z][a-z0-9_]*)\.v(?P<version>[0-9]+)\.(?P<ext>json|yaml|yml)$")


class ContractRegistry:
    """All contract versions of a project, loaded and checked up front."""

    def __init__(self, contracts: dict[str, dict[int, Contract]]) -> None:
        self._contracts = contracts

    @classmethod
    def load(cls, folder: Path, root: Path | None = None) -> ContractRegistry:
        # the loaders (PyYAML, pydantic models) imported here: a project from the cache reads no contract
        from lakestack.contracts.batch import load_batch_contract
        from lakestack.contracts.jsonschema import load_event_contract

        found: dict[str, dict[int, Contract]] = {}
        if not folder.is_dir():
            return cls(found)
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            display = str(path.relative_to(root)) if root else str(path)
            m = _FILE_NAME.match(path.name)
            if m is None:
                raise ContractError(
                    "a contract file is named <source>.v<N>.json (events) or <source>.v<N>.yaml (batch files)",
                    Location(display),
                )
            source, version = m.group("source"), int(m.group("version"))
            if version in found.get(source, {}):
                raise ContractError(
                    f"{source}.v{version} is defined by two files ({found[source][version].path} too)",
                    Location(display),
                )
            loader = load_event_contract if m.group("ext") == "json" else load_batch_contract
            contract = loader(path, source, version, display)
            check_contract(contract)
            found.setdefault(source, {})[version] = contract
        for versions in found.values():
            _attach_previous(versions)
        return cls(found)

    def get(self, ref: str) -> Contract:
        """`'orders'` → the newest version; `'orders.v2'` → that version."""
        source, _, version = ref.partition(".v")
        versions = self._contracts.get(source)
        if not versions:
            raise KeyError(source)
        return versions[int(version)] if version else versions[max(versions)]

    def has(self, ref: str) -> bool:
        try:
            self.get(ref)
        except (KeyError, ValueError):
            return False
        return True

    def versions(self, source: str) -> list[int]:
        return sorted(self._contracts.get(source, {}))

    def sources(self) -> list[str]:
        """The sources that have at least one contract version, by name."""
        return sorted(self._contracts)

    def history(self, source: str) -> list[Contract]:
        """Every version of a source's contract, oldest first (empty for an unknown source)."""
        versions = self._contracts.get(source, {})
        return [versions[v] for v in sorted(versions)]

    def __iter__(self):  # type: ignore[no-untyped-def]
        for versions in self._contracts.values():
            yield from versions.values()


def _attach_previous(versions: dict[int, Contract]) -> None:
    """A version with a transition window (accept_previous_until) carries the version before it."""
    ordered = [versions[v] for v in sorted(versions)]
    for before, contract in pairwise(ordered):
        if contract.accept_previous_until is not None:
            object.__setattr__(contract, "previous", before)  # frozen: set once, while loading


def check_contract(contract: Contract) -> None:
    """Rules every contract keeps, whichever file format it came from."""
    where = Location(contract.path)
    names = contract.column_names
    for key in contract.key:
        if key not in names:
            raise ContractError(f"key column '{key}' is not a column of the contract", where)
    if contract.event_time is not None:
        if contract.event_time not in names:
            raise ContractError(f"event_time '{contract.event_time}' is not a column of the contract", where)
        if contract.field(contract.event_time).type not in ("timestamp", "date"):
            raise ContractError(f"event_time '{contract.event_time}' must be a timestamp or date column", where)
    for name in names:
        if name.startswith("_"):
            raise ContractError(f"column '{name}': names starting with '_' are reserved for lakestack", where)
    for f in contract.fields:
        if f.renamed_from is not None and f.renamed_from in names:
            raise ContractError(
                f"column '{f.name}' is renamed from '{f.renamed_from}', which is still a column of the contract", where
            )
    if contract.file is not None:
        try:
            FilePattern(contract.file.pattern)
        except ValueError as exc:
            raise ContractError(f"file pattern: {exc}", where) from None
