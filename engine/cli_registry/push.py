"""`vinci push`: build a spec from the cache (nothing is rebuilt that is cached) and push it
to the spec's `image`, or to `--image`, under each `--tag`."""

from __future__ import annotations

import argparse
import json

from engine.cli_registry import add_push_arguments, apply_registry_options, push_built, push_target


def add_arguments(p: argparse.ArgumentParser) -> None:
    from engine.cli import _add_build_args

    p.add_argument("spec", nargs="?", help="spec file or its directory (default: ./vinci.yaml)")
    add_push_arguments(p, for_build=False)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    _add_build_args(p)


def run(args: argparse.Namespace) -> int:
    from engine.cli import _builder, _created, _progress, find_spec
    from engine.spec import load_spec

    apply_registry_options(args)
    spec = load_spec(find_spec(args.spec))
    target = push_target(args, spec)
    progress, sink = _progress(args)
    # The same image `vinci build` makes: vinci.lock beside the spec applies here too.
    builder, _ = _builder(args, spec)
    try:
        result = builder.build(spec, sink, created=_created(args))
        pushed = push_built(args, target, result, builder.store, progress)
    finally:
        if progress is not None:
            progress.finish()
    if args.json:
        data = result.to_json()
        data["push"] = pushed.to_json()
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(pushed.digest)
    return 0
