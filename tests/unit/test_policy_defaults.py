"""The default roles are constants built without validation (ADR 43): they must be exactly what
validating them gives, so masking and grants behave as when they were validated at import."""

from __future__ import annotations

import pytest

from lakestack.governance.policy import DEFAULT_ROLES, Grant, RoleSpec, load_policies


@pytest.mark.parametrize("name", sorted(DEFAULT_ROLES))
def test_each_default_role_is_what_validation_gives(name: str) -> None:
    role = DEFAULT_ROLES[name]
    validated = RoleSpec.model_validate(role.model_dump(exclude_unset=True))
    assert role == validated
    assert all(type(g) is Grant for g in role.grants)
    assert validated.model_dump() == role.model_dump()


def test_the_defaults_read_as_before(tmp_path: object) -> None:
    policy = load_policies(str(tmp_path))
    assert policy.may_read("analyst", "gold.fact_sales") and not policy.may_read("analyst", "bronze.orders")
    assert policy.may_read("business", "gold.x") and not policy.may_read("business", "silver.orders")
    masking = {"email": "partial", "phone": "partial", "card": "partial", "*": "redact"}
    assert DEFAULT_ROLES["analyst"].masking == masking
    assert DEFAULT_ROLES["engineer"].unmasked == ["*"]
