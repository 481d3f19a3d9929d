"""The `vinci` entry point. A `vinci build` whose last result still holds is answered here, by
the up-to-date check (engine/uptodate.py), before the command line and the engine are
imported; everything else goes to the command line (engine/cli.py)."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["build"]:
        try:
            from engine.uptodate import check

            answer = check(argv)
        except KeyboardInterrupt:
            print("vinci: interrupted", file=sys.stderr)
            return 130
        except Exception:
            answer = None  # a stamp the check cannot read is no answer: build
        if answer is not None:
            if "-q" not in argv and "--quiet" not in argv and sys.stderr.isatty():
                print(
                    f"{answer.spec} is up to date ({answer.layers} layers, nothing changed "
                    f"since it was built) -> {answer.output}",
                    file=sys.stderr,
                )
            try:
                print(answer.digest, flush=True)
            except BrokenPipeError:
                os._exit(1)
            return 0
    from engine.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
