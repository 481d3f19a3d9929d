"""The `vinci` command line.

Errors become one line each (spec problems as file:line:col: message) and a nonzero exit:
2 for an invalid spec or usage, 1 for a failed build, 130 when interrupted. Never a traceback.
Heavy modules (the registry client, the workbench) are imported only by the commands that use
them, so a local build starts fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.buildopts import BuildArgs, beside_spec, locate_spec, parse_build
from engine.errors import SpecError, VinciError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from engine.events import EventSink
    from engine.spec import Spec


def _size(text: str) -> int:
    import argparse

    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = t[-1:] if t[-1:] in units and t[-1:] != "" and not t[-1:].isdigit() else ""
    number = t[: len(t) - len(unit)] if unit else t
    try:
        return int(float(number) * units[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 500M or 2G") from None


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def find_spec(given: str | None) -> str:
    found = locate_spec(given)
    if found is not None:
        return found
    if given:
        raise VinciError(f"no vinci.yaml in {given}")
    raise VinciError("no spec given and no vinci.yaml in the current directory")


def _add_cache_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="cache location (default: $VINCI_CACHE_DIR, else ~/.cache/vinci)",
    )


def _add_build_args(p: argparse.ArgumentParser) -> None:
    _add_cache_args(p)
    p.add_argument("--no-lock", action="store_true", help="ignore vinci.lock beside the spec")
    p.add_argument(
        "--jobs",
        "-j",
        type=_positive,
        default=0,
        metavar="N",
        help="threads at work at once: N layers in parallel, each compressed on up to N "
        "threads; 1 builds on one thread (default: the CPU count, at most 8)",
    )
    add_image_args(p)


def add_image_args(p: argparse.ArgumentParser) -> None:
    """The options that choose the image's bytes: codec, level, timestamp."""
    p.add_argument(
        "--compression",
        default="gzip",
        metavar="CODEC",
        help="gzip (default: libdeflate, the same bytes on every machine), gzip-isal (faster, "
        "the same bytes on one CPU class only), gzip-zlib (this system's zlib), zstd or none",
    )
    p.add_argument(
        "--compression-level", type=int, metavar="N", help="codec level (default per codec)"
    )
    p.add_argument(
        "--source-date-epoch",
        type=int,
        metavar="SECONDS",
        help="timestamp for files and config (default: $SOURCE_DATE_EPOCH, else 0)",
    )


def parser() -> argparse.ArgumentParser:
    import argparse

    top = argparse.ArgumentParser(
        prog="vinci", description="Declarative, reproducible OCI container images."
    )
    top.add_argument("--version", action="store_true", help="print the version and exit")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")

    b = sub.add_parser("build", help="build a spec into an image")
    b.add_argument("spec", nargs="?", help="spec file or its directory (default: ./vinci.yaml)")
    b.add_argument(
        "--output",
        "-o",
        metavar="TARGET",
        help="oci:DIR (default: the spec's path with .oci), oci-archive:FILE, docker-archive:FILE",
    )
    b.add_argument("--json", action="store_true", help="print the result as JSON")
    b.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    b.add_argument(
        "--locked",
        action="store_true",
        help="fail, showing the difference, unless the image is exactly what vinci.lock records",
    )
    b.add_argument(
        "--replan",
        action="store_true",
        help="plan every layer even if nothing changed since the last build (its stamp is "
        "not consulted; unchanged layers are still cache hits)",
    )
    _add_build_args(b)
    # --push/--image/--tag/--insecure-registry/--ca-file; the module imports no httpx.
    from engine.cli_registry import add_push_arguments

    add_push_arguments(b)

    v = sub.add_parser("validate", help="check a spec without building it")
    v.add_argument("spec", nargs="?")

    c = sub.add_parser("cache", help="inspect and maintain the layer cache")
    csub = c.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    cl = csub.add_parser("ls", help="list cached blobs")
    cl.add_argument("--json", action="store_true")
    _add_cache_args(cl)
    cv = csub.add_parser("verify", help="re-hash every blob; exit 1 on any corruption")
    cv.add_argument("--json", action="store_true")
    _add_cache_args(cv)
    cg = csub.add_parser("gc", help="remove what recent builds do not reference")
    cg.add_argument("--keep-days", type=float, default=30.0, metavar="DAYS", help="default 30")
    cg.add_argument("--max-size", type=_size, metavar="SIZE", help="size budget, e.g. 5G")
    cg.add_argument("--json", action="store_true")
    _add_cache_args(cg)
    cp = csub.add_parser("path", help="print the cache directory")
    _add_cache_args(cp)

    s = sub.add_parser("schema", help="print the spec's JSON Schema")
    s.add_argument("--markdown", action="store_true", help="the key reference as Markdown")

    t = sub.add_parser("tui", help="open the workbench")
    t.add_argument("spec", nargs="?")
    t.add_argument("--no-watch", action="store_true", help="start with watch mode off")
    _add_build_args(t)

    for name, helptext in _EXTRA_COMMANDS.items():
        sub.add_parser(name, help=helptext, add_help=False)
    return top


