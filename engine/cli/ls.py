"""`vinci ls REPO`: the tags of a registry repository, one a line (`--json`: a list)."""

from __future__ import annotations

import argparse
import json

from engine.cli.registryargs import add_registry_arguments, apply_registry_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("repository", metavar="REPO", help="registry/repository, e.g. ghcr.io/org/app")
    p.add_argument("--json", action="store_true", help="print the tags as a JSON list")
    add_registry_arguments(p)


def run(args: argparse.Namespace) -> int:
    from engine.oci.reference import parse_repository
    from engine.registry.client import RegistryClient

    ref = parse_repository(args.repository)
    with RegistryClient(ref.registry, apply_registry_options(args)) as client:
        tags = client.list_tags(ref.repository)
    if args.json:
        print(json.dumps(tags, indent=2))
    else:
        for tag in tags:
            print(tag)
    return 0
