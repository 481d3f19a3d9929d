"""`vinci diff A B`: why two images differ, from the manifest down to one file's header.

A and B are each a spec (built on the fly through the cache), an OCI layout, an OCI or docker
archive, or a registry reference (engine/sources/image.py says how an argument is read). When
either holds several platforms (a multi-platform spec, an image index) and no `--platform` is
given, each platform both hold is compared, and the platforms only one holds are named as
added or removed. Exit status: 0 when the images are identical, 1 when they differ or when
something failed (an error is one `vinci:` line on stderr).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from engine.cli.args import add_build_args, build_options
from engine.errors import UsageError

if TYPE_CHECKING:
    from engine.cache.store import BlobStore
    from engine.oci.descriptor import Platform


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A", help="spec, OCI layout, archive or registry reference")
    p.add_argument("b", metavar="B", help="the image to compare A with")
    p.add_argument("--json", action="store_true", help="print the diff as JSON")
    p.add_argument("--no-files", action="store_true", help="stop at layers: do not compare files")
    p.add_argument("--all", action="store_true", help="list every file (default: first 50)")
    p.add_argument("--changes-only", action="store_true", help="do not list unchanged layers")
    p.add_argument(
        "--platform",
        default=None,
        metavar="OS/ARCH[/VARIANT]",
        help="compare only this platform's images (default: every platform either side holds; "
        "linux/amd64 from an index when neither side names several)",
    )
    add_build_args(p)
    from engine.cli.registryargs import add_registry_arguments

    add_registry_arguments(p)


def run(args: argparse.Namespace) -> int:
    from engine.builder.result import BuildResult
    from engine.builder.run import build_platform
    from engine.cache.store import BlobStore
    from engine.cli.registryargs import apply_registry_options
    from engine.compare import diff_images, open_side, render
    from engine.oci.descriptor import Platform
    from engine.spec.model import Spec

    chosen = None
    if args.platform is not None:
        try:
            chosen = Platform.parse(args.platform)
        except ValueError as e:
            raise UsageError(f"--platform: {e}") from None
    apply_registry_options(args)
    options = build_options(args)
    store = BlobStore(options.cache_dir)

    def compare(platform: Platform) -> Any:
        def build(spec: Spec) -> BuildResult:
            # As `vinci build` would build it; a multi-platform spec's image for `platform`.
            return build_platform(spec, options, platform)

        with (
            open_side(args.a, store=store, build=build, platform=platform) as a,
            open_side(args.b, store=store, build=build, platform=platform) as b,
        ):
            return diff_images(a, b, files=not args.no_files)

    limit = 0 if args.all else 50
    if chosen is None:
        first, second = _platforms(args.a, store), _platforms(args.b, store)
        if len(first) > 1 or len(second) > 1:
            return _compare_all(args, first, second, compare, limit)
    result = compare(chosen or Platform())
    if args.json:
        print(json.dumps(result.to_json(), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print(render(result, limit, unchanged=not args.changes_only), end="")
    return 0 if result.identical else 1


def _platforms(text: str, store: BlobStore) -> tuple[Platform, ...]:
    """The platforms one side holds: a spec's, or an image's (those of its index)."""
    from engine.sources.image import image_platforms, parse_target
    from engine.spec.load import load_spec
    from engine.spec.locate import find_spec

    target = parse_target(text)
    if target.kind == "spec":
        spec = load_spec(find_spec(target.value))
        return spec.platforms or (spec.platform,)
    return image_platforms(text, store=store)


def _compare_all(
    args: argparse.Namespace,
    first: tuple[Platform, ...],
    second: tuple[Platform, ...],
    compare: Any,
    limit: int,
) -> int:
    """Every platform both sides hold, compared; those only one holds, named."""
    from engine.compare import render

    names_a, names_b = [str(p) for p in first], [str(p) for p in second]
    removed = [p for p in names_a if p not in names_b]
    added = [p for p in names_b if p not in names_a]
    common = [p for p in first if str(p) in names_b]
    results = {str(p): compare(p) for p in common}
    identical = not added and not removed and all(r.identical for r in results.values())
    if args.json:
        data = {
            "identical": identical,
            "platforms": {"added": added, "removed": removed},
            "images": {name: r.to_json() for name, r in results.items()},
        }
        print(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))
        return 0 if identical else 1
    for name in removed:
        print(f"platform {name}: only in A (removed)")
    for name in added:
        print(f"platform {name}: only in B (added)")
    for name, r in results.items():
        print(f"== {name} ==")
        print(render(r, limit, unchanged=not args.changes_only), end="")
    return 0 if identical else 1
