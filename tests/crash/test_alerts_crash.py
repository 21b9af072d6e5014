"""Alert state killed at its commit: before it, nothing was recorded or sent and the next process
alerts; after it, the change is recorded and not sent (at most once), the incident stays open,
and the next re-notification carries it."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alert_support import Webhook, with_alerts
from lake_support import child_env
from lakestack import Lake, failpoints
from lakestack.pipeline.alerting import evaluate_alerts, open_incidents

pytestmark = [pytest.mark.crash, pytest.mark.integration]


def _fail_in_child(project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    code = (
        "from lakestack import Lake\nfrom lakestack.errors import RunError\n"
        f"lake = Lake.open({str(project)!r})\n"
        "try:\n    with lake.events.job('ingest', 'ingest.orders'):\n        raise RunError('disk on fire')\n"
        "except RunError:\n    pass\nlake.close()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=child_env(**env), capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(("point", "recorded"), [("alerts.before_commit", False), ("alerts.after_commit", True)])
def test_a_process_killed_at_the_alert_commit(project: Path, tmp_path: Path, point: str, recorded: bool) -> None:
    hook = Webhook()
    try:
        with_alerts(project, {"retries": 0, "renotify": "1h", "sinks": {"hook": {"webhook": {"url": hook.url}}}})
        log = tmp_path / "hits.log"
        crashed = _fail_in_child(project, LAKESTACK_FAILPOINTS=f"{point}=kill", LAKESTACK_FAILPOINTS_LOG=str(log))
        assert crashed.returncode == -9, crashed.stderr
        assert failpoints.hits(str(log)) == [point]
        assert hook.received == []  # alerts are sent after their commit
        lake = Lake.open(project)
        assert [i["key"] for i in open_incidents(lake)] == (["run:ingest.orders"] if recorded else [])

        again = _fail_in_child(project)
        assert again.returncode == 0, again.stderr
        # killed before its commit: the next process alerts; after it: the incident is open already
        assert hook.events() == ([] if recorded else [("open", "run:ingest.orders")])
        if recorded:  # the re-notification carries what the killed process did not send
            evaluate_alerts(lake, [], now=datetime.now(UTC) + timedelta(hours=1, minutes=1))
            lake.close()
            assert hook.events() == [("renotify", "run:ingest.orders")]
    finally:
        hook.stop()
