"""Schema evolution: an existing table's contract columns brought to a newer contract version.

What Iceberg can do in place, by field id, is done in one metadata commit: add a column (optional,
so the rows already written read it as null), rename one (`renamed_from`), widen a type (int → long,
float → double, a decimal's precision) and make a required column optional. A narrower type in the
contract keeps the table's wider one (new values fit it). Anything else (another type, a decimal's
scale) is refused before anything is written, with every problem listed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import count
from typing import Any

import pyarrow as pa
from pyiceberg.schema import Schema
from pyiceberg.types import (
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StructType,
)

from lakestack.contracts.model import Contract, Field
from lakestack.errors import CommitConflictError, ContractError, Location, StorageError
from lakestack.failpoints import failpoint
from lakestack.storage.schema import _iceberg_type

log = logging.getLogger(__name__)

CONTRACT = "lakestack.contract"  # the table property naming the contract version its schema follows


@dataclass(frozen=True, slots=True)
class SchemaStep:
    """One change to a table's schema. `path` names the column as the table has it now."""

    action: str  # add | rename | widen | optional
    path: tuple[str, ...]
    column: str  # the column's name after the change, dotted for nested fields
    detail: str
    field_type: IcebergType | None = None
    doc: str | None = None


def table_contract_version(table: Any) -> int | None:
    """The contract version a table's schema follows (its `lakestack.contract` property), if any."""
    ref = table.metadata.properties.get(CONTRACT, "")
    _, _, version = ref.rpartition(".v")
    return int(version) if version.isdigit() else None


def plan_evolution(current: Schema, contract: Contract) -> list[SchemaStep]:
    """The steps that bring `current`'s contract columns (those not starting with `_`) to `contract`.

    Raises ContractError listing every change Iceberg cannot make in place.
    """
    steps: list[SchemaStep] = []
    problems: list[str] = []
    existing = [f for f in current.as_struct().fields if not f.name.startswith("_")]
    _plan_fields(existing, contract.fields, (), "", steps, problems)
    nested = [f.name for f in current.as_struct().fields if not f.field_type.is_primitive]
    if nested and any(s.action == "rename" for s in steps):  # DuckDB maps top-level field ids only
        problems.append(f"renaming a column of a table with nested columns ({', '.join(nested)}) is not supported")
    if problems:
        raise ContractError(
            f"{contract.ref} cannot evolve the table in place: {'; '.join(problems)}", Location(contract.path)
        )
    return steps


def _plan_fields(
    existing: list[NestedField],
    fields: tuple[Field, ...],
    parent: tuple[str, ...],
    prefix: str,
    steps: list[SchemaStep],
    problems: list[str],
) -> None:
    by_name = {c.name: c for c in existing}
    names = {f.name for f in fields}
    kept: set[str] = set()
    for f in fields:
        column = by_name.get(f.name)
        if column is None and f.renamed_from in by_name and f.renamed_from not in names:
            column = by_name[f.renamed_from]
            steps.append(SchemaStep("rename", (*parent, column.name), prefix + f.name, f"from {column.name}"))
        if column is None:
            typ = _iceberg_type(f, count(1))
            steps.append(SchemaStep("add", (*parent, f.name), prefix + f.name, str(typ), typ, f.description))
            continue
        kept.add(column.name)
        _plan_column(column, f, (*parent, column.name), prefix + f.name, steps, problems)
        if column.required and not (f.required and not f.nullable):
            steps.append(SchemaStep("optional", (*parent, column.name), prefix + f.name, "now optional"))
    for column in existing:
        if column.name not in kept and column.required:  # no longer in the contract: new rows lack it
            steps.append(
                SchemaStep("optional", (*parent, column.name), prefix + column.name, "no longer in the contract")
            )


def _plan_column(
    column: NestedField, f: Field, path: tuple[str, ...], name: str, steps: list[SchemaStep], problems: list[str]
) -> None:
    have, want = column.field_type, _iceberg_type(f, count(1))
    if isinstance(have, StructType) and isinstance(want, StructType):
        _plan_fields(list(have.fields), f.fields, path, f"{name}.", steps, problems)
    elif isinstance(have, ListType) and isinstance(want, ListType) and f.items is not None:
        element = have.element_field
        if isinstance(element.field_type, StructType) and f.items.type == "struct":
            _plan_fields(
                list(element.field_type.fields), f.items.fields, (*path, "element"), f"{name}[].", steps, problems
            )
        elif element.field_type != want.element_type:
            _plan_primitive(element.field_type, want.element_type, (*path, "element"), f"{name}[]", steps, problems)
    elif have.is_primitive and want.is_primitive:
        _plan_primitive(have, want, path, name, steps, problems)
    elif have != want:
        problems.append(f"'{name}' is {have} in the table and {want} in the contract")


