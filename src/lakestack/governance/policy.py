"""Roles, grants, row filters and masking: `policies.yaml`, or the built-in defaults without one.

A role reads a dataset only if one of its grants names it (`silver.orders`, `silver.*`, `*`):
deny by default. A grant may narrow the columns (`columns`, `exclude_columns`). A column with a
PII class (from the contract, carried to Silver and Gold by column lineage: table property
`lakestack.pii.<column>`) is masked unless the role reads that class in clear (`unmasked`); how
is `masking[class]`, else `masking["*"]`, else `redact`. Bronze and quarantine `_raw` (the record
as received) counts as class `raw`. A row filter is a SQL predicate over the table's columns and
the caller's attributes (`region = :user.region`), bound as parameters, never pasted::

    hash_key: {secret: LAKESTACK_MASKING_KEY}   # HMAC key of `hash`, by secret name
    default_role: engineer                      # the role of a caller who names none
    roles:
      analyst:
        grants: [{datasets: [silver.*, gold.*]}]
        masking: {email: hash, phone: partial, "*": redact}   # also: null, tokenize
      privacy:
        detokenize: [email]                     # may turn email tokens back (pipeline/vault.py)
      emea_sales:
        grants: [{datasets: [gold.fact_sales], exclude_columns: [unit_price]}]
        row_filters: {gold.fact_sales: "ship_country = :user.region"}

Without the file, the roles are the seeds' defaults (:data:`DEFAULT_ROLES`): `engineer` reads
everything in clear (what every command did before roles existed), `analyst` Silver and Gold with
PII masked, `business` Gold with PII redacted. The file's roles replace a default of the same name
and add custom ones; a caller who names no role is `default_role` (`engineer`).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lakestack._yaml import SourceMap, load_yaml, pydantic_problem
from lakestack.config import SecretRef, reveal
from lakestack.errors import Location, ProjectError, UsageError
from lakestack.governance.masking import BUILT, METHODS, MaskMethod

FILE = "policies.yaml"
RAW_CLASS = "raw"  # `_raw` of Bronze and quarantine: the record as received, whatever it holds
_NAME = r"^[a-z][a-z0-9_]*$"


class _Frozen(BaseModel):
    # validators built when a policies.yaml is first read: a read without one builds none (with
    # pydantic's first validator it loads its plugins' entry points, ~0.03 s of a small query)
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Grant(_Frozen):
    """Datasets a role may read (`layer.name`, `layer.*`, `*`), optionally some columns only."""

    datasets: list[str] = Field(min_length=1)
    columns: list[str] | None = None  # None: every column
    exclude_columns: list[str] = []


class RoleSpec(_Frozen):
    description: str | None = None
    grants: list[Grant] = []
    unmasked: list[str] = []  # PII classes read in clear; "*" for every class
    masking: dict[str, MaskMethod] = {}  # PII class (or "*") → method
    detokenize: list[str] = []  # PII classes (or "*") whose tokens this role may turn back into values
    row_filters: dict[str, str] = {}  # dataset → predicate over its columns and :user.<attr>

    @field_validator("masking")
    @classmethod
    def _built(cls, value: dict[str, str]) -> dict[str, str]:
        for pii, method in value.items():
            if method not in BUILT:
                raise ValueError(
                    f"masking method '{method}' for '{pii}' is not available yet (use one of: {', '.join(BUILT)})"
                )
        return value


class PoliciesFile(_Frozen):
    hash_key: SecretRef | None = None
    default_role: Annotated[str, Field(pattern=_NAME)] = "engineer"
    roles: dict[Annotated[str, Field(pattern=_NAME)], RoleSpec] = {}


# Constants, so built without validating (tests/unit/test_policy_defaults.py validates them).
DEFAULT_ROLES: dict[str, RoleSpec] = {
    "engineer": RoleSpec.model_construct(
        description="Every layer, PII in clear", grants=[Grant.model_construct(datasets=["*"])], unmasked=["*"]
    ),
    "analyst": RoleSpec.model_construct(
        description="Silver and Gold, PII masked",
        grants=[Grant.model_construct(datasets=["silver.*", "gold.*"])],
        masking={"email": "partial", "phone": "partial", "card": "partial", "*": "redact"},
    ),
    "business": RoleSpec.model_construct(
        description="Gold, PII redacted", grants=[Grant.model_construct(datasets=["gold.*"])], masking={"*": "redact"}
    ),
}


@dataclass(frozen=True, slots=True)
class ColumnAccess:
    """How one role sees one column: `clear`, `masked` (by `method`) or `denied` (absent)."""

    name: str
    pii: str | None
    mode: str
    method: str | None = None

    def describe(self) -> str:
        return f"masked ({self.method})" if self.mode == "masked" else self.mode


@dataclass(frozen=True, slots=True)
class TableAccess:
    """What a role reads of one table: its columns (clear, masked, denied) and a row filter."""

    dataset: str
    columns: tuple[ColumnAccess, ...]
    row_filter: Any = None  # a sqlglot expression with `$user_<attr>` placeholders
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def in_clear(self) -> bool:
        """Every column in clear and no row filter: the table can be read as it is."""
        return self.row_filter is None and all(c.mode == "clear" for c in self.columns)

    def visible(self) -> list[ColumnAccess]:
        return [c for c in self.columns if c.mode != "denied"]

    def select(
        self, source: Any, key: bytes | None, only: set[str] | None = None, per_distinct: set[str] | None = None
    ) -> Any:
        """`SELECT <masked columns> FROM source WHERE <row filter>` as a sqlglot expression (run with
        :attr:`params`); `only` keeps just the columns a query can name (lower-cased), when known.
        A hashed (or tokenized) column in `per_distinct` (None: all) is hashed once per distinct
        value (`masking.masked_select`)."""
        from lakestack.governance.masking import masked_select

        columns = [(c.name, None if c.mode == "clear" else str(c.method), c.pii or "") for c in self._chosen(only)]
        return masked_select(columns, source, key, self.row_filter, per_distinct)

    def hashed(self, only: set[str] | None = None) -> list[str]:
        """The visible columns `select` would hash (`hash`, `tokenize`)."""
        return [c.name for c in self._chosen(only) if c.mode == "masked" and c.method in ("hash", "tokenize")]

    def _chosen(self, only: set[str] | None) -> list[ColumnAccess]:
        return [c for c in self.visible() if only is None or c.name.lower() in only]


@dataclass(frozen=True, slots=True)
class Policy:
    """The project's roles (`policies.yaml` over the defaults) and the masking key's secret."""

    roles: dict[str, RoleSpec]
    default_role: str = "engineer"
    hash_key: SecretRef | None = None
    source: str | None = None  # the file, or None for the built-in defaults
    smap: SourceMap | None = None
    defined: tuple[str, ...] = ()  # the roles the file defines (the others are defaults)

    def role(self, name: str | None) -> str:
        """`name` (or the default role) if it exists; else a usage error listing the roles."""
        chosen = name or self.default_role
        if chosen not in self.roles:
            raise UsageError(f"unknown role '{chosen}' (roles: {', '.join(sorted(self.roles))})")
        return chosen

    def may_read(self, role: str, dataset: str) -> bool:
        return bool(self._grants(role, dataset))

    def access(
        self, role: str, dataset: str, pii: dict[str, str], columns: list[str], user: dict[str, str] | None = None
    ) -> TableAccess | None:
        """How `role` reads `dataset` (its `columns`, of which `pii` are classified); None when denied."""
        grants = self._grants(role, dataset)
        if not grants:
            return None
        spec = self.roles[role]
        out = []
        for column in columns:
            cls = pii.get(column) or (
                RAW_CLASS if column == "_raw" and dataset.split(".")[0] in ("bronze", "quarantine") else None
            )
            if not any(_grants_column(g, column) for g in grants):
                out.append(ColumnAccess(column, cls, "denied"))
            elif cls is None or "*" in spec.unmasked or cls in spec.unmasked:
                out.append(ColumnAccess(column, cls, "clear"))
            else:
                out.append(
                    ColumnAccess(column, cls, "masked", spec.masking.get(cls) or spec.masking.get("*") or "redact")
                )
        predicate = spec.row_filters.get(dataset)
        if predicate is None:
            return TableAccess(dataset, tuple(out))
        where, names = parse_row_filter(predicate)
        values = user or {}
        missing = [n for n in names if n not in values]
        if missing:
            raise UsageError(
                f"role '{role}' reads {dataset} through a row filter on the user attribute(s) "
                f"{', '.join(missing)}: pass --user-attr {missing[0]}=VALUE"
            )
        return TableAccess(dataset, tuple(out), where, {f"user_{n}": values[n] for n in names})

    def key(self) -> bytes | None:
        """The masking key (from its secret), or None when no `hash_key` is configured."""
        value = reveal(self.hash_key) if self.hash_key is not None else None
        return value.encode() if value else None

    def uses_hash(self) -> bool:
        """Whether some role masks by `hash` or `tokenize` (both need the key)."""
        return any({"hash", "tokenize"} & set(spec.masking.values()) for spec in self.roles.values())

    def tokenized_classes(self) -> set[str]:
        """PII classes some role tokenizes (`*` when a role tokenizes every class)."""
        return {cls for spec in self.roles.values() for cls, method in spec.masking.items() if method == "tokenize"}

    def may_detokenize(self, role: str, pii: str) -> bool:
        allowed = self.roles[role].detokenize
        return "*" in allowed or pii in allowed

    def _grants(self, role: str, dataset: str) -> list[Grant]:
        return [g for g in self.roles[role].grants if any(fnmatch.fnmatchcase(dataset, p) for p in g.datasets)]

    def locate(self, *path: str | int) -> Location | None:
        return self.smap.locate(tuple(path)) if self.smap is not None else None


def _grants_column(grant: Grant, column: str) -> bool:
    if column in grant.exclude_columns:
        return False
    return grant.columns is None or column in grant.columns


def load_policies(project: Any) -> Policy:
    """The policy of a project (anything with a `root` folder, or the folder): `policies.yaml`
    over the default roles, or the defaults alone. Errors carry the file, line and key (exit 2)."""
    root = project if isinstance(project, str | Path) else Path(project.root)
    root = Path(root)
    path = root / FILE
    if not path.exists():
        return Policy(dict(DEFAULT_ROLES))
    data, smap = load_yaml(path, display=FILE)
    try:
        parsed = PoliciesFile.model_validate(data or {})
    except ValidationError as exc:
        message, location = pydantic_problem(exc, smap, PoliciesFile)
        raise ProjectError(message, location) from None
    roles = {**DEFAULT_ROLES, **parsed.roles}
    if parsed.default_role not in roles:
        raise ProjectError(
            f"default_role '{parsed.default_role}' is not a role (roles: {', '.join(sorted(roles))})",
            smap.locate(("default_role",)),
        )
    policy = Policy(roles, parsed.default_role, parsed.hash_key, FILE, smap, tuple(parsed.roles))
    for name, spec in parsed.roles.items():
        for dataset, predicate in spec.row_filters.items():
            try:
                parse_row_filter(predicate)
            except ProjectError as exc:
                raise ProjectError(exc.message, smap.locate(("roles", name, "row_filters", dataset))) from None
    if policy.uses_hash() and parsed.hash_key is None:
        raise ProjectError(
            "a role masks by 'hash' or 'tokenize' but no hash_key: {secret: NAME} is set", smap.locate(("roles",))
        )
    return policy


# What a row filter may hold: columns, literals, :user.<attr>, comparisons and boolean logic.
_ALLOWED = (
    "Column", "Identifier", "Literal", "Boolean", "Null", "Placeholder", "Paren", "Tuple",
    "And", "Or", "Not", "EQ", "NEQ", "GT", "GTE", "LT", "LTE", "Is", "In", "Like", "ILike", "Between",
    "Lower", "Upper", "Coalesce", "Cast", "DataType", "Neg",
)  # fmt: skip


def parse_row_filter(predicate: str) -> tuple[Any, list[str]]:
    """A row filter as a sqlglot expression whose `:user.<attr>` became the parameter `$user_<attr>`,
    and the attributes it needs. Anything but columns, literals, comparisons, boolean logic and a
    few scalar functions is refused (a filter runs before the sandbox is locked)."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(predicate, read="duckdb")
    except Exception as exc:
        raise ProjectError(f"row filter does not parse: {str(exc).splitlines()[0]}") from None
    names: list[str] = []

    def bind(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Dot) and isinstance(node.this, exp.Placeholder) and node.this.name == "user":
            attr = node.expression.name
            names.append(attr)
            return exp.Placeholder(this=f"user_{attr}")
        return node

    tree = tree.transform(bind)
    for node in tree.walk():
        if type(node).__name__ not in _ALLOWED:
            raise ProjectError(
                f"row filter may not use {node.sql('duckdb')[:60]!r}: only columns, literals, "
                ":user.<attribute>, comparisons and AND/OR/NOT"
            )
        if isinstance(node, exp.Placeholder) and not str(node.name).startswith("user_"):
            raise ProjectError(f"row filter parameter '{node.sql('duckdb')}' is not :user.<attribute>")
    return tree, sorted(set(names))


__all__ = [
    "FILE",
    "METHODS",
    "ColumnAccess",
    "Grant",
    "Policy",
    "RoleSpec",
    "TableAccess",
    "load_policies",
    "parse_row_filter",
]
