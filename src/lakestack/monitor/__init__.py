"""Watching the lake: SLA evaluation (`sla.py`), alerts and their sinks (`alerts.py`), metrics and
their sinks (`metrics.py`: Prometheus, CloudWatch).

May import `storage`, `engine` and the domain; `pipeline` wires it (DESIGN.md, package layout).
"""
