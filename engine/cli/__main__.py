"""`python -m engine.cli` runs the vinci command line, exactly as the `vinci` command does."""

from engine.cli.main import run

run()
