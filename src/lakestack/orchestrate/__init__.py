"""Orchestration: an Airflow DAG exported from the project (`airflow.py`), and the cron scheduler
`lakestack serve` runs from the project's `schedules:` block (`scheduler.py`)."""
