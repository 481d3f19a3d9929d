"""`vinci validate [SPEC]`: check a spec without building it."""

from __future__ import annotations

import argparse

from engine.spec.load import load_spec
from engine.spec.locate import find_spec


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", help="spec file or its directory (default: ./vinci.yaml)")


def run(args: argparse.Namespace) -> int:
    spec = load_spec(find_spec(args.spec))
    print(f"{spec.display_path}: ok ({len(spec.layers)} layers)")
    return 0
