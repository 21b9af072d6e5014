"""`lakestack enrich DATASET`: fill a Silver dataset's lookup cache (pipeline/enrich.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from lakestack.cli.common import JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state


def register(app: typer.Typer) -> None:
    """Add `lakestack enrich` to the CLI."""
    app.command("enrich")(enrich)


def enrich(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="A Silver dataset with a 'lookup:' block.")],
    json_out: JsonOpt = False,
) -> None:
    """Call the dataset's lookup API for the keys its cache does not hold fresh (within the call
    budget and rate limit), log each call, and cache the answers for Gold models to join."""
    from lakestack.cli.render import plain, print_json

    console = _console()
    lake = _state(ctx).lake()
    report = lake.enrich(dataset)  # recorded as a run (`lakestack runs --job enrich`)
    if json_out:
        print_json(console, report.as_dict())
        return
    console.print(
        plain(
            f"enrich {report.dataset} · lookup {report.lookup} · run {report.run_id}: {report.keys} keys, "
            f"{report.cached} cached, {report.fetched} fetched, {report.failed} failed, {report.left} left; "
            f"{report.calls} calls, {report.cost_units:g} cost units, {report.duration_s:.1f}s → {report.table}"
        )
    )
    if report.note:
        console.print(plain(report.note))
