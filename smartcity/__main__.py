"""`python -m smartcity` runs the CLI."""

from smartcity.cli import main

main()
