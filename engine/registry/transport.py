"""The HTTP layer under the registry client: an overall deadline per request, bounded reads of
small bodies, and one line for every way httpx can fail.

httpx bounds each network operation (connect, one read, one write) but not a whole request: a
server sending a byte every few seconds never trips a 60 s read timeout and holds the request
for ever. So the clients made here get their sockets from a network backend that clamps every
connect, read and write to what is left of the deadline the calling thread set with
`deadline()`, and raises `DeadlineExpired` once it has passed. The deadline lives in a
thread-local: httpx's sync client does its I/O on the calling thread, and a response body read
later (inside `with client.exchange(...)`) is read under the same deadline.

Small bodies (manifests, indexes, configs, tokens, error bodies) are read raw and capped: we ask
for no content coding, so a body is never inflated past its cap by a decompressor.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator

import httpcore
import httpx

SMALL_BODY_CAP = 4 << 20  # manifests, indexes, configs, tokens, error bodies: containerd's cap
USER_AGENT = "vinci"

_local = threading.local()
# httpcore's type of a socket option (setsockopt's argument shapes).
_SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class DeadlineExpired(Exception):
    """The calling thread's deadline passed during network I/O. Turned into a RegistryTimeout
    with the request's description by whoever catches it; never retried."""

    def __init__(self, seconds: float) -> None:
        shown = f"{seconds:.1f}".rstrip("0").rstrip(".")
        super().__init__(f"no complete answer within {shown}s")
        self.seconds = seconds


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound the network I/O this thread does inside the block to `seconds` in all. Nested
    deadlines never extend an outer one."""
    previous: tuple[float, float] | None = getattr(_local, "deadline", None)
    current = (time.monotonic() + seconds, seconds)
    if previous is not None and previous[0] < current[0]:
        current = previous
    _local.deadline = current
    try:
        yield
    finally:
        _local.deadline = previous


def _clamp(timeout: float | None) -> float | None:
    """`timeout` shortened to what is left of the deadline; DeadlineExpired if nothing is."""
    current: tuple[float, float] | None = getattr(_local, "deadline", None)
    if current is None:
        return timeout
    left = current[0] - time.monotonic()
    if left <= 0:
        raise DeadlineExpired(current[1])
    return left if timeout is None else min(timeout, left)


@contextlib.contextmanager
def _timeouts() -> Iterator[None]:
    """A timeout once the deadline has passed is the deadline's (it was shortened to it), not
    an ordinary slow read's, which stays retryable."""
    try:
        yield
    except httpcore.TimeoutException:
        current: tuple[float, float] | None = getattr(_local, "deadline", None)
        if current is None or time.monotonic() < current[0]:
            raise
        raise DeadlineExpired(current[1]) from None


class _Stream(httpcore.NetworkStream):
    """A socket stream whose every operation waits at most until the thread's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _timeouts():
            return self._inner.read(max_bytes, _clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        with _timeouts():
            self._inner.write(buffer, _clamp(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        with _timeouts():
            return _Stream(self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout)))

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """httpcore's own sync backend, with streams bounded by the thread's deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        with _timeouts():
            return _Stream(
                self._inner.connect_tcp(host, port, _clamp(timeout), local_address, socket_options)
            )

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.NetworkStream:  # pragma: no cover - registries are reached over TCP
        return _Stream(self._inner.connect_unix_socket(path, _clamp(timeout), socket_options))

    def sleep(self, seconds: float) -> None:  # pragma: no cover - used by httpcore retries only
        self._inner.sleep(seconds)


def make_client(verify: ssl.SSLContext | bool, timeout: float, connections: int) -> httpx.Client:
    """An httpx client for one registry: no redirects followed by httpx (the registry client
    follows them itself, deciding where credentials go), no content coding asked for, and
    every connection made through the deadline backend."""
    client = httpx.Client(
        verify=verify,
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        follow_redirects=False,
    )
    # httpx takes no network backend, but its pools (the direct one and one per proxy from the
    # environment) keep theirs in an attribute they read per new connection. Tests check it is
    # still there (test_registry_units), so an httpx upgrade cannot silently drop the deadline.
    transports = [client._transport, *(t for t in client._mounts.values() if t is not None)]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if pool is not None and hasattr(pool, "_network_backend"):
            pool._network_backend = _Backend()
    return client


def read_capped(response: httpx.Response, cap: int = SMALL_BODY_CAP) -> bytes | None:
    """The body as sent, or None once it runs past `cap` bytes (the rest is never read)."""
    data = bytearray()
    for chunk in response.iter_raw():
        data += chunk
        if len(data) > cap:
            return None
    return bytes(data)


def content_coding(response: httpx.Response) -> str:
    """The content coding the body came in ("" for none): we ask for none, so one is refused."""
    coding = response.headers.get("Content-Encoding", "").strip().lower()
    return "" if coding in ("", "identity") else coding


def unresolvable(error: BaseException) -> str | None:
    """The resolver's reason, when `error` is a name that does not resolve; else None."""
    seen: set[int] = set()
    cur: BaseException | None = error
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, socket.gaierror):
            return cur.strerror or str(cur)
        cur = cur.__cause__ or cur.__context__
    return None


def request_host(error: httpx.HTTPError) -> str:
    """The host a failed request went to, or "" when httpx did not say."""
    try:
        url = error.request.url
    except RuntimeError:
        return ""
    return f"{url.host}:{url.port}" if url.port else url.host


def describe(error: httpx.HTTPError | httpx.InvalidURL | httpx.StreamError) -> str:
    """One line for any httpx failure: its kind and its text, newlines folded."""
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:300]
