"""`python -m diagnose` runs the rankmap command line."""

from diagnose.cli import main

main()
