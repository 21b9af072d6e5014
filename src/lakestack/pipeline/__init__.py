"""The pipeline façade: plans and runs ingest → gate → silver → gate → gold."""

from __future__ import annotations
