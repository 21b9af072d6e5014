"""How a command ends in error: the message (secrets redacted, never read as markup) on stderr, or
a JSON problem with `--json`, and the exit code. Shared by the Typer app (cli/app.py) and the read
commands' direct start (cli/direct.py); imports neither Typer nor rich until it prints."""

from __future__ import annotations

import sys
from typing import Any

from lakestack.errors import LakestackError, ProjectError

# Optional dependencies by top-level module: what needs them and the extra that installs them.
_EXTRAS = {
    "confluent_kafka": ("a Kafka source", "kafka"),
    "nats": ("a NATS source", "nats"),
    "boto3": ("AWS (Kinesis, S3)", "aws"),
    "botocore": ("AWS (Kinesis, S3)", "aws"),
    "psycopg": ("a PostgreSQL catalog", "postgres"),
    "fastapi": ("lakestack serve", "serve"),
    "uvicorn": ("lakestack serve", "serve"),
}


def missing_extra(exc: BaseException) -> LakestackError | None:
    """A missing optional module anywhere in the exception's chain, as the error naming its extra
    (one place for every source and backend, instead of an internal error)."""
    from lakestack.errors import MissingExtraError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ModuleNotFoundError) and current.name:
            found = _EXTRAS.get(current.name.partition(".")[0])
            if found is not None:
                return MissingExtraError(*found)
        current = current.__cause__ or current.__context__
    return None


def fail(exc: BaseException, code: int, internal: bool = False) -> None:
    """Print the error (secrets redacted, never read as markup) and exit with `code`."""
    from lakestack._secrets import redact

    message = redact(_message(exc))
    try:
        if "--json" in sys.argv:
            _fail_json(exc, message, code)
        else:
            from lakestack.cli.render import make_console, markup

            text = (
                markup(
                    "[red]error:[/] internal error: {}: {}\n"
                    "Set LAKESTACK_DEBUG=1 to see the traceback, and please report it.",
                    type(exc).__name__,
                    message,
                )
                if internal
                else markup("[red]error:[/] {}", message)
            )
            make_console(stderr=True).print(text, soft_wrap=True)  # one line per message, whatever the width
    except Exception:  # the last resort: an error message must reach the user whatever happens
        sys.stderr.write(f"error: {message}\n")
    sys.exit(code)


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not hide the error
        return repr(exc)


def _fail_json(exc: BaseException, message: str, code: int) -> None:
    import json

    from lakestack._secrets import redact_tree

    problem: dict[str, Any] = {"error": type(exc).__name__, "message": message, "exit_code": code}
    if isinstance(exc, ProjectError) and exc.location is not None:
        problem.update(file=exc.location.file, line=exc.location.line, key=exc.location.key)
    print(json.dumps(redact_tree(problem)))
