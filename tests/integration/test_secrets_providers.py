"""Secrets providers: environment variables, a private file or folder, AWS Secrets Manager (moto)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from aws_support import moto_server  # noqa: F401  (fixture)
from lakestack import _secrets
from lakestack.config import SecretRef, SecretsConfig
from lakestack.errors import ConfigError
from lakestack.secrets import AwsSecretsManagerProvider, EnvProvider, FileProvider, create_provider, install


@pytest.fixture(autouse=True)
def _default_provider() -> Iterator[None]:
    yield
    _secrets.use_provider(None)
    _secrets.forget()


def _private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_env_provider_reads_the_variable_and_names_a_missing_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_TEST_TOKEN", "tok-123456")
    assert EnvProvider().get("LS_TEST_TOKEN") == "tok-123456"
    with pytest.raises(ConfigError, match=r"secret 'LS_TEST_ABSENT' is not set .*environment variable"):
        EnvProvider().get("LS_TEST_ABSENT")


def test_a_resolved_secret_is_redacted_from_then_on(tmp_path: Path) -> None:
    install(SecretsConfig(provider="file", path="secrets.env"), tmp_path)
    _private(tmp_path / "secrets.env", "# comment\nWEBHOOK_TOKEN = 'xoxb-very-secret-9'\n")
    assert SecretRef(secret="WEBHOOK_TOKEN").resolve() == "xoxb-very-secret-9"
    assert _secrets.redact("sent with xoxb-very-secret-9 to the hook") == "sent with *** to the hook"


def test_file_provider_reads_a_folder_of_secret_files(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    _private(folder / "HMAC_KEY", "k3y-of-the-project\n")
    provider = create_provider(SecretsConfig(provider="file", path="secrets"), tmp_path)
    assert isinstance(provider, FileProvider)
    assert provider.get("HMAC_KEY") == "k3y-of-the-project"
    with pytest.raises(ConfigError, match=r"secret 'OTHER' is not set \(no file .*secrets/OTHER"):
        provider.get("OTHER")


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o666])
def test_file_provider_refuses_a_file_others_can_read_or_write(tmp_path: Path, mode: int) -> None:
    _private(tmp_path / "secrets.env", "HMAC_KEY=k3y-of-the-project\n", mode)
    with pytest.raises(ConfigError) as raised:
        FileProvider(tmp_path / "secrets.env").get("HMAC_KEY")
    message = str(raised.value)
    assert f"readable or writable by group or others (mode {mode:04o})" in message
    assert f"chmod 600 {tmp_path / 'secrets.env'}" in message
    assert "k3y-of-the-project" not in message


def test_file_provider_names_a_bad_line_without_its_value(tmp_path: Path) -> None:
    _private(tmp_path / "secrets.env", "GOOD=1234\nthis line has no equals sign s3cr3t\n")
    with pytest.raises(ConfigError, match=r"secrets.env:2: expected NAME=value") as raised:
        FileProvider(tmp_path / "secrets.env").get("GOOD")
    assert "s3cr3t" not in str(raised.value)


def test_the_file_provider_needs_a_path() -> None:
    with pytest.raises(ValueError, match="the file provider needs 'path'"):
        SecretsConfig(provider="file")


def test_aws_secrets_manager_on_moto(moto_server: str) -> None:  # noqa: F811
    import boto3

    client = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_server)
    client.create_secret(Name="lakestack/test/CATALOG_PASSWORD", SecretString="pg-pass-from-aws-77")
    config = SecretsConfig(
        provider="aws-secretsmanager", region="us-east-1", endpoint_url=moto_server, prefix="lakestack/test/"
    )
    provider = create_provider(config, Path("."))
    assert isinstance(provider, AwsSecretsManagerProvider)
    install(config, Path("."))
    assert SecretRef(secret="CATALOG_PASSWORD").resolve() == "pg-pass-from-aws-77"
    assert "pg-pass-from-aws-77" not in _secrets.redact("password pg-pass-from-aws-77")
    with pytest.raises(ConfigError, match="no secret 'lakestack/test/MISSING' in AWS Secrets Manager"):
        provider.get("MISSING")
