"""The `lakestack` entry point: the read commands a person types most start without Typer.

`query`, `show`, `tables` and `status` are interactive (issue 19 item 4: a small query in ≤ 0.4 s
of wall time). Typer builds the whole command tree and a pydantic adapter per parameter before a
command runs, about a quarter of a small query's time; so when the arguments are plain (options this
module knows, with values it can read exactly as Typer would) the command runs here, through the same
function the Typer command calls (cli/reads.py) and the same error exits (cli/exits.py). Anything
else (another command, `--help`, an option or value this parser does not know, a mistake) goes to
the Typer app unchanged, which then parses, explains and exits as it always did.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_INT = re.compile(r"^[0-9]+$")
_FLOAT = re.compile(r"^[0-9]+(\.[0-9]+)?$")


def _count(text: str) -> int | None:
    """A non-negative integer as typed (`--limit`, `--max-rows`); None: let Typer judge it."""
    return int(text) if _INT.match(text) else None


def _seconds(least: float) -> Callable[[str], float | None]:
    def read(text: str) -> float | None:
        value = float(text) if _FLOAT.match(text) else None
        return value if value is not None and value >= least else None

    return read


def _text(text: str) -> str:
    return text


@dataclass(frozen=True, slots=True)
class Option:
    """One option: the keyword it fills, how its value is read (None: a flag), repeatable or not."""

    key: str
    read: Callable[[str], Any] | None = _text
    many: bool = False


@dataclass(frozen=True, slots=True)
class Command:
    """A read command's options as cli/app.py declares them; `argument`: its one positional."""

    options: Mapping[str, Option]
    argument: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)


_JSON = Option("json_out", None)
_ROLE = Option("role")
_USER_ATTR = Option("user_attr", many=True)
COMMANDS: dict[str, Command] = {
    "query": Command(
        {
            "--format": Option("output"),
            "-f": Option("output"),
            "--output": Option("out", Path),
            "-o": Option("out", Path),
            "--limit": Option("limit", _count),
            "--max-rows": Option("max_rows", _count),
            "--max-bytes": Option("max_bytes"),
            "--timeout": Option("timeout", _seconds(0.1)),
            "--as-of": Option("as_of", many=True),
            "--role": _ROLE,
            "--user-attr": _USER_ATTR,
            "--json": _JSON,
        },
        argument="sql",
    ),
    "show": Command(
        {
            "--limit": Option("limit", _count),
            "-n": Option("limit", _count),
            "--role": _ROLE,
            "--user-attr": _USER_ATTR,
            "--json": _JSON,
        },
        argument="table",
    ),
    "tables": Command({"--pii": Option("pii", None), "--json": _JSON}),
    "status": Command({"--json": _JSON}),
}
GLOBAL: dict[str, Option] = {
    "--project": Option("project", Path),
    "-p": Option("project", Path),
    "--env": Option("env"),
    "-e": Option("env"),
    "--wait": Option("wait", _seconds(0.0)),
    "--run-id": Option("run_id"),
}
ENVIRONMENT = {
    "project": "LAKESTACK_PROJECT",
    "env": "LAKESTACK_ENV",
    "wait": "LAKESTACK_WAIT",
    "run_id": "LAKESTACK_RUN_ID",
}


@dataclass(frozen=True, slots=True)
class Call:
    """A read command as parsed: its name, the global options and its own keyword arguments."""

    command: str
    project: Path = Path(".")
    env: str | None = None
    wait: float = 0.0
    run_id: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def _options(
    args: Sequence[str], known: Mapping[str, Option], stop: Callable[[str], bool]
) -> tuple[dict[str, Any], int] | None:
    """Options from `args` until `stop(token)`; None when anything is not plain."""
    found: dict[str, Any] = {}
    i = 0
    while i < len(args) and not stop(args[i]):
        name, eq, attached = args[i].partition("=")
        option = known.get(name) if name.startswith("--") or not eq else None
        if option is None or (eq and option.read is None):
            return None
        if option.read is None:
            found[option.key] = True
            i += 1
            continue
        if eq:
            text = attached
        elif i + 1 < len(args) and not args[i + 1].startswith("-"):
            text = args[i + 1]
            i += 1
        else:
            return None  # a missing value, or one that looks like an option: Typer says what it makes of it
        value = option.read(text)
        if value is None:
            return None
        found[option.key] = [*found.get(option.key, []), value] if option.many else value
        i += 1
    return found, i


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> Call | None:
    """The read command `argv` asks for, exactly as Typer would parse it; None for anything else."""
    parsed = _options(argv, GLOBAL, lambda token: not token.startswith("-"))
    if parsed is None or parsed[1] >= len(argv):
        return None
    found, at = parsed
    command = COMMANDS.get(argv[at])
    if command is None:
        return None
    for key, variable in ENVIRONMENT.items():
        if key not in found and environ.get(variable):
            value = GLOBAL[f"--{key.replace('_', '-')}"].read(environ[variable])  # type: ignore[misc]
            if value is None:
                return None
            found[key] = value
    kwargs: dict[str, Any] = {}
    rest = list(argv[at + 1 :])
    while rest:
        got = _options(rest, command.options, lambda token: token == "-" or not token.startswith("-"))
        if got is None:
            return None
        options, used = got
        for key, value in options.items():  # a repeated option: the last wins, a repeatable one adds up
            kwargs[key] = [*kwargs.get(key, []), *value] if isinstance(value, list) else value
        rest = rest[used:]
        if rest:
            if command.argument is None or command.argument in kwargs or rest[0] == "-":
                return None
            kwargs[command.argument] = rest.pop(0)
    if command.argument is not None and command.argument not in kwargs:
        return None
    return Call(argv[at], kwargs=kwargs, **found)


def run(call: Call) -> None:
    """Run a parsed read command as the Typer command would, and exit with its code."""
    from lakestack.cli import reads
    from lakestack.cli.exits import fail, missing_extra
    from lakestack.cli.state import State
    from lakestack.errors import LakestackError

    if call.run_id is not None:
        from lakestack.pipeline.runs import use_run_id

        use_run_id(call.run_id)
    state = State(call.project, call.env, call.wait)
    command: Callable[..., None] = getattr(reads, call.command)
    try:
        try:
            command(state, **call.kwargs)
        finally:
            state.close()  # the lakes it opened: their audit rows and listeners, as click closes them
    except LakestackError as exc:
        fail(exc, exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("LAKESTACK_DEBUG"):
            raise
        missing = missing_extra(exc)
        if missing is not None:
            fail(missing, missing.exit_code)
        fail(exc, 3, internal=True)
    sys.exit(0)


def main() -> None:
    """`lakestack`: a plain read command runs directly, everything else through the Typer app."""
    call = parse(sys.argv[1:], os.environ)
    if call is None:
        from lakestack.cli.app import main as typer_main

        typer_main()
        return
    from lakestack._secrets import install_log_redaction

    install_log_redaction()  # secrets out of every log line and warning, as cli/app.py's main does
    run(call)
