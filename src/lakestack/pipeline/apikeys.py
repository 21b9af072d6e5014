"""API keys for `lakestack serve`: `_lakestack.api_keys`, hashed, append-only.

A key is `lsk_<id>_<secret>`: the id (12 hex digits) is public and names the key in lists and the
audit log; the secret (32 random bytes, URL-safe base64) is shown once, when the key is created, and
only its scrypt hash (a random 16-byte salt per key; N=2^14, r=8, p=1) is stored. Revoking appends
a row with `revoked_at`; the state of a key is the fold of its rows, so the table is never
rewritten and its history says who created and revoked what, when.

A key maps to one role (the roles of `policies.yaml`, or the defaults engineer, analyst, business),
to the stream sources it may write (`*`: every one), and to the user attributes the role's row
filters read (`region = :user.region`): a key of a role with row filters carries every attribute
they name, so each read through the API is filtered as `lakestack query --user-attr` is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lakestack.errors import UsageError

API_KEYS = "_lakestack.api_keys"
PREFIX = "lsk_"
DEFAULT_ROLES = ("engineer", "analyst", "business")
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
SCRYPT_NAME = "scrypt:n=16384,r=8,p=1"


def keys_schema() -> Any:
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("key_id", pa.string()),
            ("event", pa.string()),  # create, revoke
            ("name", pa.string()),
            ("role", pa.string()),
            ("sources", pa.list_(pa.string())),
            ("hash_scheme", pa.string()),
            ("salt", pa.binary()),
            ("hash", pa.binary()),
            ("at", ts),
            ("by", pa.string()),  # the OS user who created or revoked it
            ("attributes", pa.string()),  # JSON object: the user attributes row filters read (create rows)
        ]
    )


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored: everything but its secret."""

    key_id: str
    name: str
    role: str
    sources: tuple[str, ...]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    salt: bytes = b""
    digest: bytes = b""
    attributes: tuple[tuple[str, str], ...] = ()  # (name, value), sorted: `:user.<name>` in row filters

    @property
    def user(self) -> dict[str, str]:
        return dict(self.attributes)

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def may_write(self, source: str) -> bool:
        return "*" in self.sources or source in self.sources

    def as_json(self) -> dict[str, Any]:
        """Never the secret, the salt or the hash."""
        return {
            "key_id": self.key_id,
            "name": self.name,
            "role": self.role,
            "sources": list(self.sources),
            "attributes": self.user,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revoked_by": self.revoked_by,
            "active": self.active,
        }


def hash_secret(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=SCRYPT["n"], r=SCRYPT["r"], p=SCRYPT["p"], dklen=32)


def parse_key(presented: str) -> tuple[str, str] | None:
    """(key id, secret) of a presented key, or None when it is not shaped like one."""
    if not presented.startswith(PREFIX):
        return None
    key_id, sep, secret = presented[len(PREFIX) :].partition("_")
    if not sep or len(key_id) != 12 or not all(c in "0123456789abcdef" for c in key_id) or not secret:
        return None
    return key_id, secret


def verify(key: ApiKey, secret: str) -> bool:
    """Whether `secret` is the key's (constant-time comparison of the scrypt hashes)."""
    return hmac.compare_digest(hash_secret(secret, key.salt), key.digest)


def read_keys(warehouse: Any) -> dict[str, ApiKey]:
    """Every key by id, revoked ones included (the fold of its create and revoke rows)."""
    if not warehouse.exists(API_KEYS):
        return {}
    rows = warehouse.load(API_KEYS).scan().to_arrow().to_pylist()
    keys: dict[str, ApiKey] = {}
    for row in sorted(rows, key=lambda r: (r["at"], r["event"] != "create")):
        if row["event"] == "create":
            keys[row["key_id"]] = ApiKey(
                row["key_id"],
                row["name"],
                row["role"],
                tuple(row["sources"] or ()),
                row["at"],
                row["by"],
                salt=row["salt"],
                digest=row["hash"],
                attributes=_attributes(row.get("attributes")),
            )
        elif row["event"] == "revoke" and row["key_id"] in keys and keys[row["key_id"]].active:
            old = keys[row["key_id"]]
            keys[old.key_id] = ApiKey(
                old.key_id, old.name, old.role, old.sources, old.created_at, old.created_by, row["at"], row["by"],
                old.salt, old.digest, old.attributes,
            )  # fmt: skip
    return keys


def known_roles(lake: Any) -> list[str]:
    """The roles a key may have: the policy's (`policies.yaml` over the defaults) when the project
    has the policy layer, else the defaults."""
    policy = getattr(lake, "policy", None) if hasattr(type(lake), "policy") else None
    roles = getattr(policy, "roles", None)
    return sorted(roles) if roles else list(DEFAULT_ROLES)


