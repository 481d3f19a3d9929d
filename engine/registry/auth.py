"""Authentication the way docker does it: anonymous, Basic, or a Bearer token whose realm the
registry names in its `WWW-Authenticate` challenge.

The registry's challenge (from `GET /v2/` or any 401) decides the scheme. For Bearer, a token is
fetched from the realm for the scopes a request needs (`repository:NAME:pull` or `pull,push`,
plus `pull` on the source repository of a cross-repository mount), with Basic credentials when
we have some and anonymously otherwise, and cached per scope until shortly before it expires.

Credentials go only where the registry's own challenge says: the client learns a challenge
only from its registry's origin (client.py), never from a host it was redirected to. A token
answer is read up to 4 MiB, no further.

Tokens and passwords live only in headers: never in URLs, messages or reprs.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from engine.errors import OversizedResponse, RegistryError, Unauthorized
from engine.registry.dockerconfig import Credentials
from engine.registry.retry import unknown_host
from engine.registry.transport import content_coding, read_capped

_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")
_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


@dataclass(frozen=True)
class Challenge:
    """One `WWW-Authenticate` challenge: scheme (lowercase) and its parameters."""

    scheme: str
    params: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str:
        return dict(self.params).get(name, "")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a `WWW-Authenticate` value, e.g. `Bearer realm="…",service="…",scope="…"`."""
    out: list[Challenge] = []
    rest = header.strip()
    while rest:
        m = re.match(r"([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)\s*", rest)
        if not m:
            break
        scheme = m.group(1).lower()
        rest = rest[m.end() :]
        params: list[tuple[str, str]] = []
        while True:
            pm = _PARAM.match(rest)
            if not pm:
                break
            value = pm.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params.append((pm.group(1).lower(), value))
            rest = rest[pm.end() :]
        if not params:
            tm = _TOKEN68.match(rest)
            if tm:
                rest = rest[tm.end() :]
        out.append(Challenge(scheme, tuple(params)))
        rest = rest.lstrip(" ,")
    return out


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def delete_scope(repository: str) -> str:
    """What distribution's token auth asks of a DELETE (its `delete` action)."""
    return f"repository:{repository}:delete"


@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """Produces the Authorization header for a request needing `scopes` on one registry."""

    def __init__(self, registry: str, credentials: Credentials | None) -> None:
        self.registry = registry
        self.credentials = credentials
        self.challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._lock = threading.Lock()

    def learn(self, headers: httpx.Headers) -> bool:
        """Take the challenge of the registry's own 401; True if it is one we can answer."""
        challenges = parse_challenges(headers.get("WWW-Authenticate", ""))
        usable = [c for c in challenges if c.scheme in ("bearer", "basic")]
        # Bearer first: a registry offering both prefers tokens.
        usable.sort(key=lambda c: c.scheme != "bearer")
        if not usable:
            return False
        with self._lock:
            self.challenge = usable[0]
        return True

    def forget(self, scopes: Sequence[str]) -> None:
        """Drop the cached token for `scopes` (the registry refused it)."""
        with self._lock:
            self._tokens.pop(tuple(sorted(scopes)), None)

    def header(self, client: httpx.Client, scopes: Sequence[str]) -> str | None:
        """The Authorization value for these scopes, fetching a token if needed."""
        challenge = self.challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return self.credentials.basic() if self.credentials is not None else None
        key = tuple(sorted(scopes))
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and token.expires > time.monotonic():
                return f"Bearer {token.value}"
        token = self._fetch_token(client, challenge, key)
        with self._lock:
            self._tokens[key] = token
        return f"Bearer {token.value}"

    def _fetch_token(
        self, client: httpx.Client, challenge: Challenge, scopes: tuple[str, ...]
    ) -> _Token:
        realm = challenge.get("realm")
        if not realm.startswith(("https://", "http://")):
            raise RegistryError(f"{self.registry}: its token realm {realm!r} is not a URL")
        params: dict[str, str | list[str]] = {"scope": list(scopes)}
        if challenge.get("service"):
            params["service"] = challenge.get("service")
        # copy_merge_params keeps any query the realm already has.
        url = httpx.URL(realm).copy_merge_params(params)
        headers = {}
        if self.credentials is not None:
            headers["Authorization"] = self.credentials.basic()
        server = f"{self.registry}: token server {url.host}"
        try:
            with client.stream("GET", url, headers=headers) as response:
                data = b""
                if response.status_code == 200:
                    coding = content_coding(response)
                    if coding:
                        raise RegistryError(f"{server} sent a {coding}-encoded answer")
                    body = read_capped(response)
                    if body is None:
                        raise OversizedResponse(f"{server} sent an answer larger than 4 MiB")
                    data = body
        except httpx.TransportError as e:
            raise unknown_host(e, server) or RegistryError(
                f"{self.registry}: cannot reach its token server {url.host}: {type(e).__name__}"
            ) from None
        if response.status_code in (401, 403):
            who = f"user {self.credentials.username!r}" if self.credentials else "anonymous"
            raise Unauthorized(
                f"{self.registry}: unauthorized: the token server rejected the credentials ({who})"
            )
        if response.status_code != 200:
            raise RegistryError(
                f"{self.registry}: token server {url.host} answered HTTP {response.status_code}"
            )
        try:
            answer = json.loads(data)
            value = str(answer.get("token") or answer.get("access_token") or "")
            lifetime = float(answer.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            raise RegistryError(
                f"{self.registry}: token server sent an unreadable answer"
            ) from None
        if not value:
            raise RegistryError(f"{self.registry}: token server sent no token")
        # Refresh a little early so a token never expires between fetch and use.
        return _Token(value, time.monotonic() + max(5.0, lifetime - 10.0))
