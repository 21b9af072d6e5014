"""`lakestack keys`: API keys for `lakestack serve` (pipeline/apikeys.py), created, listed, revoked.

Each is audited (`keys.create`, `keys.revoke` in `_lakestack.audit`, by OS user). The key itself is
printed once, by `create`; nothing else ever shows it.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from lakestack.cli.common import JsonOpt
from lakestack.cli.common import console as _console
from lakestack.cli.common import state as _state

keys_app = typer.Typer(help="API keys for 'lakestack serve': create (shown once), list, revoke.", no_args_is_help=True)

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    role: Annotated[
        str, typer.Option("--role", help="The key's role (engineer, analyst, business, or policies.yaml's).")
    ],
    source: Annotated[
        list[str] | None, typer.Option("--source", help="A stream source the key may write (repeatable; '*': all).")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="A name to recognise the key by.")] = None,
    attr: Annotated[
        list[str] | None,
        typer.Option("--attr", help="KEY=VALUE: a user attribute the role's row filters read (:user.KEY; repeatable)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a key; it is printed once and stored only as a salted scrypt hash."""
    from lakestack.cli.render import markup, print_json
    from lakestack.pipeline.apikeys import create_key
    from lakestack.pipeline.audit import AuditEntry, os_user

    lake = _state(ctx).lake()
    user = os_user()
    from lakestack.cli.policies import user_attrs

    key, secret = create_key(lake, role, source or [], name, user, (user_attrs(attr) or {}))
    detail = f"name={key.name} role={key.role} sources={','.join(key.sources) or '-'}"
    if key.attributes:
        detail += " attributes=" + ",".join(k for k, _ in key.attributes)  # names only in the audit log
    lake.audit.record(AuditEntry("keys.create", "ok", key_id=key.key_id, role=key.role, os_user=user, detail=detail))
    if json_out:
        print_json(_console(), {**key.as_json(), "key": secret})
        return
    console = _console()
    console.print(markup("created API key [bold]{}[/] ({}, role {})", key.key_id, key.name, key.role))
    console.print(secret, markup=False, highlight=False, soft_wrap=True)
    console.print("Keep it now: it is not stored and cannot be shown again. Send it as 'Authorization: Bearer <key>'.")


@keys_app.command("list")
def keys_list(
    ctx: typer.Context,
    all_keys: Annotated[bool, typer.Option("--all", "-a", help="Revoked keys too.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """The keys (never their secrets): id, name, role, sources, when created and by whom."""
    from lakestack.cli.render import print_json, rows_table
    from lakestack.pipeline.apikeys import read_keys

    keys = sorted(read_keys(_state(ctx).lake().warehouse).values(), key=lambda k: k.created_at)
    rows: list[dict[str, Any]] = [k.as_json() for k in keys if all_keys or k.active]
    if json_out:
        print_json(_console(), rows)
        return
    for row in rows:
        row["sources"] = ", ".join(row["sources"]) or "-"
    for row in rows:
        row["attributes"] = ", ".join(f"{k}={v}" for k, v in row["attributes"].items()) or "-"
    columns = ["key_id", "name", "role", "sources", "attributes", "created_at", "created_by"]
    _console().print(rows_table(f"API keys · {len(rows)}", rows, columns + (["revoked_at"] if all_keys else [])))


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id (see 'lakestack keys list').")],
    json_out: JsonOpt = False,
) -> None:
    """Revoke a key: a running 'lakestack serve' refuses it (401) within seconds."""
    from lakestack.cli.render import markup, print_json
    from lakestack.pipeline.apikeys import revoke_key
    from lakestack.pipeline.audit import AuditEntry, os_user

    lake = _state(ctx).lake()
    user = os_user()
    key = revoke_key(lake, key_id, user)
    lake.audit.record(AuditEntry("keys.revoke", "ok", key_id=key.key_id, role=key.role, os_user=user))
    if json_out:
        print_json(_console(), key.as_json())
        return
    _console().print(markup("revoked API key [bold]{}[/] ({}) at {}", key.key_id, key.name, key.revoked_at))


def serve_gate(lake: Any, host: str, insecure_dev: bool) -> None:
    """What `lakestack serve` checks before it listens: an active API key exists, or `--insecure-dev`
    on a loopback address (then a warning). Otherwise a usage error (exit 2) naming the fix."""
    import sys

    from lakestack.errors import UsageError
    from lakestack.pipeline.apikeys import read_keys

    if insecure_dev:
        if host not in LOOPBACK:
            raise UsageError(f"--insecure-dev serves without API keys on loopback only (127.0.0.1), not on {host}")
        sys.stderr.write(
            "WARNING: --insecure-dev: requests without an API key are let through as role engineer. "
            "For development on this machine only.\n"
        )
        return
    if not any(k.active for k in read_keys(lake.warehouse).values()):
        raise UsageError(
            "no API keys: create one with 'lakestack keys create --role engineer --source SOURCE' "
            "(or, for development on this machine, 'lakestack serve --insecure-dev')"
        )
