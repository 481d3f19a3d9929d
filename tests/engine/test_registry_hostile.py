"""Hostile registries (issue 18, findings 11-14 and the registry half of 17), through the CLI.

Each server here is a `HostileServer` on a loopback address, scripted to misbehave in one way:
redirecting a blob to a host that asks for credentials, sending bodies that never end or a
byte every half second, redirecting in a loop, or not existing at all. Every case must end in
exit 1 and one line on stderr that says what happened, in bounded time and memory, and no
credential may reach a host other than the registry and the token server it names.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
from conftest import REPO
from support.hostile import Endless, HostileServer, Reply, Seen, Trickle, loopback_alias_works

pytestmark = pytest.mark.hostile

USER, PASSWORD = "hostile-user", "Hostile-s3cret-pw"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MAX_RSS_MB = 200


@dataclass(frozen=True)
class Image:
    """A layer-less image: enough for `resolve` and an import-oci layer to fetch its config."""

    config: bytes
    manifest: bytes

    @property
    def config_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.config).hexdigest()

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()


def make_image(author: str = "vinci tests", config_size: int | None = None) -> Image:
    """An image whose config descriptor says `config_size` (default: the config's own);
    `author` makes configs, so blob URLs, distinct."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "author": author,
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    ).encode()
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": digest,
                "size": len(config) if config_size is None else config_size,
            },
            "layers": [],
        }
    ).encode()
    return Image(config, manifest)


def manifest_reply(image: Image) -> Reply:
    return Reply(
        200,
        {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": image.digest},
        image.manifest,
    )


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float

    def one_line(self) -> str:
        """The single line vinci printed on stderr (asserted to be exactly one)."""
        lines = self.stderr.splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got:\n{self.stderr}"
        assert "internal error" not in lines[0] and "Traceback" not in self.stderr
        return lines[0]


# The child's peak RSS: Linux counts into a process's maxrss the memory of the process it was
# forked from, as it stood at exec, so a child forked from pytest (hundreds of MB by the end of
# the suite) would report pytest's size. A small launcher forks vinci from itself instead and
# reports the grandchild's own rusage from wait4.
_LAUNCHER = """
import json, os, subprocess, sys
report, args = sys.argv[1], sys.argv[2:]
proc = subprocess.Popen([sys.executable, "-m", "engine.cli", *args])
_, status, usage = os.wait4(proc.pid, 0)
code = os.waitstatus_to_exitcode(status)
with open(report, "w") as f:
    json.dump({"returncode": code, "maxrss_kib": usage.ru_maxrss}, f)
sys.exit(0)
"""


def run_measured(*args: str, env: dict[str, str], stdin: str = "", timeout: float = 60) -> Outcome:
    """`vinci ARGS` with its own peak RSS measured; the whole process group is killed past
    `timeout` (then the return code is -9)."""
    full = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        **env,
    }
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        given = Path(scratch) / "stdin"
        given.write_text(stdin)
        with given.open("rb") as stdin_file:
            started = time.monotonic()
            out, err = _run_group(
                [sys.executable, "-c", _LAUNCHER, str(report), *args], full, stdin_file, timeout
            )
        seconds = time.monotonic() - started
        measured = json.loads(report.read_text()) if report.exists() else {}
    return Outcome(
        int(measured.get("returncode", -9)),
        out,
        err,
        seconds,
        float(measured.get("maxrss_kib", 0)) / 1024,
    )


def _run_group(
    argv: list[str], env: dict[str, str], stdin: IO[bytes], timeout: float
) -> tuple[str, str]:
    """Run `argv` in its own process group; kill the group (launcher and vinci, which this
    test started) if it outlives `timeout`. Returns (stdout, stderr)."""
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    return out.decode(errors="replace"), err.decode(errors="replace")


def docker_config(tmp_path: Path, registry: str) -> Path:
    """A DOCKER_CONFIG directory holding Basic credentials for `registry`."""
    directory = tmp_path / "docker"
    directory.mkdir(exist_ok=True)
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {registry: {"auth": auth}}}))
    return directory


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "VINCI_CACHE_DIR": str(tmp_path / "cache"),
        "DOCKER_CONFIG": str(tmp_path / "docker"),
        **extra,
    }


def no_secret(outcome: Outcome) -> None:
    text = outcome.stdout + outcome.stderr
    assert PASSWORD not in text and BASIC.split()[1] not in text, text


