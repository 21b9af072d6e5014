"""The run listeners a project's environment asks for, besides the run records `Lake` always keeps.

`Lake.__init__` adds what `default_listeners` returns to its `RunEvents`. Each operational layer
(OpenLineage, metrics, alerts) contributes its listeners here, built lazily from the environment
block so that `import lakestack` stays light.
"""

from __future__ import annotations

from lakestack.pipeline.events import RunListener
from lakestack.pipeline.project import Project


def default_listeners(project: Project, environment: str) -> list[RunListener]:
    """Every listener the environment configures, in the order they hear events."""
    listeners: list[RunListener] = []
    from lakestack.pipeline.openlineage import lake_listeners  # OpenLineage: file NDJSON unless `transport: none`

    listeners += lake_listeners(project, environment)
    from lakestack.pipeline.alerting import alert_listeners  # alerts: only with an `alerts:` block

    listeners += alert_listeners(project, environment)
    from lakestack.pipeline.metrics import metrics_listeners  # metrics: only with a `metrics:` sink

    listeners += metrics_listeners(project, environment)
    return listeners
