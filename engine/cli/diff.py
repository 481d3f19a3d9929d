"""`vinci diff A B`: why two images differ, from the manifest down to one file's header.

A and B are each a spec (built on the fly through the cache), an OCI layout, an OCI or docker
archive, or a registry reference (engine/sources/image.py says how an argument is read). Exit
status: 0 when the images are identical, 1 when they differ or when something failed (an
error is one `vinci:` line on stderr).
"""

from __future__ import annotations

import argparse
import json

from engine.cli.args import add_build_args, build_options
from engine.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A", help="spec, OCI layout, archive or registry reference")
    p.add_argument("b", metavar="B", help="the image to compare A with")
    p.add_argument("--json", action="store_true", help="print the diff as JSON")
    p.add_argument("--no-files", action="store_true", help="stop at layers: do not compare files")
    p.add_argument("--all", action="store_true", help="list every file (default: first 50)")
    p.add_argument("--changes-only", action="store_true", help="do not list unchanged layers")
    p.add_argument(
        "--platform",
        default="linux/amd64",
        metavar="OS/ARCH[/VARIANT]",
        help="image to read from a multi-platform layout or registry index (default linux/amd64)",
    )
    add_build_args(p)
    from engine.cli.registryargs import add_registry_arguments

    add_registry_arguments(p)


def run(args: argparse.Namespace) -> int:
    from engine.builder.result import BuildResult
    from engine.builder.run import build_platform
    from engine.cache.store import BlobStore
    from engine.compare import diff_images, open_side, render
    from engine.oci.descriptor import Platform
    from engine.spec.model import Spec

    try:
        platform = Platform.parse(args.platform)
    except ValueError as e:
        raise UsageError(f"--platform: {e}") from None
    from engine.cli.registryargs import apply_registry_options

    apply_registry_options(args)
    options = build_options(args)
    store = BlobStore(options.cache_dir)

    def build(spec: Spec) -> BuildResult:
        # As `vinci build` would build it; a multi-platform spec's image for --platform.
        return build_platform(spec, options, platform)

    with (
        open_side(args.a, store=store, build=build, platform=platform) as a,
        open_side(args.b, store=store, build=build, platform=platform) as b,
    ):
        result = diff_images(a, b, files=not args.no_files)
    if args.json:
        print(json.dumps(result.to_json(), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print(
            render(result, 0 if args.all else 50, unchanged=not args.changes_only),
            end="",
        )
    return 0 if result.identical else 1
