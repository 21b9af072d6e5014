"""Landing confinement by real paths: a landing folder that is a link out of the project, files and
folders linking out, and a file or folder swapped for a link between discovery and read. Nothing
from outside lands in Bronze or quarantine; each refusal names the file and why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conftest import ORDERS_HEADER, PROJECT_FILE
from lakestack import Lake
from security_support import lake_fingerprint, run_capped

Land = Callable[[str, str, "str | bytes"], Path]
GOOD = "ORD-0001,2,9.99,USD,2026-01-01 10:00:00,ada@example.com\n"
SECRET = "ORD-9999,1,1.00,USD,2026-01-01 10:00:00,secret@outside.example\n"

PASSWD_CONTRACT = """\
source: etc
version: 1
file: {pattern: passwd, format: csv, csv: {delimiter: ":", header: false}}
strict: false
columns:
  - {name: user, type: string}
  - {name: pw, type: string}
  - {name: uid, type: string}
  - {name: gid, type: string}
  - {name: gecos, type: string}
  - {name: home, type: string}
  - {name: shell, type: string}
"""


def _ingest(project: Path, *args: str) -> dict[str, dict[str, object]]:
    out = run_capped("ingest", "--json", *args, cwd=project, timeout=180)
    assert out.code == 0, out.output
    report = json.loads(out.stdout)
    assert report["rows_in"] == report["landed"] + report["quarantined"]
    return {f["name"]: f for s in report["sources"] for f in s["files"]}


def _all_text(project: Path) -> str:
    """Everything Bronze and quarantine of orders hold, as text."""
    lake = Lake.open(project)
    parts = []
    for table in ("bronze.orders", "quarantine.orders"):
        if lake.warehouse.exists(table):
            parts.append(json.dumps(lake.read(table).to_pylist(), default=str))
    return "\n".join(parts)


def _outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir(exist_ok=True)
    (folder / "orders_20260101.csv").write_text(ORDERS_HEADER + SECRET)
    return folder


def test_landing_folder_linked_to_etc_is_refused(project: Path) -> None:
    (project / "contracts" / "etc.v1.yaml").write_text(PASSWD_CONTRACT)
    (project / "lakestack.yaml").write_text(
        PROJECT_FILE + "  etc: {kind: files, landing: landing/etc, contract: etc}\n"
    )
    os.symlink("/etc", project / "landing" / "etc")
    assert run_capped("ingest", "orders", cwd=project, timeout=120).code == 0  # the lake exists
    before = lake_fingerprint(project)
    out = run_capped("ingest", "etc", cwd=project, timeout=120)
    assert out.code == 2, out.output
    text = " ".join(out.output.split())
    assert "landing folder of source 'etc'" in text and "outside the project" in text, text
    assert "root:" not in out.output  # no line of /etc/passwd
    assert lake_fingerprint(project) == before


def test_landing_folder_linked_out_with_the_normal_contract_is_refused(project: Path, tmp_path: Path) -> None:
    landing = project / "landing" / "orders"
    landing.rmdir()
    os.symlink(_outside(tmp_path), landing)
    assert run_capped("ingest", "clicks", cwd=project, timeout=120).code == 0  # the lake exists
    before = lake_fingerprint(project)
    out = run_capped("ingest", "orders", cwd=project, timeout=120)
    assert out.code == 2 and "outside the project" in out.output, out.output
    assert lake_fingerprint(project) == before
    status = run_capped("status", cwd=project, timeout=120)  # status discovers too: the same refusal
    assert status.code == 2 and "outside the project" in status.output, status.output


def test_landing_folder_linked_inside_the_project_is_fine(project: Path, land: Land) -> None:
    real = project / "drops" / "orders"
    real.mkdir(parents=True)
    (real / "orders_20260101.csv").write_text(ORDERS_HEADER + GOOD)
    landing = project / "landing" / "orders"
    landing.rmdir()
    os.symlink(real, landing)
    assert _ingest(project, "orders")["orders_20260101.csv"]["landed"] == 1


def test_file_and_folder_links_out_are_refused_and_nothing_lands(project: Path, land: Land, tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    landing = project / "landing" / "orders"
    os.symlink(outside / "orders_20260101.csv", landing / "orders_20260102.csv")
    os.symlink(outside, landing / "sub")  # a folder link out: never walked into, refused when named
    os.symlink("/etc/passwd", landing / "orders_20260103.csv")
    land("orders", "orders_20260104.csv", ORDERS_HEADER + GOOD)
    files = _ingest(project, "orders")
    for name in ("orders_20260102.csv", "orders_20260103.csv"):
        assert files[name]["status"] == "refused" and "links outside the landing folder" in str(files[name]["reason"])
    assert "sub/orders_20260101.csv" not in files
    assert files["orders_20260104.csv"]["landed"] == 1
    named = _ingest(project, "orders", "--file", "sub/orders_20260101.csv")
    assert named["sub/orders_20260101.csv"]["status"] == "refused"
    text = _all_text(project)
    assert "secret@outside" not in text and "root:" not in text


def test_a_hard_link_is_the_same_file_and_lands(project: Path, tmp_path: Path) -> None:
    # Documented: a hard link in the landing folder is a name for the same inode, put there by
    # someone who may write there; it is read like any file (the kernel's protected_hardlinks
    # keeps others from linking files they cannot read).
    outside = _outside(tmp_path) / "orders_20260101.csv"
    os.link(outside, project / "landing" / "orders" / "orders_20260101.csv")
    assert _ingest(project, "orders")["orders_20260101.csv"]["landed"] == 1


def _ingest_paused(project: Path, log: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "LAKESTACK_FAILPOINTS": "files.before_read=sleep(4000)",
        "LAKESTACK_FAILPOINTS_LOG": str(log),
        "LAKESTACK_INGEST_WORKERS": "1",
        "NO_COLOR": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "lakestack", "ingest", "orders", "--json"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(log: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 90
    while not (log.exists() and "files.before_read" in log.read_text()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the failpoint was never reached"
        time.sleep(0.05)


def _finish(proc: subprocess.Popen[str]) -> dict[str, dict[str, object]]:
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr
    return {f["name"]: f for s in json.loads(stdout)["sources"] for f in s["files"]}


def test_a_file_swapped_for_a_link_after_discovery_is_refused_at_open(
    project: Path, land: Land, tmp_path: Path
) -> None:
    outside = _outside(tmp_path) / "orders_20260101.csv"
    path = land("orders", "orders_20260101.csv", ORDERS_HEADER + GOOD)
    log = tmp_path / "failpoints.log"
    proc = _ingest_paused(project, log)
    _wait_for(log, proc)  # hashed and about to be read: swap it for a link out
    path.unlink()
    os.symlink(outside, path)
    files = _finish(proc)
    outcome = files["orders_20260101.csv"]
    assert outcome["status"] == "rejected" and "replaced by a symbolic link" in str(outcome["reason"])
    assert "secret@outside" not in _all_text(project)


def test_a_folder_swapped_for_a_link_after_discovery_is_refused_at_open(
    project: Path, land: Land, tmp_path: Path
) -> None:
    outside = _outside(tmp_path)
    land("orders", "sub/orders_20260101.csv", ORDERS_HEADER + GOOD)
    sub = project / "landing" / "orders" / "sub"
    log = tmp_path / "failpoints.log"
    proc = _ingest_paused(project, log)
    _wait_for(log, proc)
    sub.rename(sub.with_name("_old"))  # the same file name now behind a folder link out
    os.symlink(outside, sub)
    files = _finish(proc)
    outcome = files["sub/orders_20260101.csv"]
    assert outcome["status"] == "rejected" and "a folder on its way was replaced" in str(outcome["reason"])
    assert "secret@outside" not in _all_text(project)
