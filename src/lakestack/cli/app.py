"""`lakestack`: the command line. Thin: parse, call the `Lake` façade, render.

Exit codes: 0 the run completed (quarantined rows are reported, not an error); 2 a usage or
project-file error; 3 the run failed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from lakestack.cli.common import GATE_FAILED, JsonOpt, State
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state
from lakestack.cli.exits import fail as _fail
from lakestack.cli.exits import missing_extra as _missing_extra
from lakestack.errors import LakestackError

app = typer.Typer(
    name="lakestack",
    help="A contract-first lakehouse: contracts, Iceberg Bronze/Silver/Gold, quality gates, lineage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
example_app = typer.Typer(help="Bundled example projects.", no_args_is_help=True)
app.add_typer(example_app, name="example")
checks_app = typer.Typer(help="Data-quality results.", no_args_is_help=True)
app.add_typer(checks_app, name="checks")


def _register_modules() -> None:
    """Command groups kept in their own modules (each imports only cli/common.py and, lazily, the rest)."""
    from lakestack.cli import (
        alerts,
        audit,
        backfill,
        checkpoints,
        contracts,
        deploy,
        enrich,
        erase,
        export,
        history,
        keys,
        maintain,
        plan,
        policies,
        publish,
        quarantine,
        runs,
        schedules,
        sla,
    )

    for module in (
        runs,
        sla,
        alerts,
        maintain,
        erase,
        contracts,
        history,
        checkpoints,
        backfill,
        quarantine,
        policies,
        keys,
        audit,
        publish,
        plan,
        export,
        schedules,
        deploy,
        enrich,
    ):
        module.register(app)


_register_modules()


@app.callback()
def main_options(
    ctx: typer.Context,
    project: Annotated[
        Path,
        typer.Option(
            "--project", "-p", envvar="LAKESTACK_PROJECT", help="The project folder (holding lakestack.yaml)."
        ),
    ] = Path("."),
    env: Annotated[
        str | None,
        typer.Option(
            "--env", "-e", envvar="LAKESTACK_ENV", help="The environment to use (default: the project's default)."
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            envvar="LAKESTACK_WAIT",
            min=0,
            help="Seconds ingest, promote, build and run wait for another run's project lock (default: exit 3).",
        ),
    ] = 0.0,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id",
            envvar="LAKESTACK_RUN_ID",
            help="Use this run id (an orchestrator's run, one id across steps) instead of a new one.",
        ),
    ] = None,
) -> None:
    if run_id is not None:
        from lakestack.pipeline.runs import use_run_id

        use_run_id(run_id)
    ctx.obj = State(project, env, wait)


@app.command()
def init(
    name: str,
    path: Annotated[Path | None, typer.Option(help="Folder to create (default: ./NAME).")] = None,
    template: Annotated[
        str, typer.Option("--template", help="The sample source: ndjson (events), csv (orders) or parquet (products).")
    ] = "ndjson",
    json_out: JsonOpt = False,
) -> None:
    """Create a new project with a sample contract and landing file."""
    from lakestack.pipeline.scaffold import init_project

    folder = init_project(name, path or Path(name), template)
    if json_out:
        from lakestack.cli.render import print_json

        print_json(_console(), {"project": name, "path": str(folder), "template": template})
        return
    from lakestack.cli.render import markup

    _console().print(
        markup(
            "[green]Created project[/] [bold]{}[/] in {}\nNext: [bold]lakestack -p {} ingest[/]", name, folder, folder
        )
    )


@example_app.command("northwind")
def example_northwind(
    path: Annotated[Path, typer.Argument(help="Folder for the project and its landing files.")] = Path("northwind"),
    orders: Annotated[int, typer.Option(min=10, help="Order lines to generate.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives identical files.")] = 42,
    days: Annotated[int, typer.Option(min=1, max=366, help="Days of daily files.")] = 14,
    break_gold: Annotated[
        bool, typer.Option("--break-gold", help="Make the last day's orders fail a Gold check.")
    ] = False,
    apis: Annotated[
        str | None,
        typer.Option(
            "--apis",
            metavar="URL",
            help="Also the CRM contacts API source and the fleet with its vehicle valuations, served at URL "
            "by 'lakestack example apis' (key: the NORTHWIND_API_KEY secret).",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the Northwind example project and realistic landing files (with deliberate defects)."""
    from lakestack.examples.northwind import generate_northwind
    from lakestack.pipeline.scaffold import copy_example

    console = _console()
    copy_example("northwind", path)
    if apis is not None:
        from lakestack.examples.northwind_apis import add_apis

        add_apis(path, apis)
    with console.status(Text(f"generating {orders:,} order lines ...")):
        report = generate_northwind(
            path, orders=orders, seed=seed, days=days, break_gold=break_gold, fleet=apis is not None
        )
    if json_out:
        from lakestack.cli.render import print_json

        print_json(console, {"path": str(path), "report": report})
        return
    from lakestack.cli.render import markup, rows_table

    rows = [{"source": s, "rows": n} for s, n in sorted(report.rows.items())]
    console.print(rows_table(f"Northwind landing files in {path}/landing", rows, ["source", "rows"]))
    console.print(markup("Next: [bold]lakestack -p {} ingest[/]", path))


