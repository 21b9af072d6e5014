"""Data quality: check declarations, their compilation to SQL, and their verdicts (pure; no I/O)."""

from __future__ import annotations
