"""The contract versions a source accepts while it moves from one to the next.

Normally only the newest. When the newest says `accept_previous_until: <date>` and that day (UTC)
has not passed, records (and whole files whose columns are the previous version's) that the newest
refuses are validated against the version before it; those that pass land in Bronze as that version
(`_contract_version`), with the newest version's columns (contracts/arrow.py `as_version`). The
registry attaches that previous version to the newest (`Contract.previous`), so every source that
holds a contract (files, streams, the HTTP collector, worker processes) has it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from lakestack.contracts.model import Contract
from lakestack.contracts.validate import Outcome, RecordValidator


def accepted_previous(versions: list[Contract], today: date) -> Contract | None:
    """The version before the newest, while the newest's transition window is open (`versions` oldest first)."""
    if len(versions) < 2:
        return None
    until = versions[-1].accept_previous_until
    return versions[-2] if until is not None and today <= until else None


@dataclass(slots=True)
class Versions:
    """The newest contract and the previous one it may accept, with their validators."""

    newest: Contract
    previous: Contract | None = None  # default: the one the registry attached to `newest`
    max_record_bytes: int = 8 * 1024 * 1024
    _validators: dict[int, RecordValidator] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.previous is None:
            self.previous = self.newest.previous

    def validator(self, contract: Contract) -> RecordValidator:
        if contract.version not in self._validators:
            self._validators[contract.version] = RecordValidator(contract, max_record_bytes=self.max_record_bytes)
        return self._validators[contract.version]

    def accepting(self) -> Contract | None:
        """The previous version, if the newest's transition window is open today (UTC)."""
        until = self.newest.accept_previous_until
        if self.previous is None or until is None or datetime.now(UTC).date() > until:
            return None
        return self.previous

    def validate(self, kind: str, values: list[Any], contract: Contract) -> list[tuple[Contract, Outcome]]:
        """Each version with the records of `values` it accepted; the first holds every record still
        refused, with the issues the first version found. CSV rows (`kind` "text") all follow their
        file's header, so they are never split between versions."""
        outcome = validate(self.validator(contract), kind, values)
        previous = self.accepting() if contract is self.newest else None
        if previous is None or kind == "text" or not outcome.invalid:
            return [(contract, outcome)]
        retry = [i for i, _ in outcome.invalid]
        second = validate(self.validator(previous), kind, [values[i] for i in retry])
        still = {retry[j] for j, _ in second.invalid}
        refused = Outcome(outcome.valid, outcome.valid_positions, [(i, s) for i, s in outcome.invalid if i in still])
        taken = Outcome(second.valid, [retry[j] for j in second.valid_positions], [])
        return [(contract, refused), (previous, taken)]


def validate(validator: RecordValidator, kind: str, values: list[Any]) -> Outcome:
    """`values` of a chunk: CSV rows ("text"), JSON payloads ("json") or decoded objects."""
    if kind == "text":
        return validator.validate_rows(values)
    if kind == "json":
        return validator.validate_json(values)
    return validator.validate_objects(values)
