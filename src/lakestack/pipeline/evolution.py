"""Contract evolution at run time: a source's tables follow its newest compatible contract version.

Before a source ingests, its Bronze table's `lakestack.contract` property says which version the
table follows. A newer version is compared with it under the new version's compatibility mode
(contracts/compat.py); a breaking change refuses the ingest (exit 2, every breaking change listed)
before anything is written. A compatible one evolves the table's schema in one commit
(storage/evolution.py). Silver follows on its next promotion.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lakestack.contracts.compat import Comparison, compare
from lakestack.errors import ContractError, Location

if TYPE_CHECKING:
    from lakestack.contracts.model import Contract
    from lakestack.contracts.registry import ContractRegistry
    from lakestack.storage.evolution import SchemaStep

log = logging.getLogger(__name__)


def comparisons_since(registry: ContractRegistry, contract: Contract, held: int) -> list[Comparison]:
    """`contract` against the version a table holds (and, when its mode is transitive, every earlier
    version too). A version that no longer has a file is skipped: the table's schema still guards it."""
    versions = [v for v in registry.versions(contract.source) if v < contract.version]
    wanted = [v for v in versions if v <= held] if contract.compatibility.endswith("_transitive") else [held]
    return [compare(registry.get(f"{contract.source}.v{v}"), contract) for v in wanted if v in versions]


def refuse_incompatible(comparisons: list[Comparison], identifier: str) -> None:
    """Raise ContractError listing every breaking change, if any."""
    broken = [c for c in comparisons if not c.compatible]
    if not broken:
        return
    first = broken[0]
    changes = "; ".join(
        f"v{c.old.version}→v{c.new.version} {ch.path}: {ch.kind} ({ch.old or '-'} → {ch.new or '-'})"
        for c in broken
        for ch in c.breaking
    )
    raise ContractError(
        f"{first.new.ref} is not {first.mode}-compatible with what {identifier} holds, so nothing was "
        f"ingested: {changes} (see 'lakestack contracts check {first.new.source}')",
        Location(first.new.path),
    )


def refuse_drift(table: Any, contract: Contract, identifier: str) -> None:
    """A table on `contract`'s version whose schema does not match it: the contract file was edited
    in place. Refused with what differs (exit 2) instead of failing later in the engine. A column
    made nullable in place is let through (the table's stricter column still holds every row)."""
    from lakestack.storage.evolution import plan_evolution

    try:
        steps = [s for s in plan_evolution(table.schema(), contract) if s.action != "optional"]
    except ContractError as exc:
        problems = str(exc).partition("in place: ")[2] or str(exc)
    else:
        if not steps:
            return
        problems = "; ".join(f"{s.column}: {s.action} ({s.detail})" for s in steps)
    raise ContractError(
        f"{identifier} follows {contract.ref}, but {contract.ref} no longer matches it ({problems}): a contract "
        f"version in use is not edited in place; put the change in {contract.source}.v{contract.version + 1} "
        f"('lakestack contracts check {contract.source}' says whether it is compatible)",
        Location(contract.path),
    )


def evolve_bronze(registry: ContractRegistry, warehouse: Any, contracts: list[Contract]) -> dict[str, list[SchemaStep]]:
    """Check every source's Bronze table against the contract it is about to ingest with, then evolve
    those on an older version; one incompatible source refuses them all before any table changes."""
    from lakestack.storage.evolution import evolve, table_contract_version

    due: list[tuple[Any, Contract]] = []
    for contract in contracts:
        identifier = f"bronze.{contract.source}"
        if not warehouse.exists(identifier):
            continue
        table = warehouse.load(identifier)
        held = table_contract_version(table)
        if held is not None and held < contract.version:
            refuse_incompatible(comparisons_since(registry, contract, held), identifier)
            due.append((table, contract))
        elif held == contract.version:
            refuse_drift(table, contract, identifier)
    return {contract.source: evolve(table, contract, before="_raw")[1] for table, contract in due}


def evolve_silver(warehouse: Any, model: Any) -> list[SchemaStep]:
    """Evolve `silver.<name>` to its model's contract on promotion (Bronze was checked on ingest).

    Bronze must follow that version already: Silver reads its columns from Bronze's files. Rows
    merged straight from Arrow (`SilverPromotion.merge_arrow`, the benchmarks) need no Bronze."""
    from lakestack.storage.evolution import evolve, table_contract_version

    contract = model.contract
    source = f"bronze.{contract.source}"
    table = warehouse.load(source) if warehouse.exists(source) else None
    bronze = table_contract_version(table) if table is not None else None
    if bronze is not None and bronze == contract.version:
        refuse_drift(table, contract, source)
    if bronze is not None and bronze < contract.version:
        raise ContractError(
            f"bronze.{contract.source} still follows {contract.source}.v{bronze}: run 'lakestack ingest "
            f"{contract.source}' first, which checks {contract.ref} and evolves Bronze to it",
            Location(contract.path),
        )
    if not warehouse.exists(model.identifier):
        return []
    _, steps = evolve(warehouse.load(model.identifier), model.contract, before="_ingested_at")
    return steps


def previous_accepted(project: Any, source: str) -> Contract | None:
    """The version before the one `source` ingests with, while that one's transition window
    (`accept_previous_until`) is open today (UTC)."""
    from datetime import UTC, datetime

    from lakestack.ingest.versions import accepted_previous

    contract = project.contract(source)
    versions = [c for c in project.contracts.history(contract.source) if c.version <= contract.version]
    return accepted_previous(versions, datetime.now(UTC).date())
