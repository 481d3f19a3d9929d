"""Outputs under concurrency, signals and careless paths (docs/reliability.md, "Outputs" and
"Signals"): no build ever loses an image another build or tool put in a layout, a signal stops
a build at once and exits 128+N, and an archive output never replaces what is not a file.

Every build here runs `vinci` in a subprocess, as a user would. A slow build is a few MiB of
text compressed with zstd at level 19, one layer at a time (--jobs 1): seconds of work from a
small input. Nothing waits on a clock: each step waits for something it can see (a staging
directory appearing, a line on stderr, a process ending), and a layout lock the test holds
keeps a build from writing for as long as the test needs.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import REPO, VinciRunner
from support.verify import (
    layout_manifest,
    oci_image_tool_validate,
    require_tool,
    run_tool,
    skopeo_copy,
    skopeo_inspect_raw,
    umoci_unpack,
)

pytestmark = pytest.mark.hostile

SLOW_LAYERS = 6
DEADLINE = 120.0  # seconds any awaited state may take before the test fails


def _env(cache: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "VINCI_CACHE_DIR": str(cache),
        **extra,
    }


def _vinci(*args: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *map(str, args)]


def _start(cache: Path, *args: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _vinci(*args),
        cwd=REPO,
        env=_env(cache),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _until(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _staging(layout: Path) -> list[str]:
    try:
        return [n for n in os.listdir(layout) if n.startswith(".vinci-build-")]
    except FileNotFoundError:
        return []


def slow_spec(root: Path, *, tail: str = "", seed: int = 1) -> Path:
    """A spec of SLOW_LAYERS layers of 1.5 MiB of text each; `tail` adds layer lines."""
    root.mkdir(parents=True)
    rng = random.Random(seed)
    words = [
        "".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 9))) for _ in range(3000)
    ]
    lines = ["spec-version: v1", "layers:"]
    for i in range(SLOW_LAYERS):
        text = " ".join(rng.choice(words) for _ in range(250_000))
        (root / f"part{i}.txt").write_text(text)
        lines.append(f"  - file: {{path: /part{i}.txt, source: ./part{i}.txt}}")
    spec = root / "vinci.yaml"
    spec.write_text("\n".join(lines) + "\n" + tail)
    return spec


SLOW_ARGS = ("--jobs", "1", "--compression", "zstd", "--compression-level", "19", "-q")


def quick_spec(root: Path, text: str = "quick", image: str = "") -> Path:
    root.mkdir(parents=True)
    spec = root / "vinci.yaml"
    head = f"image: {image}\n" if image else ""
    spec.write_text(
        f"spec-version: v1\n{head}layers:\n  - file: {{path: /msg, contents: {text!r}}}\n"
    )
    return spec


@contextmanager
def holding(layout: Path) -> Iterator[None]:
    """Holds the lock a vinci write takes on a layout (flock on its directory), as
    `flock DIR …` would."""
    fd = os.open(layout, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _valid(layout: Path, tag: str, digest: str, tmp: Path) -> None:
    """The layout names `digest` under `tag`, and independent tools read all of it."""
    assert layout_manifest(layout, tag)[0] == digest
    tmp.mkdir(exist_ok=True)
    if len(json.loads((layout / "index.json").read_bytes())["manifests"]) == 1:
        # Only then: oci-image-tool 1.0 takes `--ref name=big` for ambiguous beside others.
        oci_image_tool_validate(layout, tag)
    skopeo_copy(f"oci:{layout}:{tag}", f"dir:{tmp / 'copied'}")
    umoci_unpack(layout, tag, tmp / "bundle")
    assert _staging(layout) == []


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_a_signal_stops_a_build_and_keeps_the_image_another_build_finished(
    tmp_path: Path, vinci: VinciRunner, signum: int, code: int
) -> None:
    """Finding 1 (interrupted) and 6: the quick build's image survives the slow build's
    interrupt; the slow build stops without building its queued layers."""
    require_tool("skopeo", "umoci", "oci-image-tool")
    out, cache = tmp_path / "out", tmp_path / "cache"
    slow = _start(cache, "build", slow_spec(tmp_path / "slow"), "-o", f"oci:{out}", *SLOW_ARGS)
    _until("the slow build to ready the layout", lambda: bool(_staging(out)))
    quick = vinci("build", quick_spec(tmp_path / "quick"), "-q", "-o", f"oci:{out}",
                  env={"VINCI_CACHE_DIR": str(cache)})  # fmt: skip
    with holding(out):  # the slow build can never write now, however fast it is
        slow.send_signal(signum)
        _, err = slow.communicate(timeout=DEADLINE)
    assert slow.returncode == code, err
    assert err.decode().strip().splitlines()[-1].startswith("vinci: ")
    _valid(out, "latest", quick.digest, tmp_path)
    # Queued layers never started: the cache holds fewer than the spec's layers.
    listed = vinci("cache", "ls", env={"VINCI_CACHE_DIR": str(cache)}).stdout
    assert sum(f"file /part{i}.txt" in listed for i in range(SLOW_LAYERS)) < SLOW_LAYERS
    vinci("cache", "verify", env={"VINCI_CACHE_DIR": str(cache)})


def test_a_failed_build_keeps_the_image_another_build_finished(
    tmp_path: Path, vinci: VinciRunner
) -> None:
    """Finding 1 (failed): a bad import after the slow layers fails the build; the layout
    keeps the image the quick build wrote meanwhile."""
    require_tool("skopeo", "umoci", "oci-image-tool")
    out, cache = tmp_path / "out", tmp_path / "cache"
    spec = slow_spec(tmp_path / "slow", tail="  - import: {path: ./broken.tar}\n")
    (spec.parent / "broken.tar").write_bytes(os.urandom(2048))
    slow = _start(cache, "build", spec, "-o", f"oci:{out}", *SLOW_ARGS)
    _until("the slow build to ready the layout", lambda: bool(_staging(out)))
    quick = vinci("build", quick_spec(tmp_path / "quick"), "-q", "-o", f"oci:{out}",
                  env={"VINCI_CACHE_DIR": str(cache)})  # fmt: skip
    _, err = slow.communicate(timeout=DEADLINE)
    assert slow.returncode == 1, err
    assert "broken.tar" in err.decode()
    _valid(out, "latest", quick.digest, tmp_path)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_leaves_no_half_layout(tmp_path: Path, signum: int) -> None:
    """Finding 7: stopped, a build of a new layout leaves nothing there; stopped, a build
    into an existing directory leaves it as it was."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    spec = slow_spec(tmp_path / "slow")
    for target, existed in ((out, False), (tmp_path / "empty", True)):
        if existed:
            target.mkdir()
        slow = _start(cache, "build", spec, "-o", f"oci:{target}", *SLOW_ARGS)
        _until("the build to ready the layout", lambda t=target: bool(_staging(t)))
        slow.send_signal(signum)
        slow.communicate(timeout=DEADLINE)
        assert slow.returncode == 128 + signum
        assert os.path.exists(target) == existed
        if existed:
            assert os.listdir(target) == []


