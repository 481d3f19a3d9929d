"""`vinci verify SPEC`: build the spec under every perturbation (engine/verify.py), each in a
fresh cache, print a verdict table, and explain any difference with `vinci diff`'s analysis.

Exit status 0 only if every build matched the baseline; 1 if any differed or failed.
`--json` prints the whole report (each build's digests, and for a mismatch its diff).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.cli.args import add_image_args, build_options, positive
from engine.cli.registryargs import add_registry_arguments, apply_registry_options
from engine.cpus import available_cpus
from engine.spec.locate import find_spec


def add_arguments(p: argparse.ArgumentParser) -> None:
    from engine.verify import NAMES

    p.add_argument("spec", nargs="?", help="spec file or its directory (default: ./vinci.yaml)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--provenance",
        metavar="FILE",
        help="rebuild the image an SLSA provenance statement describes, from the inputs it "
        "names under SPEC's directory (default: the current directory), and check its digest",
    )
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these perturbations (repeatable; of {', '.join(NAMES[1:])})",
    )
    p.add_argument("--skip", action="append", metavar="NAME", help="leave out a perturbation")
    p.add_argument(
        "--parallel",
        type=positive,
        default=min(2, available_cpus()),
        metavar="N",
        help="perturbed builds run at once (default 2)",
    )
    p.add_argument(
        "--keep", metavar="DIR", help="keep every build's inputs, cache and output under DIR"
    )
    p.add_argument("--list", action="store_true", help="list the perturbations and exit")
    add_image_args(p)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per build (default 600)")
    add_registry_arguments(p)
    p.add_argument(
        "--cache-from",
        metavar="REPO",
        help="also compare the baseline's layers with the fleet cache entries for the same "
        "keys in this registry repository: a key names its bytes, so another machine's entry "
        "must be these bytes (default: $VINCI_CACHE_FROM / $VINCI_CACHE_TO, else the settings "
        "file; the builds themselves never use it)",
    )


def _split(values: list[str] | None) -> list[str]:
    return [n.strip() for v in values or [] for n in v.split(",") if n.strip()]


def run(args: argparse.Namespace) -> int:
    if args.provenance:
        return _provenance(args)
    from engine.codec import get_codec
    from engine.spec.load import load_spec
    from engine.verify import (
        PERTURBATIONS,
        BuildOutcome,
        BuildSettings,
        render_table,
        select,
        verify,
    )

    if args.list:
        for p in PERTURBATIONS:
            print(f"{p.name:<12} {p.description}")
        return 0
    get_codec(args.compression, args.compression_level)  # an unknown codec: usage error now
    spec_arg = find_spec(args.spec)
    spec = load_spec(spec_arg)
    extra: list[str] = []
    for host in args.insecure_registry or []:
        extra += ["--insecure-registry", host]
    if args.ca_file:
        extra += ["--ca-file", str(Path(args.ca_file).resolve())]
    options = build_options(args)
    for key, value in options.labels:
        extra += ["--label", f"{key}={value}"]
    for key, value in options.annotations:
        extra += ["--annotation", f"{key}={value}"]
    settings = BuildSettings(
        # Given only when given: a time given is also the manifest's `created` annotation.
        created=options.timestamp() if options.stamped() else None,
        compression=args.compression,
        compression_level=args.compression_level,
        extra_args=tuple(extra),
        timeout=args.timeout,
    )
    keep = Path(args.keep) if args.keep else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    chosen = select(_split(args.only), _split(args.skip))

    def progress(outcome: BuildOutcome) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"  {outcome.perturbation.name}: {outcome.status}", file=sys.stderr)

    from engine.builder.options import remote_settings

    fleet = remote_settings(args.cache_from, None, False).read
    if fleet:
        apply_registry_options(args)
    report = verify(
        spec,
        str(Path(spec_arg).resolve()),
        settings,
        chosen,
        parallel=args.parallel,
        keep=keep,
        progress=progress,
        fleet=fleet,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print(render_table(report), end="")
    return 0 if report.ok else 1


def _provenance(args: argparse.Namespace) -> int:
    """Rebuild from a provenance statement; exit 0 if the digest matches its subject."""
    import os

    from engine.attest.provenance import read_statement, rebuild
    from engine.builder.run import build_spec
    from engine.cli import signals

    statement = read_statement(Path(args.provenance))
    given = Path(args.spec or ".")
    spec_dir = given.parent if given.is_file() else given
    cancel = signals.token()
    check = rebuild(
        statement,
        Path(os.path.abspath(spec_dir)),
        lambda spec, options: build_spec(str(spec), options, cancel=cancel),
        cancel,
    )
    if args.json:
        data = {"expected": check.expected, "rebuilt": check.rebuilt, "ok": check.ok}
        print(json.dumps(data, indent=2, sort_keys=True))
    if check.ok:
        if not args.json:
            print(f"provenance verified: rebuilt {check.rebuilt}")
        return 0
    print(
        f"vinci: provenance {args.provenance}: rebuilt {check.rebuilt}, but the statement's "
        f"subject is {check.expected}",
        file=sys.stderr,
    )
    return 1
