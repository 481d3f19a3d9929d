"""`python -m engine` runs the vinci command line, exactly as the `vinci` command does."""

from engine.main import run

run()