def test_a_second_writer_waits_for_the_first_and_says_so_once(
    tmp_path: Path, vinci: VinciRunner
) -> None:
    require_tool("skopeo", "umoci", "oci-image-tool")
    out, cache = tmp_path / "out", tmp_path / "cache"
    first = vinci("build", quick_spec(tmp_path / "a", "a", "example.com/t:a"), "-q",
                  "-o", f"oci:{out}", env={"VINCI_CACHE_DIR": str(cache)})  # fmt: skip
    lines: list[str] = []
    with holding(out):
        second = _start(cache, "build", quick_spec(tmp_path / "b", "b", "example.com/t:b"),
                        "-q", "-o", f"oci:{out}")  # fmt: skip
        assert second.stderr is not None
        lines.append(second.stderr.readline().decode())  # blocks until it says it waits
        assert second.poll() is None  # and waits
    rest, err = second.communicate(timeout=DEADLINE)
    assert second.returncode == 0, err
    assert lines == [f"vinci: waiting for another build writing oci:{out} to finish\n"]
    assert "waiting" not in err.decode()  # once
    _valid(out, "a", first.digest, tmp_path / "a-check")
    _valid(out, "b", rest.decode().strip(), tmp_path / "b-check")


def test_concurrent_builds_of_different_specs_keep_every_image(
    tmp_path: Path, vinci: VinciRunner
) -> None:
    """Findings 2 and 3: builds racing to one layout each add their image, and every blob
    the final index names is there."""
    require_tool("skopeo", "umoci", "oci-image-tool")
    out = tmp_path / "out"
    specs = [
        quick_spec(tmp_path / f"s{i}", f"text {i}" * 1000, f"example.com/t:v{i}") for i in range(4)
    ]
    # The first spec twice more, each from its own cache: the same blobs, made twice.
    builds = [
        _start(tmp_path / f"cache{i}", "build", spec, "-q", "-o", f"oci:{out}")
        for i, spec in enumerate([*specs, specs[0], specs[0]])
    ]
    digests = []
    for build in builds:
        stdout, err = build.communicate(timeout=DEADLINE)
        assert build.returncode == 0, err
        digests.append(stdout.decode().strip())
    assert digests[4] == digests[5] == digests[0]
    for i, digest in enumerate(digests[:4]):
        _valid(out, f"v{i}", digest, tmp_path / f"check{i}")


