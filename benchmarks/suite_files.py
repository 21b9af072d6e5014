"""Benchmarks over records and landing files: contract validation and file ingest to Bronze.

Every tool's `setup(size, work, data)` runs in the harness's child process (untimed) and returns
`prepare`; what `prepare()` returns is timed. See harness.py.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import Benchmark, Prepare, Tool

from data import EVENT_SCHEMA, make_events, write_orders_csv, write_orders_ndjson

CONTRACTS = Path(__file__).parent / "contracts"


# -- validation -----------------------------------------------------------------------------------
def _events(size: int) -> list[bytes]:
    return make_events(size)


def _lakestack_validation(size: int, work: Path, data: Path) -> Prepare:
    from lakestack.contracts.jsonschema import load_event_contract
    from lakestack.contracts.validate import RecordValidator

    raws = _events(size)
    path = work / "events.v1.json"
    path.write_text(json.dumps(EVENT_SCHEMA))
    validator = RecordValidator(load_event_contract(path, "events", 1, "events.v1.json"))
    return lambda: lambda: len(validator.validate_json(raws).valid)


def _pydantic_model() -> Any:
    from typing import Annotated, Literal

    from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

    class Event(BaseModel):
        model_config = ConfigDict(extra="forbid")
        event_id: Annotated[str, Field(min_length=8, max_length=40)]
        event_ts: AwareDatetime
        user_id: Annotated[str, Field(pattern=r"^u[0-9]+$")]
        event_type: Literal["view", "click", "add_to_cart", "purchase"]
        amount: Annotated[float, Field(ge=0)]
        quantity: Annotated[int, Field(ge=1, le=100)] | None = None
        country: Annotated[str, Field(max_length=2)] | None = None

    return Event


def _pydantic_validation(size: int, work: Path, data: Path) -> Prepare:
    from pydantic import ValidationError

    raws = _events(size)
    validate = _pydantic_model().model_validate_json

    def go() -> int:
        ok = 0
        for raw in raws:
            try:
                validate(raw)
                ok += 1
            except ValidationError:
                pass
        return ok

    return lambda: go


def _fastjsonschema_validation(size: int, work: Path, data: Path) -> Prepare:
    import fastjsonschema
    import msgspec

    raws = _events(size)
    check = fastjsonschema.compile(EVENT_SCHEMA)
    decode = msgspec.json.Decoder().decode

    def go() -> int:
        ok = 0
        for raw in raws:
            try:
                check(decode(raw))
                ok += 1
            except (fastjsonschema.JsonSchemaException, msgspec.DecodeError):
                pass
        return ok

    return lambda: go


def _jsonschema_validation(size: int, work: Path, data: Path) -> Prepare:
    import jsonschema
    import msgspec

    raws = _events(size)
    checker = jsonschema.Draft202012Validator(EVENT_SCHEMA, format_checker=jsonschema.FormatChecker())
    decode = msgspec.json.Decoder().decode
    return lambda: lambda: sum(1 for raw in raws if checker.is_valid(decode(raw)))


def _parse_floor(size: int, work: Path, data: Path) -> Prepare:
    """Typed decoding into the contract's fields with no constraint checked: what any validator
    that reads every field must at least pay."""
    import msgspec

    class Event(msgspec.Struct, forbid_unknown_fields=True):
        event_id: str
        event_ts: datetime
        user_id: str
        event_type: str
        amount: float
        quantity: int | None = None
        country: str | None = None

    raws = _events(size)
    decode = msgspec.json.Decoder(Event).decode
    return lambda: lambda: len([decode(raw) for raw in raws])


VALIDATION = Benchmark(
    name="validation",
    description="Validate small JSON events (bytes, one document each) against one contract: 7 fields with "
    "lengths, a regex, an enum, bounds, a date-time and a nullable integer; all valid",
    unit="events",
    sizes=(10_000, 50_000, 100_000, 300_000),
    tools=(
        Tool(
            "lakestack",
            "RecordValidator.validate_json over the list of raw documents (msgspec typed decode per record, "
            "constraints checked after)",
            _lakestack_validation,
            role="lakestack",
        ),
        Tool(
            "pydantic v2",
            "BaseModel with the same constraints (extra=forbid, AwareDatetime, Literal enum, pattern, bounds), "
            "Model.model_validate_json per raw document (the Rust JSON path, no Python dict in between)",
            _pydantic_validation,
        ),
        Tool(
            "fastjsonschema",
            "fastjsonschema.compile(the same JSON Schema); each document parsed with msgspec (the fastest untyped "
            "parser here) then checked",
            _fastjsonschema_validation,
        ),
        Tool(
            "jsonschema",
            "Draft202012Validator with FormatChecker (date-time checked, as the contract does); msgspec parse; "
            "is_valid per document. Slow: sizes up to 50,000, 2 repetitions",
            _jsonschema_validation,
            max_size=50_000,
            repeat=2,
        ),
        Tool(
            "floor: typed decode, no checks",
            "msgspec.json.Decoder(Struct of the same fields and types) per document, no constraint checked",
            _parse_floor,
            role="floor",
        ),
    ),
)


# -- ingest -----------------------------------------------------------------------------------------
def _landing(fmt: str) -> Any:
    writer = write_orders_csv if fmt == "csv" else write_orders_ndjson

    def data(size: int, folder: Path) -> None:
        writer(folder / "landing", size, files=10)

    return data


def _project(root: Path, fmt: str) -> None:
    from lakestack.pipeline.scaffold import init_project

    init_project("bench", root)
    shutil.copyfile(CONTRACTS / f"orders_{fmt}.v1.yaml", root / "contracts" / "orders.v1.yaml")
    config = root / "lakestack.yaml"
    config.write_text(
        config.read_text().replace(
            "  events:\n    kind: files\n    landing: landing/events\n    contract: events\n",
            "  orders:\n    kind: files\n    landing: landing/orders\n    contract: orders\n",
        )
    )


def _fresh(work: Path) -> Path:
    for old in work.glob("rep-*"):
        shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="rep-", dir=work))


def _lakestack_ingest(fmt: str) -> Any:
    def setup(size: int, work: Path, data: Path) -> Prepare:
        from lakestack import Lake

        def prepare() -> Any:
            root = _fresh(work) / "p"
            _project(root, fmt)
            shutil.copytree(data / "landing", root / "landing" / "orders")

            def go() -> int:
                report = Lake.open(root).ingest(["orders"])
                assert report.quarantined == 0, report
                return int(report.landed)

            return go

        return prepare

    return setup


def _arrow_read(fmt: str, files: list[Path]) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson

    read = pacsv.read_csv if fmt == "csv" else pajson.read_json
    return pa.concat_tables([read(f) for f in files], promote_options="permissive")


def _bronze_shaped(data: Any, target: Any) -> Any:
    """The rows cast to Bronze's Arrow schema, lineage columns filled (what an append needs)."""
    import pyarrow as pa

    n = data.num_rows
    filler = {"_ingested_at": datetime.now(UTC), "_source": "orders", "_run_id": "floor", "_contract_version": 1}
    return pa.table(
        {
            f.name: data[f.name].cast(f.type, safe=False)
            if f.name in data.column_names
            else pa.repeat(pa.scalar(filler.get(f.name), f.type), n)  # constant columns, no Python list
            for f in target
        }
    )


