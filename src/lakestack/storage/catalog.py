"""Opening the Iceberg catalog and warehouse an environment names."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lakestack.config import EnvironmentConfig, reveal
from lakestack.errors import ConfigError, MissingExtraError, StorageError

log = logging.getLogger(__name__)


def warehouse_uri(env: EnvironmentConfig, root: Path) -> str:
    """An absolute warehouse location: `file:///abs/path` for local folders, URIs as given."""
    location = env.warehouse
    if "://" in location:
        return location
    path = (root / location).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


def catalog_uri(env: EnvironmentConfig, root: Path) -> str:
    uri = reveal(env.catalog.uri) or "sqlite:///.lakestack/catalog.db"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = (root / uri.removeprefix("sqlite:///")).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    if uri.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + uri.split("://", 1)[1]
    return uri


def open_catalog(env: EnvironmentConfig, root: Path, name: str = "lakestack") -> Any:
    """A pyiceberg catalog for the environment (SQLite by default; PostgreSQL by URL)."""
    if env.catalog.type != "sql":
        raise ConfigError(
            f"catalog type '{env.catalog.type}' is not available yet; use type: sql (SQLite or PostgreSQL)"
        )
    uri = catalog_uri(env, root)
    if uri.startswith("postgresql"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise MissingExtraError("a PostgreSQL catalog", "postgres") from None
    from pyiceberg.catalog.sql import SqlCatalog

    props = {k: reveal(v) or "" for k, v in env.catalog.properties.items()}
    for attempt in range(3):
        try:
            catalog = SqlCatalog(name, uri=uri, warehouse=warehouse_uri(env, root), **props)
            break
        except Exception as exc:  # driver errors: translate at the boundary, without the URI (it may hold secrets)
            if "already exists" in str(exc) and attempt < 2:  # another process created the catalog tables first
                continue
            raise StorageError(f"cannot open the catalog ({type(exc).__name__}: {_first_line(exc)})") from None
    if uri.startswith("sqlite"):
        _tune_sqlite(catalog.engine)
    return catalog


def _tune_sqlite(engine: Any) -> None:
    """WAL lets readers work while a writer commits; a busy timeout waits out short locks."""
    from sqlalchemy import event, text

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    with engine.connect() as conn:
        conn.execute(text("PRAGMA journal_mode=WAL"))
        conn.execute(text("PRAGMA busy_timeout=30000"))


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else ""
