"""`lakestack contracts`: compatibility check and diff between contract versions (contracts/compat.py).

`check` exits 4 when the newest version of a contract breaks its compatibility mode (like a failed
gate: the project is readable, a check on it failed), 2 for an unknown source or version.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lakestack.cli.common import GATE_FAILED, JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state

if TYPE_CHECKING:
    from rich.table import Table

    from lakestack.contracts.compat import Comparison
    from lakestack.contracts.registry import ContractRegistry

contracts_app = typer.Typer(
    help="Contracts: draft one from landing files, check and diff versions.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(contracts_app, name="contracts")


def _registry(ctx: typer.Context) -> ContractRegistry:
    from lakestack.pipeline.project import Project

    return Project.load(_state(ctx).project).contracts


def _known(registry: ContractRegistry, source: str) -> None:
    from lakestack.errors import UsageError

    if source not in registry.sources():
        known = ", ".join(registry.sources()) or "none"
        raise UsageError(f"no contract for source '{source}' (sources with contracts: {known})")


@contracts_app.command("check")
def check(
    ctx: typer.Context,
    source: Annotated[str | None, typer.Argument(help="One source; all sources by default.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Compare each source's newest contract version with the one before (every earlier one when its
    mode is transitive) under its compatibility mode; exit 4 when a change breaks it."""
    from lakestack.cli.render import print_json
    from lakestack.contracts.compat import check_history

    registry = _registry(ctx)
    if source is not None:
        _known(registry, source)
    sources = [source] if source else registry.sources()
    results = {name: check_history(registry.history(name)) for name in sources}
    broken = sorted(name for name, found in results.items() if not all(c.compatible for c in found))
    if json_out:
        print_json(
            _console(),
            {
                "compatible": not broken,
                "sources": {
                    name: {"versions": registry.versions(name), "comparisons": [c.to_dict() for c in found]}
                    for name, found in results.items()
                },
            },
        )
    else:
        _print_check(registry, results, broken)
    if broken:
        raise typer.Exit(GATE_FAILED)


def _print_check(registry: ContractRegistry, results: dict[str, list[Comparison]], broken: list[str]) -> None:
    from lakestack.cli.render import markup

    console = _console()
    for name, found in results.items():
        newest = registry.versions(name)[-1]
        if not found:
            console.print(markup("{}: v{} is the only version, nothing to check", name, newest))
            continue
        for comparison in found:
            console.print(_changes_table(comparison, only_breaking=False))
            console.print(_verdict(comparison))
    if broken:
        console.print(markup("[red]incompatible[/red]: {}", ", ".join(broken)))


def _verdict(comparison: Comparison) -> Any:
    from lakestack.cli.render import markup

    head = f"{comparison.new.source} v{comparison.old.version} → v{comparison.new.version} ({comparison.mode})"
    breaking = len(comparison.breaking)
    if breaking:
        return markup("{}: [red]INCOMPATIBLE[/red], {} breaking change(s)", head, breaking)
    return markup("{}: [green]compatible[/green], {} change(s)", head, len(comparison.changes))


def _changes_table(comparison: Comparison, *, only_breaking: bool) -> Table:
    from rich.table import Table

    from lakestack.cli.render import plain

    title = f"{comparison.new.source}: v{comparison.old.version} → v{comparison.new.version} ({comparison.mode})"
    table = Table(title=title, title_justify="left")
    for column in ("path", "change", "old", "new", "breaking", "reason"):
        table.add_column(column)
    for change in comparison.changes:
        breaking = change.breaking(comparison.mode)
        if only_breaking and not breaking:
            continue
        table.add_row(
            plain(change.path),
            plain(change.kind),
            plain(change.old or ""),
            plain(change.new or ""),
            plain("yes", "red") if breaking else plain("no", "green"),
            plain(change.reason),
        )
    return table