def _iceberg_floor(fmt: str) -> Any:
    def setup(size: int, work: Path, data: Path) -> Prepare:
        from lakestack import Lake
        from lakestack.storage.warehouse import append

        files = sorted((data / "landing").iterdir())

        def prepare() -> Any:
            root = _fresh(work) / "p"
            _project(root, fmt)
            lake = Lake.open(root)
            table = lake.warehouse.bronze_table(lake.project.contract("orders"))

            def go() -> int:
                full = _bronze_shaped(_arrow_read(fmt, files), table.schema().as_arrow())
                append(table, full, run_id="floor", batch_id="floor")
                return int(full.num_rows)

            return go

        return prepare

    return setup


def _parquet_floor(fmt: str) -> Any:
    def setup(size: int, work: Path, data: Path) -> Prepare:
        import pyarrow.parquet as pq

        from lakestack import Lake

        files = sorted((data / "landing").iterdir())
        root = work / "schema"
        _project(root, fmt)
        lake = Lake.open(root)
        target = lake.warehouse.bronze_table(lake.project.contract("orders")).schema().as_arrow()

        def prepare() -> Any:
            out = _fresh(work) / "orders.parquet"

            def go() -> int:
                full = _bronze_shaped(_arrow_read(fmt, files), target)
                pq.write_table(full, out)
                return int(full.num_rows)

            return go

        return prepare

    return setup


DLT_COLUMNS: dict[str, Any] = {
    "order_id": {"data_type": "text", "nullable": False},
    "customer_id": {"data_type": "text", "nullable": False},
    "quantity": {"data_type": "bigint", "nullable": False},
    "unit_price": {"data_type": "decimal", "precision": 12, "scale": 2, "nullable": False},
    "currency": {"data_type": "text", "nullable": False},
    "status": {"data_type": "text", "nullable": False},
    "order_ts": {"data_type": "timestamp", "timezone": True, "nullable": False},
}


