"""`vinci copy SRC DST`: an image (or index) from one repository to another, unchanged: the
same manifest bytes, so the same digest. Blobs the destination has are skipped, blobs on the
same registry are mounted where it allows, the rest pass through the cache on disk
(engine/registry/copy.py)."""

from __future__ import annotations

import argparse
import json
import sys

from engine.cli.args import add_cache_args
from engine.cli.registryargs import add_registry_arguments, apply_registry_options
from engine.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SRC", help="image reference to copy, by tag or digest")
    p.add_argument(
        "destination",
        metavar="DST",
        help="registry/repository[:tag] to copy to (without a tag: by digest alone)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_cache_args(p)
    add_registry_arguments(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.cache.store import BlobStore
    from engine.cli import signals
    from engine.oci.reference import parse_reference
    from engine.registry.copy import copy_image

    source = parse_reference(args.source)
    destination = parse_reference(args.destination)
    if destination.digest is not None:
        raise UsageError(f"{args.destination}: a digest names content, not a destination")
    store = BlobStore(Path(args.cache_dir) if args.cache_dir else None)
    result = copy_image(source, destination, store, apply_registry_options(args), signals.token())
    if args.json:
        print(json.dumps(result.to_json(), indent=2, sort_keys=True))
        return 0
    print(
        f"copied {result.source} -> {result.destination} ({result.uploaded} uploaded, "
        f"{result.mounted} mounted, {result.skipped} already there)",
        file=sys.stderr,
    )
    print(result.digest)
    return 0
