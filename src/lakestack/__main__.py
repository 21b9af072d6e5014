"""`python -m lakestack` runs the command line."""

from lakestack.cli.direct import main

main()
