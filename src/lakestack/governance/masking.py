"""Masking methods as sqlglot expressions (run by the sandbox) and as Python functions (JSON samples).

`hash` is HMAC-SHA256 keyed by the project's masking key, written with DuckDB's `sha256` over
blobs (`sha256(k⊕opad || unhex(sha256(k⊕ipad || value)))`), so it equals Python's
`hmac.new(key, value, sha256)` and the same value hashes the same in every table: masked columns
still join. A masked projection (:func:`masked_select`) hashes each distinct value once (ADR 20,
amendment). `partial` keeps what identifies nothing on its own (`j***@example.com`, `***1234`),
`redact` replaces a value by `***`, `null` by NULL of the column's type. `tokenize` gives
`tok_<32 hex>`: an HMAC under a key derived from the project key (so a token is not the value's
`hash`), deterministic, and reversible through the token vault (`pipeline/vault.py`) for a role
allowed to detokenize. NULL stays NULL under every method. A value is hashed as its text
(`CAST(value AS VARCHAR)`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection
from typing import Any, Literal

MaskMethod = Literal["hash", "partial", "redact", "null", "tokenize"]
METHODS: tuple[str, ...] = ("hash", "partial", "redact", "null", "tokenize")
BUILT: tuple[str, ...] = METHODS
TOKEN_PREFIX = "tok_"
REDACTED = "***"
_LAST_FOUR = frozenset({"phone", "card", "financial", "ssn", "id"})
_BLOCK = 64  # SHA-256's block size


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """The inner and outer padded keys of HMAC-SHA256 (RFC 2104)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def token_key(key: bytes) -> bytes:
    """The key tokens are made with, derived from the project key."""
    return hmac.new(key, b"lakestack-tokenize", hashlib.sha256).digest()


def mask_expression(method: str, column: Any, pii: str, key: bytes | None) -> Any:
    """`column` (a sqlglot expression) masked by `method` for a column of PII class `pii`."""
    from sqlglot import exp

    text = exp.cast(column.copy(), "varchar")
    if method == "tokenize":
        if key is None:
            raise ValueError("tokenize needs the project's masking key")
        digest = mask_expression("hash", column, pii, token_key(key))
        prefix = exp.Literal.string(TOKEN_PREFIX)
        return exp.DPipe(this=prefix, expression=exp.func("left", digest, exp.Literal.number(32)), safe=True)
    if method == "hash":
        if key is None:
            raise ValueError("hash masking needs the project's masking key")
        inner, outer = hmac_pads(key)
        first = exp.func(
            "sha256",
            exp.DPipe(this=_blob(inner), expression=exp.Anonymous(this="encode", expressions=[text]), safe=True),
        )
        return exp.func("sha256", exp.DPipe(this=_blob(outer), expression=exp.func("unhex", first), safe=True))
    if method == "partial":
        return _when_not_null(column, _partial(text, pii))
    if method == "redact":
        return _when_not_null(column, exp.Literal.string(REDACTED))
    if method == "null":  # NULL of the column's own type
        return exp.Case(ifs=[exp.If(this=exp.false(), true=column.copy())])
    raise ValueError(f"masking method '{method}' is not built")


_PER_DISTINCT = ("hash", "tokenize")  # masks costly enough to compute once per distinct value
_SOURCE = "_lakestack_src"


def masked_select(
    columns: list[tuple[str, str | None, str]],
    source: Any,
    key: bytes | None,
    where: Any,
    per_distinct: Collection[str] | None = None,
) -> Any:
    """`SELECT <columns masked> FROM source WHERE where` (sqlglot): `columns` are (name, method or
    None for clear, PII class). A `hash`/`tokenize` column named in `per_distinct` (None: every
    one) is computed once per distinct value: the rows read (`WITH src AS (…)`) are joined to
    `SELECT v, hmac(v) FROM (SELECT DISTINCT col FROM src)` (an HMAC is four SHA-256 blocks; a
    join probe is far cheaper when values repeat, dearer when they do not: see
    :func:`distinct_counts`). The result is the same value for value as masking every row (NULL
    joins nothing: stays NULL)."""
    from sqlglot import exp

    if not columns:  # a query naming none of the columns (count(*)): keep the row count
        query = exp.select(exp.alias_(exp.true(), "_row", quoted=True)).from_(source)
        return query.where(where.copy()) if where is not None else query
    costly = [
        (name, method, pii)
        for name, method, pii in columns
        if method in _PER_DISTINCT and (per_distinct is None or name in per_distinct)
    ]
    if not costly:
        projections = [
            exp.alias_(_masked(exp.column(n, quoted=True), m, p, key), n, quoted=True) for n, m, p in columns
        ]
        query = exp.select(*projections).from_(source)
        return query.where(where.copy()) if where is not None else query
    rows = exp.select(*(exp.column(n, quoted=True) for n, _, _ in columns)).from_(source)
    if where is not None:
        rows = rows.where(where.copy())
    query = exp.select().from_(exp.to_table(_SOURCE)).with_(_SOURCE, as_=rows)
    mapped: dict[str, str] = {}
    for i, (name, method, pii) in enumerate(costly):
        alias = f"_lakestack_map{i}"
        value = exp.column("v", quoted=True)
        text = exp.cast(exp.column(name, quoted=True), "varchar")  # hashed as text: equal texts, one hash
        distinct = exp.select(exp.alias_(text, "v", quoted=True)).distinct()
        mapping = exp.select(value, exp.alias_(_masked(value.copy(), method, pii, key), "h", quoted=True)).from_(
            distinct.from_(exp.to_table(_SOURCE)).subquery("d")
        )
        own = exp.cast(exp.column(name, _SOURCE, quoted=True), "varchar")
        on = exp.EQ(this=own, expression=exp.column("v", alias, quoted=True))
        query = query.with_(alias, as_=mapping).join(exp.to_table(alias), on=on, join_type="left")
        mapped[name] = alias
    projections = []
    for column, how, cls in columns:
        if column in mapped:
            value = exp.column("h", mapped[column], quoted=True)
        else:
            value = _masked(exp.column(column, _SOURCE, quoted=True), how, cls, key)
        projections.append(exp.alias_(value, column, quoted=True))
    return query.select(*projections)


