"""`vinci manifest REF`: the manifest (or index) a reference names, byte for byte as the
registry holds it, so `vinci manifest REF | sha256sum` is its digest. `--json` wraps it with
its digest and media type."""

from __future__ import annotations

import argparse
import json
import sys

from engine.cli.registryargs import add_registry_arguments, apply_registry_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", metavar="REF", help="image reference, by tag or digest")
    p.add_argument(
        "--json",
        action="store_true",
        help="print {digest, media_type, size, manifest} instead of the bytes",
    )
    add_registry_arguments(p)


def run(args: argparse.Namespace) -> int:
    from engine.oci.reference import parse_reference
    from engine.registry.client import RegistryClient

    ref = parse_reference(args.ref)
    with RegistryClient(ref.registry, apply_registry_options(args)) as client:
        manifest = client.get_manifest(ref.repository, ref.reference)
    if args.json:
        data = {
            "digest": str(manifest.digest),
            "media_type": manifest.media_type,
            "size": len(manifest.data),
            "manifest": json.loads(manifest.data),
        }
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    write_document(manifest.data)
    return 0


def write_document(data: bytes) -> None:
    """The bytes as they are; a newline after them only on a terminal (the digest is of the
    bytes alone)."""
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    if sys.stdout.isatty() and not data.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")
    sys.stdout.buffer.flush()
