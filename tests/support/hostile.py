"""Hostile HTTP servers for the registry battery: scripted answers on a loopback address.

A `HostileServer` listens on `127.0.0.X:0` and answers each request with what its `route`
function returns for it:

- `Reply`: an ordinary answer (a redirect is a Reply with a Location);
- `Endless`: a status and headers, then a body that never ends (no Content-Length);
- `Trickle`: an answer sent one byte every `interval` seconds, the status line and headers
  included when `headers_too` (a slow-loris server).

Every request is recorded (method, path, headers) *before* it is answered, so a test can
assert what a client sent where, e.g. that no Authorization header reached a host the registry
redirected to, and that a token endpoint was never asked at all.

Bounded: loopback addresses only; an endless or trickled body stops when the client hangs up,
after `max_body` bytes or `max_trickle` seconds, or when the server stops; the server stops
itself after `max_lifetime` seconds should a test forget to.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any

__all__ = ["Answer", "Endless", "HostileServer", "Reply", "Seen", "Trickle"]


@dataclass(frozen=True)
class Seen:
    """One request as the server received it; header names are lowercase."""

    method: str
    path: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Endless:
    """`status` and `headers`, then zero bytes until the client hangs up (or a bound)."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Trickle:
    """An answer dribbled out a byte at a time; with `headers_too`, the head as well."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    length: int = 1000
    interval: float = 0.5
    headers_too: bool = False


Answer = Reply | Endless | Trickle
Route = Callable[[Seen], Answer]

_CHUNK = bytes(64 << 10)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle client cannot pin a thread

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        return  # requests are recorded structurally; stderr lines would only add noise

    def do_GET(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        owner.record(seen)
        answer = owner.route(seen)
        try:
            if isinstance(answer, Reply):
                self._reply(answer)
            elif isinstance(answer, Endless):
                self._endless(answer)
            else:
                self._trickle(answer)
        except OSError:
            self.close_connection = True  # the client gave up: exactly what a test wants

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _head(self, status: int, headers: Mapping[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} Hostile"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _reply(self, answer: Reply) -> None:
        headers = {"Content-Length": str(len(answer.body)), **answer.headers}
        self.wfile.write(self._head(answer.status, headers))
        if self.command != "HEAD":
            self.wfile.write(answer.body)
        self.wfile.flush()

    def _endless(self, answer: Endless) -> None:
        owner = self.server.owner
        self.close_connection = True
        self.wfile.write(self._head(answer.status, {**answer.headers, "Connection": "close"}))
        sent = 0
        while sent < owner.max_body and not owner.stopping.is_set():
            self.wfile.write(_CHUNK)
            sent += len(_CHUNK)

    def _trickle(self, answer: Trickle) -> None:
        owner = self.server.owner
        self.close_connection = True
        headers = {"Content-Length": str(answer.length), **answer.headers}
        head = self._head(answer.status, headers)
        data = (head if answer.headers_too else b"") + b"x" * answer.length
        if not answer.headers_too:
            self.wfile.write(head)
            self.wfile.flush()
        until = time.monotonic() + owner.max_trickle
        for i in range(len(data)):
            if owner.stopping.wait(answer.interval) or time.monotonic() > until:
                return
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: HostileServer, address: str) -> None:
        self.owner = owner
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__((address, 0), _Handler)

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._conns_lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def drop_all(self) -> None:
        """Shut every open connection: a handler blocked writing to a client that stopped
        reading returns at once."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-answer is the point of these servers; keep stderr quiet.
        return


class HostileServer:
    """A scripted HTTP server on a loopback address; a context manager.

    `route(seen)` decides every answer; `requests` lists what arrived, in order.
    """

    def __init__(
        self,
        route: Route,
        *,
        address: str = "127.0.0.1",
        max_body: int = 2 << 30,
        max_trickle: float = 60.0,
        max_lifetime: float = 120.0,
    ) -> None:
        if not ipaddress.ip_address(address).is_loopback:
            raise ValueError(f"hostile servers listen on loopback only, not {address}")
        self.route = route
        self.address = address
        self.max_body = max_body
        self.max_trickle = max_trickle
        self.max_lifetime = max_lifetime
        self.stopping = threading.Event()
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    def start(self) -> HostileServer:
        self._server = _Server(self, self.address)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"hostile-{self.host}",
            daemon=True,
        )
        self._thread.start()
        self._timer = threading.Timer(self.max_lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        server, thread, timer = self._server, self._thread, self._timer
        self._server = self._thread = self._timer = None
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()
        if server is not None:
            server.shutdown()
            server.server_close()
            server.drop_all()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("hostile server is not running")
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        """`ADDRESS:PORT`, the registry part of an image reference."""
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def record(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    @property
    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)


def loopback_alias_works(address: str = "127.0.0.2") -> bool:
    """Whether a second loopback address can be bound (Linux routes all of 127/8 to lo)."""
    with contextlib.closing(socket.socket()) as s:
        try:
            s.bind((address, 0))
        except OSError:
            return False
    return True
