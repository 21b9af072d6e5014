"""The `openlineage:` block of an environment: defaults, and mistakes named at load (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakestack.config import OpenLineageConfig
from lakestack.errors import ConfigError
from lakestack.pipeline.project import Project


def _load(project: Path, block: str) -> Project:
    (project / "lakestack.yaml").write_text(
        "name: shop\nenvironments:\n  dev:\n    warehouse: ./warehouse\n    openlineage:\n" + block
    )
    return Project.load(project)


def test_defaults_write_files(project: Path) -> None:
    loaded = Project.load(project)
    config = loaded.config.environments["dev"].openlineage
    assert config == OpenLineageConfig()
    assert (config.transport, config.timeout, config.retries, config.spool_max_events) == ("file", 5.0, 3, 10_000)


def test_an_http_block_loads(project: Path) -> None:
    loaded = _load(
        project, "      transport: http\n      url: http://marquez:5000\n      api_key_secret: MARQUEZ_KEY\n"
    )
    config = loaded.config.environments["dev"].openlineage
    assert config.url == "http://marquez:5000" and config.api_key_secret == "MARQUEZ_KEY"


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("      transport: kafka\n", r"lakestack.yaml:6 \(environments.dev.openlineage.transport\): input should be"),
        (
            "      transport: http\n",
            r"lakestack.yaml:6 \(environments.dev.openlineage\): the http transport needs 'url'",
        ),
        ("      transport: http\n      url: ftp://x\n", r"lakestack.yaml:7 \(environments.dev.openlineage.url\)"),
        ("      timeout: 0\n", r"lakestack.yaml:6 \(environments.dev.openlineage.timeout\)"),
        ("      spool_max_events: -1\n", r"lakestack.yaml:6 \(environments.dev.openlineage.spool_max_events\)"),
        ("      api_key_secret: 'not a name'\n", r"lakestack.yaml:6 \(environments.dev.openlineage.api_key_secret\)"),
        ("      urll: http://x\n", r"lakestack.yaml:6 \(environments.dev.openlineage.urll\): unknown key 'urll'"),
    ],
)
def test_a_malformed_block_fails_at_load_with_file_line_and_key(project: Path, block: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        _load(project, block)
    assert caught.value.exit_code == 2


def test_the_cli_reports_a_malformed_block_with_exit_2(project: Path) -> None:
    import subprocess
    import sys

    (project / "lakestack.yaml").write_text(
        "name: shop\nenvironments:\n  dev:\n    openlineage:\n      transport: http\n      timeout: fast\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "lakestack", "-p", str(project), "status"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "lakestack.yaml:6 (environments.dev.openlineage.timeout)" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
