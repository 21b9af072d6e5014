"""`lakestack init --template csv|ndjson|parquet`: each project ingests at once, its sample's one bad
record quarantined; `contracts infer` on the sample drafts a contract the project loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lake_support import cli


@pytest.mark.parametrize(("template", "source"), [("csv", "orders"), ("ndjson", "events"), ("parquet", "products")])
def test_each_template_ingests_and_can_be_redrafted(tmp_path: Path, template: str, source: str) -> None:
    folder = tmp_path / "demo"
    made = cli(tmp_path, "init", "demo", "--path", str(folder), "--template", template, "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["template"] == template
    done = cli(folder, "ingest", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)["sources"]
    assert [(s["source"], s["landed"], s["quarantined"]) for s in report] == [(source, 2, 1)]

    contracts = folder / "contracts"
    for existing in contracts.iterdir():
        existing.unlink()
    drafted = cli(folder, "contracts", "infer", str(folder / "landing" / source), "-o", str(contracts))
    assert drafted.returncode == 0, drafted.stderr
    status = cli(folder, "status", "--json")  # the project loads the draft
    assert status.returncode == 0, status.stderr


def test_an_unknown_template_is_a_usage_error(tmp_path: Path) -> None:
    made = cli(tmp_path, "init", "demo", "--path", str(tmp_path / "d"), "--template", "xml")
    assert made.returncode == 2 and "unknown template 'xml'" in made.stderr
    assert not (tmp_path / "d").exists()
