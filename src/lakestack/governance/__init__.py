"""Governance: who may read which datasets and columns, and how PII is masked for them.

Pure values and functions (no engine, no table format): :mod:`lakestack.governance.policy` reads
`policies.yaml` (or the built-in defaults) into a :class:`~lakestack.governance.policy.Policy` and
resolves a role's :class:`~lakestack.governance.policy.TableAccess` to one table;
:mod:`lakestack.governance.masking` turns that into sqlglot expressions (the sandbox applies them)
and into Python values (samples recorded as JSON).
"""