def _attributes(raw: str | None) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    try:
        loaded = json.loads(raw)
    except ValueError:
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in loaded.items())) if isinstance(loaded, dict) else ()


ATTRIBUTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def needed_attributes(lake: Any, role: str) -> list[str]:
    """The user attributes the row filters of `role` read (none without a policy or filters)."""
    from lakestack.governance.policy import parse_row_filter

    policy = getattr(lake, "policy", None) if hasattr(type(lake), "policy") else None
    spec = getattr(policy, "roles", {}).get(role) if policy is not None else None
    filters = getattr(spec, "row_filters", None) or {}
    return sorted({n for predicate in filters.values() for n in parse_row_filter(predicate)[1]})


def create_key(
    lake: Any,
    role: str,
    sources: list[str],
    name: str | None,
    by: str,
    attributes: dict[str, str] | None = None,
) -> tuple[ApiKey, str]:
    """A new key for `role` that may write `sources`, read as a user with `attributes`; (the stored
    key, the full key to show once). A role whose row filters read attributes the key lacks is
    refused: such a key could read none of those datasets."""
    roles = known_roles(lake)
    if role not in roles:
        raise UsageError(f"unknown role '{role}' (roles: {', '.join(roles)})")
    attributes = dict(attributes or {})
    for attr in attributes:
        if not ATTRIBUTE_NAME.fullmatch(attr):
            raise UsageError(f"--attr {attr!r}: an attribute name is letters, digits and _ (as in :user.region)")
    missing = [n for n in needed_attributes(lake, role) if n not in attributes]
    if missing:
        raise UsageError(
            f"role '{role}' reads rows through filters on :user.{', :user.'.join(missing)}: "
            f"pass --attr {missing[0]}=VALUE"
        )
    streams = sorted(n for n, c in lake.project.config.sources.items() if c.is_stream)
    for source in sources:
        if source != "*" and source not in streams:
            raise UsageError(
                f"unknown stream source '{source}' (stream sources: {', '.join(streams) or 'none'}; *: all)"
            )
    key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_bytes(16)
    key = ApiKey(
        key_id, name or f"key-{key_id}", role, tuple(sorted(set(sources))), datetime.now(UTC), by,
        salt=salt, digest=hash_secret(secret, salt), attributes=tuple(sorted(attributes.items())),
    )  # fmt: skip
    _append(lake.warehouse, [_row(key, "create", key.created_at, by)], f"keys:create:{key_id}")
    return key, f"{PREFIX}{key_id}_{secret}"


def revoke_key(lake: Any, key_id: str, by: str) -> ApiKey:
    """Revoke a key (append a revoke row); the key as it now is. Unknown id: a usage error."""
    key_id = key_id.removeprefix(PREFIX).split("_")[0]
    keys = read_keys(lake.warehouse)
    if key_id not in keys:
        raise UsageError(f"no API key '{key_id}' (see 'lakestack keys list')")
    key = keys[key_id]
    if not key.active:
        return key
    now = datetime.now(UTC)
    _append(lake.warehouse, [_row(key, "revoke", now, by)], f"keys:revoke:{key_id}")
    return read_keys(lake.warehouse)[key_id]


def _row(key: ApiKey, event: str, at: datetime, by: str) -> dict[str, Any]:
    create = event == "create"
    return {
        "key_id": key.key_id,
        "event": event,
        "name": key.name,
        "role": key.role,
        "sources": list(key.sources),
        "hash_scheme": SCRYPT_NAME if create else None,
        "salt": key.salt if create else None,
        "hash": key.digest if create else None,
        "at": at,
        "by": by,
        "attributes": json.dumps(key.user, sort_keys=True) if create else None,
    }


def _append(warehouse: Any, rows: list[dict[str, Any]], batch_id: str) -> None:
    import pyarrow as pa

    from lakestack.failpoints import failpoint
    from lakestack.storage.warehouse import append

    schema = keys_schema()
    table = warehouse.system_table(API_KEYS, schema)
    if "attributes" not in {f.name for f in table.schema().fields}:  # a table an older lakestack made
        from pyiceberg.types import StringType

        with table.update_schema() as update:
            update.add_column("attributes", StringType(), doc="user attributes row filters read (JSON)")
    failpoint("keys.before_commit")
    append(table, pa.Table.from_pylist(rows, schema=schema), run_id=batch_id, batch_id=batch_id)
    failpoint("keys.after_commit")
