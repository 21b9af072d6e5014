"""The checked-project cache (ADR 43): the same project as a full check, invalidated by every edit
of the files it depends on, never holding a secret, and only ever slower when it cannot be used."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lakestack.errors import ConfigError, ContractError
from lakestack.pipeline import project_cache
from lakestack.pipeline.project import Project

WEBHOOK = "https://hooks.slack.com/services/T000/B000/not-a-real-hook"


def _cache(root: Path) -> Path:
    return root / project_cache.CACHE_FILE


@pytest.fixture
def initialised(project: Path) -> Path:
    (project / ".lakestack").mkdir()
    return project


def test_a_second_load_comes_from_the_cache_and_equals_a_full_check(initialised: Path) -> None:
    checked = Project.load(initialised)
    assert _cache(initialised).is_file()
    cached = Project.load(initialised)
    assert type(cached.contracts).__name__ == "_ContractsWhenAsked"  # served from the cache
    assert cached.config.model_dump() == checked.config.model_dump()  # (== also compares the private source maps)
    assert repr(cached.config) == repr(checked.config)
    assert cached.config.model_fields_set == checked.config.model_fields_set
    env = cached.config.environments["dev"]
    assert type(env.catalog) is type(checked.config.environments["dev"].catalog)
    # the contracts, loaded when asked, are the checked ones
    assert cached.contract("orders").column_names == checked.contract("orders").column_names
    assert cached.contracts.sources() == checked.contracts.sources() == ["clicks", "orders"]


def test_an_edit_of_the_project_file_is_seen_by_the_next_load(initialised: Path) -> None:
    Project.load(initialised)
    path = initialised / "lakestack.yaml"
    path.write_text(path.read_text().replace("name: shop", "name: boutique"))
    assert Project.load(initialised).name == "boutique"
    assert Project.load(initialised).name == "boutique"  # and the cache now holds the edit
    assert json.loads(_cache(initialised).read_text())["config"]["fields"]["name"] == "boutique"


def test_an_edit_that_breaks_the_project_fails_as_without_a_cache(initialised: Path) -> None:
    Project.load(initialised)
    path = initialised / "lakestack.yaml"
    path.write_text(path.read_text() + "  extra: {contract: payments}\n")
    with pytest.raises(ConfigError, match=r"lakestack.yaml:9 \(sources.extra.contract\).*'payments'"):
        Project.load(initialised)


def test_an_edit_of_a_contract_is_checked_again(initialised: Path) -> None:
    Project.load(initialised)
    contract = initialised / "contracts" / "orders.v1.yaml"
    contract.write_text(contract.read_text().replace("key: [order_id]", "key: [nope]"))
    with pytest.raises(ContractError, match="key column 'nope'"):
        Project.load(initialised)


def test_a_new_contract_file_changes_the_key(initialised: Path) -> None:
    before = project_cache.key(initialised)
    extra = initialised / "contracts" / "returns.v1.yaml"
    extra.write_text((initialised / "contracts" / "orders.v1.yaml").read_text().replace("orders", "returns"))
    assert project_cache.key(initialised) != before


def test_a_same_sized_edit_with_the_same_mtime_is_still_seen(initialised: Path) -> None:
    """The key hashes the bytes, not the file's size and time."""
    Project.load(initialised)
    path = initialised / "lakestack.yaml"
    info = path.stat()
    path.write_text(path.read_text().replace("name: shop", "name: shoq"))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert Project.load(initialised).name == "shoq"


def test_errors_found_after_a_cached_load_still_name_the_line(initialised: Path) -> None:
    from lakestack.config import locate

    Project.load(initialised)
    cached = Project.load(initialised)
    assert type(cached.contracts).__name__ == "_ContractsWhenAsked"
    where = locate(cached.config, "sources", "clicks", "contract")
    assert (where.file, where.line) == ("lakestack.yaml", 8)


def test_a_literal_where_a_secret_may_go_is_never_cached(initialised: Path) -> None:
    path = initialised / "lakestack.yaml"
    path.write_text(
        path.read_text().replace(
            "    catalog:",
            f"    alerts:\n      sinks:\n        ops: {{webhook: {{url: '{WEBHOOK}'}}}}\n    catalog:",
        )
    )
    loaded = Project.load(initialised)
    assert loaded.config.environments["dev"].alerts is not None
    assert not _cache(initialised).exists()
    assert type(Project.load(initialised).contracts).__name__ == "ContractRegistry"  # checked every time


@pytest.mark.parametrize(
    "uri",
    ["postgresql://lake:hunter2@db.internal/catalog", "postgresql://db.internal/catalog?password=hunter2"],
)
def test_a_catalog_uri_with_a_password_is_never_cached(initialised: Path, uri: str) -> None:
    path = initialised / "lakestack.yaml"
    path.write_text(path.read_text().replace('"sqlite:///.lakestack/catalog.db"', f'"{uri}"'))
    Project.load(initialised)
    assert not _cache(initialised).exists()


def test_secret_references_are_cached_as_names_only(initialised: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_HOOK", WEBHOOK)
    path = initialised / "lakestack.yaml"
    path.write_text(
        path.read_text().replace(
            "    catalog:",
            "    alerts:\n      sinks:\n        ops: {webhook: {url: {secret: SHOP_HOOK}}}\n    catalog:",
        )
    )
    Project.load(initialised)
    text = _cache(initialised).read_text()
    assert "SHOP_HOOK" in text and "hooks.slack.com" not in text
    cached = Project.load(initialised)
    sink = cached.config.environments["dev"].alerts.sinks["ops"].webhook  # type: ignore[union-attr]
    assert sink.url.resolve() == WEBHOOK  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"key": "%s", "config": {"$model": "Path", "fields": {}, "set": []}}',
        '{"key": "%s", "config": {"$model": "ProjectConfig", "fields": {"name": "x"}, "set": []}}',
        '{"key": "%s", "config": {"$model": "__class__", "fields": {}, "set": []}}',
    ],
)
def test_a_cache_that_cannot_be_used_is_only_slower(initialised: Path, content: str) -> None:
    checked = Project.load(initialised)
    key = project_cache.key(initialised)
    _cache(initialised).write_text(content % key if "%s" in content else content)
    again = Project.load(initialised)
    assert type(again.contracts).__name__ == "ContractRegistry"  # checked again, not served from the file
    assert repr(again.config) == repr(checked.config)


def test_a_project_without_a_lakestack_folder_writes_nothing(project: Path) -> None:
    Project.load(project)
    Project.load(project)
    assert not (project / ".lakestack").exists()


def test_a_cache_file_that_is_a_pipe_is_not_read(initialised: Path) -> None:
    """A copied project may carry anything at the cache's path: a FIFO would block a read for good."""
    checked = Project.load(initialised)
    _cache(initialised).unlink()
    os.mkfifo(_cache(initialised))
    again = Project.load(initialised)  # returns: the cache is refused, the project checked again
    assert type(again.contracts).__name__ == "ContractRegistry"
    assert repr(again.config) == repr(checked.config)