def _plan_primitive(
    have: IcebergType, want: IcebergType, path: tuple[str, ...], name: str, steps: list[SchemaStep], problems: list[str]
) -> None:
    if have == want or promotable(want, have):  # the same, or narrower: the table's type holds it
        return
    if promotable(have, want):
        steps.append(SchemaStep("widen", path, name, f"{have} → {want}", want))
        return
    problems.append(f"'{name}' is {have} in the table and {want} in the contract (not an Iceberg type promotion)")


def promotable(have: IcebergType, want: IcebergType) -> bool:
    """Whether Iceberg reads a column of type `have` as `want` (its allowed type promotions)."""
    if have == want:
        return True
    if isinstance(have, IntegerType) and isinstance(want, LongType):
        return True
    if isinstance(have, FloatType) and isinstance(want, DoubleType):
        return True
    return (
        isinstance(have, DecimalType)
        and isinstance(want, DecimalType)
        and have.scale == want.scale
        and want.precision > have.precision
    )


def evolve(table: Any, contract: Contract, before: str | None) -> tuple[Any, list[SchemaStep]]:
    """Bring `table` to `contract` in one commit (schema changes and its `lakestack.contract`
    property); new top-level columns go before the metadata column `before`. A table already on this
    version or a newer one is returned untouched."""
    from pyiceberg.exceptions import CommitFailedException

    held = table_contract_version(table)
    if held is not None and held >= contract.version:
        return table, []
    steps = plan_evolution(table.schema(), contract)
    pii = {f"lakestack.pii.{k}": v for k, v in contract.pii_columns().items()}
    # a renamed column's class moves to its new name; a dropped column keeps its (its data stays)
    stale = [f"lakestack.pii.{s.path[0]}" for s in steps if s.action == "rename" and len(s.path) == 1]
    stale = [key for key in stale if key in table.metadata.properties]
    failpoint("schema.before_evolve")
    from lakestack.storage import delta

    if delta.is_delta(table):  # types widened by a rewrite, columns added by delta-rs, then the properties
        from lakestack.storage import delta_evolution

        delta_evolution.refuse_unsupported(table, steps)
        try:
            table = delta_evolution.widen(table, steps, batch_id=f"evolve:{contract.ref}")
            table = delta.evolve(table, [s for s in steps if s.action != "widen"], {CONTRACT: contract.ref, **pii})
        except CommitConflictError:
            table = table.refresh()
            if (table_contract_version(table) or 0) < contract.version:
                raise StorageError(f"{table.identifier}: the schema changed while evolving it; retry") from None
            return table, []
        failpoint("schema.after_evolve")
        return table, steps
    try:
        with table.transaction() as tx:
            if steps:
                with tx.update_schema() as update:
                    _apply(update, steps, before)
            tx.set_properties({CONTRACT: contract.ref, **pii})
            if stale:
                tx.remove_properties(*stale)
    except CommitFailedException:
        table = table.refresh()  # a rival evolved it first: fine if it is now on this version
        if (table_contract_version(table) or 0) < contract.version:
            raise StorageError(f"{'.'.join(table.name())}: the schema changed while evolving it; retry") from None
        return table, []
    failpoint("schema.after_evolve")
    log.info("%s evolved to %s: %s", ".".join(table.name()), contract.ref, [f"{s.action} {s.column}" for s in steps])
    return table.refresh(), steps


def _apply(update: Any, steps: list[SchemaStep], before: str | None) -> None:
    for step in steps:
        if step.action == "add":
            assert step.field_type is not None
            update.add_column(step.path, step.field_type, doc=step.doc, required=False)
            if before is not None and len(step.path) == 1:
                update.move_before(step.path, before)
        elif step.action == "rename":
            update.rename_column(step.path, step.column.rsplit(".", 1)[-1])
        elif step.action == "widen":
            update.update_column(step.path, field_type=step.field_type)
        else:
            update.make_column_optional(step.path)


def conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """`data` with the columns of `schema`, in its order and types; a column the data lacks (one a
    newer contract version dropped, or an older writer never had) is all null."""
    if data.schema.names == schema.names:
        return data.cast(schema)
    unknown = [n for n in data.schema.names if schema.get_field_index(n) < 0]
    if unknown:
        raise StorageError(f"columns not in the table: {', '.join(unknown)}")
    columns = [data[f.name] if f.name in data.schema.names else pa.nulls(len(data), f.type) for f in schema]
    return pa.Table.from_arrays(columns, names=schema.names).cast(schema)
