"""`vinci push`: build a spec from the cache (nothing is rebuilt that is cached) and push it
to the spec's `image`, or to `--image`, under each `--tag`."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from engine.cli.args import Progress, add_build_args, build_options
from engine.cli.attestargs import add_attest_args

if TYPE_CHECKING:
    from engine.builder.result import BuildResult
    from engine.cache.store import BlobStore
    from engine.events import CancelToken
    from engine.oci.reference import ImageReference
    from engine.registry.referrers import Referrer
from engine.cli.registryargs import (
    add_push_arguments,
    apply_registry_options,
    push_built,
    push_target,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", help="spec file or its directory (default: ./vinci.yaml)")
    add_push_arguments(p, for_build=False)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    add_build_args(p)
    p.add_argument(
        "--attach",
        action="store_true",
        help="also push the image's SBOMs and provenance as OCI 1.1 referrers (formats: "
        "--sbom, else the spec's `sbom:`, else both; provenance unless --sbom alone is given)",
    )
    add_attest_args(p, writes=False)


def run(args: argparse.Namespace) -> int:
    from engine.builder.run import build_spec, open_spec
    from engine.cache.store import BlobStore
    from engine.cli import signals

    apply_registry_options(args)
    spec = open_spec(args.spec)
    target = push_target(args, spec)
    progress = Progress(args)
    # The same image `vinci build` makes: vinci.lock beside the spec applies here too.
    options = build_options(args)
    try:
        cancel = signals.token()
        result = build_spec(spec, options, sink=progress.sink, cancel=cancel)
        store = BlobStore(options.cache_dir)
        pushed = push_built(args, target, result, store, progress.display, cancel)
    finally:
        progress.finish()
    attached = _attach(args, result, target[0], store, cancel) if args.attach else []
    if args.json:
        data = result.to_json()
        data["push"] = pushed.to_json()
        if attached:
            data["referrers"] = [dict(r.to_json(), indexed=how) for r, how in attached]
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(pushed.digest)
    return 0


def _attach(
    args: argparse.Namespace,
    result: BuildResult,
    target: ImageReference,
    store: BlobStore,
    cancel: CancelToken | None,
) -> list[tuple[Referrer, str]]:
    import sys

    from engine.attest.attach import attach
    from engine.cli.attestargs import attestations, sbom_formats

    formats = sbom_formats(args, result.spec.sbom) or ("spdx", "cyclonedx")
    provenance = args.provenance or args.sbom is None
    docs = attestations(result, formats, provenance, cancel)
    attached = attach(result, docs, target, store, apply_registry_options(args), cancel)
    if not (args.quiet or args.json):
        for entry, how in attached:
            where = "referrers API" if how == "api" else f"tag {how}"
            print(f"attached {entry.artifact_type} {entry.digest} ({where})", file=sys.stderr)
    return attached
