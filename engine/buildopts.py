"""What `vinci build` is asked for, read one way by the full build (engine/cli.py) and by the
up-to-date check that runs before it (engine/uptodate.py): the options, which spec, which
output, which timestamp, which cache.

The check runs before anything else is imported, so this module imports nothing but `os`.
Functions here return None where the full build would report an error; the full build, which
has the error classes loaded (and argparse, for usage errors), says what is wrong.
"""

from __future__ import annotations

import os

SPEC_NAMES = ("vinci.yaml", "vinci.yml")
OUTPUT_KINDS = ("oci", "oci-archive", "docker-archive")
CACHE_LAYOUT = "v1"  # the cache's on-disk layout version: <root>/v1/...
MAX_DEFAULT_JOBS = 8  # each job holds a few MiB in flight: a big machine's default stays modest


def default_jobs() -> int:
    """`--jobs` when not given: the CPUs this process may run on (its affinity, so a container
    limited by cpuset gets what it has), at most MAX_DEFAULT_JOBS."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_JOBS, cpus))


class BuildArgs:
    """`vinci build`'s options as argparse names them (engine/cli.py), with its defaults: what
    parse_build() fills in for the arguments a build is usually given, so that such a build
    needs neither argparse (18 ms of start-up) nor its parser. tests/engine/test_buildopts.py holds
    the two readings equal. A plain class: dataclasses would cost more than argparse."""

    __slots__ = (
        "ca_file",
        "cache_dir",
        "command",
        "compression",
        "compression_level",
        "image",
        "insecure_registry",
        "jobs",
        "json",
        "locked",
        "no_lock",
        "output",
        "push",
        "quiet",
        "replan",
        "source_date_epoch",
        "spec",
        "tag",
        "version",
    )

    def __init__(self) -> None:
        self.version = False
        self.command = "build"
        self.spec: str | None = None
        self.output: str | None = None
        self.json = False
        self.quiet = False
        self.locked = False
        self.replan = False
        self.cache_dir: str | None = None
        self.no_lock = False
        self.jobs = 0
        self.compression = "gzip"
        self.compression_level: int | None = None
        self.source_date_epoch: int | None = None
        self.push = False
        self.image: str | None = None
        self.tag: list[str] | None = None
        self.insecure_registry: list[str] | None = None
        self.ca_file: str | None = None


_FLAGS = {
    "-q": "quiet",
    "--quiet": "quiet",
    "--json": "json",
    "--replan": "replan",
    "--locked": "locked",
    "--no-lock": "no_lock",
}
_STRINGS = {
    "-o": "output",
    "--output": "output",
    "--cache-dir": "cache_dir",
    "--compression": "compression",
}
_NUMBERS = {
    "-j": "jobs",
    "--jobs": "jobs",
    "--compression-level": "compression_level",
    "--source-date-epoch": "source_date_epoch",
}


def parse_build(argv: list[str]) -> BuildArgs | None:
    """`vinci ARGV` (ARGV starting with "build") as argparse would read it, or None when ARGV
    holds anything else (--push, --help, an abbreviation, a combined short flag) or a value
    argparse would refuse: argparse then reads it and says what is wrong."""
    if not argv or argv[0] != "build":
        return None
    args = BuildArgs()
    rest = iter(argv[1:])
    for arg in rest:
        if arg in _FLAGS:
            setattr(args, _FLAGS[arg], True)
            continue
        name, eq, value = arg.partition("=")
        if not (eq and name.startswith("--")):
            name = arg
            if name in _STRINGS or name in _NUMBERS:
                following = next(rest, None)
                if following is None or following.startswith("-"):
                    return None  # a missing value to argparse (or a negative number)
                value = following
        if name in _STRINGS:
            setattr(args, _STRINGS[name], value)
        elif name in _NUMBERS:
            try:
                number = int(value)
            except ValueError:
                return None
            if name in ("-j", "--jobs") and number < 1:
                return None
            setattr(args, _NUMBERS[name], number)
        elif arg.startswith("-") or args.spec is not None:
            return None
        else:
            args.spec = arg
    return args


def locate_spec(given: str | None) -> str | None:
    """The spec file a command means: `given`, or the spec in the directory it names, or the
    one in the current directory; None when that directory has none."""
    if given:
        if not os.path.isdir(given):
            return given
        found = [os.path.join(given, n) for n in SPEC_NAMES]
    else:
        found = list(SPEC_NAMES)
    return next((p for p in found if os.path.isfile(p)), None)


def beside_spec(spec_path: str, suffix: str) -> str:
    """The spec's path with its suffix replaced (pathlib's with_suffix, without pathlib):
    where its default output (.oci) and its lock (.lock) are."""
    head, name = os.path.split(spec_path)
    dot = name.rfind(".")
    stem = name[:dot] if 0 < dot < len(name) - 1 else name
    return os.path.join(head, stem + suffix)


def default_output_path(spec_path: str) -> str:
    """vinci.yaml -> vinci.oci, beside it."""
    return beside_spec(spec_path, ".oci")


def split_output(text: str) -> tuple[str, str] | None:
    """`KIND:PATH` as (kind, path); None unless KIND is a known output and PATH is given."""
    kind, sep, path = text.partition(":")
    if not sep or kind not in OUTPUT_KINDS or not path:
        return None
    return kind, path


def epoch_from_env() -> int | None:
    """SOURCE_DATE_EPOCH as whole seconds (0 when unset or blank); None when it is set to
    something that is not a non-negative whole number."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return 0
    try:
        epoch = int(value)
    except ValueError:
        return None
    return epoch if epoch >= 0 else None


def cache_base(given: str | None = None) -> str:
    """The cache directory (without its layout version): --cache-dir, $VINCI_CACHE_DIR,
    $XDG_CACHE_HOME/vinci, else ~/.cache/vinci."""
    if given:
        return given
    env = os.environ.get("VINCI_CACHE_DIR")
    if env:
        return env
    xdg = os.environ.get("XDG_CACHE_HOME")
    return os.path.join(xdg if xdg else os.path.join(os.path.expanduser("~"), ".cache"), "vinci")