def test_a_layout_made_by_skopeo_keeps_its_images(
    tmp_path: Path, vinci: VinciRunner, busybox_layout: Path, hello: Path
) -> None:
    """Finding 4: a build adds its image to a layout holding others (tags `big` and
    `small`), and replaces only its own tag's image on the next build."""
    require_tool("skopeo", "umoci", "oci-image-tool")
    layout = tmp_path / "layout"
    skopeo_copy(f"oci:{busybox_layout}:v1", f"oci:{layout}:big")
    small = quick_spec(tmp_path / "small-src", "small")
    small_oci = tmp_path / "small.oci"
    env = {"VINCI_CACHE_DIR": str(tmp_path / "cache")}
    vinci("build", small, "-q", "-o", f"oci:{small_oci}", env=env)
    skopeo_copy(f"oci:{small_oci}:latest", f"oci:{layout}:small")
    before = {tag: skopeo_inspect_raw(f"oci:{layout}:{tag}") for tag in ("big", "small")}

    spec = quick_spec(tmp_path / "mine", "mine", "example.com/mine:v1")
    first = vinci("build", spec, "-q", "-o", f"oci:{layout}", env=env).digest
    spec.write_text(spec.read_text().replace("'mine'", "'mine, changed'"))
    second = vinci("build", spec, "-q", "-o", f"oci:{layout}", env=env).digest
    assert first != second

    for tag in ("big", "small"):
        assert skopeo_inspect_raw(f"oci:{layout}:{tag}") == before[tag]
        skopeo_copy(f"oci:{layout}:{tag}", f"dir:{tmp_path / ('read-' + tag)}")
    _valid(layout, "v1", second, tmp_path / "v1")
    index = json.loads((layout / "index.json").read_bytes())
    names = sorted(
        m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]
    )
    assert names == ["big", "small", "v1"]
    # The replaced image's own blobs are garbage; nothing any image reaches is.
    assert not (layout / "blobs" / "sha256" / first.removeprefix("sha256:")).exists()


def test_a_corrupt_index_is_never_replaced(tmp_path: Path, vinci: VinciRunner) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (out / "index.json").write_text("{not json")
    run = vinci("build", quick_spec(tmp_path / "q"), "-q", "-o", f"oci:{out}",
                env={"VINCI_CACHE_DIR": str(tmp_path / "c")}, check=False)  # fmt: skip
    assert run.returncode == 1
    assert (
        run.stderr.strip()
        == f"vinci: {out / 'index.json'} is not valid JSON, so not an image index"
    )
    assert (out / "index.json").read_text() == "{not json"
    assert _staging(out) == []


