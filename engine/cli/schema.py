"""`vinci schema [--markdown]`: the spec's JSON Schema, or its key reference as Markdown."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--markdown", action="store_true", help="the key reference as Markdown")


def run(args: argparse.Namespace) -> int:
    from engine.spec import schema

    if args.markdown:
        print(schema.markdown_reference(), end="")
    else:
        print(json.dumps(schema.json_schema(), indent=2, sort_keys=True))
    return 0
