"""`vinci resolve REF`: the digest a tag names now, to pin an import-oci layer with.

Prints `registry/repository@sha256:…` (what to write in the spec); for a multi-platform
index, a second line names the manifest the spec's platform will use.
"""

from __future__ import annotations

import argparse
import json

from engine.cli.registryargs import add_registry_arguments, apply_registry_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", metavar="REF", help="image reference, e.g. docker.io/library/busybox:1")
    p.add_argument(
        "--platform",
        default="linux/amd64",
        metavar="OS/ARCH[/VARIANT]",
        help="platform whose manifest to show (default linux/amd64)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_registry_arguments(p)


def run(args: argparse.Namespace) -> int:
    from engine.oci.descriptor import Platform
    from engine.oci.reference import parse_reference
    from engine.registry.pull import resolve

    ref = parse_reference(args.ref)
    platform = Platform.parse(args.platform)
    found = resolve(ref, platform, apply_registry_options(args))
    if args.json:
        print(json.dumps(found.to_json(), indent=2, sort_keys=True))
        return 0
    print(found.pinned)
    if found.platform_manifest is not None and found.platform_manifest.digest != found.digest:
        print(f"  {platform}: {found.platform_manifest.digest}")
    return 0
