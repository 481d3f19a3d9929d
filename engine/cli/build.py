"""`vinci build`: build a spec into an OCI layout or archive (and push it with --push, load it
into podman or docker with --load), print the manifest digest. A rebuild that would change
nothing is answered from the last build's stamp (engine/cli/uptodate.py).

`--image` and `--tag` name the output (the layout's ref name, an archive's repository tag, the
loaded image) as well as the push. `--load` streams a docker-archive into `podman load` (else
`docker load`, whichever is on PATH first; `--load=docker` picks): nothing is written to disk
on the way, and the image is named as the output is, `localhost/<spec directory>` when nothing
names it."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from engine.builder.options import BuildOptions
from engine.cli import uptodate
from engine.cli.args import add_build_args, add_platform_args, build_options
from engine.cli.attestargs import add_attest_args, wanted
from engine.cli.registryargs import add_push_arguments
from engine.spec.locate import find_spec

if TYPE_CHECKING:
    from engine.builder.footprint import HeldLayers
    from engine.registry.referrers import Referrer


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", help="spec file or its directory (default: ./vinci.yaml)")
    p.add_argument(
        "--output",
        "-o",
        metavar="TARGET",
        help="oci:DIR (default: the spec's path with .oci), oci-archive:FILE, "
        "docker-archive:FILE; FILE - writes the archive to stdout",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    p.add_argument(
        "--locked",
        action="store_true",
        help="fail, showing the difference, unless the image is exactly what vinci.lock records",
    )
    p.add_argument(
        "--replan",
        action="store_true",
        help="plan every layer even if nothing changed since the last build (its stamp is "
        "not consulted; unchanged layers are still cache hits)",
    )
    p.add_argument(
        "--load",
        nargs="?",
        const="auto",
        choices=("auto", "podman", "docker"),
        metavar="podman|docker",
        help="load the image into podman (else docker; or the one named), named by --image/"
        "--tag or the spec's image",
    )
    add_build_args(p)
    add_platform_args(p)
    add_push_arguments(p)
    add_attest_args(p)


def run(args: argparse.Namespace) -> int:
    if args.attach and not args.push:
        from engine.errors import UsageError

        raise UsageError("--attach pushes referrers of the pushed image: add --push")
    if args.no_lock and args.locked:
        from engine.errors import LockError

        raise LockError("--locked: no lock is read with --no-lock; drop one of the two")
    spec_file = find_spec(args.spec)
    target = uptodate.default_target(spec_file, build_options(args, output=args.output))
    options = build_options(args, output=str(target))
    # An archive on stdout (`-o docker-archive:- | podman load`): the digest goes to stderr.
    to_stdout = target.kind != "oci" and _is_stdout(str(target.path))
    if to_stdout and args.json:
        from engine.errors import UsageError

        raise UsageError("--json prints to stdout, where the archive goes; drop one of the two")
    # SBOMs and provenance read every layer's plan (engine/attest/contents.py), and a push
    # writes no stamp: those always plan. `--json` and `--load` need the build's result, but
    # not its plans: their layers may still be held.
    held = None
    if not (args.replan or args.push or wanted(args)):
        verdict = uptodate.check(spec_file, options, answer=not (args.json or args.load))
        if isinstance(verdict, uptodate.Answer):
            return _answered(args, verdict)
        held = verdict
    return _build(args, spec_file, options, to_stdout, held)


def _build(
    args: argparse.Namespace,
    spec_file: str,
    options: BuildOptions,
    to_stdout: bool,
    held: HeldLayers | None,
) -> int:
    """The build the stamp could not answer; imported only then, as most of the engine is.
    `held`: the layers whose inputs the stamp vouches for (engine/cli/uptodate.py check)."""
    import contextlib
    import json
    import time

    from engine.builder.footprint import Footprint
    from engine.builder.plan import copying_layer
    from engine.builder.pool import own_files
    from engine.builder.result import BuildResult
    from engine.builder.run import build_spec, chosen_platforms, open_spec
    from engine.cache.store import BlobStore
    from engine.cli import signals
    from engine.cli.progress import Progress
    from engine.cli.registryargs import apply_registry_options

    target = uptodate.default_target(spec_file, options)
    if args.insecure_registry or args.ca_file:
        # Also for import-oci layers fetched during the build; without these options every
        # fetch takes the environment's (engine/registry/options.py).
        apply_registry_options(args)
    spec = open_spec(spec_file)
    from engine.cli.attestargs import attestations, sbom_formats, write_attestations

    formats = sbom_formats(args, spec.sbom)
    if formats or args.provenance:
        held = None  # the documents are made from every layer's plan
    if (formats or args.provenance) and to_stdout and not args.sbom_out:
        from engine.errors import UsageError

        raise UsageError("--sbom/--provenance with an archive on stdout: say where with --sbom-out")
    if args.load and spec.is_index and len(chosen_platforms(spec, options)) > 1:
        from engine.errors import UsageError

        raise UsageError(
            "--load takes one image and this spec builds an index: choose one with --platform"
        )
    push_to = None
    if args.push:
        from engine.cli.registryargs import push_target

        push_to = push_target(args, spec)
    store = BlobStore(options.cache_dir)
    # An output inside a directory the spec copies is taken into the next build's layer,
    # unless it is the spec's default output, which a build never takes in (own_files).
    own = os.path.realpath(target.path) in own_files(spec, store)
    copier = None if own else copying_layer(spec, str(target.path))
    if copier is not None:
        print(
            f"vinci: warning: the output {target} lies inside {copier.source}, which "
            f"{copier.label} copies: the next build will take it in (exclude it, or write "
            "the output elsewhere)",
            file=sys.stderr,
        )
    progress = Progress(args)
    footprint = Footprint()
    started_ns = time.time_ns()
    try:
        result = build_spec(
            spec,
            options,
            sink=progress.sink,
            cancel=signals.token(),
            footprint=footprint,
            held=held,
        )
    finally:
        progress.finish()
    docs = attestations(result, formats, args.provenance, options, signals.token(), spec)
    attested = write_attestations(docs, target.path, args.sbom_out, to_stdout, spec.path)
    pushed = None
    attached: list[tuple[Referrer, str]] = []
    if push_to is None and isinstance(result, BuildResult):
        # The image is written: a stamp that cannot be saved costs the next build its shortcut.
        # (An index is built anew each time: the stamp knows one image.)
        with contextlib.suppress(OSError):
            uptodate.write_stamp(spec_file, options, result, store, footprint, started_ns, attested)
    if push_to is not None:
        from engine.cli.registryargs import push_built

        pushed = push_built(args, push_to, result, store, progress.display, signals.token())
        progress.finish()
        if args.attach:
            from engine.cli.attestargs import attach_pushed

            attached = attach_pushed(
                args, result, push_to[0], store, options, signals.token(), spec
            )
    loaded = None
    if args.load:
        from engine.cli.load import load_image

        assert isinstance(result, BuildResult)  # refused above for an index
        loaded = load_image(args.load, spec, result, store, options)
    if args.json:
        data = result.to_json()
        data["output"] = str(target)
        if pushed is not None:
            data["push"] = pushed.to_json()
        if attached:
            data["referrers"] = [dict(r.to_json(), indexed=how) for r, how in attached]
        if loaded is not None:
            data["loaded"] = loaded
        if attested:
            data["attestations"] = [str(p) for p in attested]
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        if progress.live:
            print(
                f"built {spec.display_path} in {result.seconds:.2f}s "
                f"({result.cached}/{len(result.layers)} layers cached) -> {target}",
                file=sys.stderr,
            )
        print(result.manifest.digest, file=sys.stderr if to_stdout else sys.stdout)
    return 0


def _is_stdout(path: str) -> bool:
    """Whether an archive written to `path` lands on this process's stdout."""
    if path == "-":
        return True
    try:
        st, out = os.stat(path), os.fstat(sys.stdout.fileno())
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino)


def _answered(args: argparse.Namespace, answer: uptodate.Answer) -> int:
    if not args.quiet and sys.stderr.isatty():
        print(
            f"{answer.spec} is up to date ({answer.layers} layers, nothing changed since it "
            f"was built) -> {answer.output}",
            file=sys.stderr,
        )
    print(answer.digest)
    from engine.cli import signals

    if signals.process_exits_after:
        # The answer is all this process does: nothing is open, nothing is left to write, so
        # the interpreter's teardown (a few ms of a no-op's time) is skipped.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
