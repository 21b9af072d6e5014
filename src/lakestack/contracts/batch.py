"""YAML batch-file contracts (`contracts/<source>.v<N>.yaml`) → :class:`Contract`."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from lakestack._yaml import load_yaml, pydantic_problem
from lakestack.contracts.model import (
    MAX_ENUM,
    PII_CLASSES,
    Constraints,
    Contract,
    CsvOptions,
    Field,
    FileSpec,
    parse_type,
)
from lakestack.errors import ContractError, Location


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CsvFile(_Frozen):
    delimiter: str = ","
    quote: str = '"'
    header: bool = True
    encoding: str = "utf-8"

    @field_validator("delimiter", "quote")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError("must be exactly one character")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding '{value}'") from None
        return value


class FileSection(_Frozen):
    pattern: str
    format: Literal["csv", "ndjson", "parquet"]
    csv: CsvFile = CsvFile()


class ColumnSpec(_Frozen):
    name: str
    type: str
    nullable: bool = True
    description: str | None = None
    pii: str | None = None
    enum: list[Any] | None = None
    min: Decimal | None = None
    max: Decimal | None = None
    regex: str | None = None
    min_length: int | None = None
    max_length: int | None = None

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        parse_type(value)
        return value

    @field_validator("enum")
    @classmethod
    def _enum(cls, value: list[Any] | None) -> list[Any] | None:
        if value is not None and len(value) > MAX_ENUM:
            raise ValueError(
                f"an enum of {len(value):,} values; at most {MAX_ENUM:,} (check a longer list against a "
                "table with a referential_integrity check)"
            )
        return value

    @field_validator("pii")
    @classmethod
    def _pii(cls, value: str | None) -> str | None:
        if value is not None and value not in PII_CLASSES:
            raise ValueError(f"unknown PII class '{value}' (expected one of: {', '.join(PII_CLASSES)})")
        return value

    @field_validator("regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        from lakestack.contracts.regex import problem

        why = problem(value) if value is not None else None
        if why is not None:
            raise ValueError(why)
        return value


class BatchContractFile(_Frozen):
    source: str
    version: int
    description: str | None = None
    owner: str | None = None
    compatibility: Literal["backward", "forward", "full", "none"] = "backward"
    key: list[str] = []
    event_time: str | None = None
    strict: bool = True
    file: FileSection
    columns: list[ColumnSpec]


def _field(col: ColumnSpec) -> Field:
    kind, precision, scale = parse_type(col.type)
    constraints = Constraints(
        enum=tuple(col.enum) if col.enum is not None else None,
        minimum=col.min,
        maximum=col.max,
        pattern=col.regex,
        min_length=col.min_length,
        max_length=col.max_length,
    )
    return Field(
        name=col.name,
        type=kind,
        required=not col.nullable,
        nullable=col.nullable,
        constraints=constraints,
        precision=precision,
        scale=scale,
        pii=col.pii,
        description=col.description,
    )


def load_batch_contract(path: Path, source: str, version: int, display: str) -> Contract:
    """Read a `contracts/<source>.v<N>.yaml` file; every problem names its line."""
    data, smap = load_yaml(path, error=ContractError, display=display)
    if not isinstance(data, dict):
        raise ContractError("a batch contract is a mapping (source, version, file, columns)", Location(display, 1))
    try:
        spec = BatchContractFile.model_validate(data)
    except ValidationError as exc:
        message, location = pydantic_problem(exc, smap, BatchContractFile)
        raise ContractError(message, location) from None
    if (spec.source, spec.version) != (source, version):
        raise ContractError(
            f"the file name says {source}.v{version} but the file says {spec.source}.v{spec.version}",
            smap.locate(("source",)),
        )
    seen: dict[str, int] = {}
    for i, col in enumerate(spec.columns):
        if col.name in seen:
            raise ContractError(
                f"column '{col.name}' is declared twice (first at columns[{seen[col.name]}])",
                smap.locate(("columns", i, "name")),
            )
        seen[col.name] = i
    fields = tuple(_field(c) for c in spec.columns)
    csv = spec.file.csv
    return Contract(
        source=source,
        version=version,
        kind="batch",
        fields=fields,
        key=tuple(spec.key),
        event_time=spec.event_time,
        compatibility=spec.compatibility,
        strict=spec.strict,
        file=FileSpec(
            spec.file.pattern, spec.file.format, CsvOptions(csv.delimiter, csv.quote, csv.header, csv.encoding)
        ),
        description=spec.description,
        owner=spec.owner,
        path=display,
    )
