"""Validate OpenLineage events against the official spec files (vendored in tests/data/openlineage-spec).

The RunEvent is validated against `OpenLineage.json`; every facet is validated against the facet
file that defines its key, and must sit where that file's definition says (a run, job, dataset,
input or output facet) and name that file in its `_schemaURL`. A facet key no spec file defines
must be lakestack's own (`lakestack_*`). Nothing here restates the schema.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SPEC_DIR = Path(__file__).parent / "data" / "openlineage-spec"
# where a facet sits → the base definition its schema extends
_PLACES = {
    ("run", "facets"): "RunFacet",
    ("job", "facets"): "JobFacet",
    ("dataset", "facets"): "DatasetFacet",
    ("dataset", "inputFacets"): "InputDatasetFacet",
    ("dataset", "outputFacets"): "OutputDatasetFacet",
}


@cache
def _spec() -> tuple[Any, dict[str, Any], dict[str, tuple[str, str, str]]]:
    """(registry, the main schema, facet key → (file $id, definition name, base definition))."""
    from referencing import Registry, Resource

    main = json.loads((SPEC_DIR / "OpenLineage.json").read_text())
    resources = [(main["$id"], Resource.from_contents(main))]
    facets: dict[str, tuple[str, str, str]] = {}
    for path in sorted((SPEC_DIR / "facets").glob("*.json")):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
        for key, prop in schema.get("properties", {}).items():
            refs = [prop["$ref"]] if "$ref" in prop else [r["$ref"] for r in prop.get("anyOf", [])]
            definition = refs[0].rsplit("/", 1)[-1]
            bases = [p["$ref"] for p in schema["$defs"][definition].get("allOf", []) if "$ref" in p]
            facets[key] = (schema["$id"], definition, bases[0].rsplit("/", 1)[-1] if bases else "")
    return Registry().with_resources(resources), main, facets


def _validator(schema: dict[str, Any]) -> Any:
    from jsonschema import Draft202012Validator

    registry, _, _ = _spec()
    return Draft202012Validator(schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validate_event(event: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError (or AssertionError for a misplaced facet) if `event` is invalid."""
    _, main, facets = _spec()
    _validator(main).validate(event)
    _check_facets("run", event["run"].get("facets", {}), "facets", facets)
    _check_facets("job", event["job"].get("facets", {}), "facets", facets)
    for dataset in [*event.get("inputs", []), *event.get("outputs", [])]:
        for group in ("facets", "inputFacets", "outputFacets"):
            _check_facets("dataset", dataset.get(group, {}), group, facets)


def _check_facets(where: str, group: dict[str, Any], kind: str, known: dict[str, tuple[str, str, str]]) -> None:
    for key, body in group.items():
        if key not in known:
            assert key.startswith("lakestack_"), f"facet {key!r} is neither in the spec nor lakestack's own"
            continue
        file_id, definition, base = known[key]
        expected_base = _PLACES[(where, kind)]
        # a DatasetFacet may also sit among input facets' siblings only as the spec says
        assert base == expected_base, f"facet {key!r} ({definition}) extends {base}, not {expected_base} ({where})"
        assert body["_schemaURL"] == f"{file_id}#/$defs/{definition}", f"facet {key!r} names {body['_schemaURL']}"
        file_schema = {"$ref": file_id}
        _validator(file_schema).validate({key: body})


def facet_keys() -> set[str]:
    """Every facet key the vendored spec files define."""
    return set(_spec()[2])
