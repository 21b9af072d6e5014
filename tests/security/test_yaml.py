"""Hostile YAML in every kind of project file: alias bombs, recursive aliases, deep nesting, Python
tags, huge files and endless pseudo-files. Each ends in exit 2 naming the file (and line), in bounded
memory and time, with no traceback and nothing written to the lake."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lakestack._yaml import MAX_ALIAS_VALUES, MAX_PROJECT_BYTES, MAX_YAML_BYTES
from security_support import lake_fingerprint, run_capped

# Address space, not memory in use: pyarrow maps ~300 MB on import, and with pandas installed (the
# spark extra needs it) pyarrow imports it too, ~470 MB before the first contract is read. An alias
# bomb unbounded takes 1.7 GB and more, so 1 GiB still shows the loader bounded.
MEMORY_MB = 1024
BOUND_S = 60  # the unbounded loader ran past 120 s and 1.7 GB on the first case


def billion_laughs(levels: int = 9) -> str:
    """Nine levels of nine aliases: 9**9 (387 million) strings once expanded, from 700 bytes."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def _project_file(project: Path, extra: str) -> None:
    path = project / "lakestack.yaml"
    path.write_text(path.read_text() + extra)


def _open_lake(project: Path) -> None:
    """Create the (empty) catalog and run lock, as commands that load models or checks open them first."""
    assert run_capped("build", cwd=project, memory_mb=MEMORY_MB).code == 0


def _refused(project: Path, *args: str, expect: str, file: str) -> str:
    before = lake_fingerprint(project)
    started = time.monotonic()
    out = run_capped(*args, cwd=project, memory_mb=MEMORY_MB, timeout=BOUND_S + 60)
    assert time.monotonic() - started < BOUND_S
    assert out.code == 2, out.output
    assert file in out.stderr and expect in out.stderr, out.output
    assert "internal error" not in out.output
    assert lake_fingerprint(project) == before
    return out.stderr


