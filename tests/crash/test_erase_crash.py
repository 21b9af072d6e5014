"""`lakestack erase` killed with SIGKILL at each of its commit steps, then run again: the subject is
gone from every table and its email from the token vault, no other row changed, and no data file
outside a live snapshot is left on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from erase_support import data_files, digest, holds, lake_rows, live_files, project
from lake_support import cli
from lakestack import failpoints

pytestmark = [pytest.mark.crash, pytest.mark.integration, pytest.mark.slow]

ENV = {"LAKESTACK_MASKING_KEY": "erase-crash-key"}
POLICIES = """\
hash_key: {secret: LAKESTACK_MASKING_KEY}
roles:
  support:
    grants: [{datasets: [silver.*, gold.*]}]
    masking: {email: tokenize}
"""
# (failpoint spec, customer erased at it): a different customer each time, on one lake. The vault
# is rewritten first, then Bronze to Gold: @1 is the vault's commit, @2 bronze.customers'
POINTS = [
    ("erase.rewrite.after_write", "C100001"),
    ("erase.rewrite.after_commit", "C100008"),
    ("erase.rewrite.after_commit@2", "C100002"),
    ("erase.seal.after_commit", "C100003"),
    ("erase.before_expire", "C100004"),
    ("maintain.expire.after_commit", "C100005"),
    ("maintain.delete_file@2", "C100006"),
    ("erase.receipt.before_commit", "C100011"),
]


# Delta (ADR 38) has no manifests to seal: its expiry is vacuum (maintain.expire.*) and the log
# files before the erasure deleted (maintain.delete_file)
DELTA_POINTS = [(p, s) for p, s in POINTS if not p.startswith("erase.seal.")]


@pytest.mark.parametrize("table_format", ["iceberg", "delta"])
def test_erase_killed_at_each_step_then_run_again_erases_exactly_the_subject(tmp_path: Path, table_format: str) -> None:
    if table_format == "delta":
        pytest.importorskip("deltalake")
    root = project(tmp_path / "nw", table_format)
    (root / "policies.yaml").write_text(POLICIES, encoding="utf-8")
    assert cli(root, "run", **ENV).returncode in (0, 4)
    assert cli(root, "policies", "vault", **ENV).returncode == 0
    log = tmp_path / "hits.log"
    for point, subject in POINTS if table_format == "iceberg" else DELTA_POINTS:
        before = lake_rows(root)
        emails = [r["email"] for r in before["silver.customers"] if r["customer_id"] == subject]
        assert emails, (point, subject, "not in silver.customers")
        email = emails[0]
        assert email in {r["value"] for r in before["_lakestack.token_vault"]}
        name, _, hit = point.partition("@")
        spec = f"{name}=kill" + (f"@{hit}" if hit else "")
        log.unlink(missing_ok=True)
        crashed = cli(
            root,
            "erase",
            "--subject",
            f"customer_id={subject}",
            LAKESTACK_FAILPOINTS=spec,
            LAKESTACK_FAILPOINTS_LOG=str(log),
            **ENV,
        )
        assert crashed.returncode == -9, (point, crashed.stdout, crashed.stderr)
        assert failpoints.hits(str(log)) == [name]
        again = cli(root, "erase", "--subject", f"customer_id={subject}", **ENV)
        assert again.returncode == 0, (point, again.stderr)
        after = lake_rows(root)
        for dataset, rows in before.items():
            if dataset == "_lakestack.token_vault":
                continue
            others = [r for r in rows if not holds(r, {subject})]
            assert digest(after[dataset]) == digest(others), (point, dataset)
        assert email not in {r["value"] for r in after["_lakestack.token_vault"]}, point
        # no data file outside a live snapshot: the old files are deleted, and those a killed rewrite
        # wrote (every row of the files it replaced but the subject's) are cleaned up by the rerun
        assert data_files(root) <= live_files(root), point