@pytest.fixture
def serve() -> Iterator[Callable[..., HostileServer]]:
    """Start hostile servers for this test: `serve(route, address=...)`; all stopped after."""
    started: list[HostileServer] = []

    def start(route: Callable[[Seen], object], **kwargs: object) -> HostileServer:
        server = HostileServer(route, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in reversed(started):
            server.stop()


def second_host() -> str:
    if not loopback_alias_works("127.0.0.2"):
        pytest.skip("127.0.0.2 cannot be bound here (a second loopback address is needed)")
    return "127.0.0.2"


# -- finding 11: credentials only to the registry and its own token realm -----------------------


def test_redirected_blob_gets_no_credentials(
    tmp_path: Path, serve: Callable[..., HostileServer]
) -> None:
    """Registry A (Basic auth) redirects config blobs to host B. B serving the blob works and
    is sent no Authorization; B answering 401 with a Bearer realm on itself is refused in one
    line, and B's token endpoint never hears from vinci."""
    good, evil = make_image("good"), make_image("evil")
    b_box: list[HostileServer] = []

    def host_b(seen: Seen) -> Reply:
        b = b_box[0]
        if seen.path.startswith("/token"):
            return Reply(200, {"Content-Type": "application/json"}, b'{"token": "b-token"}')
        if seen.path == f"/cdn/{good.config_digest}":
            return Reply(200, {"Content-Type": "application/octet-stream"}, good.config)
        return Reply(401, {"WWW-Authenticate": f'Bearer realm="{b.url}/token",service="b"'})

    b_box.append(serve(host_b, address=second_host()))

    def registry_a(seen: Seen) -> Reply:
        if seen.headers.get("authorization") != BASIC:
            return Reply(401, {"WWW-Authenticate": 'Basic realm="a"'})
        if seen.path == "/v2/":
            return Reply(200, {"Content-Type": "application/json"}, b"{}")
        image = good if "/good/" in seen.path else evil
        if "/manifests/" in seen.path:
            return manifest_reply(image)
        digest = seen.path.rsplit("/", 1)[1]
        return Reply(307, {"Location": f"{b_box[0].url}/cdn/{digest}"})

    a = serve(registry_a)
    docker_config(tmp_path, a.host)
    env = env_for(tmp_path)

    resolved = run_measured("resolve", f"{a.host}/good/image:v1", env=env)
    assert resolved.returncode == 0, resolved.stderr
    assert resolved.stdout.split()[0] == f"{a.host}/good/image@{good.digest}"

    spec = tmp_path / "vinci.yaml"
    spec.write_text(
        f"spec-version: v1\nlayers:\n  - import-oci: {a.host}/evil/image@{evil.digest}\n"
    )
    built = run_measured("build", str(spec), "--quiet", "-o", f"oci:{tmp_path / 'out'}", env=env)
    assert built.returncode == 1
    line = built.one_line()
    assert b_box[0].host in line and "asks for credentials" in line, line
    no_secret(built)
    no_secret(resolved)
    seen_by_b = b_box[0].requests
    assert seen_by_b, "the redirects were never followed"
    assert all("authorization" not in s.headers for s in seen_by_b), seen_by_b
    assert not [s for s in seen_by_b if s.path.startswith("/token")], "B's realm was asked"
    # A itself did get the credentials: the rule is about where they go, not whether.
    assert any(s.headers.get("authorization") == BASIC for s in a.requests)


def test_upload_to_another_host_gets_no_credentials(
    tmp_path: Path, serve: Callable[..., HostileServer], hello: Path
) -> None:
    """A registry whose upload sessions live on another host (its Location names it): the
    blobs go there without the registry's Authorization, and the push still succeeds."""
    b_box: list[HostileServer] = []

    def upload_host(seen: Seen) -> Reply:
        return Reply(201, {"Location": f"{b_box[0].url}/done"})

    b_box.append(serve(upload_host, address=second_host()))

    def registry_a(seen: Seen) -> Reply:
        if seen.headers.get("authorization") != BASIC:
            return Reply(401, {"WWW-Authenticate": 'Basic realm="a"'})
        if seen.method == "HEAD":
            return Reply(404)
        if seen.method == "POST":
            return Reply(202, {"Location": f"{b_box[0].url}/upload/session"})
        if seen.method == "PUT" and "/manifests/" in seen.path:
            return Reply(201)
        return Reply(200, {}, b"{}")

    a = serve(registry_a)
    docker_config(tmp_path, a.host)
    done = run_measured(
        "push", str(hello), "--quiet", "--image", f"{a.host}/split/app", env=env_for(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    no_secret(done)
    puts = [s for s in b_box[0].requests if s.method == "PUT"]
    assert len(puts) == 3  # config and two layers, each uploaded to the other host
    assert all("authorization" not in s.headers for s in b_box[0].requests)


# -- finding 12: bodies that never end ------------------------------------------------------------


def _endless_401(image: Image, url: Callable[[], str]) -> Callable[[Seen], object]:
    def route(seen: Seen) -> object:
        if seen.path == "/v2/":
            return Reply(200, {}, b"{}")
        return Endless(401, {"WWW-Authenticate": 'Basic realm="endless"'})

    return route


def _endless_500(image: Image, url: Callable[[], str]) -> Callable[[Seen], object]:
    def route(seen: Seen) -> object:
        if seen.path == "/v2/":
            return Reply(200, {}, b"{}")
        return Endless(500, {"Content-Type": "application/json"})

    return route


def _endless_token(image: Image, url: Callable[[], str]) -> Callable[[Seen], object]:
    def route(seen: Seen) -> object:
        if seen.path.startswith("/token"):
            return Endless(200, {"Content-Type": "application/json"})
        if seen.headers.get("authorization", "").startswith("Bearer "):
            return manifest_reply(image)
        return Reply(401, {"WWW-Authenticate": f'Bearer realm="{url()}/token",service="s"'})

    return route


def _endless_manifest(image: Image, url: Callable[[], str]) -> Callable[[Seen], object]:
    def route(seen: Seen) -> object:
        if seen.path == "/v2/":
            return Reply(200, {}, b"{}")
        return Endless(200, {"Content-Type": OCI_MANIFEST})

    return route


def _endless_config(image: Image, url: Callable[[], str]) -> Callable[[Seen], object]:
    def route(seen: Seen) -> object:
        if seen.path == "/v2/":
            return Reply(200, {}, b"{}")
        if "/manifests/" in seen.path:
            return manifest_reply(image)
        return Endless(200, {"Content-Type": "application/octet-stream"})

    return route


@pytest.mark.parametrize(
    ("make_route", "expect"),
    [
        (_endless_401, "unauthorized"),
        (_endless_500, "HTTP 500"),
        (_endless_token, "larger than 4 MiB"),
        (_endless_manifest, "larger than 4 MiB"),
        (_endless_config, "larger than its descriptor"),
    ],
    ids=["401", "500", "token", "manifest", "blob"],
)
def test_endless_bodies_are_cut_off(
    tmp_path: Path,
    serve: Callable[..., HostileServer],
    make_route: Callable[[Image, Callable[[], str]], Callable[[Seen], object]],
    expect: str,
) -> None:
    image = make_image()
    box: list[HostileServer] = []
    server = serve(make_route(image, lambda: box[0].url))
    box.append(server)
    done = run_measured("resolve", f"{server.host}/endless/image:v1", env=env_for(tmp_path))
    assert done.returncode == 1
    line = done.one_line()
    assert server.host in line and expect in line, line
    assert done.peak_rss_mb < MAX_RSS_MB, f"peak RSS {done.peak_rss_mb:.0f} MB"
    assert done.seconds < 30


# -- finding 13: a server that trickles a byte at a time -------------------------------------------


@pytest.mark.parametrize("where", ["headers", "manifest", "blob"])
def test_slow_loris_meets_the_overall_deadline(
    tmp_path: Path, serve: Callable[..., HostileServer], where: str
) -> None:
    """A byte every 0.3 s never trips the 60 s per-read timeout; the deadline ends it."""
    image = make_image()

    def route(seen: Seen) -> object:
        if seen.path == "/v2/":
            return Reply(200, {}, b"{}")
        if where == "headers":
            return Trickle(200, {"Content-Type": OCI_MANIFEST}, interval=0.3, headers_too=True)
        if where == "manifest":
            return Trickle(200, {"Content-Type": OCI_MANIFEST}, length=5000, interval=0.3)
        if "/manifests/" in seen.path:
            return manifest_reply(image)
        return Trickle(200, {}, length=len(image.config), interval=0.3)

    server = serve(route)
    env = env_for(tmp_path, VINCI_REGISTRY_DEADLINE="1.5", VINCI_REGISTRY_BLOB_DEADLINE="1.5")
    done = run_measured("resolve", f"{server.host}/slow/image:v1", env=env)
    assert done.returncode == 1
    line = done.one_line()
    assert server.host in line and "no complete answer within 1.5s" in line, line
    assert "VINCI_REGISTRY_DEADLINE" in line
    assert done.seconds < 20


def test_push_to_a_registry_that_never_answers_meets_the_deadline(
    tmp_path: Path, serve: Callable[..., HostileServer], hello: Path
) -> None:
    server = serve(lambda seen: Trickle(200, {}, interval=0.3, headers_too=True))
    env = env_for(tmp_path, VINCI_REGISTRY_DEADLINE="1")
    done = run_measured(
        "push", str(hello), "--quiet", "--image", f"{server.host}/slow/push", env=env
    )
    assert done.returncode == 1
    line = done.one_line()
    assert server.host in line and "no complete answer within 1s" in line, line


# -- finding 14: redirects that never end, and every other httpx failure ---------------------------


@pytest.mark.parametrize("shape", ["self", "pingpong", "chain", "bad-location"])
def test_redirects_that_never_end(
    tmp_path: Path, serve: Callable[..., HostileServer], shape: str
) -> None:
    image = make_image()
    box: list[HostileServer] = []

    def other(seen: Seen) -> Reply:
        return Reply(302, {"Location": f"{box[0].url}{seen.path}"})

    def route(seen: Seen) -> Reply:
        if seen.path == "/v2/":
            return Reply(200, {}, b"{}")
        if "/manifests/" in seen.path:
            return manifest_reply(image)
        if shape == "self":
            return Reply(307, {"Location": seen.path})
        if shape == "pingpong":
            return Reply(302, {"Location": f"{box[1].url}{seen.path}"})
        if shape == "chain":
            hop = int(seen.path.rsplit("hop", 1)[1]) if "hop" in seen.path else 0
            return Reply(302, {"Location": f"{seen.path.split('hop')[0]}hop{hop + 1}"})
        return Reply(302, {"Location": "http://[::1"})

    box.append(serve(route))
    box.append(serve(other))
    done = run_measured("resolve", f"{box[0].host}/loop/image:v1", env=env_for(tmp_path))
    assert done.returncode == 1
    line = done.one_line()
    expect = {
        "self": "redirect loop",
        "pingpong": "redirect loop",
        "chain": "more than 10 redirects",
        "bad-location": "redirected without a usable Location",
    }[shape]
    assert expect in line and box[0].host in line, line
    assert len(box[0].requests) < 30


def test_an_unresolvable_host_is_one_line_not_five_tries(tmp_path: Path) -> None:
    host = "no-such-registry.invalid"  # RFC 6761: never resolves
    done = run_measured("resolve", f"{host}/image:v1", env=env_for(tmp_path))
    assert done.returncode == 1
    line = done.one_line()
    assert host in line and "does not resolve" in line and "check" in line, line
    assert "attempts" not in line


# -- finding 17 (the registry part) ----------------------------------------------------------


def test_login_writes_through_a_symlinked_config(
    tmp_path: Path, serve: Callable[..., HostileServer]
) -> None:
    def route(seen: Seen) -> Reply:
        if seen.headers.get("authorization") == BASIC:
            return Reply(200, {}, b"{}")
        return Reply(401, {"WWW-Authenticate": 'Basic realm="login"'})

    server = serve(route)
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "docker-config.json"
    real.write_text(json.dumps({"auths": {}, "kept": "yes"}))
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").symlink_to(real)
    done = run_measured(
        "login", server.host, "-u", USER, "--password-stdin",
        env=env_for(tmp_path), stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    no_secret(done)
    assert (docker / "config.json").is_symlink()
    assert os.readlink(docker / "config.json") == str(real)
    saved = json.loads(real.read_text())
    assert saved["kept"] == "yes" and server.host in saved["auths"]


def test_a_digest_with_a_trailing_newline_is_one_line(tmp_path: Path) -> None:
    digest = "sha256:" + "a" * 64
    done = run_measured("resolve", f"127.0.0.1:9/image@{digest}\n", env=env_for(tmp_path))
    assert done.returncode == 2  # a malformed reference is a usage error
    assert "not an image reference" in done.one_line()