HOSTILE = {
    "alias bomb": (billion_laughs(), f"expand to more than {MAX_ALIAS_VALUES:,} values"),
    "recursive alias": ("loop: &loop [1, *loop]\n", "recursive alias"),
    "recursive mapping": ("loop: &loop {again: *loop}\n", "recursive alias"),
    "python name tag": ("description: !!python/name:os.system\n", "YAML tag '!!python/name:os.system' is not allowed"),
    "python object tag": (
        "description: !!python/object/apply:os.system [echo owned]\n",
        "YAML tag '!!python/object/apply:os.system' is not allowed",
    ),
    "local tag": ("description: !include /etc/passwd\n", "YAML tag '!include' is not allowed"),
    "deep nesting": ("deep: " + "[" * 2000 + "]" * 2000 + "\n", "nest"),  # libyaml: "nesting depth"
    "huge integer": ("deep: " + "7" * 100_000 + "\n", "invalid value"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_project_file_is_a_clear_error(project: Path, case: str) -> None:
    text, expect = HOSTILE[case]
    _project_file(project, text)
    message = _refused(project, "status", expect=expect, file="lakestack.yaml")
    if case not in ("deep nesting",):  # the parser's own recursion gives no line
        assert "lakestack.yaml:" in message


def test_python_tag_in_json_mode_is_exit_2_with_the_line(project: Path) -> None:
    _project_file(project, "description: !!python/name:os.system\n")
    out = run_capped("status", "--json", cwd=project, memory_mb=MEMORY_MB)
    assert out.code == 2, out.output
    import json

    problem = json.loads(out.stdout)
    assert (problem["file"], problem["line"], problem["exit_code"]) == ("lakestack.yaml", 9, 2)


def test_alias_bomb_in_a_contract(project: Path) -> None:
    path = project / "contracts" / "orders.v1.yaml"
    path.write_text(path.read_text() + billion_laughs())
    _refused(project, "status", expect="aliases (*name) expand", file="contracts/orders.v1.yaml:")


def test_alias_bomb_in_a_checks_file(project: Path) -> None:
    _open_lake(project)
    (project / "checks").mkdir()
    (project / "checks" / "orders.yaml").write_text("dataset: bronze.orders\n" + billion_laughs())
    _refused(project, "check", expect="aliases (*name) expand", file="checks/orders.yaml:")


def test_alias_bomb_and_tags_in_a_gold_model_header(project: Path) -> None:
    _open_lake(project)
    folder = project / "models" / "gold"
    folder.mkdir(parents=True)
    header = "/* ---\n" + billion_laughs() + "--- */\nSELECT 1 AS one\n"
    (folder / "bomb.sql").write_text(header)
    _refused(project, "build", expect="aliases (*name) expand", file="models/gold/bomb.sql:")
    (folder / "bomb.sql").write_text("\n/* ---\nmaterialized: full\nowner: !!python/name:os.system\n--- */\nSELECT 1\n")
    message = _refused(project, "build", expect="is not allowed", file="models/gold/bomb.sql:4")
    assert "!!python/name:os.system" in message


def test_alias_bomb_in_a_model_sidecar(project: Path) -> None:
    _open_lake(project)
    folder = project / "models" / "gold"
    folder.mkdir(parents=True)
    (folder / "m.sql").write_text("SELECT 1 AS one\n")
    (folder / "m.yaml").write_text(billion_laughs())
    _refused(project, "build", expect="aliases (*name) expand", file="models/gold/m.yaml:")


def test_project_file_over_its_size_limit(project: Path) -> None:
    _project_file(project, "# padding\n" * (MAX_PROJECT_BYTES // 10 + 1))
    _refused(project, "status", expect="larger than 1 MiB", file="lakestack.yaml")


def test_contract_over_its_size_limit(project: Path) -> None:
    path = project / "contracts" / "orders.v1.yaml"
    path.write_text(path.read_text() + "#" * MAX_YAML_BYTES + "\n")
    _refused(project, "status", expect="larger than 10 MiB", file="contracts/orders.v1.yaml")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_project_file_linked_to_an_endless_device(project: Path) -> None:
    (project / "lakestack.yaml").unlink()
    os.symlink("/dev/zero", project / "lakestack.yaml")
    _refused(project, "status", expect="not a regular file", file="lakestack.yaml")


def test_contract_that_is_a_pipe_does_not_block(project: Path) -> None:
    path = project / "contracts" / "orders.v1.yaml"
    path.unlink()
    os.mkfifo(path)
    _refused(project, "status", expect="orders", file="contracts/orders.v1.yaml")  # skipped, not read: no hang


def test_plain_aliases_within_the_limit_still_work(project: Path) -> None:
    """Anchors and aliases are legitimate YAML; only their expansion is bounded."""
    (project / "lakestack.yaml").write_text(
        "name: shop\n"
        "environments:\n"
        "  dev: {warehouse: ./warehouse, catalog: &cat {type: sql, uri: 'sqlite:///.lakestack/catalog.db'}}\n"
        "  stage: {warehouse: ./warehouse_stage, catalog: *cat}\n"
        "sources:\n"
        "  orders: {kind: files, landing: landing/orders, contract: orders}\n"
    )
    out = run_capped("-e", "stage", "status", "--json", cwd=project, memory_mb=MEMORY_MB)
    assert out.code == 0, out.output
    assert (project / "warehouse_stage").is_dir()


def test_json_contract_too_deep_or_too_big(project: Path) -> None:
    """Event contracts are JSON: the same size cap, and nesting that exhausts the parser is exit 2."""
    path = project / "contracts" / "clicks.v1.json"
    text = path.read_text()
    path.write_text(text[: text.rindex("}")] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    _refused(project, "status", expect="nested too deeply", file="contracts/clicks.v1.json")
    path.write_text(text + " " * MAX_YAML_BYTES)
    _refused(project, "status", expect="larger than 10 MiB", file="contracts/clicks.v1.json")
