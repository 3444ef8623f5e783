"""`python -m foreman.cli` runs the `foreman` command."""

from foreman.cli.main import main

main()
