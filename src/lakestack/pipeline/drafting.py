"""`lakestack contracts infer`: sample landing files (ingest/sampling.py), draft a contract from the
sample (contracts/infer.py), and load the draft back through the contract loaders before anyone
writes it."""

from __future__ import annotations

import re
from pathlib import Path

from lakestack.contracts.infer import SAMPLE_ROWS, Draft, draft_contract
from lakestack.errors import UsageError


def infer_contract(path: Path, source: str | None = None, *, limit: int = SAMPLE_ROWS) -> Draft:
    """Draft a contract for the files at `path` (a file, or a landing folder)."""
    from lakestack.ingest.sampling import sample_files

    sample = sample_files(path, limit)
    if not sample.columns or sample.rows == 0:
        raise UsageError(f"no records to sample in {path}")
    return draft_contract(sample, source or _source_name(path))


def _source_name(path: Path) -> str:
    base = path.name if path.is_dir() else re.split(r"[_\-.\d]", path.name)[0]
    name = re.sub(r"[^a-z0-9_]", "_", base.lower()).strip("_")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise UsageError(f"cannot name a source after '{path.name}': give one with --source")
    return name


def check_draft(draft: Draft, display: str) -> None:
    """Load the drafted text as the project would (a draft lakestack cannot read is a bug here)."""
    import tempfile

    from lakestack.contracts.batch import load_batch_contract
    from lakestack.contracts.jsonschema import load_event_contract
    from lakestack.contracts.registry import check_contract

    load = load_event_contract if draft.kind == "event" else load_batch_contract
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / draft.file_name
        path.write_text(draft.text, encoding="utf-8")
        check_contract(load(path, draft.source, 1, display))
