"""Which `lakestack serve` runs a project's schedules when several serve it.

Serve processes scale out (one per machine behind a load balancer, or a second one on the same
host while the first drains), but a schedule must fire once: two processes firing `run` every hour
would queue a second run behind the project lock, and two SLA sweeps would send every alert twice.
The process that holds the scheduler lock (`pipeline.lock.scheduler_lock`: a session advisory lock
in a PostgreSQL catalog, a `flock` in the project otherwise) is the leader and fires them; the
others stand by and try to take the lock each time a schedule is due, so one of them takes over
within a schedule's tick of the leader's death (the lock dies with its process or session).

A leader checks that its lock is still held before each firing (a PostgreSQL session can break
under it; then the server has dropped the lock and another process may hold it): a lost lock is a
step down, with a warning, never two leaders firing.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)


class Leadership:
    """`held()`: whether this process runs the schedules now (taking the lock when it is free)."""

    def __init__(self, lock: Any, command: str = "serve schedules") -> None:
        self.lock = lock
        self.command = command
        self.leading = False
        self.takeovers = 0  # times this process became the leader
        self._guard = threading.Lock()
        self._told_standby = False

    def held(self) -> bool:
        with self._guard:
            if self.leading:
                if self.lock.alive():
                    return True
                log.warning("%s: lost the scheduler lock; standing by", self.lock.what)
                self._drop()
            try:
                taken = self.lock._try(self.command)
            except Exception as exc:  # the catalog database is unreachable: no one can be sure; stand by
                log.warning("%s: cannot take the scheduler lock (%s); standing by", self.lock.what, exc)
                self._drop()
                return False
            if taken:
                self.leading, self._told_standby = True, False
                self.takeovers += 1
                log.info("%s: this process runs them", self.lock.what)
                return True
            if not self._told_standby:
                self._told_standby = True
                log.info("%s: standing by; %s", self.lock.what, self.lock.holder().describe())
            return False

    def release(self) -> None:
        with self._guard:
            self._drop()

    def _drop(self) -> None:
        self.leading = False
        try:
            self.lock.release()
        except Exception as exc:  # a broken session has no lock left to give up
            log.debug("releasing the scheduler lock: %s", exc)
