"""YAML batch-file contracts (`contracts/<source>.v<N>.yaml`) → :class:`Contract`."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic import Field as PydanticField

from lakestack._yaml import load_yaml, pydantic_problem
from lakestack.contracts.model import (
    MAX_ENUM,
    PII_CLASSES,
    ColumnText,
    Constraints,
    Contract,
    CsvOptions,
    Field,
    FileSpec,
    parse_type,
)
from lakestack.errors import ContractError, Location


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)  # built at the first batch contract read


def _texts(value: Any) -> Any:
    """A list of spellings is text as written in the file; YAML reads some bare words as other
    things (NULL, ~ → no value; yes, no, true, off → booleans), so those must be quoted."""
    if not isinstance(value, list):
        return value
    out = []
    for item in value:
        if isinstance(item, bool) or item is None or isinstance(item, float):
            words = {None: "NULL, null or ~", True: "yes, on or true", False: "no, off or false"}
            shown = repr(item) if isinstance(item, float) else words[item]
            raise ValueError(
                f"YAML reads {shown} as {item!r}, not text: put the spelling in quotes (e.g. 'NULL', 'yes')"
            )
        out.append(str(item) if isinstance(item, int) else item)
    return out


class CsvFile(_Frozen):
    delimiter: str = ","
    quote: str = '"'
    header: bool = True
    encoding: str = "utf-8"
    null_values: list[str] = [""]
    true_values: list[str] = []
    false_values: list[str] = []
    thousands: str | None = None
    decimal: str = "."

    @field_validator("delimiter", "quote", "decimal")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError("must be exactly one character")
        return value

    @field_validator("null_values", "true_values", "false_values", mode="before")
    @classmethod
    def _spellings(cls, value: Any) -> Any:
        return _texts(value)

    @field_validator("thousands")
    @classmethod
    def _separator(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 1 or value.isdigit() or value in "+-eE"):
            raise ValueError("must be exactly one character, not a digit, sign or exponent")
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
    csv: CsvFile = PydanticField(default_factory=CsvFile)


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
    renamed_from: str | None = None
    # how a CSV file spells this column (contracts/csvtext.py); None: as the file's `csv:` section says
    null_values: list[str] | None = None
    true_values: list[str] | None = None
    false_values: list[str] | None = None
    format: str | None = None

    @field_validator("null_values", "true_values", "false_values", mode="before")
    @classmethod
    def _spellings(cls, value: Any) -> Any:
        return _texts(value)

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
    compatibility: Literal[
        "backward", "forward", "full", "none", "backward_transitive", "forward_transitive", "full_transitive"
    ] = "backward"
    accept_previous_until: date | None = None
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
        renamed_from=col.renamed_from,
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
    csv = _csv_options(spec, smap)
    return Contract(
        source=source,
        version=version,
        kind="batch",
        fields=fields,
        key=tuple(spec.key),
        event_time=spec.event_time,
        compatibility=spec.compatibility,
        accept_previous_until=spec.accept_previous_until,
        strict=spec.strict,
        file=FileSpec(spec.file.pattern, spec.file.format, csv),
        description=spec.description,
        owner=spec.owner,
        path=display,
    )


def _csv_options(spec: BatchContractFile, smap: Any) -> CsvOptions:
    """The file's CSV options with each column's own spellings; a spelling that cannot apply to
    its column's type (a `format` on an integer) is refused with its line."""
    csv = spec.file.csv
    if csv.thousands is not None and csv.thousands == csv.decimal:
        raise ContractError(
            "file.csv: `thousands` and `decimal` must differ", smap.locate(("file", "csv", "thousands"))
        )
    columns = []
    for i, col in enumerate(spec.columns):
        kind = parse_type(col.type)[0]
        if col.format is not None and kind not in ("date", "timestamp"):
            raise ContractError(
                f"column '{col.name}': `format` applies to date and timestamp columns, not {kind}",
                smap.locate(("columns", i, "format")),
            )
        if (col.true_values is not None or col.false_values is not None) and kind != "boolean":
            raise ContractError(
                f"column '{col.name}': `true_values`/`false_values` apply to boolean columns, not {kind}",
                smap.locate(("columns", i, "true_values" if col.true_values is not None else "false_values")),
            )
        if col.format is not None:
            _check_format(col.format, col.name, kind, smap.locate(("columns", i, "format")))
        if any(v is not None for v in (col.null_values, col.true_values, col.false_values, col.format)):
            columns.append(
                ColumnText(
                    col.name,
                    _tuple(col.null_values),
                    _tuple(col.true_values),
                    _tuple(col.false_values),
                    col.format,
                )
            )
    return CsvOptions(
        csv.delimiter,
        csv.quote,
        csv.header,
        csv.encoding,
        tuple(csv.null_values),
        tuple(csv.true_values),
        tuple(csv.false_values),
        csv.thousands,
        csv.decimal,
        tuple(columns),
    )


def _tuple(values: list[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)


def _check_format(fmt: str, name: str, kind: str, where: Location) -> None:
    """A strptime format must name the parts of its type: a date needs %Y (or %y), %m (or %b/%B) and %d."""
    import re

    directives = set(re.findall(r"%(.)", fmt.replace("%%", "")))
    needs = [("%Y or %y", {"Y", "y"}), ("%m, %b or %B", {"m", "b", "B"}), ("%d", {"d"})]
    missing = [label for label, options in needs if not directives & options]
    if missing or not directives <= set("YymbBdHIMSfzpjaAe"):
        detail = f"it lacks {', '.join(missing)}" if missing else "it uses a directive lakestack does not read"
        raise ContractError(
            f'column \'{name}\': format {fmt!r} cannot read a {kind} ({detail}; e.g. "%d/%m/%Y" or "%d/%m/%Y %H:%M")',
            where,
        )
