"""The `lakestack` command line (Typer + rich)."""
