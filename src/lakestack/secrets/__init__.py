"""Secrets providers: where a `{secret: NAME}` of the project file gets its value.

Each environment names one provider in its `secrets:` block (default `env`)::

    environments:
      dev:  {secrets: {provider: env}}                                  # environment variables
      ci:   {secrets: {provider: file, path: ~/.lakestack/secrets}}     # a folder of files, or one file
      prod: {secrets: {provider: aws-secretsmanager, region: eu-west-1, prefix: lakestack/prod/}}

`Lake` installs its environment's provider when it opens (`install`); every value a provider gives
is remembered by `lakestack._secrets` and redacted from every message, log record and JSON output
from then on. A missing secret is a ConfigError naming the secret and where it was looked for, never
its value. boto3 is imported only when the Secrets Manager provider first reads a secret.
"""

from __future__ import annotations

import os
import stat
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from lakestack.errors import ConfigError, MissingExtraError

PROVIDERS = ("env", "file", "aws-secretsmanager")


class SecretsProvider(ABC):
    """Gives the value of a named secret; raises ConfigError when it has none."""

    name: str = ""

    @abstractmethod
    def get(self, name: str) -> str:
        """The value of secret `name` (never log it)."""


class EnvProvider(SecretsProvider):
    """Environment variables: `{secret: CATALOG_URL}` is `$CATALOG_URL`."""

    name = "env"

    def get(self, name: str) -> str:
        value = os.environ.get(name)
        if value is None:
            raise ConfigError(f"secret '{name}' is not set (expected an environment variable of that name)")
        return value


class FileProvider(SecretsProvider):
    """A folder with one file per secret (named after it, the value its content without the final
    newline: Docker and Kubernetes secrets), or one file of `NAME=value` lines (`#` comments).

    A file readable or writable by group or others is refused: a secret kept there is not secret."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines: dict[str, str] | None = None

    def get(self, name: str) -> str:
        if self.path.is_dir():
            file = self.path / name
            if not file.is_file():
                raise ConfigError(f"secret '{name}' is not set (no file {file} in the secrets folder)")
            return _read_private(file).removesuffix("\n").removesuffix("\r")
        if not self.path.is_file():
            raise ConfigError(f"the secrets file {self.path} does not exist (secrets: path)")
        if self._lines is None:
            self._lines = _parse_lines(self.path, _read_private(self.path))
        if name not in self._lines:
            raise ConfigError(f"secret '{name}' is not set (no line '{name}=...' in {self.path})")
        return self._lines[name]


class AwsSecretsManagerProvider(SecretsProvider):
    """AWS Secrets Manager through boto3 (`pip install 'lakestack[aws]'`): the secret id is
    `prefix + NAME`; its SecretString (or UTF-8 SecretBinary) is the value. Credentials come from
    boto3's own chain, never from the project file. Values are cached for the process."""

    name = "aws-secretsmanager"

    def __init__(self, region: str | None = None, endpoint_url: str | None = None, prefix: str = "") -> None:
        self.region, self.endpoint_url, self.prefix = region, endpoint_url, prefix
        self._client: Any = None
        self._cache: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> str:
        with self._lock:
            if name not in self._cache:
                self._cache[name] = self._fetch(name)
            return self._cache[name]

    def _fetch(self, name: str) -> str:
        try:
            import boto3  # type: ignore[import-untyped]
            from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
        except ImportError as exc:
            raise MissingExtraError("the aws-secretsmanager secrets provider", "aws") from exc
        secret_id = self.prefix + name
        try:
            if self._client is None:
                self._client = boto3.client("secretsmanager", region_name=self.region, endpoint_url=self.endpoint_url)
            answer = self._client.get_secret_value(SecretId=secret_id)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            if code == "ResourceNotFoundException":
                raise ConfigError(
                    f"secret '{name}' is not set (no secret '{secret_id}' in AWS Secrets Manager{self._where()})"
                ) from None
            raise ConfigError(f"AWS Secrets Manager refused secret '{secret_id}'{self._where()}: {code}") from None
        except BotoCoreError as exc:
            where = self._where()
            raise ConfigError(f"AWS Secrets Manager could not give secret '{secret_id}'{where}: {exc}") from None
        if answer.get("SecretString") is not None:
            return str(answer["SecretString"])
        return bytes(answer.get("SecretBinary") or b"").decode("utf-8")

    def _where(self) -> str:
        parts = [f"region {self.region}" if self.region else "", self.endpoint_url or ""]
        text = ", ".join(p for p in parts if p)
        return f" ({text})" if text else ""


def create_provider(config: Any, root: Path) -> SecretsProvider:
    """The provider an environment's `secrets:` block (a `config.SecretsConfig`) names; a relative
    `path` is relative to the project folder, `~` is the user's home."""
    if config.provider == "file":
        path = Path(os.path.expanduser(config.path))
        return FileProvider(path if path.is_absolute() else root / path)
    if config.provider == "aws-secretsmanager":
        return AwsSecretsManagerProvider(config.region, config.endpoint_url, config.prefix)
    return EnvProvider()


def install(config: Any, root: Path) -> SecretsProvider:
    """Make the environment's provider the one `{secret: NAME}` resolves through in this process."""
    from lakestack._secrets import use_provider

    provider = create_provider(config, root)
    use_provider(provider)
    return provider


def _read_private(path: Path) -> str:
    if os.name == "posix":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"the secrets file {path} is readable or writable by group or others (mode {mode:04o}); "
                f"make it private: chmod 600 {path}"
            )
    return path.read_text(encoding="utf-8")


def _parse_lines(path: Path, text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, value = stripped.partition("=")
        if not sep or not name.strip().replace("_", "a").isalnum():
            raise ConfigError(f"{path}:{number}: expected NAME=value (the value is not shown)")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[name.strip()] = value
    return out
