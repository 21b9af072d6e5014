"""lakestack: a contract-first lakehouse platform in one package.

Start with :class:`Lake`::

    from lakestack import Lake
    lake = Lake.open("my_project")
    report = lake.ingest()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Contract", "ContractRegistry", "Lake", "LakestackError", "Project", "__version__"]

if TYPE_CHECKING:
    from lakestack.contracts import Contract, ContractRegistry
    from lakestack.errors import LakestackError
    from lakestack.pipeline.lake import Lake
    from lakestack.pipeline.project import Project

_LAZY = {
    "Lake": "lakestack.pipeline.lake",
    "Project": "lakestack.pipeline.project",
    "Contract": "lakestack.contracts",
    "ContractRegistry": "lakestack.contracts",
    "LakestackError": "lakestack.errors",
}


def __getattr__(name: str) -> Any:
    """Public names import on first use, so `import lakestack` stays fast."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lakestack' has no attribute {name!r}")
