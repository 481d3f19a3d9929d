"""An OCI distribution API client for one registry: ping, manifests, blobs, upload steps.

One httpx client per registry (HTTP/1.1 keep-alive), requests bounded per host by a
process-wide semaphore, authentication answered from the registry's own challenge (auth.py).
Every byte received is checked against the digest it was asked for; manifests are always
requested with the OCI types in `Accept` (distribution answers 404 to a Docker-only Accept for
an OCI manifest).

Scheme: HTTPS, verified against the system CAs plus `--ca-file`. A loopback registry that does
not speak TLS is used over plain HTTP (never one whose certificate fails verification: that is
an error, not a downgrade). `--insecure-registry HOST` allows HTTPS without verification and
then plain HTTP, as docker does.

Each method here is one attempt of one step, except where it says it retries; idempotent steps
are wrapped in `retry.with_retries` by their callers or here.

Trust, as docker keeps it: the registry's credentials (Basic, or a token from the realm its own
challenge names) go only to the registry's own origin. Redirects are followed here, not by
httpx, so that a blob redirected to another host (a CDN, a bucket) is fetched there with no
Authorization, and a 401 from that host is an error rather than a challenge to answer: its
realm would otherwise receive the registry's password. Redirects are bounded (10, no URL
twice). Every request has an overall deadline besides the per-read timeout (transport.py), and
no answer is read past its cap: 4 MiB for manifests, indexes, configs, tokens and error bodies,
the descriptor's size for a blob.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpcore
import httpx

from engine.cancel import CancelToken
from engine.errors import (
    NotInRegistry,
    OversizedResponse,
    RegistryError,
    RegistryRedirectError,
    RegistryStatusError,
    Unauthorized,
)
from engine.oci import mediatypes
from engine.oci.descriptor import Descriptor
from engine.oci.digest import Digest
from engine.registry.auth import Authenticator, delete_scope, pull_scope, push_scope
from engine.registry.dockerconfig import Credentials, lookup
from engine.registry.hosts import api_host, hostname, is_loopback
from engine.registry.options import RegistryOptions, default_options
from engine.registry.retry import (
    RetryableError,
    check_status,
    not_retryable,
    timed_out,
    with_retries,
)
from engine.registry.transport import (
    SMALL_BODY_CAP,
    DeadlineExpired,
    content_coding,
    deadline,
    make_client,
    read_capped,
)

MANIFEST_TYPES = (
    mediatypes.OCI_MANIFEST,
    mediatypes.OCI_INDEX,
    mediatypes.DOCKER_MANIFEST,
    mediatypes.DOCKER_MANIFEST_LIST,
)
MANIFEST_ACCEPT = ", ".join(MANIFEST_TYPES)
# A repository's tags: a few pages of at most this many (distribution pages by 100 or 1,000).
MAX_TAGS = 100_000
MAX_TAG_PAGES = 1_000
MAX_MANIFEST_BYTES = SMALL_BODY_CAP  # distribution's own limit; anything bigger is not one
# A body we do not need (a ping's, a redirect's) is read this far so that its connection can be
# kept; one longer is dropped with the connection.
DISCARD_CAP = 64 << 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10  # Go's net/http (so docker's) limit
# httpcore reads a response at most 64 KiB at a time, and every read is a trip through h11 in
# Python, holding the GIL the decompressing threads want. A read returns whatever has arrived
# (it never waits to fill the buffer), so a larger one changes no timing or resume behaviour;
# on a 202 MB pull it cut the HTTP share of the CPU by about 0.1 s (3,100 reads to ~800).
# The attribute is httpcore's (class-level, read per call); tests check it is still there.
READ_BYTES = 256 << 10
if hasattr(httpcore.HTTP11Connection, "READ_NUM_BYTES"):
    httpcore.HTTP11Connection.READ_NUM_BYTES = max(
        READ_BYTES, httpcore.HTTP11Connection.READ_NUM_BYTES
    )

_slots_lock = threading.Lock()
_slots: dict[tuple[str, int], threading.BoundedSemaphore] = {}


def host_slots(host: str, limit: int) -> threading.BoundedSemaphore:
    """The process-wide semaphore bounding concurrent requests to `host`."""
    with _slots_lock:
        slot = _slots.get((host, limit))
        if slot is None:
            slot = _slots[(host, limit)] = threading.BoundedSemaphore(limit)
        return slot


class BlobSink(Protocol):
    """Where fetched blob bytes go; `reset()` starts over when a resume is refused."""

    def write(self, data: bytes) -> Any: ...

    def reset(self) -> None: ...


@dataclass(frozen=True)
class Manifest:
    """Manifest or index bytes as received, with their verified digest."""

    data: bytes
    media_type: str
    digest: Digest

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.data))


@dataclass(frozen=True)
class Reply:
    """A finished exchange: status, headers and the (small) body."""

    status_code: int
    headers: httpx.Headers
    content: bytes


@dataclass(frozen=True)
class UploadStart:
    """Answer to POST /blobs/uploads/: mounted (201), or an upload session at `location`."""

    mounted: bool
    location: str = ""
    min_chunk: int = 0


_AUTO: Any = object()


def _ssl_failure(error: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    cur: BaseException | None = error
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLError):
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def _error_codes(response: httpx.Response | Reply) -> tuple[str, ...]:
    try:
        errors = json.loads(response.content).get("errors") or []
        return tuple(str(e.get("code", "")) for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError, httpx.ResponseNotRead):
        return ()


def registry_message(response: httpx.Response | Reply) -> str:
    """The distribution error in a response body ("CODE: message"), or ""."""
    try:
        data = json.loads(response.content)
        errors = data.get("errors") or []
        parts = [
            f"{e.get('code', '')}: {e.get('message', '')}".strip(": ")
            for e in errors
            if isinstance(e, dict)
        ]
        text = "; ".join(p for p in parts if p)
    except (ValueError, AttributeError, httpx.ResponseNotRead):
        return ""
    # The server's words go into one line of ours: no newlines, no terminal control codes.
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:300]


class RegistryClient:
    """The API of one registry (`127.0.0.1:5000`, `ghcr.io`, `docker.io`). Thread-safe."""

    def __init__(
        self,
        registry: str,
        options: RegistryOptions | None = None,
        credentials: Credentials | None = _AUTO,
    ) -> None:
        self.registry = registry
        self.host = api_host(registry)
        self.options = options or default_options()
        if credentials is _AUTO:
            credentials = lookup(registry, self.options.docker_config)
        self.auth = Authenticator(registry, credentials)
        self._client: httpx.Client | None = None
        self._base = ""
        self._connect_lock = threading.Lock()
        self._broken: RegistryError | None = None  # a failed connection is not retried per call
        self._slots = host_slots(self.host, max(1, self.options.max_requests_per_host))

    # -- connection ------------------------------------------------------------------------------

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def scheme(self) -> str:
        self._connect()
        return self._base.split(":", 1)[0]

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.options.ca_file is not None:
            try:
                context.load_verify_locations(cafile=str(self.options.ca_file))
            except (OSError, ssl.SSLError) as e:
                reason = getattr(e, "strerror", None) or getattr(e, "reason", None) or e
                raise RegistryError(
                    f"cannot use CA bundle {self.options.ca_file}: {reason}"
                ) from None
        return context

    def _make_client(self, verify: ssl.SSLContext | bool) -> httpx.Client:
        return make_client(verify, self.options.timeout, max(1, self.options.max_requests_per_host))

    def _insecure(self) -> bool:
        return self.host in self.options.insecure or hostname(self.host) in self.options.insecure

    def connect(self) -> None:
        """Find the scheme and the registry's auth challenge now (else on first use)."""
        self._connect()

    def _connect(self) -> httpx.Client:
        with self._connect_lock:
            if self._client is not None:
                return self._client
            if self._broken is not None:
                raise self._broken
            try:
                return self._connect_locked()
            except RegistryError as e:
                self._broken = e
                raise

    def _connect_locked(self) -> httpx.Client:
        plans: list[tuple[str, ssl.SSLContext | bool]]
        if self._insecure():
            plans = [("https", False), ("http", False)]
        elif is_loopback(self.host):
            plans = [("https", self._ssl_context()), ("http", False)]
        else:
            plans = [("https", self._ssl_context())]
        for i, (scheme, verify) in enumerate(plans):
            client = self._make_client(verify)
            try:
                self._ping(client, f"{scheme}://{self.host}", more=i + 1 < len(plans))
            except _NotTLS:
                client.close()
                continue
            except BaseException:
                client.close()
                raise
            self._client, self._base = client, f"{scheme}://{self.host}"
            return client
        raise RegistryError(f"{self.registry}: no usable connection")  # pragma: no cover

    def _ping(self, client: httpx.Client, base: str, more: bool) -> None:
        def once() -> None:
            with self._slots, deadline(self.options.deadline):
                try:
                    response = client.send(client.build_request("GET", f"{base}/v2/"), stream=True)
                except httpx.ConnectError as e:
                    failure = _ssl_failure(e)
                    if isinstance(failure, ssl.SSLCertVerificationError):
                        raise RegistryError(
                            f"{self.registry}: TLS certificate not trusted "
                            f"({failure.verify_message or failure.reason}); pass --ca-file PEM "
                            f"(or --insecure-registry {self.registry} to skip verification)"
                        ) from None
                    if failure is not None and more:
                        raise _NotTLS() from None
                    raise
                try:
                    read_capped(response, DISCARD_CAP)  # its content is of no interest
                finally:
                    response.close()
            if response.status_code == 401:
                self.auth.learn(response.headers)
                return
            check_status(response, "GET /v2/")
            if response.status_code != 200:
                raise RegistryError(
                    f"{self.registry}: GET /v2/ answered HTTP {response.status_code}: "
                    "not an OCI distribution registry"
                )

        with_retries(once, self.options, f"{self.registry}: cannot reach the registry")

    # -- one exchange ------------------------------------------------------------------------------

    def url(self, path: str) -> httpx.URL:
        """`path` on this registry (an absolute URL, e.g. an upload Location, is kept)."""
        self._connect()
        if path.startswith(("https://", "http://")):
            return httpx.URL(path)
        return httpx.URL(self._base + path)

    def absolute(self, location: str) -> httpx.URL:
        """A Location header made absolute (distribution sends absolute ones; others may not)."""
        return self.url("/").join(location)

    def _own(self, url: httpx.URL) -> bool:
        """Whether `url` is on the registry's own origin (scheme, host and port): the only
        place its credentials go (with its token realm)."""
        own = httpx.URL(self._base)
        return (url.scheme, url.host, url.port) == (own.scheme, own.host, own.port)

    @contextlib.contextmanager
    def exchange(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        scopes: Sequence[str],
        what: str,
        headers: dict[str, str] | None = None,
        body: Callable[[], Iterable[bytes]] | bytes | None = None,
        follow: bool = False,
        seconds: float | None = None,
    ) -> Iterator[httpx.Response]:
        """Send one request (answering an auth challenge once, following redirects if
        `follow`) and yield the open response; the whole exchange, the caller's reading of
        the body included, is bounded by `seconds` (default: the options' deadline).

        Raises Unauthorized for a refused request and RetryableError for a status worth
        repeating; transport errors propagate as httpx errors for `with_retries`.
        """
        client = self._connect()
        target = url if isinstance(url, httpx.URL) else self.url(url)
        limit = self.options.deadline if seconds is None else seconds
        with self._slots, deadline(limit):
            response: httpx.Response | None = None
            try:
                response = self._send(client, method, target, scopes, what, headers, body, follow)
                # A status to retry: its body is not read (it may never end), only dropped.
                # with_retries names the registry and the step; the status is all to add.
                check_status(response, "")
                yield response
            except DeadlineExpired as e:
                raise timed_out(e, f"{self.registry}: {what}") from None
            except httpx.TransportError:
                raise  # for with_retries: retried, or one line for a name that does not resolve
            except (httpx.HTTPError, httpx.InvalidURL) as e:
                raise not_retryable(e, f"{self.registry}: {what}") from None
            finally:
                if response is not None:
                    response.close()

    def _send(
        self,
        client: httpx.Client,
        method: str,
        target: httpx.URL,
        scopes: Sequence[str],
        what: str,
        headers: dict[str, str] | None,
        body: Callable[[], Iterable[bytes]] | bytes | None,
        follow: bool,
    ) -> httpx.Response:
        """The answer to `method target` after the challenge and the redirects (module doc)."""
        visited = [target]
        answered = False  # a challenge is answered once; a second 401 is a refusal
        while True:
            own = self._own(target)
            send_headers = dict(headers or {})
            authorization = self.auth.header(client, scopes) if own else None
            if authorization is not None:
                send_headers["Authorization"] = authorization
            content = body() if callable(body) else body
            request = client.build_request(method, target, headers=send_headers, content=content)
            try:
                response = client.send(request, stream=True)
            except httpx.RemoteProtocolError as e:
                # httpx parses a Location even when not following it; one it cannot parse
                # fails the exchange, and retrying would meet the same header.
                if "location header" not in str(e).lower():
                    raise
                raise RegistryRedirectError(
                    f"{self.registry}: {what}: {_where(target)} redirected without a usable "
                    "Location"
                ) from None
            try:
                status = response.status_code
                if follow and status in REDIRECT_STATUSES:
                    target = self._redirect(response, visited, what)
                    read_capped(response, DISCARD_CAP)
                    response.close()
                    continue
                if status not in (401, 403) or (status == 403 and not own):
                    return response  # a 403 elsewhere (an expired signed URL) is the caller's
                reply = self._small_error(response)
                if not own:
                    raise RegistryRedirectError(
                        f"{self.registry}: {what}: redirected to {_where(target)}, which asks "
                        f"for credentials (HTTP {status}); vinci gives {self.registry}'s "
                        f"credentials only to {self.registry} and the token server it names"
                    )
                had_token = authorization is not None
                if status == 403 or answered or not self.auth.learn(reply.headers):
                    raise self._unauthorized(reply, what, had_token)
                if had_token and self.auth.challenge is not None:
                    if self.auth.challenge.scheme == "basic":
                        raise self._unauthorized(reply, what, had_token)
                    self.auth.forget(scopes)  # expired, or too narrow: fetch a fresh one
                answered = True
            except BaseException:
                response.close()
                raise
            response.close()

    def _redirect(self, response: httpx.Response, visited: list[httpx.URL], what: str) -> httpx.URL:
        """Where a redirect leads, if it may be followed: no loop, at most MAX_REDIRECTS."""
        here = visited[-1]
        location = response.headers.get("Location", "")
        try:
            target = here.join(location) if location else None
        except httpx.InvalidURL:
            target = None
        if target is None or target.scheme not in ("http", "https") or not target.host:
            raise RegistryRedirectError(
                f"{self.registry}: {what}: {_where(here)} redirected without a usable Location "
                f"(HTTP {response.status_code})"
            )
        hops = " -> ".join(_where(u) for u in [*visited, target])
        if target in visited:
            raise RegistryRedirectError(f"{self.registry}: {what}: redirect loop ({hops})")
        if len(visited) > MAX_REDIRECTS:
            raise RegistryRedirectError(
                f"{self.registry}: {what}: more than {MAX_REDIRECTS} redirects "
                f"(last to {_where(target)})"
            )
        visited.append(target)
        return target

    def _small_error(self, response: httpx.Response) -> Reply:
        """An error answer with its body, if that is short and plain (else without it): the
        body only ever adds the registry's message to ours."""
        data = read_capped(response) if not content_coding(response) else None
        return Reply(response.status_code, response.headers, data or b"")

    def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        scopes: Sequence[str],
        what: str,
        headers: dict[str, str] | None = None,
        body: Callable[[], Iterable[bytes]] | bytes | None = None,
        follow: bool = False,
        limit: int = MAX_MANIFEST_BYTES,
        seconds: float | None = None,
    ) -> Reply:
        """One exchange with its (small) body read: at most `limit` bytes (an error body that
        is longer is dropped)."""
        with self.exchange(
            method,
            url,
            scopes=scopes,
            what=what,
            headers=headers,
            body=body,
            follow=follow,
            seconds=seconds,
        ) as response:
            if method == "HEAD":
                return Reply(response.status_code, response.headers, b"")
            if response.status_code >= 400:
                return self._small_error(response)
            coding = content_coding(response)
            if coding:
                raise RegistryError(
                    f"{self.registry}: {what}: the answer is {coding}-encoded, though vinci "
                    "asks for no content coding"
                )
            data = read_capped(response, limit)
            if data is None:
                raise OversizedResponse(
                    f"{self.registry}: {what}: the answer is larger than {_size(limit)}, the "
                    "most vinci reads of a manifest, index, config, token or error"
                )
            return Reply(response.status_code, response.headers, data)

    def _unauthorized(self, response: Reply, what: str, had_token: bool) -> Unauthorized:
        detail = registry_message(response)
        creds = self.auth.credentials
        if creds is None:
            hint = f"no credentials for this registry; run `vinci login {self.registry}`"
        elif had_token:
            hint = f"the credentials of user {creds.username!r} were refused"
        else:
            hint = "credentials were not accepted"
        suffix = f" ({detail})" if detail else ""
        return Unauthorized(f"{self.registry}: unauthorized: {what}: {hint}{suffix}")

    def error(self, response: httpx.Response | Reply, what: str) -> RegistryStatusError:
        detail = registry_message(response)
        suffix = f": {detail}" if detail else ""
        return RegistryStatusError(
            f"{self.registry}: {what}: HTTP {response.status_code}{suffix}",
            response.status_code,
            _error_codes(response),
        )

    def retrying(self, step: Callable[[], Any], what: str, cancel: CancelToken | None) -> Any:
        return with_retries(step, self.options, f"{self.registry}: {what}", cancel)

    def check_login(self) -> None:
        """Prove the credentials work, as `docker login` does: answer the registry's challenge
        on /v2/ (Basic), or obtain a token from its realm (Bearer)."""
        self._connect()
        if self.auth.challenge is None:
            return  # the registry asks for no credentials at all
        reply = self.retrying(
            lambda: self.request("GET", "/v2/", scopes=[], what="login"), "login", None
        )
        if reply.status_code != 200:
            raise self.error(reply, "GET /v2/")

    # -- manifests -----------------------------------------------------------------------------

    def get_manifest(
        self, repository: str, reference: str, cancel: CancelToken | None = None
    ) -> Manifest:
        """Fetch a manifest or index by tag or digest; its bytes are checked against the
        digest asked for (or, for a tag, the one the registry states). Retries."""
        what = f"GET manifest {repository}:{reference}"

        def once() -> Manifest:
            response = self.request(
                "GET",
                f"/v2/{repository}/manifests/{reference}",
                scopes=[pull_scope(repository)],
                what=what,
                headers={"Accept": MANIFEST_ACCEPT},
            )
            if response.status_code == 404:
                raise NotInRegistry(f"{self.registry}/{repository}: manifest {reference} not found")
            if response.status_code != 200:
                raise self.error(response, what)
            data = response.content
            digest = Digest(hashlib.sha256(data).hexdigest())
            stated = response.headers.get("Docker-Content-Digest", "")
            expected = reference if reference.startswith("sha256:") else stated
            if expected and expected != str(digest):
                raise RegistryError(
                    f"{self.registry}/{repository}: manifest {reference} does not match its "
                    f"digest (received {digest})"
                )
            media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
            if media_type not in MANIFEST_TYPES:
                media_type = _declared_type(data) or media_type
            return Manifest(data, media_type, digest)

        result: Manifest = self.retrying(once, what, cancel)
        return result

    def head_manifest(
        self, repository: str, reference: str, cancel: CancelToken | None = None
    ) -> Digest | None:
        """Whether `repository` holds a manifest under `reference` (a tag or a digest): its
        digest as the registry states it, or None if there is none. Retries."""
        what = f"HEAD manifest {repository}:{reference}"

        def once() -> Digest | None:
            response = self.request(
                "HEAD",
                f"/v2/{repository}/manifests/{reference}",
                scopes=[pull_scope(repository)],
                what=what,
                headers={"Accept": MANIFEST_ACCEPT},
            )
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise self.error(response, what)
            stated = response.headers.get("Docker-Content-Digest", "")
            try:
                return Digest.parse(stated or reference)
            except ValueError:
                # Present, but named by a tag and with no digest stated: a GET will say.
                return Digest("0" * 64)

        result: Digest | None = self.retrying(once, what, cancel)
        return result

    def put_manifest(
        self,
        repository: str,
        reference: str,
        data: bytes,
        media_type: str,
        cancel: CancelToken | None = None,
    ) -> Digest:
        """Store a manifest under a tag or its digest. Idempotent, so retried."""
        digest = Digest(hashlib.sha256(data).hexdigest())
        what = f"PUT manifest {repository}:{reference}"

        def once() -> Digest:
            response = self.request(
                "PUT",
                f"/v2/{repository}/manifests/{reference}",
                scopes=[push_scope(repository)],
                what=what,
                headers={"Content-Type": media_type},
                body=data,
            )
            if response.status_code not in (200, 201, 202):
                raise self.error(response, what)
            stated = response.headers.get("Docker-Content-Digest", "")
            if stated and stated != str(digest):
                raise RegistryError(
                    f"{self.registry}: {what}: the registry stored it as {stated}, not {digest}"
                )
            return digest

        result: Digest = self.retrying(once, what, cancel)
        return result

    def delete_manifest(
        self, repository: str, digest: Digest, cancel: CancelToken | None = None
    ) -> bool:
        """Delete the manifest `digest` (and so every tag naming it): True when deleted, False
        when the registry has no such manifest (any more). A registry that does not allow
        deletes answers 405 (distribution: UNSUPPORTED), raised as a RegistryStatusError.
        Retried: deleting what is gone is a 404, not a second deletion."""
        what = f"DELETE manifest {repository}@{digest}"

        def once() -> bool:
            response = self.request(
                "DELETE",
                f"/v2/{repository}/manifests/{digest}",
                scopes=[delete_scope(repository)],
                what=what,
            )
            if response.status_code == 404:
                return False
            if response.status_code not in (200, 202, 204):
                raise self.error(response, what)
            return True

        result: bool = self.retrying(once, what, cancel)
        return result

    def list_tags(self, repository: str, cancel: CancelToken | None = None) -> list[str]:
        """Every tag of `repository`, following the registry's pages (its Link headers), at
        most MAX_TAGS of them. Each page is one bounded read, retried."""
        tags: list[str] = []
        what = f"GET tags of {repository}"
        url: httpx.URL | str = f"/v2/{repository}/tags/list"
        for _page in range(MAX_TAG_PAGES):
            step = functools.partial(self._tag_page, repository, url)
            page: Reply = self.retrying(step, what, cancel)
            tags.extend(_tag_list(page.content, f"{self.registry}: {what}"))
            if len(tags) > MAX_TAGS:
                raise RegistryError(f"{self.registry}/{repository}: more than {MAX_TAGS} tags")
            following = _next_link(page.headers.get("Link", ""))
            if not following:
                return tags
            url = self.absolute(following)
        raise RegistryError(f"{self.registry}/{repository}: more than {MAX_TAG_PAGES} pages")

    def _tag_page(self, repository: str, url: httpx.URL | str) -> Reply:
        what = f"GET tags of {repository}"
        response = self.request("GET", url, scopes=[pull_scope(repository)], what=what)
        if response.status_code == 404:
            raise RegistryError(f"{self.registry}/{repository}: no such repository")
        if response.status_code != 200:
            raise self.error(response, what)
        return response

    # -- blobs ---------------------------------------------------------------------------------

    def head_blob(self, repository: str, digest: Digest, *, push: bool = False) -> int | None:
        """The blob's size if `repository` has it, else None. One attempt."""
        scope = push_scope(repository) if push else pull_scope(repository)
        response = self.request(
            "HEAD",
            f"/v2/{repository}/blobs/{digest}",
            scopes=[scope],
            what=f"push to {repository}" if push else f"pull from {repository}",
            follow=True,
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self.error(response, f"HEAD blob {digest} in {repository}")
        try:
            return int(response.headers.get("Content-Length", "-1"))
        except ValueError:
            return -1

    def fetch_blob(
        self,
        repository: str,
        digest: Digest,
        size: int,
        sink: BlobSink,
        progress: Callable[[int], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        """Stream a blob into `sink`, resuming a dropped transfer with a Range request.

        The caller verifies the digest of what `sink` received (the sink hashes as it
        writes); this method guarantees exactly `size` bytes or an error.
        """
        what = f"GET blob {digest} from {repository}"
        received = 0

        def once() -> None:
            nonlocal received
            headers = {}
            if received:
                headers["Range"] = f"bytes={received}-"
            with self.exchange(
                "GET",
                f"/v2/{repository}/blobs/{digest}",
                scopes=[pull_scope(repository)],
                what=what,
                headers=headers,
                follow=True,
                seconds=self.options.blob_deadline_for(size),
            ) as response:
                if response.status_code == 404:
                    raise NotInRegistry(f"{self.registry}/{repository}: blob {digest} not found")
                if received and response.status_code == 200:
                    # The registry ignored the Range: start over.
                    sink.reset()
                    received = 0
                elif response.status_code not in (200, 206):
                    raise self.error(self._small_error(response), what)
                # No chunk_size: httpx would buffer up to it, and a dropped connection would
                # lose the buffered bytes a resume could have kept.
                for chunk in response.iter_raw():
                    if cancel is not None:
                        cancel.check()
                    if received + len(chunk) > size:
                        raise OversizedResponse(
                            f"{self.registry}/{repository}: blob {digest} is larger than its "
                            f"descriptor says ({size} bytes)"
                        )
                    sink.write(chunk)
                    received += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
            if received != size:
                raise RetryableError(f"{what}: got {received} of {size} bytes")

        self.retrying(once, what, cancel)

    # -- uploads (single attempts: upload.py retries the whole upload) ------------------------

    def start_upload(
        self, repository: str, mount: Digest | None = None, source: str = ""
    ) -> UploadStart:
        path = f"/v2/{repository}/blobs/uploads/"
        scopes = [push_scope(repository)]
        what = f"POST upload to {repository}"
        url = self.url(path)
        if mount is not None and source:
            url = url.copy_merge_params({"mount": str(mount), "from": source})
            scopes.append(pull_scope(source))
            what = f"mount {mount.short} from {source} into {repository}"
        response = self.request(
            "POST", url, scopes=scopes, what=what, headers={"Content-Length": "0"}
        )
        if response.status_code == 201 and mount is not None:
            return UploadStart(True)
        if response.status_code != 202:
            raise self.error(response, what)
        location = response.headers.get("Location", "")
        if not location:
            raise RegistryError(f"{self.registry}: {what}: no Location in the answer")
        try:
            min_chunk = int(response.headers.get("OCI-Chunk-Min-Length", "0"))
        except ValueError:
            min_chunk = 0
        return UploadStart(False, str(self.absolute(location)), min_chunk)

    def put_upload(
        self,
        repository: str,
        location: str,
        digest: Digest,
        length: int,
        body: Callable[[], Iterable[bytes]] | None,
    ) -> None:
        """Finish an upload session: PUT with the rest of the blob (maybe nothing)."""
        # merge, never params=: that would drop the session state distribution keeps in the
        # query of its Location.
        url = httpx.URL(location).copy_merge_params({"digest": str(digest)})
        what = f"PUT blob {digest.short} to {repository}"
        response = self.request(
            "PUT",
            url,
            scopes=[push_scope(repository)],
            what=what,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(length)},
            body=body if body is not None else b"",
            seconds=self.options.blob_deadline_for(length),
        )
        if response.status_code not in (201, 204):
            raise self.error(response, what)
        stated = response.headers.get("Docker-Content-Digest", "")
        if stated and stated != str(digest):
            raise RegistryError(f"{self.registry}: {what}: the registry stored {stated}")

    def patch_upload(
        self,
        repository: str,
        location: str,
        start: int,
        length: int,
        body: Callable[[], Iterable[bytes]],
    ) -> str:
        """Send one chunk; return the session's next Location."""
        what = f"PATCH upload to {repository}"
        response = self.request(
            "PATCH",
            location,
            scopes=[push_scope(repository)],
            what=what,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(length),
                "Content-Range": f"{start}-{start + length - 1}",
            },
            body=body,
            seconds=self.options.blob_deadline_for(length),
        )
        if response.status_code != 202:
            raise self.error(response, what)
        return str(self.absolute(response.headers.get("Location", "") or location))


def _tag_list(data: bytes, what: str) -> list[str]:
    try:
        names = json.loads(data).get("tags") or []
    except (ValueError, AttributeError):
        names = None
    if not isinstance(names, list) or not all(isinstance(t, str) for t in names):
        raise RegistryError(f"{what}: the answer is not a tag list")
    return names


def _next_link(header: str) -> str:
    """The target of a Link header's rel="next" ('' if none): `<url>; rel="next"`."""
    for part in header.split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            return target.strip().lstrip("<").rstrip(">")
    return ""


def _where(url: httpx.URL) -> str:
    """A URL for messages: scheme and host only (a redirect's path and query may carry a
    signature)."""
    return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n} bytes"


class _NotTLS(Exception):
    """The host answered a TLS handshake with something else: try plain HTTP."""


def _declared_type(data: bytes) -> str:
    try:
        value = json.loads(data)
    except ValueError:
        return ""
    return str(value.get("mediaType", "")) if isinstance(value, dict) else ""