# Commands implemented in their own modules; each module defines add_arguments(parser) and
# run(args) -> int. Kept as names so `vinci build` never imports them.
_EXTRA_COMMANDS: dict[str, str] = {}
_EXTRA_MODULES: dict[str, str] = {}


def register(name: str, module: str, helptext: str) -> None:
    _EXTRA_COMMANDS[name] = helptext
    _EXTRA_MODULES[name] = module


register("inspect", "engine.cli_inspect", "show an image's layers and a layer's files")
register("push", "engine.cli_registry.push", "build from the cache and push to a registry")
register("resolve", "engine.cli_registry.resolve", "print the digest a tag names, for pinning")
register("login", "engine.cli_registry.login", "save registry credentials in docker's config")
register("logout", "engine.cli_registry.logout", "remove saved registry credentials")


register("diff", "engine.cli_diff", "explain why two images differ, down to each file")
register("verify", "engine.cli_verify", "build under perturbations; prove every digest matches")
register("lock", "engine.cli_lock", "write vinci.lock: each layer's diff_id -> compressed blob")


def _store(args: argparse.Namespace | BuildArgs) -> Any:
    from engine.cache.store import BlobStore

    given = getattr(args, "cache_dir", None)
    return BlobStore(Path(given) if given else None)


def _codec(args: argparse.Namespace | BuildArgs) -> Any:
    from engine.codec import get_codec

    try:
        return get_codec(args.compression, args.compression_level)
    except ValueError as e:
        raise VinciError(str(e)) from None


def _created(args: argparse.Namespace | BuildArgs) -> int:
    from engine.build import source_date_epoch_from_env

    if args.source_date_epoch is not None:
        if args.source_date_epoch < 0:
            raise VinciError("--source-date-epoch must not be negative")
        return int(args.source_date_epoch)
    return source_date_epoch_from_env()


def _progress(args: argparse.Namespace | BuildArgs) -> tuple[Any, EventSink]:
    """Live progress on a terminal (unless --quiet or --json); otherwise only warnings, one
    line each on stderr (a lock the build could not honour, say, must not pass unsaid)."""
    if args.quiet or args.json or not sys.stderr.isatty():
        return None, _warnings_only
    from engine.cli_progress import TerminalProgress

    progress = TerminalProgress()
    return progress, progress


def _warnings_only(event: object) -> None:
    from engine.events import Log

    if isinstance(event, Log) and event.level == "warning":
        print(f"vinci: warning: {event.message}", file=sys.stderr)


def _builder(args: argparse.Namespace | BuildArgs, spec: Spec) -> tuple[Any, Any]:
    """The Builder the build options ask for, with the spec's vinci.lock unless --no-lock;
    and that lock (None without one)."""
    from engine.build import Builder

    locked = None
    wanted = getattr(args, "locked", False)
    # engine.lock is loaded only for a spec with a lock (or --locked): most have none.
    if not args.no_lock and (wanted or os.path.lexists(beside_spec(str(spec.path), ".lock"))):
        from engine.lock import lock_path, read_lock

        locked = read_lock(lock_path(spec))
    if wanted and locked is None:
        from engine.lock import LockError, lock_path

        raise LockError(f"--locked: no {lock_path(spec)}; `vinci lock` writes it")
    return Builder(_store(args), _codec(args), args.jobs, lock=locked), locked


