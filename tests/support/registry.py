"""A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8.2) on 127.0.0.1:0.

`RegistryServer` writes its own config (the packaged one listens on every interface and points
htpasswd at a directory), lets the kernel pick the port, reads the chosen port back from the
registry's "listening on" log line and stops the process by PID on exit. Variants:

- plain HTTP, anonymous (what most tests need);
- `auth="basic"`: htpasswd (bcrypt, made with apache2-utils' `htpasswd -B`);
- `auth="token"`: bearer tokens from an in-process `TokenServer`;
- `tls=True` with either: a self-signed certificate for IP 127.0.0.1 made by `openssl`;
  `ca_file` is the PEM to trust and `cert_dir` a directory in the layout skopeo's and podman's
  `--*cert-dir` flags expect (`ca.crt`).

No `http.host` is configured on purpose: distribution then builds `Location` URLs from the
request's Host header, so a `FaultProxy` that forwards Host unchanged stays in the path of
every follow-up request (upload PATCH/PUT).
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from .tokenserver import TokenServer

__all__ = ["AuthMode", "RegistryServer", "RegistryStartError"]

AuthMode = Literal["none", "basic", "token"]

_LISTENING = re.compile(rb"listening on 127\.0\.0\.1:(\d+)")


class RegistryStartError(RuntimeError):
    """The registry process exited or never reported its port; the message holds its log."""


class RegistryServer:
    """One `docker-registry serve` process with its own storage, config and credentials.

    Use as a context manager (or call `start()`/`stop()`). `workdir` holds config, storage,
    certificates and the log; when omitted a temporary directory is made and removed on stop.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        auth: AuthMode = "none",
        tls: bool = False,
        username: str = "testuser",
        password: str = "testpass",
        startup_timeout: float = 15.0,
        binary: str = "docker-registry",
        readonly: bool = False,
        delete: bool = True,
    ) -> None:
        if auth not in ("none", "basic", "token"):
            raise ValueError(f"unknown auth mode {auth!r}")
        self._own_workdir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="vinci-registry-")) if workdir is None else workdir
        )
        self.auth: AuthMode = auth
        self.tls = tls
        self.username = username
        self.password = password
        self.startup_timeout = startup_timeout
        self.binary = binary
        self.readonly = readonly  # distribution's read-only mode: pulls work, pushes are refused
        self.delete = delete  # storage.delete.enabled: off, DELETE is 405 UNSUPPORTED
        self.storage_dir = self.workdir / "storage"
        self.config_file = self.workdir / "config.yml"
        self.log_path = self.workdir / "registry.log"
        self.ca_file: Path | None = None
        self.cert_dir: Path | None = None
        self.token_server: TokenServer | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._port: int | None = None

    # -- addresses ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("registry is not running")
        return self._port

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def creds(self) -> str | None:
        """`user:password` for skopeo/podman `--creds`, or None for an anonymous registry."""
        return None if self.auth == "none" else f"{self.username}:{self.password}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def ref(self, repository: str, tag: str = "latest") -> str:
        """`127.0.0.1:PORT/repository:tag` (or `@sha256:…` when `tag` is a digest)."""
        sep = "@" if tag.startswith("sha256:") else ":"
        return f"{self.host}/{repository}{sep}{tag}"

    def docker_ref(self, repository: str, tag: str = "latest") -> str:
        """The same reference with skopeo's `docker://` transport prefix."""
        return "docker://" + self.ref(repository, tag)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A context trusting this registry's certificate (for httpx `verify=`), None for HTTP."""
        return None if self.ca_file is None else ssl.create_default_context(cafile=self.ca_file)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> RegistryServer:
        if self._proc is not None:
            return self
        if shutil.which(self.binary) is None:
            raise RegistryStartError(f"{self.binary} is not installed (apt: docker-registry)")
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.storage_dir.mkdir(exist_ok=True)
            config = self._config()
            self.config_file.write_text(json.dumps(config, indent=2))
            self._spawn()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Terminate the registry by PID (SIGTERM, then SIGKILL), stop the token server."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.token_server is not None:
            self.token_server.stop()
        self._port = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        # YAML is a superset of JSON, so the config is written with json and needs no pyyaml.
        http: dict[str, Any] = {
            "addr": "127.0.0.1:0",
            # Fixed so upload-session state stays valid however the process is configured.
            "secret": "vinci-tests-not-a-secret",
        }
        config: dict[str, Any] = {
            "version": "0.1",
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir)},
                "delete": {"enabled": self.delete},
                "cache": {"blobdescriptor": "inmemory"},
                # A test registry lives for seconds; the purge goroutine only adds log noise.
                "maintenance": {
                    "uploadpurging": {"enabled": False},
                    "readonly": {"enabled": self.readonly},
                },
            },
            "http": http,
        }
        if self.tls:
            cert, key = self._make_tls_cert()
            http["tls"] = {"certificate": str(cert), "key": str(key)}
        if self.auth == "basic":
            config["auth"] = {"htpasswd": {"realm": "vinci-test", "path": str(self._htpasswd())}}
        elif self.auth == "token":
            self.token_server = TokenServer(
                self.workdir / "token", users={self.username: self.password}
            ).start()
            config["auth"] = {
                "token": {
                    "realm": self.token_server.realm,
                    "service": self.token_server.service,
                    "issuer": self.token_server.issuer,
                    "rootcertbundle": str(self.token_server.cert_file),
                }
            }
        return config

    def _htpasswd(self) -> Path:
        # distribution only accepts bcrypt entries, hence -B.
        out = _run(["htpasswd", "-Bbn", self.username, self.password])
        path = self.workdir / "htpasswd"
        path.write_bytes(out)
        return path

    def _make_tls_cert(self) -> tuple[Path, Path]:
        tls_dir = self.workdir / "tls"
        tls_dir.mkdir(exist_ok=True)
        cert, key = tls_dir / "registry.crt", tls_dir / "registry.key"
        _run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                "-keyout", str(key), "-out", str(cert), "-days", "30",
                "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ]
        )  # fmt: skip
        self.ca_file = cert
        # skopeo/podman read every *.crt in --cert-dir as a CA; a *.key there would be taken
        # for half of a client certificate, so the directory holds only the CA.
        self.cert_dir = self.workdir / "certs.d"
        self.cert_dir.mkdir(exist_ok=True)
        shutil.copyfile(cert, self.cert_dir / "ca.crt")
        return cert, key

    def _spawn(self) -> None:
        argv = [self.binary, "serve", str(self.config_file)]
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            # If pytest itself is killed (CI timeout, SIGKILL) no finalizer runs; the parent-death
            # signal makes the kernel stop the registry anyway. setpriv execs, so the PID we hold
            # is the registry's own.
            argv = [setpriv, "--pdeathsig", "TERM", "--", *argv]
        self._log = self.log_path.open("wb")
        # Logging to a file rather than a pipe: nobody has to keep draining it for the
        # registry not to block on a full pipe, and the log is there to read after a failure.
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            match = _LISTENING.search(self.log_path.read_bytes())
            if match:
                self._port = int(match.group(1))
                return
            if self._proc.poll() is not None:
                raise RegistryStartError(
                    f"docker-registry exited with {self._proc.returncode}:\n{self.log_text()}"
                )
            if time.monotonic() > deadline:
                raise RegistryStartError(
                    f"docker-registry did not report its port in {self.startup_timeout}s:\n"
                    + self.log_text()
                )
            time.sleep(0.01)


def _run(argv: list[str]) -> bytes:
    proc = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise RegistryStartError(
            f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr.decode(errors='replace')}"
        )
    return proc.stdout
