"""Shared catalogs served by another system: AWS Glue (`type: glue`) and Iceberg REST (`type: rest`).

Both are opened with pyiceberg and asked one cheap question (list the namespaces) at once, so an
unreachable endpoint or refused credentials is one clear line (exit 3) when the lake opens, not a
traceback half-way through a run. Messages never carry the URI's user info or a credential.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from lakestack._secrets import remember_url_password
from lakestack.config import EnvironmentConfig, reveal
from lakestack.errors import ConfigError, MissingExtraError, StorageError

log = logging.getLogger(__name__)


def open_remote(env: EnvironmentConfig, name: str, store: dict[str, str]) -> Any:
    """A Glue or REST catalog; `store` holds the warehouse's FileIO properties (S3)."""
    props = {**store, **{k: reveal(v) or "" for k, v in env.catalog.properties.items()}}
    if "://" in env.warehouse:
        props.setdefault("warehouse", env.warehouse)
    if env.catalog.type == "glue":
        return _probe(_glue(env, name, props), "AWS Glue catalog", _where(env, "AWS Glue"), None)
    if env.catalog.type == "rest":
        uri = reveal(env.catalog.uri)
        if not uri:
            raise ConfigError("a REST catalog needs its URL: catalog: {type: rest, uri: https://host/...}")
        remember_url_password(uri)  # a password in the URL is redacted from every message
        return _probe(_rest(name, uri, props), "Iceberg REST catalog", _safe(uri), uri)
    raise ConfigError(f"catalog type '{env.catalog.type}' is not known (sql, glue or rest)")


def _glue(env: EnvironmentConfig, name: str, props: dict[str, str]) -> Any:
    try:
        import boto3  # type: ignore[import-untyped]  # noqa: F401
        from pyiceberg.catalog.glue import GlueCatalog
    except ImportError:
        raise MissingExtraError("an AWS Glue catalog", "aws") from None
    glue: dict[str, Any] = {"glue.max-retries": 1}  # botocore compares it with numbers
    endpoint = reveal(env.catalog.uri)
    if endpoint:
        glue["glue.endpoint"] = endpoint
    if env.s3.region:
        glue["glue.region"] = env.s3.region
    for key, ref in (
        ("glue.access-key-id", env.s3.access_key_id),
        ("glue.secret-access-key", env.s3.secret_access_key),
        ("glue.session-token", env.s3.session_token),
    ):
        value = reveal(ref)
        if value:
            glue[key] = value
    try:
        return GlueCatalog(name, **{**glue, **props})
    except Exception as exc:
        raise StorageError(f"cannot open the AWS Glue catalog: {_first_line(exc)}") from None


def _rest(name: str, uri: str, props: dict[str, str]) -> Any:
    from pyiceberg.catalog.rest import RestCatalog

    try:  # the constructor already asks the server for its configuration
        return RestCatalog(name, uri=uri, **props)
    except Exception as exc:
        raise StorageError(f"cannot reach the Iceberg REST catalog at {_safe(uri)}: {_first_line(exc, uri)}") from None


def _probe(catalog: Any, what: str, where: str, uri: str | None) -> Any:
    try:
        catalog.list_namespaces()
    except Exception as exc:
        raise StorageError(f"cannot reach the {what} at {where}: {_first_line(exc, uri)}") from None
    return catalog


def _where(env: EnvironmentConfig, default: str) -> str:
    uri = reveal(env.catalog.uri)
    return _safe(uri) if uri else f"{default} ({env.s3.region or 'default region'})"


def _safe(uri: str) -> str:
    """The URL without user info, query or fragment (they may hold credentials)."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _first_line(exc: BaseException, uri: str | None = None) -> str:
    """The error on one line, every URL in it without user info, query or fragment."""
    import re

    text = " ".join(str(exc).split()) or type(exc).__name__
    if uri:
        text = text.replace(uri, _safe(uri))
    text = re.sub(r"https?://[^\s'\"()]+", lambda m: _safe(m.group(0)), text)
    text = re.sub(r"\?[^\s'\"()]*", "?...", text)  # a query string may carry a token
    return text[:200] + ("..." if len(text) > 200 else "")
