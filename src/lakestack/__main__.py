"""`python -m lakestack` runs the command line."""

from lakestack.cli.app import main

main()
