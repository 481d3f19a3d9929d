"""SIGINT, SIGTERM and SIGHUP for the command line: stop the command cleanly, exit 128+N.

While a command runs (main.guard), the three signals cancel one CancelToken. A command that
hands `token()` to the engine (`vinci build`, `push`) is stopped by it: queued layers never
start, running ones stop at their next chunk, a wait for an output's lock ends, and the
output is left as it was or complete (engine/output). A command that took no token gets a
KeyboardInterrupt instead, as Python gives one for Ctrl-C. Either way the exit status is
130, 143 or 129 (README), and a second Ctrl-C is never needed; a second signal of any kind
interrupts even a command that took the token, at once. A command still running five seconds
after the first signal (a thread blocked on a stalled connection) is ended with os._exit:
nothing vinci writes is ever half there, so this is as safe as SIGKILL and never hangs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

from engine.cancel import CancelToken

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_SECONDS = 5  # a stopped command that is still running after this is ended (see below)
SAYS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated", signal.SIGHUP: "hung up"}


class Stop:
    """What the signals did to the running command."""

    def __init__(self) -> None:
        self.token = CancelToken()
        self.signum: int | None = None
        self.taken = False

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    @property
    def says(self) -> str:
        return SAYS.get(signal.Signals(self.signum or signal.SIGINT), "stopped")

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
            if process_exits_after:
                threading.Thread(target=self._last_resort, name="vinci-stop", daemon=True).start()
        self.token.cancel()
        if not first or not self.taken:
            raise KeyboardInterrupt

    def _last_resort(self) -> None:
        """Exits the process if the command has not stopped GRACE_SECONDS after the signal:
        a thread stuck in a system call (an upload to a registry that stopped reading) never
        looks at the token. Safe: every file vinci writes is whole or absent at any instant
        (engine/cache/atomic.py, engine/output), as under SIGKILL."""
        time.sleep(GRACE_SECONDS)
        with contextlib.suppress(OSError):
            os.write(
                2, f"vinci: {self.says}; still stopping after {GRACE_SECONDS} s, exiting\n".encode()
            )
        os._exit(self.exit_code)


_current: Stop | None = None
# True in the `vinci` process itself (main.run), where the last resort may end the process;
# never for a caller of main() inside another program (the tests).
process_exits_after = False


def token() -> CancelToken | None:
    """The token the signals cancel, for a command that stops by it; None outside guard()."""
    if _current is None:
        return None
    _current.taken = True
    return _current.token


@contextlib.contextmanager
def handled() -> Iterator[Stop]:
    """The signals, handled for the body; the previous handlers are back after it."""
    global _current
    stop = Stop()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            # An ignored signal stays ignored: `nohup vinci build`, or a shell's `&`.
            if signal.getsignal(signum) == signal.SIG_IGN:
                continue
            with contextlib.suppress(ValueError, OSError):
                previous[signum] = signal.signal(signum, stop.handle)
    outer, _current = _current, stop
    try:
        yield stop
    finally:
        _current = outer
        for number, handler in previous.items():
            signal.signal(number, handler)
