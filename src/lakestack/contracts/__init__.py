"""Contracts: the versioned schemas of sources, their Arrow mapping and record validation."""

from __future__ import annotations

from lakestack.contracts.model import Constraints, Contract, CsvOptions, Field, FileSpec
from lakestack.contracts.registry import ContractRegistry

__all__ = ["Constraints", "Contract", "ContractRegistry", "CsvOptions", "Field", "FileSpec"]
