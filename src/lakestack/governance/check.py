"""`lakestack policies check`: a policy checked against the project's datasets, and its access matrix."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass

from lakestack.errors import Location
from lakestack.governance.policy import RAW_CLASS, Policy, parse_row_filter


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing in `policies.yaml` the project does not have (a dataset, a column, a PII class)."""

    message: str
    location: Location | None

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


@dataclass(frozen=True, slots=True)
class Dataset:
    """What the check knows of one dataset: its columns and their PII classes."""

    columns: tuple[str, ...]
    pii: Mapping[str, str]


def check_policy(policy: Policy, datasets: Mapping[str, Dataset], pii_classes: tuple[str, ...]) -> list[Problem]:
    """Every dataset, column and PII class `policy` names that the project does not have."""
    from sqlglot import exp

    problems: list[Problem] = []
    if policy.source is None:
        return problems
    classes = {*pii_classes, RAW_CLASS, "*"}
    layers = {d.split(".")[0] for d in datasets}
    for role, spec in policy.roles.items():
        if role not in policy.defined:
            continue  # a default role the file does not redefine
        for g, grant in enumerate(spec.grants):
            matched: list[str] = []
            for d, pattern in enumerate(grant.datasets):
                found = [name for name in datasets if fnmatch.fnmatchcase(name, pattern)]
                matched += found
                if not found and not (pattern.endswith(".*") and pattern[:-2] in layers | _LAYERS):
                    problems.append(
                        _at(policy, f"unknown dataset '{pattern}'", "roles", role, "grants", g, "datasets", d)
                    )
            known = {c for name in matched for c in datasets[name].columns}
            for key in ("columns", "exclude_columns"):
                for c, column in enumerate(getattr(grant, key) or []):
                    if known and column not in known:
                        problems.append(
                            _at(policy, f"unknown column '{column}' in {', '.join(sorted(set(matched)))}",
                                "roles", role, "grants", g, key, c)
                        )  # fmt: skip
        for key in ("unmasked", "masking"):
            for cls in getattr(spec, key):
                if cls not in classes:
                    problems.append(
                        _at(
                            policy,
                            f"unknown PII class '{cls}' (classes: {', '.join(sorted(classes))})",
                            "roles",
                            role,
                            key,
                        )
                    )
        for dataset, predicate in spec.row_filters.items():
            if dataset not in datasets:
                problems.append(_at(policy, f"unknown dataset '{dataset}'", "roles", role, "row_filters", dataset))
                continue
            tree, _ = parse_row_filter(predicate)
            for column in tree.find_all(exp.Column):
                if datasets[dataset].columns and column.name not in datasets[dataset].columns:
                    problems.append(
                        _at(
                            policy,
                            f"unknown column '{column.name}' in {dataset}",
                            "roles",
                            role,
                            "row_filters",
                            dataset,
                        )
                    )
    return problems


_LAYERS = {"bronze", "silver", "gold", "quarantine"}


def _at(policy: Policy, message: str, *path: str | int) -> Problem:
    return Problem(message, policy.locate(*path))


def access_matrix(policy: Policy, datasets: Mapping[str, Dataset]) -> list[dict[str, str]]:
    """One row per role, dataset and column: `clear`, `masked (<method>)` or `denied`; a dataset a
    role may not read is one row with column `*`. Row-filtered datasets say so."""
    rows: list[dict[str, str]] = []
    for role in sorted(policy.roles):
        spec = policy.roles[role]
        for name in sorted(datasets):
            data = datasets[name]
            if not policy.may_read(role, name):
                rows.append({"role": role, "dataset": name, "column": "*", "access": "denied"})
                continue
            attrs = {n: "" for n in parse_row_filter(spec.row_filters[name])[1]} if name in spec.row_filters else {}
            access = policy.access(role, name, dict(data.pii), list(data.columns), attrs)
            assert access is not None
            note = f" (rows: {spec.row_filters[name]})" if name in spec.row_filters else ""
            for column in access.columns:
                rows.append({"role": role, "dataset": name, "column": column.name, "access": column.describe() + note})
    return rows
