"""Opening the Iceberg catalog and warehouse an environment names."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lakestack._secrets import remember_url_password
from lakestack.config import EnvironmentConfig, SecretRef, reveal
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
    remember_url_password(uri)  # a password written in the file itself is kept out of messages too
    _check_userinfo(uri, env)
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = (root / uri.removeprefix("sqlite:///")).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return "sqlite:///" + quote(str(path), safe="/")  # the URL is decoded: a folder named 'a%20b' stays so
    if uri.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + uri.split("://", 1)[1]
    return uri


def open_catalog(env: EnvironmentConfig, root: Path, name: str = "lakestack") -> Any:
    """A pyiceberg catalog for the environment: SQLite by default, PostgreSQL by URL (`type: sql`),
    AWS Glue (`type: glue`) or an Iceberg REST server (`type: rest`); the warehouse a local folder
    or an `s3://bucket/prefix` (`storage/filesystems.py`)."""
    from lakestack.storage import filesystems

    store: dict[str, str] = {}
    if filesystems.is_object_store(env.warehouse):
        filesystems.check_reachable(env, env.warehouse, "warehouse")
        store = filesystems.fileio_properties(env.s3)
        filesystems.remember(env.s3)
    if env.catalog.type != "sql":
        from lakestack.storage.remote_catalogs import open_remote

        return open_remote(env, name, store)
    uri = catalog_uri(env, root)
    if uri.startswith("sqlite") and "://" in env.warehouse:
        log.warning(
            "the catalog is a SQLite file on this machine while the warehouse (%s) is shared: SQLite is for "
            "one machine; two hosts sharing this warehouse need a shared catalog (PostgreSQL, Glue or REST)",
            env.warehouse,
        )
    if uri.startswith("postgresql"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise MissingExtraError("a PostgreSQL catalog", "postgres") from None
    from pyiceberg.catalog.sql import SqlCatalog

    from lakestack.storage import pyiceberg_fixes

    pyiceberg_fixes.apply()
    props = {**store, **{k: reveal(v) or "" for k, v in env.catalog.properties.items()}}
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
    check_table_locations(catalog, name, warehouse_uri(env, root), uri.startswith("sqlite"))
    return catalog


def _check_userinfo(uri: str, env: EnvironmentConfig) -> None:
    """A raw '@' in a URL's user or password makes drivers split it at the wrong place (and try to
    resolve part of the password as a host): say what to do instead."""
    if uri.partition("://")[2].partition("?")[0].count("@") > 1:
        named = f"secret {env.catalog.uri.secret}" if isinstance(env.catalog.uri, SecretRef) else "catalog.uri"
        raise ConfigError(
            f"the catalog URL ({named}) has more than one '@': percent-encode '@' in the user name or "
            "password as %40 (and '/' as %2F, ':' as %3A, '%' as %25)"
        )


def check_table_locations(catalog: Any, name: str, warehouse: str, local_catalog: bool) -> None:
    """Refuse a catalog whose tables live outside this environment's warehouse.

    The catalog stores absolute locations, so a project copied or moved with its catalog
    (`cp -a nw nw_copy`) would read and write the original's tables: ingesting into the copy added
    files under `nw/warehouse/`. One indexed query on the catalog's own table (no table metadata is
    read); it applies when either side is a local path, where copies happen.
    """
    from sqlalchemy import text

    prefix = warehouse.rstrip("/") + "/"
    try:
        with catalog.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT table_namespace, table_name, metadata_location FROM iceberg_tables "
                    "WHERE catalog_name = :name"
                ),
                {"name": name},
            ).fetchall()
    except Exception as exc:  # a catalog schema pyiceberg has not created: nothing to check
        log.debug("table locations not checked: %s", _first_line(exc))
        return
    for namespace, table, location in rows:
        location = str(location or "")
        if location.startswith(prefix) or not (location.startswith("file:") or warehouse.startswith("file:")):
            continue
        if location.startswith("file:") and _real_uri(location).startswith(prefix):
            continue  # the old path is a link to this warehouse (a project moved, its old path linked)
        raise ConfigError(_moved_message(f"{namespace}.{table}", location, warehouse, local_catalog))


def _real_uri(location: str) -> str:
    import os
    from urllib.parse import unquote, urlsplit

    return Path(os.path.realpath(unquote(urlsplit(location).path))).as_uri()


def _moved_message(table: str, location: str, warehouse: str, local_catalog: bool) -> str:
    where = location.split("/metadata/")[0].removeprefix("file://")
    fix = (
        "open the original project instead, or give this copy a lake of its own: delete its .lakestack/ "
        "and warehouse/ folders and ingest again (landing files are read again)"
        if local_catalog
        else "give this copy its own project name (the catalog name) or its own catalog database"
    )
    return (
        f"the catalog's table {table} lives in {where}, outside this environment's warehouse "
        f"{warehouse.removeprefix('file://')}: the project was copied or moved together with its catalog, which "
        f"stores absolute paths, so writing here would change the other lake. To fix: {fix}. "
        "See 'Copying or moving a project' in docs/security.md."
    )


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


def open_warehouse(env: EnvironmentConfig, root: Path, name: str = "lakestack") -> Any:
    """The environment's tables in its format: a `storage.warehouse.Warehouse` over the Iceberg
    catalog (`format: iceberg`, the default), or a `storage.delta.DeltaWarehouse` (`format: delta`:
    Delta tables in folders under the warehouse, no catalog; ADR 35)."""
    if env.format == "delta":
        from lakestack.storage import filesystems
        from lakestack.storage.delta import DeltaWarehouse, storage_options_for

        if not filesystems.is_object_store(env.warehouse):
            return DeltaWarehouse(warehouse_uri(env, root))
        filesystems.check_reachable(env, env.warehouse, "warehouse")
        filesystems.remember(env.s3)  # engines read the data files through it (ADR 25)
        return DeltaWarehouse(
            env.warehouse,
            storage_options_for(env.s3),
            fileio=filesystems.fileio_properties(env.s3),
            filesystem=filesystems.arrow_filesystem(env.s3),
        )
    from lakestack.storage.warehouse import Warehouse

    return Warehouse(open_catalog(env, root, name))