# -- archives ---------------------------------------------------------------------------------


def _archive(tmp_path: Path, vinci: VinciRunner, hello: Path) -> bytes:
    """The archive of examples/hello, written to a plain file."""
    path = tmp_path / "reference.tar"
    vinci("build", hello, "-q", "-o", f"docker-archive:{path}",
          env={"VINCI_CACHE_DIR": str(tmp_path / "cache")})  # fmt: skip
    return path.read_bytes()


def test_an_archive_is_written_through_a_symlink(
    tmp_path: Path, vinci: VinciRunner, hello: Path
) -> None:
    reference = _archive(tmp_path, vinci, hello)
    (tmp_path / "real.tar").write_bytes(b"old")
    link = tmp_path / "link.tar"
    link.symlink_to("real.tar")
    dangling = tmp_path / "dangling.tar"
    dangling.symlink_to("made-through-the-link.tar")
    for path in (link, dangling):
        vinci("build", hello, "-q", "-o", f"docker-archive:{path}",
              env={"VINCI_CACHE_DIR": str(tmp_path / "cache")})  # fmt: skip
        assert path.is_symlink()
        assert path.read_bytes() == reference
    assert os.readlink(link) == "real.tar"
    assert (tmp_path / "real.tar").read_bytes() == reference


def test_an_archive_streams_to_a_fifo_and_a_device_and_refuses_a_socket(
    tmp_path: Path, vinci: VinciRunner, hello: Path
) -> None:
    reference = _archive(tmp_path, vinci, hello)
    env = {"VINCI_CACHE_DIR": str(tmp_path / "cache")}
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    vinci("build", hello, "-q", "-o", f"oci-archive:{fifo}", env=env)
    reader.join(DEADLINE)
    assert got == [reference]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)

    # A character device: a node of /dev/null's numbers where the test may make one (root),
    # else /dev/null itself. Either must stay a device.
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        null = Path("/dev/null")
    vinci("build", hello, "-q", "-o", f"docker-archive:{null}", env=env)
    assert stat.S_ISCHR(os.lstat(null).st_mode)

    sock_path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        run = vinci("build", hello, "-q", "-o", f"docker-archive:{sock_path}", env=env,
                    check=False)  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.startswith(f"vinci: {sock_path} is not a regular file, a FIFO or a device")
    assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)


def test_an_archive_on_stdout_is_the_archive_and_the_digest_goes_to_stderr(
    tmp_path: Path, vinci: VinciRunner, hello: Path
) -> None:
    reference = _archive(tmp_path, vinci, hello)
    env = {"VINCI_CACHE_DIR": str(tmp_path / "cache")}
    for target in ("-", "/dev/stdout"):
        # Twice: a streamed archive is written by every build, never "up to date".
        for _ in range(2):
            proc = subprocess.run(
                _vinci("build", hello, "-q", "-o", f"docker-archive:{target}"),
                cwd=tmp_path,
                env=_env(tmp_path / "cache"),
                capture_output=True,
                check=True,
            )
            assert proc.stdout == reference
            assert proc.stderr.decode().startswith("sha256:")
    assert not (tmp_path / "-").exists()
    run = vinci("build", hello, "--json", "-o", "docker-archive:-", env=env, check=False)
    assert run.returncode == 2
    assert "--json prints to stdout" in run.stderr


