"""Arguments several commands share (cache, build, image options), and the BuildOptions and
progress display they ask for."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from engine.builder.options import BuildOptions, LockMode
from engine.errors import InvalidValue

T = TypeVar("T")


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parsed_by(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse `type` from one of the engine's parsers: its InvalidValue message becomes
    argparse's (one line, exit 2), not a generic "invalid value"."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except InvalidValue as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = parse.__name__
    return convert


def duration(text: str) -> float:
    """Seconds, from a duration like 30d, 12h, 90m, 45s or 2w (a unit is required)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    t = text.strip().lower()
    try:
        seconds = float(t[:-1]) * units[t[-1:]]
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration like 30d, 12h, 90m or 2w"
        ) from None
    if not seconds >= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration must not be negative")
    return seconds


def add_cache_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="cache location (default: $VINCI_CACHE_DIR, else ~/.cache/vinci)",
    )


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
        help="timestamp for files and config (default: $SOURCE_DATE_EPOCH, else 0); given "
        "either way, the manifest's org.opencontainers.image.created says it",
    )
    p.add_argument(
        "--label",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="add a label to the image's config, over the spec's (repeatable)",
    )
    p.add_argument(
        "--annotation",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="add an annotation to the manifest (and a multi-platform spec's index), over "
        "the spec's (repeatable)",
    )


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def add_platform_args(p: argparse.ArgumentParser) -> None:
    """`--platform` of the commands that build a whole spec (build, push)."""
    p.add_argument(
        "--platform",
        dest="platforms",
        action="append",
        default=[],
        metavar="OS/ARCH[,OS/ARCH…]",
        help="build only these of a multi-platform spec's platforms (repeatable or comma-"
        "separated): one gives that platform's plain image, several an index of them",
    )


def add_remote_cache_args(p: argparse.ArgumentParser) -> None:
    """The shared layer cache in a registry repository (docs/fleet-cache.md)."""
    p.add_argument(
        "--cache-from",
        metavar="REPO",
        help="read layers from the layer cache in this registry repository "
        "(default: $VINCI_CACHE_FROM, else cache-from in ~/.config/vinci/config.toml)",
    )
    p.add_argument(
        "--cache-to",
        metavar="REPO",
        help="read layers from, and write new ones to, the layer cache in this registry "
        "repository (default: $VINCI_CACHE_TO, else cache-to in ~/.config/vinci/config.toml)",
    )
    p.add_argument(
        "--cache-required",
        action="store_true",
        default=None,
        help="fail if the registry layer cache cannot be used, instead of a warning "
        "(default: $VINCI_CACHE_REQUIRED, else cache-required in the settings file)",
    )


def add_build_args(p: argparse.ArgumentParser) -> None:
    add_cache_args(p)
    add_remote_cache_args(p)
    p.add_argument("--no-lock", action="store_true", help="ignore vinci.lock beside the spec")
    p.add_argument(
        "--jobs",
        "-j",
        type=positive,
        default=0,
        metavar="N",
        help="threads at work at once: N layers in parallel, each compressed on up to N "
        "threads; 1 builds on one thread (default: the CPU count, at most 8)",
    )
    add_image_args(p)


def lock_mode(args: argparse.Namespace) -> LockMode:
    if getattr(args, "no_lock", False):
        return "ignore"
    return "require" if getattr(args, "locked", False) else "use"


def build_options(args: argparse.Namespace, output: str | None = None) -> BuildOptions:
    """The BuildOptions a command's build arguments ask for."""
    cache_dir = getattr(args, "cache_dir", None)
    return BuildOptions(
        codec=getattr(args, "compression", "gzip"),
        level=getattr(args, "compression_level", None),
        created=getattr(args, "source_date_epoch", None),
        jobs=getattr(args, "jobs", 0) or 0,
        lock=lock_mode(args),
        cache_dir=Path(cache_dir) if cache_dir else None,
        output=output,
        cache_from=getattr(args, "cache_from", None),
        cache_to=getattr(args, "cache_to", None),
        cache_required=getattr(args, "cache_required", None),
        image=getattr(args, "image", None),
        tag=(getattr(args, "tag", None) or [None])[0],
        platforms=tuple(
            p.strip() for text in getattr(args, "platforms", None) or () for p in text.split(",")
        ),
        labels=tuple(getattr(args, "label", None) or ()),
        annotations=tuple(getattr(args, "annotation", None) or ()),
    )