@contracts_app.command("diff")
def diff(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="The source whose contract versions to compare.")],
    from_version: Annotated[
        int | None, typer.Option("--from", help="The older version (default: the one before --to).")
    ] = None,
    to_version: Annotated[int | None, typer.Option("--to", help="The newer version (default: the newest).")] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", help="Judge under this mode instead of the --to version's own.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Every change between two versions of a source's contract, with its verdict."""
    from lakestack.cli.render import print_json
    from lakestack.contracts.compat import compare
    from lakestack.contracts.model import COMPATIBILITY
    from lakestack.errors import UsageError

    registry = _registry(ctx)
    _known(registry, source)
    if mode is not None and mode not in COMPATIBILITY:
        raise UsageError(f"unknown mode '{mode}' (modes: {', '.join(COMPATIBILITY)})")
    versions = registry.versions(source)
    new = to_version if to_version is not None else versions[-1]
    old = from_version if from_version is not None else max((v for v in versions if v < new), default=None)
    listed = ", ".join(f"v{v}" for v in versions)
    if old is None:
        raise UsageError(f"{source}: no version before v{new} to compare it with (versions: {listed})")
    for version in (old, new):
        if version not in versions:
            raise UsageError(f"{source}: no version v{version} to compare (versions: {listed})")
    comparison = compare(registry.get(f"{source}.v{old}"), registry.get(f"{source}.v{new}"), mode)
    if json_out:
        print_json(_console(), comparison.to_dict())
        return
    console = _console()
    console.print(_changes_table(comparison, only_breaking=False))
    console.print(_verdict(comparison))


@contracts_app.command("infer")
def infer(
    path: Annotated[Path, typer.Argument(help="A CSV, NDJSON or Parquet file, or a landing folder of them.")],
    source: Annotated[
        str | None, typer.Option("--source", help="The source's name (default: the folder's or file's name).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the draft here (a folder: <source>.v1.yaml|json in it)."),
    ] = None,
    sample: Annotated[int, typer.Option("--sample", min=1, help="Read at most this many records.")] = 20_000,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the output file if it exists.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Draft a contract from a sample of landing files: names, types, nullability, enums, shapes, the
    file pattern with its date; print which choices were guessed. CSV and Parquet give a batch contract
    (YAML), NDJSON an event contract (JSON Schema)."""
    import sys

    from lakestack.cli.render import markup, print_json
    from lakestack.errors import UsageError
    from lakestack.pipeline.drafting import check_draft, infer_contract

    draft = infer_contract(path, source, limit=sample)
    check_draft(draft, draft.file_name)  # what it wrote, lakestack reads
    target = output / draft.file_name if output is not None and output.is_dir() else output
    if target is not None:
        if target.exists() and not force:
            raise UsageError(f"{target} exists (--force overwrites it)")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(draft.text, encoding="utf-8")
    if json_out:
        print_json(_console(), _draft_json(draft, target))
        return
    if target is None:
        sys.stdout.write(draft.text)  # the contract alone on stdout (redirect it to a file); the rest to stderr
        sys.stdout.flush()
    from rich.console import Console

    err = Console(stderr=True, markup=False, highlight=False) if target is None else _console()
    if target is not None:
        err.print(markup("[green]wrote[/] {} ({} contract)", target, draft.kind))
    err.print(markup("guessed from {} records of {} file(s) — review:", f"{draft.rows_sampled:,}", draft.files_sampled))
    for note in draft.guessed:
        err.print(markup("  - {}", note))


def _draft_json(draft: Any, target: Path | None) -> dict[str, Any]:
    return {
        "source": draft.source,
        "kind": draft.kind,
        "format": draft.format,
        "pattern": draft.pattern,
        "file_name": draft.file_name,
        "written_to": str(target) if target is not None else None,
        "key": list(draft.key),
        "event_time": draft.event_time,
        "null_values": list(draft.null_values),
        "rows_sampled": draft.rows_sampled,
        "files_sampled": draft.files_sampled,
        "columns": [
            {
                "name": c.name,
                "type": c.type,
                "nullable": c.nullable,
                "enum": list(c.enum) if c.enum is not None else None,
                "regex": c.regex,
                "min": c.minimum,
                "pii": c.pii,
            }
            for c in draft.columns
        ],
        "guessed": draft.guessed,
        "contract": draft.text,
    }