@pytest.mark.slow
def test_an_archive_on_stdout_loads_into_podman(tmp_path: Path, hello: Path) -> None:
    require_tool("podman")
    # podman refuses a long --runroot (tests/support/verify.py PODMAN_RUNROOT_MAX)
    state = Path(tempfile.mkdtemp(prefix="vinci-pp-", dir="/tmp"))
    base = [
        "podman", "--root", str(tmp_path / "root"), "--runroot", str(state / "run"),
        "--tmpdir", str(state / "tmp"), "--storage-driver", "vfs",
        "--cgroup-manager", "cgroupfs", "--events-backend", "file",
    ]  # fmt: skip
    try:
        producer = subprocess.Popen(
            _vinci("build", hello, "-q", "-o", "docker-archive:-"),
            cwd=REPO,
            env=_env(tmp_path / "cache"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        loaded = subprocess.run(
            [*base, "load"], stdin=producer.stdout, capture_output=True, timeout=DEADLINE
        )
        assert producer.stdout is not None
        producer.stdout.close()
        producer.wait(DEADLINE)
        assert producer.returncode == 0
        assert loaded.returncode == 0, loaded.stderr.decode()
        assert "registry.gitlab.com/thriqon/vinci/simplest:latest" in loaded.stdout.decode()
        run_tool([*base, "image", "exists", "registry.gitlab.com/thriqon/vinci/simplest:latest"])
    finally:
        subprocess.run([*base, "rmi", "--all", "--force"], capture_output=True, check=False)
        shutil.rmtree(state, ignore_errors=True)


# -- a reader that goes away ------------------------------------------------------------------


@pytest.mark.parametrize("unbuffered", ["", "1"], ids=["buffered", "PYTHONUNBUFFERED"])
def test_a_reader_that_goes_away_is_not_an_error(
    tmp_path: Path, hello: Path, unbuffered: str
) -> None:
    """Finding 17: `vinci build … | head -c1` and `vinci schema | head -c 10`."""
    env = _env(tmp_path / "cache", PYTHONUNBUFFERED=unbuffered)
    for args in (("build", str(hello), "-q", "-o", f"oci:{tmp_path / 'out'}"), ("schema",)):
        read, write = os.pipe()
        proc = subprocess.Popen(
            _vinci(*args), cwd=REPO, env=env, stdout=write, stderr=subprocess.PIPE
        )
        os.close(write)
        os.close(read)  # gone before the command writes a byte
        _, err = proc.communicate(timeout=DEADLINE)
        assert (proc.returncode, err.decode()) == (0, ""), args


# -- push ---------------------------------------------------------------------------------


class _StallingRegistry:
    """A registry that takes an upload's request and never reads its body: the pushing
    thread blocks in a send that no cancellation token can reach."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.stalled = threading.Event()
        self.release = threading.Event()
        self.manifests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self, code: int, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                self._answer(200 if self.path == "/v2/" else 404)

            def do_HEAD(self) -> None:
                self._answer(404)

            def do_POST(self) -> None:
                self._answer(202, {"Location": "/v2/stall/img/blobs/uploads/u1"})

            def _stall(self) -> None:
                if "/manifests/" in self.path:
                    owner.manifests += 1
                owner.stalled.set()
                owner.release.wait(DEADLINE)
                self.close_connection = True

            do_PUT = _stall
            do_PATCH = _stall

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_signal_stops_a_push_stuck_on_a_registry_that_stopped_reading(tmp_path: Path) -> None:
    """Deliverable 2 for `push`: an upload blocked on a registry that neither reads nor answers
    never looks at the cancellation; the command line's last resort ends it (exit 143)."""
    spec = tmp_path / "src" / "vinci.yaml"
    spec.parent.mkdir()
    (spec.parent / "blob.bin").write_bytes(os.urandom(32 << 20))  # more than socket buffers
    spec.write_text("spec-version: v1\nlayers:\n  - file: {path: /blob, source: ./blob.bin}\n")
    registry = _StallingRegistry()
    try:
        push = _start(tmp_path / "cache", "push", spec, "-q", "--compression", "none",
                      "--image", f"{registry.host}/stall/img")  # fmt: skip
        _until("the upload to stall", registry.stalled.is_set)
        push.send_signal(signal.SIGTERM)
        _, err = push.communicate(timeout=DEADLINE)
    finally:
        registry.close()
    assert push.returncode == 143, err
    assert err.decode().startswith("vinci: terminated")
    assert registry.manifests == 0