def cmd_build(args: argparse.Namespace | BuildArgs) -> int:
    from engine.build import own_files
    from engine.cli_registry import apply_registry_options, push_built, push_target
    from engine.output import default_output, parse_output
    from engine.output.write import write_output
    from engine.plan import copying_layer
    from engine.uptodate import (
        Footprint,
        build_key,
        load_reuse,
        lock_mode,
        take_lent,
        write_stamp,
    )

    if args.insecure_registry or args.ca_file:
        # Also for import-oci layers fetched during the build; without these options every
        # fetch takes the environment's (engine/registry/options.py).
        apply_registry_options(args)
    spec_file = find_spec(args.spec)
    created = _created(args)
    locking = lock_mode(args.no_lock, args.locked)
    key = build_key(
        os.path.abspath(spec_file),
        args.output,
        args.compression,
        args.compression_level,
        created,
        locking,
    )
    # Something changed since the last build with these options, or main() would have
    # answered. What its check found is lent here: which layers are unchanged (they need no
    # planning), and the spec as last parsed if its bytes are the same (engine/uptodate.py).
    lent = take_lent(key)
    spec = lent.spec(spec_file) if lent is not None else None
    kept_by = lent if spec is not None else None
    if spec is None:
        from engine.spec import load_spec

        spec = load_spec(spec_file)
    target = parse_output(args.output) if args.output else default_output(spec.path)
    push_to = push_target(args, spec) if args.push else None
    progress, sink = _progress(args)
    builder, locked = _builder(args, spec)
    reuse = None if args.replan else load_reuse(key, builder.store, lent)
    footprint = Footprint()
    # An output inside a directory the spec copies is taken into the next build's layer,
    # unless it is the spec's default output, which a build never takes in (own_files).
    own = os.path.realpath(target.path) in own_files(spec, builder.store)
    copier = None if own else copying_layer(spec, str(target.path))
    if copier is not None:
        print(
            f"vinci: warning: the output {target} lies inside {copier.source}, which "
            f"{copier.label} copies: the next build will take it in (exclude it, or write "
            "the output elsewhere)",
            file=sys.stderr,
        )
    # An OCI layout is readied first and takes each new blob as it is made, instead of a copy
    # after the build (engine/output/layout.py). Not with --locked: nothing may be written
    # unless the image is the locked one. Not inside a source the build reads either (but for
    # the default output, which no walk enters): the layer would take in whatever of the
    # layout exists while it is walked.
    layout = None
    if target.kind == "oci" and not args.locked and (own or not _within(target.path, spec.sources)):
        from engine.output.layout import PreparedLayout

        layout = PreparedLayout(target.path)
    started_ns = time.time_ns()
    try:
        try:
            result = builder.build(
                spec,
                sink,
                created=created,
                footprint=footprint,
                reuse=reuse,
                mirror=layout.blob_dir if layout is not None else None,
            )
        finally:
            if reuse is not None:
                reuse.close()
            if progress is not None:
                progress.finish()
        if args.locked and locked is not None:
            from engine.lock import check_locked, lock_path

            check_locked(lock_path(spec), locked, result, builder.store)  # before any output
        write_output(target, result, builder.store)
    except BaseException:
        if layout is not None:
            layout.abandon()
        raise
    if push_to is None:
        lock_bytes = locked.to_bytes() if locked is not None else None
        # The image is written: a stamp that cannot be saved costs the next build its shortcut.
        with contextlib.suppress(OSError):
            write_stamp(
                key,
                result,
                target,
                builder.store,
                footprint,
                started_ns,
                locking,
                lock_bytes,
                kept_by,
            )
    pushed = None
    if push_to is not None:
        pushed = push_built(args, push_to, result, builder.store, progress)
        if progress is not None:
            progress.finish()
    if args.json:
        data = result.to_json()
        data["output"] = str(target)
        if pushed is not None:
            data["push"] = pushed.to_json()
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        if progress is not None:
            print(
                f"built {spec.display_path} in {result.seconds:.2f}s "
                f"({result.cached}/{len(result.layers)} layers cached) -> {target}",
                file=sys.stderr,
            )
        print(result.manifest.digest)
    return 0


