"""`vinci logout REGISTRY`: forget the saved credentials, as `docker logout` does."""

from __future__ import annotations

import argparse

from engine.cli.registryargs import add_registry_arguments, apply_registry_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("registry", metavar="REGISTRY", help="registry host, e.g. ghcr.io")
    add_registry_arguments(p)


def run(args: argparse.Namespace) -> int:
    from engine.cli.login import _registry
    from engine.registry import dockerconfig

    registry = _registry(args.registry)
    options = apply_registry_options(args)
    if dockerconfig.erase(registry, options.docker_config):
        print(f"Removed login credentials for {registry}")
    else:
        print(f"Not logged in to {registry}")
    return 0
