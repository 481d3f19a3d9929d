"""Retries of idempotent registry steps: which failures qualify, and how long to wait.

A step is retried only when repeating it cannot change the outcome: GET and HEAD, a manifest
PUT (same bytes, same digest), a mount request, and a whole blob upload restarted from its HEAD
(content-addressed: a blob that did land is found by the HEAD and not sent again). A single
PATCH of a chunked upload is never repeated on its own.

Qualifying failures: 408, 429, 500, 502, 503, 504, and dropped or reset connections, timeouts
and truncated bodies. The wait doubles from `backoff` up to `max_backoff`, with jitter, unless
the registry says `Retry-After` (seconds or an HTTP date), which is honoured up to a cap.

Not retried, and each one line: a host name that does not resolve (the name is wrong, or DNS
is down: five tries would change neither), a request past its overall deadline (repeating it
would multiply the wait), and every other httpx failure (a redirect or URL it cannot use).
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from typing import TypeVar

import httpx

from engine.cancel import CancelToken
from engine.errors import RegistryError, RegistryTimeout, UnknownRegistryHost
from engine.registry.options import BLOB_DEADLINE_ENV, DEADLINE_ENV, RegistryOptions
from engine.registry.transport import DeadlineExpired, describe, request_host, unresolvable

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class RetryableError(Exception):
    """A failed attempt worth repeating: `message` says what happened, `delay` what the
    registry asked for (seconds), if anything."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.delay = delay


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def check_status(response: httpx.Response, what: str) -> None:
    """Raise RetryableError for a status worth retrying (`what`, if any, prefixes it)."""
    if response.status_code in RETRY_STATUSES:
        raise RetryableError(
            f"{what}: HTTP {response.status_code}" if what else f"HTTP {response.status_code}",
            parse_retry_after(response.headers.get("Retry-After")),
        )


def describe_transport_error(error: httpx.TransportError) -> str:
    return describe(error)


def unknown_host(error: httpx.TransportError, what: str) -> UnknownRegistryHost | None:
    """The one-line error for a host name that does not resolve, or None for other failures."""
    reason = unresolvable(error)
    if reason is None:
        return None
    host = request_host(error) or "the registry"
    return UnknownRegistryHost(
        f"{what}: host name {host} does not resolve ({reason}); check the name in the "
        "reference, and that DNS works on this machine"
    )


def timed_out(error: DeadlineExpired, what: str) -> RegistryTimeout:
    return RegistryTimeout(
        f"{what}: {error} (the overall limit of one request; {DEADLINE_ENV} and, for blobs, "
        f"{BLOB_DEADLINE_ENV} set it in seconds)"
    )


def not_retryable(error: httpx.HTTPError | httpx.InvalidURL, what: str) -> RegistryError:
    return RegistryError(f"{what}: {describe(error)}")


def with_retries(
    step: Callable[[], T],
    options: RegistryOptions,
    what: str,
    cancel: CancelToken | None = None,
    on_retry: Callable[[str, float], None] | None = None,
) -> T:
    """Run `step` until it returns, retrying RetryableError and transport errors."""
    attempts = max(1, options.attempts)
    last = ""
    for attempt in range(1, attempts + 1):
        if cancel is not None:
            cancel.check()
        try:
            return step()
        except RetryableError as e:
            last, asked = e.message, e.delay
        except httpx.TransportError as e:
            hopeless = unknown_host(e, what)
            if hopeless is not None:
                raise hopeless from None
            last, asked = describe_transport_error(e), None
        except DeadlineExpired as e:
            raise timed_out(e, what) from None
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            raise not_retryable(e, what) from None
        if attempt == attempts:
            break
        delay = min(options.max_backoff, options.backoff * (2 ** (attempt - 1)))
        delay *= 1 + random.uniform(-0.2, 0.2)  # jitter: clients retrying together spread out
        if asked is not None:
            delay = min(max(delay, asked), options.retry_after_cap)
        if on_retry is not None:
            on_retry(last, delay)
        _sleep(delay, cancel)
    raise RegistryError(f"{what}: {last} (gave up after {attempts} attempts)")


def retry_pause(seconds: float, cancel: CancelToken | None) -> None:
    """Wait `seconds` before another attempt, stopping early if `cancel` is cancelled."""
    _sleep(seconds, cancel)


def _sleep(seconds: float, cancel: CancelToken | None) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if cancel is not None:
            cancel.check()
        time.sleep(min(left, 0.1))
