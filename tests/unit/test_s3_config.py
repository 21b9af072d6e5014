"""The `s3:` block and S3 landing folders: what the project file accepts, what FileIO and pyarrow get,
and that a key or secret never shows in a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakestack.config import EnvironmentConfig, S3Config, load_project_config
from lakestack.errors import ConfigError
from lakestack.storage.filesystems import arrow_filesystem, fileio_properties, split
from lakestack.storage.remote_catalogs import _first_line, _safe

PROJECT = """\
name: shop
environments:
  dev:
    warehouse: s3://shop-lake/wh
    s3: {{endpoint_url: 'http://127.0.0.1:9000', region: eu-west-1, access_key_id: {{secret: K}},
         secret_access_key: {{secret: S}}}}
sources:
  orders: {{kind: files, landing: '{landing}', contract: orders}}
"""


def _load(tmp_path: Path, landing: str) -> object:
    (tmp_path / "lakestack.yaml").write_text(PROJECT.format(landing=landing))
    return load_project_config(tmp_path)


@pytest.mark.parametrize("landing", ["s3://shop-lake/landing/orders", "s3://shop-lake", "landing/orders"])
def test_landing_folders_accepted(tmp_path: Path, landing: str) -> None:
    assert _load(tmp_path, landing) is not None


@pytest.mark.parametrize(
    "landing", ["s3://shop-lake/landing/../secret", "s3://Bad_Bucket/x", "s3://", "/abs/landing", "../up"]
)
def test_landing_folders_refused(tmp_path: Path, landing: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, landing)
    assert caught.value.location is not None and caught.value.location.line == 8


def test_credentials_must_be_secret_references() -> None:
    with pytest.raises(ValueError, match="access_key_id"):
        EnvironmentConfig.model_validate({"s3": {"access_key_id": "AKIAPLAINTEXT"}})


def test_fileio_and_pyarrow_get_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "AKIAEXAMPLE")
    monkeypatch.setenv("S", "shh-secret")
    s3 = S3Config.model_validate(
        {
            "endpoint_url": "http://127.0.0.1:9000",
            "region": "eu-west-1",
            "access_key_id": {"secret": "K"},
            "secret_access_key": {"secret": "S"},
        }
    )
    props = fileio_properties(s3)
    assert props["s3.endpoint"] == "http://127.0.0.1:9000" and props["s3.region"] == "eu-west-1"
    assert props["s3.access-key-id"] == "AKIAEXAMPLE" and props["s3.secret-access-key"] == "shh-secret"
    fs = arrow_filesystem(s3)
    assert fs.region == "eu-west-1"
    assert "shh-secret" not in repr(fs) and "shh-secret" not in str(s3)
    assert split("s3://bucket/a/b/") == ("bucket", "a/b")


def test_catalog_errors_lose_user_info_and_queries() -> None:
    uri = "https://alice:pa55@catalog.example:8181/api?token=t0k"
    assert _safe(uri) == "https://catalog.example:8181/api"
    text = _first_line(OSError(f"failed {uri} and url: /api?token=t0k/v1/config\nmore"), uri)
    assert "pa55" not in text and "t0k" not in text and "alice" not in text and "\n" not in text