@example_app.command("apis")
def example_apis(
    seed: Annotated[
        int, typer.Option(help="Random seed (the example's --seed): the same seed serves the same data.")
    ] = 42,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: a free one).")] = 0,
    url_file: Annotated[
        Path | None, typer.Option(help="Write the server's URL to this file once it listens (for scripts).")
    ] = None,
) -> None:
    """Serve the Northwind example's CRM contacts and vehicle-valuation APIs on 127.0.0.1 until stopped.

    The API key is the NORTHWIND_API_KEY environment variable (the secret the example's project
    reads). Rate-limited (429 with Retry-After) and with injected 500s, so pulls retry."""
    import signal
    import threading

    from lakestack.errors import UsageError
    from lakestack.examples.northwind_apis import SECRET, ApiSettings, NorthwindApis

    key = os.environ.get(SECRET)
    if not key:
        raise UsageError(f"set the API key in the environment variable {SECRET} (the example's project reads it)")
    console = _console()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        apis = NorthwindApis(ApiSettings(seed=seed, key=key), port=port)
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None
    with apis as server:
        if url_file is not None:
            partial = url_file.with_name(url_file.name + ".part")
            partial.write_text(server.url + "\n", encoding="utf-8")
            partial.replace(url_file)  # whole or absent: a script waiting for it never reads half a URL
        console.print(f"Northwind APIs on {server.url} (CRM contacts: /crm/v3/contacts, valuations: /vmv)")
        while not stop.wait(0.5):
            pass
    console.print(f"Northwind APIs stopped: {server.state.summary()}")


