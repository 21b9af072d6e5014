"""The token vault: `_lakestack.token_vault` maps each token back to its value, for `tokenize`.

A token is deterministic (`governance.masking`), so it needs no vault to be made: queries mask by
SQL alone. The vault is what makes it reversible: `lakestack policies vault` (`refresh_vault`)
adds a row (token, PII class, value) for every distinct value of every column of a class some role
tokenizes, that is not in the vault yet, in one append commit; `detokenize` returns the values of
tokens of the classes the caller's role may detokenize (`detokenize:` in policies.yaml). A role
that may not, and a token that is not in the vault, get the same answer. The vault holds PII in
clear: it is a `_lakestack.*` table, readable only by a role granted `_lakestack.token_vault`
(the default `engineer`), and erasure (issue 13 item 8) must reach it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lakestack.failpoints import failpoint

VAULT = "_lakestack.token_vault"


@dataclass(frozen=True, slots=True)
class Detokenized:
    token: str
    value: str | None  # None: not in the vault, or the role may not detokenize its class
    pii: str | None


def vault_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("token", pa.string(), nullable=False),
            pa.field("pii", pa.string(), nullable=False),
            pa.field("value", pa.string(), nullable=False),
            pa.field("added_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    )


def refresh_vault(lake: Any) -> int:
    """Add the tokens of every tokenized value not in the vault yet; the number of rows added."""
    import pyarrow as pa

    from lakestack.engine import create_engine
    from lakestack.governance.masking import mask_value
    from lakestack.pipeline.access import table_pii
    from lakestack.storage.warehouse import append

    policy = lake.policy
    classes = policy.tokenized_classes()
    if not classes:
        return 0
    key = policy.key()
    known = _vault_rows(lake)
    found: dict[str, tuple[str, str]] = {}
    for identifier in lake.warehouse.tables():
        if identifier.startswith("_lakestack."):
            continue
        table = lake.warehouse.load(identifier)
        columns = {c: cls for c, cls in table_pii(table).items() if cls in classes or "*" in classes}
        if not columns:
            continue
        engine = create_engine(lake.env, purpose="vault")
        try:
            engine.register_table("t", table)
            for column, cls in columns.items():
                for value in _distinct_text(engine, column):
                    token = str(mask_value("tokenize", value, cls, key))
                    if token not in known:
                        found.setdefault(token, (cls, value))
        finally:
            engine.close()
    if not found:
        return 0
    now = datetime.now(UTC)
    rows = [{"token": t, "pii": cls, "value": v, "added_at": now} for t, (cls, v) in sorted(found.items())]
    schema = vault_schema()
    target = lake.warehouse.system_table(VAULT, schema)
    batch = f"vault:{now.isoformat()}"
    failpoint("vault.before_commit")
    append(target, pa.Table.from_pylist(rows, schema=schema), run_id=batch, batch_id=batch)
    failpoint("vault.after_commit")
    return len(rows)


def detokenize(lake: Any, tokens: list[str], role: str | None) -> list[Detokenized]:
    """The values of `tokens` that `role` (default: the policy's) may see; the others as None."""
    chosen = lake.policy.role(role)
    vault = _vault_rows(lake, tokens)
    out = []
    for token in tokens:
        pii, value = vault.get(token, (None, None))
        allowed = pii is not None and lake.policy.may_detokenize(chosen, pii)
        out.append(Detokenized(token, value if allowed else None, pii if allowed else None))
    return out


def _vault_rows(lake: Any, tokens: list[str] | None = None) -> dict[str, tuple[str, str]]:
    from pyiceberg.expressions import In

    if not lake.warehouse.exists(VAULT):
        return {}
    table = lake.warehouse.load(VAULT)
    scan = table.scan(row_filter=In("token", set(tokens))) if tokens else table.scan()  # type: ignore[call-arg, arg-type]
    data = scan.to_arrow()
    return {t: (p, v) for t, p, v in zip(*(data[c].to_pylist() for c in ("token", "pii", "value")), strict=True)}


def _distinct_text(engine: Any, column: str) -> list[str]:
    from sqlglot import exp

    value = exp.cast(exp.column(column, quoted=True), "varchar")
    query = (
        exp.select(exp.alias_(value, "v"))
        .distinct()
        .from_("t")
        .where(exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())))
    )
    return [str(v) for v in engine.fetch(query).column("v").to_pylist()]