def _dlt_items(fmt: str, files: list[Path], arrow: bool) -> Any:
    """Per file: a list of dicts (csv.DictReader / json.loads, dlt's usual path) or one Arrow table."""
    if arrow:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.json as pajson

        schema = pa.schema(
            [
                ("order_id", pa.string()),
                ("customer_id", pa.string()),
                ("quantity", pa.int64()),
                ("unit_price", pa.decimal128(12, 2)),
                ("currency", pa.string()),
                ("status", pa.string()),
                ("order_ts", pa.timestamp("us", tz="UTC")),
            ]
        )
        for f in files:
            if fmt == "csv":
                yield pacsv.read_csv(f, convert_options=pacsv.ConvertOptions(column_types=schema))
            else:
                yield pajson.read_json(f).select(schema.names).cast(schema)
        return
    for f in files:
        with f.open(newline="") as fh:
            if fmt == "csv":
                yield list(csv.DictReader(fh))
            else:
                yield [json.loads(line) for line in fh]


def _dlt(fmt: str, destination: str, arrow: bool) -> Any:
    def setup(size: int, work: Path, data: Path) -> Prepare:
        import dlt

        files = sorted((data / "landing").iterdir())

        def prepare() -> Any:
            rep = _fresh(work)
            if destination == "filesystem":
                dest = dlt.destinations.filesystem(bucket_url=(rep / "lake").as_uri())
            else:
                dest = dlt.destinations.duckdb(credentials=str(rep / "lake.duckdb"))
            pipe = dlt.pipeline(
                pipeline_name=f"bench_{fmt}", pipelines_dir=str(rep / "pipelines"), destination=dest, dataset_name="b"
            )
            resource = dlt.resource(
                _dlt_items(fmt, files, arrow), name="orders", columns=DLT_COLUMNS, write_disposition="append"
            )

            def go() -> int:
                info = pipe.run(resource, loader_file_format="parquet")
                assert not info.has_failed_jobs, info
                return int(pipe.last_trace.last_normalize_info.row_counts["orders"])

            return go

        return prepare

    return setup


# dlt's dict path makes ~50k rows/s here: 1,000,000 rows take ~20 s a run, so the suite stops it at
# 300,000; LAKESTACK_BENCH_DICTS_MAX=1000000 measures it on the 1M-row files too
DICTS_MAX = int(os.environ.get("LAKESTACK_BENCH_DICTS_MAX", "300000"))


def _ingest(fmt: str) -> Benchmark:
    label = "CSV" if fmt == "csv" else "NDJSON"
    reader = "csv.DictReader" if fmt == "csv" else "json.loads per line"
    hints = "column type hints for all 7 columns (bigint, decimal(12,2), timestamp with zone), parquet load files"
    return Benchmark(
        name=f"ingest_{fmt}",
        description=f"{label} landing files (10 per size, 7 narrow columns) to committed Bronze, every record "
        "validated (regexes, bounds, enums, a decimal, a timestamp)",
        unit="rows",
        sizes=(30_000, 100_000, 300_000, 1_000_000),
        data=_landing(fmt),
        tools=(
            Tool(
                f"lakestack ingest ({fmt})",
                "Lake.open(project).ingest(['orders']) on a fresh project with the files in its landing folder: "
                "contract validation, Bronze Iceberg append with the checkpoint, run record",
                _lakestack_ingest(fmt),
                role="lakestack",
            ),
            Tool(
                "floor: pyarrow read + pyiceberg append",
                f"pyarrow.{'csv.read_csv' if fmt == 'csv' else 'json.read_json'} of every file, cast to Bronze's Arrow "
                "schema, one pyiceberg append (lakestack's append helper): no validation",
                _iceberg_floor(fmt),
                role="floor",
            ),
            Tool(
                "pyarrow read + Parquet write",
                "the same read and cast, written as one Parquet file with pyarrow (no table format, no catalog)",
                _parquet_floor(fmt),
            ),
            Tool(
                "dlt, Arrow tables → filesystem (Parquet)",
                f"a dlt.resource yielding one pyarrow table per file (typed at read), {hints}; "
                "destination filesystem on a local folder",
                _dlt(fmt, "filesystem", True),
            ),
            Tool(
                "dlt, Arrow tables → duckdb",
                f"the same Arrow resource, {hints}; destination duckdb (a local file)",
                _dlt(fmt, "duckdb", True),
            ),
            Tool(
                "dlt, dicts → filesystem (Parquet)",
                f"a dlt.resource yielding one list of dicts per file ({reader}: "
                f"dlt's usual Python path, normalised and coerced by dlt), {hints}. Sizes up to {DICTS_MAX:,} "
                "(LAKESTACK_BENCH_DICTS_MAX)",
                _dlt(fmt, "filesystem", False),
                max_size=DICTS_MAX,
            ),
            Tool(
                "dlt, dicts → duckdb",
                f"the same dict resource, {hints}; destination duckdb. Sizes up to {DICTS_MAX:,}",
                _dlt(fmt, "duckdb", False),
                max_size=DICTS_MAX,
            ),
        ),
    )


INGEST_CSV = _ingest("csv")
INGEST_NDJSON = _ingest("ndjson")
