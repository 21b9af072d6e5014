"""A secret never shows: a catalog URL given as `{secret: NAME}` whose password holds `@`, `:`, `/`
or `%` (raw or percent-encoded) fails against the real PostgreSQL server (missing role, missing
database, unresolvable host), and neither the password nor any piece of it a parser might split
off appears in stdout, stderr or the --json error. Log records are redacted the same way."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from security_support import run_capped
from tests_support import service_url

PASSWORDS = [
    "Hunt%40r2Secret",  # an encoded '@'
    "sl/ash:Col0nPart",  # raw '/' and ':'
    "pct%Zz%25Tail9",  # a raw '%' that is no escape, and an encoded one
    "Pass%2Fw0rd%3Asecret",  # encoded '/' and ':'
    "ab?cdSecret#frag",  # '?' and '#' would start a query or fragment
]


@pytest.fixture
def server() -> tuple[str, int]:
    url = urlparse(service_url("postgres", "postgresql://postgres@127.0.0.1:5432/test"))
    return url.hostname or "127.0.0.1", url.port or 5432


def forbidden(password: str) -> set[str]:
    """The password in each form and every piece of it between URL delimiters, 4+ characters."""
    forms = {password, unquote(password)}
    pieces = {p for f in forms for p in re.split(r"[@:/%?#]", f) if len(p) >= 4}
    return forms | pieces


def _project(project: Path) -> None:
    (project / "lakestack.yaml").write_text(
        f"name: shop_{uuid.uuid4().hex[:8]}\n"
        "environments:\n  dev: {warehouse: ./warehouse, catalog: {type: sql, uri: {secret: LAKE_CAT_URL}}}\n"
        "sources:\n  orders: {kind: files, landing: landing/orders, contract: orders}\n"
    )


def _assert_hidden(output: str, password: str) -> None:
    for piece in forbidden(password):
        assert piece not in output, f"{piece!r} leaked: {output}"


def _urls(host: str, port: int, password: str) -> dict[str, str]:
    return {
        "missing role": f"postgresql://nobody_{uuid.uuid4().hex[:6]}:{password}@{host}:{port}/test",
        "missing database": f"postgresql://postgres:{password}@{host}:{port}/nodb_{uuid.uuid4().hex[:6]}",
        "unresolvable host": f"postgresql://lake:{password}@no-such-host.invalid:{port}/lake",
    }


@pytest.mark.integration
@pytest.mark.parametrize("password", PASSWORDS)
def test_secret_parts_never_in_catalog_errors(project: Path, server: tuple[str, int], password: str) -> None:
    _project(project)
    for case, url in _urls(*server, password).items():
        out = run_capped("status", "--json", cwd=project, env={"LAKE_CAT_URL": url})
        assert out.code == 3, (case, out.output)
        problem = json.loads(out.stdout)
        assert problem["error"] == "StorageError" and "cannot open the catalog" in problem["message"]
        _assert_hidden(out.output, password)
    text = run_capped("status", cwd=project, env={"LAKE_CAT_URL": _urls(*server, password)["unresolvable host"]})
    assert text.code == 3 and "error: cannot open the catalog" in text.stderr
    _assert_hidden(text.output, password)


@pytest.mark.integration
def test_the_issue_url_with_a_raw_at_sign(project: Path, server: tuple[str, int]) -> None:
    """`lake:Hunt@r2Secret@host` showed `failed to resolve host 'r2Secret@127.0.0.1'`."""
    _project(project)
    host, port = server
    url = f"postgresql://lake:Hunt@r2Secret@{host}:{port}/lake"
    for args in (("status", "--json"), ("status",), ("ingest",)):
        out = run_capped(*args, cwd=project, env={"LAKE_CAT_URL": url})
        assert out.code == 2, out.output
        assert "percent-encode '@'" in out.output and "secret LAKE_CAT_URL" in out.output
        _assert_hidden(out.output, "Hunt@r2Secret")


@pytest.mark.integration
def test_a_working_secret_url_is_not_shown(project: Path, server: tuple[str, int]) -> None:
    """Trust authentication accepts any password: the lake opens and nothing echoes the secret."""
    _project(project)
    host, port = server
    password = "Ok%40Fine:Secr3t"
    url = f"postgresql://postgres:{password}@{host}:{port}/test"
    out = run_capped("status", "--json", cwd=project, env={"LAKE_CAT_URL": url})
    assert out.code == 0, out.output
    assert json.loads(out.stdout)[0]["source"] == "orders"
    _assert_hidden(out.output, password)


def test_log_records_are_redacted(tmp_path: Path) -> None:
    """What the CLI installs: every record from any logger (uvicorn's too), its arguments and
    its traceback, and Python warnings, with the resolved secret and its pieces replaced."""
    script = textwrap.dedent(
        """
        import logging, os, sys
        from lakestack._secrets import install_log_redaction
        from lakestack.config import SecretRef, reveal

        install_log_redaction()
        logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(name)s %(message)s")
        url = reveal(SecretRef(secret="LAKE_CAT_URL"))
        logging.getLogger("uvicorn.error").warning("connecting to %s", url)
        logging.getLogger("lakestack.x").info("host %s", "r2Secret@127.0.0.1")
        try:
            raise RuntimeError("failed for " + url)
        except RuntimeError:
            logging.getLogger("sqlalchemy").exception("driver said")
        import warnings
        warnings.warn("a driver warns about " + url)
        """
    )
    env = {"LAKE_CAT_URL": "postgresql://lake:Hunt%40r2Secret@db.internal:5432/lake", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "connecting to ***" in proc.stdout and "host ***@127.0.0.1" in proc.stdout
    assert "RuntimeError: failed for ***" in proc.stdout
    assert "UserWarning: a driver warns about ***" in proc.stderr
    _assert_hidden(proc.stdout + proc.stderr, "Hunt%40r2Secret")


@pytest.mark.parametrize(
    ("secret", "message", "shown"),
    [
        (
            "postgresql://lake:Hunt@r2Secret@127.0.0.1:5432/lake",
            "failed to resolve host 'r2Secret@127.0.0.1'",
            "failed to resolve host '***@127.0.0.1'",
        ),
        ("postgresql://u:p%40ssW0rd@h/db", "password p@ssW0rd or p%40ssW0rd", "password *** or ***"),
        ("postgresql://h/db?user=u&password=T0kenValue", "got T0kenValue", "got ***"),
        ("plainTokenValue", "token plainTokenValue!", "token ***!"),
        ("h=db password='S3cr:etVal'", "auth S3cr:etVal or etVal failed", "auth *** or *** failed"),
        ("127.0.0.1:9092,b2:9093", "brokers 127.0.0.1:9092 on 127.0.0.1", "brokers *** on 127.0.0.1"),
        ("postgresql://postgres@127.0.0.1/test", "role postgres", "role postgres"),  # no password: kept
        ("postgresql://lake:ab@h/db", "lakestack uses lake at h", "lakestack uses lake at h"),  # short: kept
    ],
)
def test_redaction_of_secret_values_and_their_parts(
    secret: str, message: str, shown: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakestack._secrets import forget, redact_tree
    from lakestack.config import SecretRef
    from lakestack.errors import StorageError

    monkeypatch.setenv("H5_TEST_SECRET", secret)
    assert str(StorageError(message)) == message  # nothing remembered yet
    SecretRef(secret="H5_TEST_SECRET").resolve()
    try:
        assert str(StorageError(message)) == shown
        assert redact_tree({"m": [message], message: 1}) == {"m": [shown], shown: 1}
    finally:
        forget()  # the registry is per process: leave other tests' messages alone
