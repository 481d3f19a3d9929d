"""`vinci push`: build a spec from the cache (nothing is rebuilt that is cached) and push it
to the spec's `image`, or to `--image`, under each `--tag`."""

from __future__ import annotations

import argparse
import json

from engine.cli.args import add_build_args, add_platform_args, build_options
from engine.cli.attestargs import add_attest_args, attach_pushed
from engine.cli.progress import Progress
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
    add_attest_args(p, writes=False)
    add_platform_args(p)


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
    attached = (
        attach_pushed(args, result, target[0], store, options, cancel, spec) if args.attach else []
    )
    if args.json:
        data = result.to_json()
        data["push"] = pushed.to_json()
        if attached:
            data["referrers"] = [dict(r.to_json(), indexed=how) for r, how in attached]
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(pushed.digest)
    return 0
