"""Object stores (S3 and S3-compatible endpoints) for warehouses and landing folders.

One environment's `s3:` block (`config.S3Config`) gives the endpoint, region and credentials (secret
references). From it come pyiceberg's FileIO properties (the catalog writes and reads table files
through pyarrow's S3 filesystem), a pyarrow `S3FileSystem` for landing folders, and the filesystem
DuckDB reads planned data files through: DuckDB cannot load its httpfs extension here (nothing is
downloaded), so the pyarrow filesystem is wrapped as an fsspec filesystem for the `s3` protocol and
registered on each DuckDB connection (ADR 25). The sandbox's `allowed_paths` still lists the exact
data files, so project SQL reaches no other object.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

from lakestack.config import EnvironmentConfig, S3Config, reveal
from lakestack.errors import MissingExtraError, StorageError

_lock = threading.Lock()
_registered: dict[str, Any] = {}  # protocol → the pyarrow filesystem of the store opened last


def is_object_store(location: str | None) -> bool:
    return bool(location) and str(location).startswith("s3://")


def split(location: str) -> tuple[str, str]:
    """`s3://bucket/a/b` → ("bucket", "a/b")."""
    parts = urlsplit(location)
    return parts.netloc, parts.path.strip("/")


def fileio_properties(s3: S3Config) -> dict[str, str]:
    """pyiceberg FileIO properties for the store (secrets resolved here, never logged)."""
    props: dict[str, str] = {"s3.connect-timeout": str(s3.connect_timeout_seconds)}
    if s3.endpoint_url:
        props["s3.endpoint"] = s3.endpoint_url
    if s3.region:
        props["s3.region"] = s3.region
    for key, ref in (
        ("s3.access-key-id", s3.access_key_id),
        ("s3.secret-access-key", s3.secret_access_key),
        ("s3.session-token", s3.session_token),
    ):
        value = reveal(ref)
        if value:
            props[key] = value
    return props


def arrow_filesystem(s3: S3Config, *, retries: int = 3) -> Any:
    """A pyarrow `S3FileSystem` for the store."""
    import pyarrow.fs as pafs

    options: dict[str, Any] = {
        "connect_timeout": s3.connect_timeout_seconds,
        "request_timeout": max(30.0, s3.connect_timeout_seconds),
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=retries),
    }
    if s3.endpoint_url:
        parts = urlsplit(s3.endpoint_url)
        options["endpoint_override"] = parts.netloc
        options["scheme"] = parts.scheme
    if s3.region:
        options["region"] = s3.region
    key, secret, token = reveal(s3.access_key_id), reveal(s3.secret_access_key), reveal(s3.session_token)
    if key and secret:
        options["access_key"], options["secret_key"] = key, secret
        if token:
            options["session_token"] = token
    return pafs.S3FileSystem(**options)


def check_reachable(env: EnvironmentConfig, location: str, what: str) -> Any:
    """The store's filesystem once its bucket answers; else one clear line (exit 3) naming the
    endpoint and bucket, never a credential."""
    fs = arrow_filesystem(env.s3, retries=1)
    bucket, _ = split(location)
    import pyarrow.fs as pafs

    try:
        info = fs.get_file_info(bucket)
    except Exception as exc:  # pyarrow's OSError carries the AWS error text, not the keys
        raise StorageError(
            f"cannot reach the {what} {location} at {env.s3.endpoint_url or 'AWS S3'}: {_reason(exc)}"
        ) from None
    if info.type == pafs.FileType.NotFound:
        raise StorageError(
            f"the bucket '{bucket}' of the {what} {location} does not exist at {env.s3.endpoint_url or 'AWS S3'}"
            " (or these credentials may not see it): create it, or fix the URL"
        )
    from lakestack.config import SecretRef

    for ref in (env.s3.access_key_id, env.s3.secret_access_key, env.s3.session_token):
        if isinstance(ref, SecretRef):
            ref.resolve()  # remembered: redacted from every message
    return fs


def remember(s3: S3Config) -> None:
    """Make the store readable by DuckDB connections created from now on (`attach`)."""
    fs = arrow_filesystem(s3)
    with _lock:
        _registered["s3"] = fs


def attach(con: Any) -> None:
    """Register the object stores opened in this process on a DuckDB connection (before any lock)."""
    with _lock:
        stores = dict(_registered)
    for protocol, fs in stores.items():
        con.register_filesystem(_wrapper(protocol, fs))


def _wrapper(protocol: str, fs: Any) -> Any:
    try:
        from fsspec.implementations.arrow import ArrowFSWrapper  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - fsspec comes with the aws extra
        raise MissingExtraError("reading an S3 warehouse with DuckDB", "aws") from None

    class ObjectStore(ArrowFSWrapper):  # type: ignore[misc]
        """pyarrow's filesystem under the protocol DuckDB sees in the data file paths."""

        cachable = False

    ObjectStore.protocol = (protocol,)
    return ObjectStore(fs)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    for marker in ("error code: ", "AWS Error "):
        if marker in text:
            text = text[text.index(marker) :]
            break
    return (text[:200] + "...") if len(text) > 200 else text or type(exc).__name__