def distinct_counts(names: list[str], source: Any, where: Any) -> Any:
    """`SELECT count(*), approx_count_distinct(CAST(name AS VARCHAR)), … FROM source WHERE where`:
    one cheap scan (HyperLogLog) that tells which columns repeat enough to hash per distinct value."""
    from sqlglot import exp

    counts = [exp.func("approx_count_distinct", exp.cast(exp.column(n, quoted=True), "varchar")) for n in names]
    query = exp.select(exp.func("count", exp.Star()), *counts).from_(source)
    return query.where(where.copy()) if where is not None else query


def _masked(column: Any, method: str | None, pii: str, key: bytes | None) -> Any:
    return column if method is None else mask_expression(method, column, pii, key)


def _blob(data: bytes) -> Any:
    from sqlglot import exp

    return exp.func("unhex", exp.Literal.string(data.hex()))


def _when_not_null(column: Any, value: Any) -> Any:
    from sqlglot import exp

    return exp.Case(ifs=[exp.If(this=exp.Not(this=exp.Is(this=column.copy(), expression=exp.Null())), true=value)])


def _partial(text: Any, pii: str) -> Any:
    from sqlglot import exp

    stars = exp.Literal.string(REDACTED)
    length = exp.func("length", text.copy())
    if pii in _LAST_FOUR:  # ***1234
        keep = exp.DPipe(this=stars, expression=exp.func("right", text.copy(), exp.Literal.number(4)), safe=True)
        return exp.Case(
            ifs=[exp.If(this=exp.GT(this=length, expression=exp.Literal.number(4)), true=keep)], default=stars
        )
    first = exp.func("left", text.copy(), exp.Literal.number(1))
    if pii == "email":  # j***@example.com
        at = exp.func("strpos", text.copy(), exp.Literal.string("@"))
        domain = exp.func("substr", text.copy(), at.copy())
        keep = exp.DPipe(this=exp.DPipe(this=first, expression=stars, safe=True), expression=domain, safe=True)
        return exp.Case(ifs=[exp.If(this=exp.GT(this=at, expression=exp.Literal.number(1)), true=keep)], default=stars)
    keep = exp.DPipe(this=first, expression=stars, safe=True)  # J***
    return exp.Case(ifs=[exp.If(this=exp.GT(this=length, expression=exp.Literal.number(1)), true=keep)], default=stars)


def mask_value(method: str, value: Any, pii: str, key: bytes | None) -> Any:
    """The same masks for one Python value (samples held as JSON); equal to the SQL for strings."""
    if value is None or method == "null":
        return None
    text = str(value)
    if method == "tokenize":
        if key is None:
            raise ValueError("tokenize needs the project's masking key")
        return TOKEN_PREFIX + hmac.new(token_key(key), text.encode(), hashlib.sha256).hexdigest()[:32]
    if method == "hash":
        if key is None:
            raise ValueError("hash masking needs the project's masking key")
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
    if method == "redact":
        return REDACTED
    if method != "partial":
        raise ValueError(f"masking method '{method}' is not built")
    if pii in _LAST_FOUR:
        return REDACTED + text[-4:] if len(text) > 4 else REDACTED
    if pii == "email":
        at = text.find("@")
        return text[0] + REDACTED + text[at:] if at > 0 else REDACTED
    return text[0] + REDACTED if len(text) > 1 else REDACTED
