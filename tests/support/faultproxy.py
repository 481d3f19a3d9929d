"""A scripted loopback HTTP proxy in front of a test registry: injects faults, counts traffic.

Clients talk to `FaultProxy.host` as if it were the registry. Each request is read whole,
classified (`base`, `catalog`, `blob`, `upload`, `mount`, `manifest`, `tags`, `referrers`,
`other`), matched against the scripted faults, forwarded to the upstream registry over HTTP/1.1
and its response relayed. The Host header is forwarded unchanged, so distribution builds its
`Location` URLs for the proxy and upload PATCH/PUT requests come back through it too (absolute
`Location`s naming the upstream are rewritten as a fallback).

Fault kinds:
- `reset`: the request is read, never forwarded, and the client connection is closed with an
  RST (SO_LINGER 0): the client sees "connection reset";
- `unavailable`: answered by the proxy with 503, `Retry-After`, a distribution-style error body;
- `delay`: held for `seconds` before it is forwarded (a slow registry; the client may give up
  first);
- `truncate`: forwarded; the response goes out with its full Content-Length but only part of the
  body (half, or `keep_bytes`, always at least one byte short), then the connection is closed.
  A response without a body cannot be truncated: it is sent whole, then the connection closed.

Counting is what lets later tests say "the second push sent zero blob bytes" (`upload_bytes`)
and "the cross-repository mount was used" (`count("POST", "mount")`, `mounts_succeeded`).
Every exchange is recorded *before* its response is written, so a client that has its answer
can rely on the counts.

Bounded: loopback only (upstream must be 127.0.0.1/localhost), bodies are buffered in memory
(test images are small), idle connections time out, and the proxy stops itself after
`max_lifetime` seconds should a test forget to stop it.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import re
import socket
import socketserver
import struct
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

__all__ = ["Exchange", "Fault", "FaultKind", "FaultProxy", "classify"]

FaultKind = Literal["reset", "unavailable", "truncate", "delay"]

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        # Re-framed by the proxy: bodies are forwarded whole with their exact length.
        "content-length",
        # Answered by the proxy itself (http.server sends "100 Continue").
        "expect",
    }
)

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("upload", re.compile(r"^/v2/.+/blobs/uploads(/[^/]*)?$")),
    ("blob", re.compile(r"^/v2/.+/blobs/[^/]+$")),
    ("manifest", re.compile(r"^/v2/.+/manifests/[^/]+$")),
    ("tags", re.compile(r"^/v2/.+/tags/list$")),
    ("referrers", re.compile(r"^/v2/.+/referrers/[^/]+$")),
)


def classify(method: str, target: str) -> str:
    """The kind of registry request `method target` is (see the module docstring)."""
    parts = urlsplit(target)
    path = parts.path
    if path in ("/v2", "/v2/"):
        return "base"
    if path == "/v2/_catalog":
        return "catalog"
    for kind, pattern in _PATTERNS:
        if pattern.match(path):
            if kind == "upload" and method == "POST" and "mount" in parse_qs(parts.query):
                return "mount"
            return kind
    return "other"


@dataclass
class Fault:
    """A scripted fault: which requests it hits (all given criteria must match) and how often."""

    kind: FaultKind
    method: str | None = None
    path_kind: str | None = None
    path_regex: str | None = None
    times: int = 1
    skip: int = 0
    retry_after: int = 1
    keep_bytes: int | None = None  # truncate: body bytes sent before closing; None = half
    hits: int = 0
    seconds: float = 0.0  # delay: how long the request is held

    def matches(self, method: str, target: str, kind: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path_kind is not None and self.path_kind != kind:
            return False
        return self.path_regex is None or re.search(self.path_regex, target) is not None


@dataclass(frozen=True)
class Exchange:
    """One request seen by the proxy. `status` is None when the connection was reset."""

    method: str
    target: str
    kind: str
    status: int | None
    request_bytes: int
    response_bytes: int
    fault: FaultKind | None


class _Handler(BaseHTTPRequestHandler):
    server: _ProxyServer
    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections end by themselves; a stuck client cannot pin a thread.
    timeout = 30

    def setup(self) -> None:
        super().setup()
        self._upstream: http.client.HTTPConnection | None = None
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self._upstream is not None:
                self._upstream.close()
            self.server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        # Exchanges are recorded structurally; stderr lines would only clutter pytest output.
        return

    def do_GET(self) -> None:
        self._relay()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # -- the proxying ---------------------------------------------------------------------------

    def _relay(self) -> None:
        owner = self.server.owner
        method, target = self.command, self.path
        body = self._read_body()
        kind = classify(method, target)
        fault = owner.take_fault(method, target, kind)

        if fault is not None and fault.kind == "reset":
            owner.record(Exchange(method, target, kind, None, len(body), 0, "reset"))
            self._reset()
            return
        if fault is not None and fault.kind == "unavailable":
            payload = (
                b'{"errors":[{"code":"UNAVAILABLE","message":"injected by FaultProxy",'
                b'"detail":null}]}'
            )
            owner.record(Exchange(method, target, kind, 503, len(body), 0, "unavailable"))
            self.send_response_only(503, "Service Unavailable")
            self.send_header("Retry-After", str(fault.retry_after))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(payload)
            return

        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
            fault = None  # then forwarded as it is
        status, reason, headers, resp_body = self._forward(method, target, body)
        sent = resp_body
        if fault is not None:  # truncate
            keep = len(resp_body) // 2 if fault.keep_bytes is None else fault.keep_bytes
            sent = resp_body[: max(0, min(keep, len(resp_body) - 1))]
        owner.record(
            Exchange(
                method,
                target,
                kind,
                status,
                len(body),
                len(sent),
                None if fault is None else fault.kind,
            )
        )
        self.send_response_only(status, reason)
        for name, value in headers:
            if name.lower() == "location":
                value = owner.rewrite_location(value)
            self.send_header(name, value)
        self.end_headers()
        if sent:
            self.wfile.write(sent)
        if fault is not None:
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return _read_chunked(self.rfile)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(
        self, method: str, target: str, body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        forward = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]
        if body or method in ("POST", "PUT", "PATCH"):
            forward.append(("Content-Length", str(len(body))))
        # A kept-alive upstream connection may have been closed by the registry while idle;
        # that shows up on the next use, so a reused connection gets one retry on a fresh one.
        for attempt in (1, 2):
            fresh = self._upstream is None
            conn = self._upstream or self.server.owner.connect_upstream()
            self._upstream = conn
            try:
                # skip_host: the client's own Host header is forwarded verbatim (see docstring).
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in forward:
                    conn.putheader(name, value)
                conn.endheaders(body or None)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionError):
                conn.close()
                self._upstream = None
                if fresh or attempt == 2:
                    raise
                continue
            if resp.will_close:
                conn.close()
                self._upstream = None
            headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP]
            if method == "HEAD":
                length = resp.getheader("Content-Length")
                if length is not None:
                    headers.append(("Content-Length", length))
            elif resp.status >= 200 and resp.status not in (204, 304):
                headers.append(("Content-Length", str(len(data))))
            return resp.status, resp.reason, headers, data
        raise AssertionError("unreachable")

    def _reset(self) -> None:
        sock = self.connection
        # Linger 0 turns close() into an RST instead of an orderly FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # rfile holds a reference to the socket; close it first or close() is deferred.
        self.rfile.close()
        sock.close()
        self.close_connection = True


def _read_chunked(rfile: io.BufferedIOBase) -> bytes:
    parts: list[bytes] = []
    while True:
        line = rfile.readline(65537)
        if not line:
            raise ConnectionError("client closed inside a chunked body")
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # trailers: nothing of interest for a registry
            return b"".join(parts)
        parts.append(rfile.read(size))
        rfile.readline(3)


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: FaultProxy) -> None:
        self.owner = owner
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._conns_lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def drop_all(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-exchange are normal in fault tests; keep them out of stderr
        # but keep them inspectable.
        self.owner.errors.append(repr(sys.exc_info()[1]))


class FaultProxy:
    """The proxy; a context manager. `host` is `127.0.0.1:PORT` once started."""

    def __init__(self, upstream: str, *, max_lifetime: float = 600.0) -> None:
        hostname, sep, port = upstream.rpartition(":")
        if not sep or hostname not in ("127.0.0.1", "localhost") or not port.isdigit():
            raise ValueError(f"upstream must be a loopback host:port, got {upstream!r}")
        self.upstream = upstream
        self.max_lifetime = max_lifetime
        self.errors: list[str] = []
        self._faults: list[Fault] = []
        self._exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._stopped = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        if self._server is not None:
            return self
        self._stopped.clear()
        self._server = _ProxyServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fault-proxy-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._timer = threading.Timer(self.max_lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
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
        self._stopped.set()

    def wait_stopped(self, timeout: float) -> bool:
        """Block until the proxy has stopped (by `stop()` or `max_lifetime`); False on timeout."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> FaultProxy:
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
            raise RuntimeError("fault proxy is not running")
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    # -- scripting ------------------------------------------------------------------------------

    def inject(
        self,
        kind: FaultKind,
        *,
        method: str | None = None,
        path_kind: str | None = None,
        path_regex: str | None = None,
        times: int = 1,
        skip: int = 0,
        retry_after: int = 1,
        keep_bytes: int | None = None,
        seconds: float = 0.0,
    ) -> Fault:
        """Fail the next `times` matching requests (after letting `skip` through) with `kind`."""
        fault = Fault(
            kind, method, path_kind, path_regex, times, skip, retry_after, keep_bytes, 0, seconds
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, method: str, target: str, kind: str) -> Fault | None:
        """The first armed fault matching this request, consuming one of its uses."""
        with self._lock:
            for fault in self._faults:
                if fault.times <= 0 or not fault.matches(method, target, kind):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.times -= 1
                fault.hits += 1
                return fault
        return None

    # -- counting -------------------------------------------------------------------------------

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)

    @property
    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    def reset_counts(self) -> None:
        with self._lock:
            self._exchanges.clear()

    def counts(self) -> Counter[tuple[str, str]]:
        """Requests seen, keyed by (method, kind), e.g. `("PUT", "manifest")`."""
        return Counter((e.method, e.kind) for e in self.exchanges)

    def count(self, method: str | None = None, kind: str | None = None) -> int:
        return sum(
            1
            for e in self.exchanges
            if (method is None or e.method == method) and (kind is None or e.kind == kind)
        )

    @property
    def upload_bytes(self) -> int:
        """Request-body bytes sent to blob upload endpoints (POST/PATCH/PUT …/blobs/uploads)."""
        return sum(e.request_bytes for e in self.exchanges if e.kind in ("upload", "mount"))

    @property
    def mounts_succeeded(self) -> int:
        """Cross-repository mount requests the registry answered with 201 Created."""
        return sum(1 for e in self.exchanges if e.kind == "mount" and e.status == 201)

    # -- used by the handler --------------------------------------------------------------------

    def connect_upstream(self) -> http.client.HTTPConnection:
        hostname, _, port = self.upstream.rpartition(":")
        return http.client.HTTPConnection(hostname, int(port), timeout=60)

    def rewrite_location(self, value: str) -> str:
        for prefix in (f"http://{self.upstream}", f"https://{self.upstream}"):
            if value.startswith(prefix) and self._server is not None:
                return self.url + value[len(prefix) :]
        return value
