"""A small bearer-token issuer for testing registry token auth (the "Docker token" flow).

distribution's `auth.token` mode answers unauthenticated requests with
`WWW-Authenticate: Bearer realm=...,service=...,scope=...`; the client then asks the realm for a
token, optionally with basic credentials, and retries with `Authorization: Bearer <jwt>`.
This module is that realm: a stdlib threading HTTP server on 127.0.0.1:0, run on a daemon thread
in the test process, issuing RS256 JWTs signed by a throwaway key. The signing certificate goes
into the JWT's `x5c` header and into the file the registry trusts (`rootcertbundle`), which is
all distribution 2.8 needs to accept the token.

Policy, kept deliberately simple and visible to tests:
- valid basic credentials: every requested action is granted;
- wrong credentials: 401, no token;
- no credentials: only `pull` is granted (set `anonymous_pull=False` to grant nothing).
Every request is recorded in `requests` so tests can assert how often a client authenticated.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
import socketserver
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

__all__ = ["Grant", "TokenRequest", "TokenServer"]


@dataclass(frozen=True)
class Grant:
    """One entry of a token's `access` claim, in the shape distribution expects."""

    type: str
    name: str
    actions: tuple[str, ...]

    def to_claim(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


@dataclass(frozen=True)
class TokenRequest:
    """What one call to the token endpoint asked for and what it got."""

    method: str
    account: str | None  # None: anonymous
    scopes: tuple[str, ...]
    granted: tuple[Grant, ...]
    status: int


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse_scope(scope: str) -> Grant | None:
    """Parse `type:name:action,action` (the name may itself contain colons, e.g. a port)."""
    head, sep, actions = scope.rpartition(":")
    kind, sep2, name = head.partition(":")
    if not sep or not sep2 or not kind or not name:
        return None
    return Grant(kind, name, tuple(a for a in actions.split(",") if a))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # The default writes every request to stderr, which only adds noise to pytest output.
        return

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        self._issue("GET", query, self.headers.get("Authorization"))

    def do_POST(self) -> None:
        # OAuth2 "password" grant, as docker sends when it holds an identity token; the same
        # policy applies, the credentials just arrive in the form instead of a header.
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        if form.get("grant_type", [""])[0] != "password":
            self._reply(400, {"error": "unsupported_grant_type"})
            return
        user = form.get("username", [""])[0]
        password = form.get("password", [""])[0]
        basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._issue("POST", form, basic)

    def _issue(
        self, method: str, query: Mapping[str, list[str]], authorization: str | None
    ) -> None:
        owner = self.server.owner
        scopes = tuple(s for raw in query.get("scope", []) for s in raw.split(" ") if s)
        account: str | None = None
        if authorization:
            account = owner.check_basic(authorization)
            if account is None:
                owner.record(TokenRequest(method, None, scopes, (), 401))
                self._reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad creds"}]})
                return
        grants = owner.grants_for(account, scopes)
        token = owner.make_token(account or "", grants)
        owner.record(TokenRequest(method, account, scopes, grants, 200))
        issued = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "token": token,
            "access_token": token,
            "expires_in": owner.lifetime,
            "issued_at": issued,
        }
        self._reply(200, body)

    def _reply(self, status: int, payload: Mapping[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(socketserver.ThreadingTCPServer):
    # Not http.server.HTTPServer: its server_bind() does a reverse DNS lookup we do not need.
    daemon_threads = True

    def __init__(self, owner: TokenServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


@dataclass
class TokenServer:
    """Bearer-token realm for a `RegistryServer` in token mode; a context manager.

    `cert_file` (written on construction) is what the registry's `rootcertbundle` must point at.
    `realm` is known once started.
    """

    workdir: Path
    users: Mapping[str, str]
    issuer: str = "vinci-test-issuer"
    service: str = "vinci-test-registry"
    lifetime: int = 300
    anonymous_pull: bool = True
    requests: list[TokenRequest] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.issuer)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_file = self.workdir / "token-issuer.crt"
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> TokenServer:
        if self._server is not None:
            return self
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"token-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> TokenServer:
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
            raise RuntimeError("token server is not running")
        return int(self._server.server_address[1])

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    # -- policy, used by the handler thread ------------------------------------------------

    def check_basic(self, authorization: str) -> str | None:
        """The account name for a valid `Basic` header, else None."""
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if not sep or user not in self.users:
            return None
        # Constant-time compare costs nothing and keeps the example honest.
        return user if secrets.compare_digest(self.users[user], password) else None

    def grants_for(self, account: str | None, scopes: tuple[str, ...]) -> tuple[Grant, ...]:
        grants: list[Grant] = []
        for scope in scopes:
            wanted = parse_scope(scope)
            if wanted is None:
                continue
            if account is not None:
                grants.append(wanted)
            elif self.anonymous_pull and "pull" in wanted.actions:
                grants.append(Grant(wanted.type, wanted.name, ("pull",)))
        return tuple(grants)

    def make_token(self, subject: str, grants: tuple[Grant, ...]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "iat": now,
            # A little slack for clock reads on either side of the process boundary.
            "nbf": now - 30,
            "exp": now + self.lifetime,
            "jti": secrets.token_hex(12),
            "access": [g.to_claim() for g in grants],
        }
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def record(self, request: TokenRequest) -> None:
        with self._lock:
            self.requests.append(request)