def _within(path: Path, sources: Sequence[Path]) -> bool:
    """Whether `path` is one of `sources` or lies below one (symlinks resolved)."""
    real = Path(os.path.realpath(path))
    return any(real.is_relative_to(os.path.realpath(source)) for source in sources)


def cmd_validate(args: argparse.Namespace) -> int:
    from engine.spec import load_spec

    spec = load_spec(find_spec(args.spec))
    print(f"{spec.display_path}: ok ({len(spec.layers)} layers)")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from engine.cache import maintenance
    from engine.cli_progress import human_bytes

    store = _store(args)
    if args.cache_command == "path":
        print(store.root)
        return 0
    if args.cache_command == "ls":
        entries = maintenance.list_entries(store)
        if args.json:
            print(
                json.dumps([e.__dict__ | {"used_by": list(e.used_by)} for e in entries], indent=2)
            )
            return 0
        for e in entries:
            what = e.summary or e.media_type
            print(f"{e.digest[:19]}  {e.kind:8} {human_bytes(e.size):>10}  {what}")
        print(f"{len(entries)} blobs, {human_bytes(sum(e.size for e in entries))} in {store.root}")
        return 0
    if args.cache_command == "verify":
        report = maintenance.verify(store)
        if args.json:
            print(
                json.dumps(
                    {
                        "blobs": report.blobs,
                        "bytes": report.bytes,
                        "problems": list(report.problems),
                    }
                )
            )
        else:
            for problem in report.problems:
                print(problem)
            status = "ok" if report.ok else f"{len(report.problems)} problems"
            print(f"verified {report.blobs} blobs ({human_bytes(report.bytes)}): {status}")
        return 0 if report.ok else 1
    report_gc = maintenance.collect_garbage(store, args.keep_days, args.max_size)
    if args.json:
        print(json.dumps(report_gc.__dict__))
    else:
        print(
            f"removed {report_gc.removed_blobs} blobs ({human_bytes(report_gc.freed_bytes)}) and "
            f"{report_gc.removed_records} layer records; kept {report_gc.kept_blobs} blobs "
            f"({human_bytes(report_gc.kept_bytes)})"
        )
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from engine.spec import schema

    if args.markdown:
        print(schema.markdown_reference(), end="")
    else:
        print(json.dumps(schema.json_schema(), indent=2, sort_keys=True))
    return 0


def cmd_tui(args: argparse.Namespace) -> int:
    try:
        from vinci_tui.app import run_workbench  # type: ignore[import-not-found,unused-ignore]
    except ImportError as e:
        raise VinciError(f"the workbench is not installed: {e}") from None
    return int(run_workbench(args))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Extra commands parse their own arguments.
    if argv and argv[0] in _EXTRA_MODULES:
        import argparse
        import importlib

        module = importlib.import_module(_EXTRA_MODULES[argv[0]])
        p = argparse.ArgumentParser(prog=f"vinci {argv[0]}", description=_EXTRA_COMMANDS[argv[0]])
        module.add_arguments(p)
        return _guard(lambda: int(module.run(p.parse_args(argv[1:]))))
    # A build with the usual arguments is read without argparse (engine/buildopts.py).
    fast = parse_build(argv)
    if fast is not None:
        return _guard(lambda: cmd_build(fast))
    args = parser().parse_args(argv)
    if args.version:
        from importlib.metadata import version

        print(f"vinci {version('vinci')}")
        return 0
    commands = {
        "build": cmd_build,
        "validate": cmd_validate,
        "cache": cmd_cache,
        "schema": cmd_schema,
        "tui": cmd_tui,
    }
    if args.command is None:
        parser().print_help()
        return 2
    return _guard(lambda: commands[args.command](args))


def _guard(run: Any) -> int:
    try:
        return int(run())
    except SpecError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return e.exit_code
    except VinciError as e:
        print(f"vinci: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("vinci: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        # Anything the filesystem refuses that no layer turned into a VinciError.
        where = f": {e.filename}" if e.filename else ""
        print(f"vinci: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        os._exit(1)
    except Exception as e:
        # A bug, not bad input: one line, and the traceback only on request.
        if os.environ.get("VINCI_DEBUG"):
            raise
        print(
            f"vinci: internal error: {type(e).__name__}: {e} (VINCI_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 70


if __name__ == "__main__":
    sys.exit(main())