@app.command()
def ingest(
    ctx: typer.Context,
    sources: Annotated[list[str] | None, typer.Argument(help="Sources to ingest (default: all).")] = None,
    file: Annotated[
        list[str] | None,
        typer.Option("--file", "-f", help="Only these files (names inside the landing folder); needs one source."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also list each file an earlier run already ingested.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Ingest new landing files into Bronze; invalid records go to quarantine."""
    from lakestack.cli.render import IngestProgress, ingest_table, markup, print_json, problem_files, unchanged_line

    console = _console()
    lake = _state(ctx).lake()
    if json_out:
        report = lake.ingest(sources, files=file)
        print_json(console, report)
        return
    with IngestProgress(console) as progress:
        report = lake.ingest(sources, files=file, observer=progress)
    console.print(ingest_table(report))
    for pulled in report.sources:  # a pull source's note per resource (pages, requests, a spent budget)
        for part in pulled.files:
            if part.status == "landed" and part.sha256 is None and part.reason:
                console.print(markup("{} · {}: {}", pulled.source, part.name, part.reason))
    problems = problem_files(report, verbose=verbose)
    if problems is not None:
        console.print(problems)
    summary = None if verbose else unchanged_line(report)
    if summary is not None:
        console.print(summary)
    if report.quarantined:
        console.print(
            markup(
                "[yellow]{} rows quarantined[/]: lakestack show quarantine.<source> to see why",
                f"{report.quarantined:,}",
            )
        )


@app.command()
def stream(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="A kafka, kinesis or nats source.")],
    until_idle: Annotated[
        float | None,
        typer.Option("--until-idle", help="Stop after this many seconds without new records (catch up and exit)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a stream source in the foreground: validate, commit micro-batches to Bronze, until Ctrl-C."""
    import signal
    import threading

    from lakestack.cli.stopping import arm_stop_dump, exit_after

    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        stop.set()  # the loop makes a final commit and returns (at once, exit 0, if it had not started)
        arm_stop_dump()  # a stop that hangs says where (cli/stopping.py)

    for sig in (signal.SIGINT, signal.SIGTERM):  # first: a stop during start-up is a clean stop too
        signal.signal(sig, _stop)
    from lakestack.cli import EARLY_SIGNALS

    if EARLY_SIGNALS:  # it came while the command line was loading
        stop.set()
        arm_stop_dump()
    from lakestack.cli.render import StreamStatus, print_json, stream_summary

    console = _console()
    # registered before the lake is made, so it runs after the lake's close (click runs them last in,
    # first out): run records, lineage and alerts flushed within their own bounds, then a thread left
    # behind (a Kafka consumer still leaving its group) cannot hold the exit of a finished stream
    finished = [False]
    ctx.find_root().call_on_close(lambda: exit_after(0) if finished[0] else None)
    lake = _state(ctx).lake()
    if json_out:
        stats = lake.stream(source, stop, idle_stop=until_idle)
        print_json(console, stream_summary(source, stats))
    else:
        with StreamStatus(console, source) as live:
            stats = lake.stream(source, stop, idle_stop=until_idle, on_status=live.update)
        console.print(stream_summary(source, stats, table=True))
    finished[0] = True


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    insecure_dev: Annotated[
        bool, typer.Option("--insecure-dev", help="Let requests without an API key in (loopback only; a warning).")
    ] = False,
) -> None:
    """Serve the HTTP API: the stream collector (POST /v1/streams/SOURCE/records), the read API
    (/v1/datasets, /v1/query, /v1/runs, /v1/lineage, ...; docs/api.md), the console, docs at /docs."""
    try:
        import uvicorn

        from lakestack.serve.api import create_app
    except ImportError as exc:
        from lakestack.errors import MissingExtraError

        raise MissingExtraError("lakestack serve", "serve") from exc
    lake = _state(ctx).lake()
    from lakestack.cli.keys import serve_gate

    app_ = create_app(lake, base_url=f"http://{f'[{host}]' if ':' in host else host}:{port}", insecure_dev=insecure_dev)
    serve_gate(lake, host, insecure_dev)  # an API key exists, or --insecure-dev on loopback: else exit 2
    from lakestack.cli.render import markup

    _console().print(
        markup("lakestack serving [bold]{}[/] on http://{}:{} (docs: /docs)", lake.project.name, host, port)
    )
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):  # uvicorn re-raises the signal after its graceful
        signal.signal(sig, lambda *_: None)  # shutdown (final commits done): then exit 0, not -15
    uvicorn.run(app_, host=host, port=port, log_level=log_level, access_log=False)


@app.command()
def status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Each source: contract, files waiting, files ingested, Bronze and quarantine rows."""
    from lakestack.cli import reads

    reads.status(_state(ctx), json_out=json_out)


RoleOpt = Annotated[
    str | None, typer.Option("--role", help="Read as this role (policies.yaml): masked, filtered, or denied.")
]
UserAttrOpt = Annotated[
    list[str] | None, typer.Option("--user-attr", help="KEY=VALUE for the role's row filters (:user.KEY).")
]


@app.command()
def tables(
    ctx: typer.Context,
    pii: Annotated[bool, typer.Option("--pii", help="List where every PII class lives instead.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Every table in the warehouse with rows, files and last commit."""
    from lakestack.cli import reads

    reads.tables(_state(ctx), pii=pii, json_out=json_out)


@app.command()
def show(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="A table such as bronze.orders or quarantine.orders.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="Rows to show.")] = 10,
    role: RoleOpt = None,
    user_attr: UserAttrOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A table's schema and first rows."""
    from lakestack.cli import reads

    reads.show(_state(ctx), table, limit=limit, role=role, user_attr=user_attr, json_out=json_out)


@app.command()
def promote(
    ctx: typer.Context,
    datasets: Annotated[list[str] | None, typer.Argument(help="Silver datasets (default: all).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Merge what Bronze committed since the last promotion into Silver (dedup, latest wins)."""
    from lakestack.cli.render import print_json, promote_table

    console = _console()
    with console.status("promoting to silver ..."):
        results = _state(ctx).lake().promote(datasets)
    if json_out:
        print_json(console, results)
        return
    console.print(promote_table(results))


@app.command()
def build(
    ctx: typer.Context,
    models: Annotated[list[str] | None, typer.Argument(help="Gold models (default: all, in dependency order).")] = None,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Rebuild from Silver, not incrementally.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Build Gold models from their SQL, in dependency order; exit 4 when a model's checks blocked it."""
    from lakestack.cli.render import build_table, print_json

    console = _console()
    with console.status("building gold ..."):
        results = _state(ctx).lake().build(models, full_refresh=full_refresh)
    if json_out:
        print_json(console, results)
    else:
        console.print(build_table(results))
    if any(r.mode == "blocked" for r in results):  # write-audit-publish kept the last good snapshot
        raise typer.Exit(GATE_FAILED)


@app.command()
def run(
    ctx: typer.Context,
    select: Annotated[
        list[str] | None, typer.Option("--select", "-s", help="Only these sources / datasets / models.")
    ] = None,
    full_refresh: Annotated[bool, typer.Option("--full-refresh", help="Rebuild Gold from Silver.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """ingest → promote → build for the whole project under one run id."""
    from lakestack.cli.render import (
        IngestProgress,
        build_table,
        checks_table,
        ingest_table,
        markup,
        print_json,
        promote_table,
    )

    console = _console()
    lake = _state(ctx).lake()
    if json_out:
        result = lake.run(select, full_refresh=full_refresh)
        print_json(console, result)
        if result.failed_checks:
            raise typer.Exit(GATE_FAILED)
        return
    with IngestProgress(console) as progress:
        report = lake.run(select, full_refresh=full_refresh, observer=progress)
    if report.ingest is not None:
        console.print(ingest_table(report.ingest))
    if report.promoted:
        console.print(promote_table(list(report.promoted)))
    if report.built:
        console.print(build_table(list(report.built)))
    if report.checks:
        console.print(checks_table(list(report.checks), only_problems=True))
    if report.published:
        from lakestack.cli.publish import notes, publish_table

        console.print(publish_table(report.published, "publish"))
        for line in notes(report.published):
            console.print(markup("{}", line))
    console.print(markup("run {} finished in {}s", report.run_id, f"{report.duration_s:.1f}"))
    if report.failed_checks:
        blocked = ", ".join(report.blocked)
        console.print(
            markup("[red]quality gate failed[/]: blocked {}; see 'lakestack checks show {}'", blocked, report.run_id)
        )
        raise typer.Exit(GATE_FAILED)


@app.command()
def query(
    ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help="One SELECT over bronze.*, silver.*, gold.*, quarantine.* tables.")],
    output: Annotated[str, typer.Option("--format", "-f", help="table, csv, json or parquet.")] = "table",
    out: Annotated[
        Path | None, typer.Option("--output", "-o", help="File for parquet (and optionally csv/json).")
    ] = None,
    limit: Annotated[int, typer.Option(min=0, help="Rows to print as a table.")] = 100,
    max_rows: Annotated[
        int | None,
        typer.Option(
            "--max-rows", min=0, help="Stop the result after N rows (default 100,000; 10,000,000 with -o; 0: no limit)."
        ),
    ] = None,
    max_bytes: Annotated[
        str | None,
        typer.Option("--max-bytes", help="Stop after this much result data (default 256MB; 4GB with -o; 0: no limit)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds for running the query and writing its result.")
    ] = 60.0,
    as_of: Annotated[
        list[str] | None,
        typer.Option(
            "--as-of",
            help="Read the tables as they were: a time (2026-12-01T10:00Z, 2h ago as 2h), a snapshot id, "
            "or TABLE=time|snapshot id (repeatable). See 'lakestack history TABLE'.",
        ),
    ] = None,
    role: RoleOpt = None,
    user_attr: UserAttrOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Read-only SQL over the project's tables (DuckDB, locked down), streamed within row, byte and time limits."""
    from lakestack.cli import reads

    reads.query(
        _state(ctx),
        sql,
        output=output,
        out=out,
        limit=limit,
        max_rows=max_rows,
        max_bytes=max_bytes,
        timeout=timeout,
        as_of=as_of,
        role=role,
        user_attr=user_attr,
        json_out=json_out,
    )


@app.command()
def check(
    ctx: typer.Context,
    datasets: Annotated[list[str] | None, typer.Argument(help="Datasets such as silver.orders (default: all).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Evaluate data-quality checks now; exit 4 when a `fail` check fails."""
    from lakestack.cli.render import checks_table, markup, print_json
    from lakestack.pipeline.runs import new_run_id

    console = _console()
    run_id = new_run_id()
    with console.status("checking ..."):
        results = _state(ctx).lake().check(datasets, run_id=run_id)
    if json_out:
        print_json(console, {"run_id": run_id, "results": results})
    else:
        console.print(checks_table(results))
        console.print(
            markup(
                "run {} recorded; see 'lakestack checks show {}' or 'lakestack runs show {}'", run_id, run_id, run_id
            )
        )
    if any(r.blocks for r in results):
        raise typer.Exit(GATE_FAILED)


@checks_app.command("show")
def checks_show(ctx: typer.Context, run_id: str, role: RoleOpt = None, json_out: JsonOpt = False) -> None:
    """The checks a run evaluated and its failing-row samples (PII masked)."""
    from lakestack.cli.render import check_rows, failure_rows, print_json, rows_table

    lake = _state(ctx).lake()
    results = lake.check_results(run_id, role=role)
    failures = lake.check_failures(run_id, role=role)
    if json_out:
        print_json(_console(), {"results": results, "failing_rows": failures})
        return
    console = _console()
    console.print(
        rows_table(
            f"checks of run {run_id}",
            check_rows(results),
            ["dataset", "check", "severity", "status", "observed", "threshold", "failing_rows"],
        )
    )
    if failures:
        leading = lake.sample_columns({(f["dataset"], f["check"]) for f in failures})
        shown = failure_rows(failures, leading)
        console.print(rows_table("failing rows (sample, PII masked)", shown, ["dataset", "check", "row"]))


def main() -> None:
    """Entry point: run the app; LakestackError becomes a message and an exit code, never a traceback."""
    from lakestack._secrets import install_log_redaction

    install_log_redaction()  # secrets out of every log line and warning, lakestack serve's included
    try:
        code = app(standalone_mode=False)  # click returns typer.Exit's code instead of raising here
    except LakestackError as exc:
        _fail(exc, exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:
        code = getattr(exc, "exit_code", None)
        if isinstance(code, int):  # click's (or Typer's) own usage errors and exits carry their code
            if hasattr(exc, "show"):
                exc.show()
            sys.exit(code)
        if os.environ.get("LAKESTACK_DEBUG"):
            raise
        missing = _missing_extra(exc)
        if missing is not None:
            _fail(missing, missing.exit_code)
        _fail(exc, 3, internal=True)
    sys.exit(code if isinstance(code, int) else 0)
