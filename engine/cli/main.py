"""The `vinci` command line: one module per command under engine/cli/, each with
`add_arguments(parser)` and `run(args) -> int`, imported only when its command runs.

Errors become one line each (spec problems as file:line:col: message) and the exit code the
README promises: 2 for an invalid spec or usage, 1 for a failure, 130, 143 or 129 when stopped
by SIGINT, SIGTERM or SIGHUP (engine/cli/signals.py). Never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import signal
import sys
from collections.abc import Callable

from engine.cli import signals
from engine.errors import BuildCancelled, SpecError, VinciError, describe_os_error

# command -> (module, one line of help), in the order `vinci --help` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("engine.cli.build", "build a spec into an image"),
    "validate": ("engine.cli.validate", "check a spec without building it"),
    "inspect": ("engine.cli.inspect", "show an image's config, layers, files; print a file"),
    "export": ("engine.cli.export", "write an image's merged filesystem as one tar archive"),
    "diff": ("engine.cli.diff", "explain why two images differ, down to each file"),
    "verify": ("engine.cli.verify", "build under perturbations; prove every digest matches"),
    "lock": ("engine.cli.lock", "write vinci.lock: each layer's diff_id -> compressed blob"),
    "push": ("engine.cli.push", "build from the cache and push to a registry"),
    "resolve": ("engine.cli.resolve", "print the digest a tag names, for pinning"),
    "ls": ("engine.cli.ls", "list a registry repository's tags"),
    "manifest": ("engine.cli.manifest", "print the manifest a reference names, as it is"),
    "config": ("engine.cli.config", "print the config of the image a reference names"),
    "referrers": ("engine.cli.referrers", "list the SBOMs and provenance attached to an image"),
    "copy": ("engine.cli.copyimage", "copy an image between repositories, digest unchanged"),
    "login": ("engine.cli.login", "save registry credentials in docker's config"),
    "logout": ("engine.cli.logout", "remove saved registry credentials"),
    "cache": ("engine.cli.cache", "inspect and maintain the layer cache"),
    "schema": ("engine.cli.schema", "print the spec's JSON Schema"),
    "tui": ("engine.cli.tui", "open the workbench"),
}


def _top_parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="vinci",
        description="Declarative, reproducible OCI container images.",
        epilog="`vinci COMMAND --help` describes each command.",
    )
    top.add_argument("--version", action="store_true", help="print the version and exit")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, helptext) in COMMANDS.items():
        sub.add_parser(name, help=helptext, add_help=False)
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        name = argv[0]
        module = importlib.import_module(COMMANDS[name][0])
        p = argparse.ArgumentParser(prog=f"vinci {name}", description=COMMANDS[name][1])
        module.add_arguments(p)
        args = p.parse_args(argv[1:])
        return guard(lambda: int(module.run(args)))
    top = _top_parser()
    args = top.parse_args(argv)
    if args.version:
        from importlib.metadata import version

        print(f"vinci {version('vinci')}")
        return 0
    top.print_help(sys.stderr)
    return 2


def guard(run: Callable[[], int]) -> int:
    """Run a command; every error it raises becomes one line and its exit code, and a signal
    that stops it becomes 128 + its number."""
    with signals.handled() as stop:
        code = _guarded(run, stop)
    if stop.signum is not None:
        with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
            print(f"vinci: {stop.says}", file=sys.stderr)
        return stop.exit_code
    return code


def _guarded(run: Callable[[], int], stop: signals.Stop) -> int:
    try:
        return run()
    except SpecError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return e.exit_code
    except BuildCancelled as e:
        if stop.signum is None:  # cancelled by something else than a signal
            print(f"vinci: {e}", file=sys.stderr)
        return e.exit_code
    except VinciError as e:
        print(f"vinci: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        if stop.signum is None:  # raised before the handlers were in place
            stop.signum = signal.SIGINT
        return stop.exit_code
    except BrokenPipeError as e:
        if _stdout_gone():
            # Its reader went away (`| head`): not a failure of the command.
            _quiet_broken_pipe()
            return 0
        # Another pipe (a credential helper's, say): a failure like any other.
        print(f"vinci: {e.strerror or e}", file=sys.stderr)
        return 1
    except OSError as e:
        # Anything the filesystem refuses that no layer turned into a VinciError.
        print(f"vinci: {describe_os_error(e)}", file=sys.stderr)
        return 1
    except Exception as e:
        # A bug, not bad input: one line, and the traceback only on request.
        if os.environ.get("VINCI_DEBUG"):
            raise
        print(
            f"vinci: internal error: {type(e).__name__}: {e} (VINCI_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 70


def _stdout_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (poll reports an error on it)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _fd, ev in poller.poll(0))
    except (OSError, ValueError):
        return False


def _quiet_broken_pipe() -> None:
    """The reader went away (`vinci … | head`): say nothing, and keep Python from complaining
    about the unflushed stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run() -> None:
    """The `vinci` command ([project.scripts]; python -m engine.cli)."""
    signals.process_exits_after = True
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_broken_pipe()
    # The process ends here. The interpreter's teardown runs the cyclic collector several
    # times over every object the command made (~20 ms after a cold build, with no core
    # busy); frozen objects are skipped by it, and still freed as the modules are cleared.
    gc.freeze()
    sys.exit(code)
