"""OpenLineage: run events built from job runs, and column lineage of Gold models (pure; no I/O).

The listener that sends them is `lakestack.pipeline.openlineage`.
"""

from __future__ import annotations

from lakestack.lineage.columns import ColumnLineage, Transformation, column_lineage
from lakestack.lineage.events import FACETS, SCHEMA_URL, EventContext, Root, model_lineage, run_event

__all__ = [
    "FACETS",
    "SCHEMA_URL",
    "ColumnLineage",
    "EventContext",
    "Root",
    "Transformation",
    "column_lineage",
    "model_lineage",
    "run_event",
]
