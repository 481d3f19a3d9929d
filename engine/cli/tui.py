"""`vinci tui [SPEC]`: open the workbench (vinci_tui), which builds through the engine's
public API only. The one place the command line reaches the workbench."""

from __future__ import annotations

import argparse

from engine.cli.args import add_build_args, build_options
from engine.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", help="spec file or its directory (default: ./vinci.yaml)")
    p.add_argument("--no-watch", action="store_true", help="start with watch mode off")
    add_build_args(p)


def run(args: argparse.Namespace) -> int:
    try:
        from vinci_tui.app import run_workbench
    except ImportError as e:
        raise UsageError(f"the workbench is not installed: {e}") from None
    return run_workbench(args.spec, build_options(args), watch=not args.no_watch)
