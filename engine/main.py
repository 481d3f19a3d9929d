"""The `vinci` entry point. A `vinci build` whose last result still holds is answered here, by
the up-to-date check (engine/uptodate.py), before the command line and the engine are
imported; everything else goes to the command line (engine/cli.py)."""

from __future__ import annotations

import os
import sys


def answer_up_to_date(argv: list[str]) -> int | None:
    """The exit status of `vinci ARGV` if the up-to-date check answered it (the digest is
    printed), else None: the command needs the full command line."""
    if argv[:1] != ["build"]:
        return None
    try:
        from engine.uptodate import check

        answer = check(argv)
    except KeyboardInterrupt:
        print("vinci: interrupted", file=sys.stderr)
        return 130
    except Exception:
        return None  # a stamp the check cannot read is no answer: build
    if answer is None:
        return None
    if "-q" not in argv and "--quiet" not in argv and sys.stderr.isatty():
        print(
            f"{answer.spec} is up to date ({answer.layers} layers, nothing changed since it "
            f"was built) -> {answer.output}",
            file=sys.stderr,
        )
    print(answer.digest)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    code = answer_up_to_date(argv)
    if code is not None:
        return code
    from engine.cli import main as cli_main

    return cli_main(argv)


def run() -> None:
    """The `vinci` command (engine/bin/vinci, python -m engine)."""
    argv = sys.argv[1:]
    try:
        code = answer_up_to_date(argv)
    except BrokenPipeError:
        os._exit(1)
    if code is None:
        from engine.cli import main as cli_main

        code = cli_main(argv)
    _leave(code)


def _leave(code: int) -> None:
    """Exit with `code`, skipping the interpreter's teardown when it would only free what the
    process is about to drop: a tenth of an up-to-date answer, ~25 ms of a cold hello build
    (docs/performance.md). The exit functions still run (engine/values.py saves its cache in
    one); a thread still running gets the normal, joining exit."""
    import atexit

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        os._exit(1)
    # Not imported (an up-to-date answer): then no thread was started either.
    threading = sys.modules.get("threading")
    run_exit_functions = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_functions is None or (threading is not None and threading.active_count() > 1):
        sys.exit(code)
    run_exit_functions()
    os._exit(code)
