"""`vinci config REF`: the config blob of the image a reference names (from an index, the
one for --platform), byte for byte. `--json` wraps it with its digest."""

from __future__ import annotations

import argparse
import json

from engine.cli.manifest import write_document
from engine.cli.registryargs import add_registry_arguments, apply_registry_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", metavar="REF", help="image reference, by tag or digest")
    p.add_argument(
        "--platform",
        default="linux/amd64",
        metavar="OS/ARCH[/VARIANT]",
        help="the image to take from a multi-platform index (default linux/amd64)",
    )
    p.add_argument(
        "--json", action="store_true", help="print {digest, size, config} instead of the bytes"
    )
    add_registry_arguments(p)


def run(args: argparse.Namespace) -> int:
    from engine.oci.descriptor import Platform
    from engine.oci.reference import parse_reference
    from engine.registry.pull import fetch_config

    ref = parse_reference(args.ref)
    platform = Platform.parse(args.platform)
    descriptor, data = fetch_config(ref, platform, apply_registry_options(args))
    if args.json:
        out = {
            "digest": str(descriptor.digest),
            "size": descriptor.size,
            "config": json.loads(data),
        }
        print(json.dumps(out, indent=2, sort_keys=True))
        return 0
    write_document(data)
    return 0
