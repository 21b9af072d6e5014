"""Iceberg storage: catalogs, layer namespaces, tables and checkpointed commits."""

from __future__ import annotations
