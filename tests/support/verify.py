"""Check images with independent tools: umoci, oci-image-tool, skopeo and podman.

vinci's own readers would agree with vinci's own bugs, so integration tests judge its output with
programs that share none of its code. Every helper here runs one tool and raises AssertionError
carrying the tool's command line, exit status and stderr when it fails, so a failing test shows
the tool's own words.

What each tool actually checks (research/environment.md §2): only umoci verifies `diff_ids`
against the layer contents; skopeo checks blob digests and sizes; oci-image-tool checks schemas
and sizes. Use umoci for content, skopeo for the wire, oci-image-tool for the schema.

Also here: `build_busybox_layout`, a reference image made without vinci (a docker-archive written
with tarfile, converted by skopeo), and `require_tool`, which skips a test when a tool is missing
except under CI=true, where it fails: CI must never go green by skipping.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "PODMAN_RUNROOT_MAX",
    "build_busybox_layout",
    "have_tool",
    "in_ci",
    "layout_manifest",
    "oci_image_tool_validate",
    "podman_run",
    "require_tool",
    "run_tool",
    "skopeo_copy",
    "skopeo_inspect_raw",
    "umoci_unpack",
]

# podman 4.3 refuses `--runroot` paths longer than this ("the specified runroot is longer than
# 50 characters"); pytest's tmp_path is usually longer, so run state lives in a short /tmp dir.
PODMAN_RUNROOT_MAX = 50


def have_tool(name: str) -> bool:
    """Whether `name` is an executable on PATH."""
    return shutil.which(name) is not None


def in_ci() -> bool:
    """True when CI=true (or 1/yes): missing tools must then fail tests instead of skipping."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require_tool(*names: str) -> None:
    """Skip the calling test when a tool is missing; fail it instead when running under CI."""
    missing = [n for n in names if not have_tool(n)]
    if not missing:
        return
    reason = f"required tool(s) not installed: {', '.join(missing)} (run .ci/setup)"
    if in_ci():
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def run_tool(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float = 300,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a tool, raising AssertionError with its stderr when it exits nonzero or hangs."""
    cmd = [os.fspath(a) for a in argv]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            cwd=cwd,
            env=None if env is None else dict(env),
            check=False,
        )
    except FileNotFoundError as exc:
        raise AssertionError(f"{cmd[0]} is not installed: {exc}") from None
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"{' '.join(cmd)} timed out after {timeout}s\nstderr:\n{_text(exc.stderr)}"
        ) from None
    if proc.returncode != 0:
        raise AssertionError(_failure(cmd, proc.returncode, proc.stdout, proc.stderr))
    return proc


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def _failure(cmd: Sequence[str], code: int, stdout: bytes | str, stderr: bytes | str) -> str:
    out = _text(stdout).strip()
    tail = f"\nstdout:\n{out[-4000:]}" if out else ""
    return f"{' '.join(cmd)} exited {code}\nstderr:\n{_text(stderr).strip()}{tail}"


# -- umoci / oci-image-tool: the image on disk ------------------------------------------------


def umoci_unpack(layout: Path, tag: str, dest: Path) -> Path:
    """Unpack `layout:tag` with umoci into bundle `dest`; return `dest/rootfs`.

    umoci recomputes every layer's diff_id and compares it with the config, so this fails on a
    wrong diff_id, a wrong size or a wrong blob digest. `--rootless` means files in the rootfs are
    owned by the caller; the image's ownership is recorded in the bundle's `.mtree` instead.
    umoci rejects `tar+zstd` layers outright.
    """
    run_tool(["umoci", "unpack", "--rootless", "--image", f"{layout}:{tag}", dest])
    return dest / "rootfs"


def oci_image_tool_validate(layout: Path, tag: str | None = None) -> None:
    """Schema-validate an OCI layout (and one ref in it) with oci-image-tool.

    Weak: it accepts wrong diff_ids (use `umoci_unpack` for content) and rejects `tar+zstd`
    media types. Flags go before the path.
    """
    argv: list[str | os.PathLike[str]] = ["oci-image-tool", "validate", "--type", "image"]
    if tag is not None:
        argv += ["--ref", f"name={tag}"]
    run_tool([*argv, layout])


# -- skopeo: the wire ---------------------------------------------------------------------------


def skopeo_inspect_raw(
    transport_ref: str,
    *,
    tls_verify: bool = False,
    creds: str | None = None,
    cert_dir: Path | None = None,
    config: bool = False,
) -> bytes:
    """The exact manifest bytes (or config bytes with `config=True`) skopeo fetches.

    `transport_ref` carries skopeo's transport: `docker://127.0.0.1:PORT/repo:tag`,
    `oci:/path/to/layout:tag`, `docker-archive:file.tar`.
    """
    argv: list[str | os.PathLike[str]] = ["skopeo", "inspect", "--raw"]
    if config:
        argv.append("--config")
    argv.append(f"--tls-verify={str(tls_verify).lower()}")
    if creds is not None:
        argv += ["--creds", creds]
    if cert_dir is not None:
        argv += ["--cert-dir", cert_dir]
    return run_tool([*argv, transport_ref]).stdout


def skopeo_copy(
    src: str,
    dst: str,
    *,
    src_tls_verify: bool = False,
    dest_tls_verify: bool = False,
    src_creds: str | None = None,
    dest_creds: str | None = None,
    src_cert_dir: Path | None = None,
    dest_cert_dir: Path | None = None,
    extra_args: Sequence[str] = (),
) -> None:
    """`skopeo copy src dst` between any two transports; checks blob digests and sizes.

    skopeo keeps the manifest bytes when it does not have to convert, so a registry push of a
    layout keeps its digest. It does NOT check diff_ids. As root it records where blobs were
    seen in /var/lib/containers/cache/blob-info-cache-v1.boltdb (there is no flag to move it),
    which can lead it to try cross-repository mounts on its own.
    """
    argv: list[str | os.PathLike[str]] = [
        "skopeo",
        "copy",
        f"--src-tls-verify={str(src_tls_verify).lower()}",
        f"--dest-tls-verify={str(dest_tls_verify).lower()}",
    ]
    if src_creds is not None:
        argv += ["--src-creds", src_creds]
    if dest_creds is not None:
        argv += ["--dest-creds", dest_creds]
    if src_cert_dir is not None:
        argv += ["--src-cert-dir", src_cert_dir]
    if dest_cert_dir is not None:
        argv += ["--dest-cert-dir", dest_cert_dir]
    run_tool([*argv, *extra_args, src, dst])


# -- podman: does the image run? ------------------------------------------------------------------


def podman_run(
    image_ref: str,
    args: Sequence[str] = (),
    *,
    workdir: Path,
    entrypoint: str | None = None,
    tls_verify: bool = False,
    creds: str | None = None,
    cert_dir: Path | None = None,
    check: bool = True,
    timeout: float = 180,
    platform: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Pull `image_ref` into a throwaway podman store and run it once; return the run's result.
    `platform` picks one image of an index (default: the host's).

    `image_ref` is anything `podman pull` takes: `oci:/path/to/layout:tag`,
    `docker-archive:/file.tar`, `127.0.0.1:PORT/repo:tag` or `docker://…`. (`podman run` accepts
    `oci:` refs itself, but then its pull progress lands in the container's stderr and the image
    is renamed `localhost/<layout path>:latest`; pulling first by ID keeps both clean.)

    The flags are the recipe that works on this class of machine (research/environment.md §2):
    no CAP_SYS_RESOURCE and hybrid cgroups rule out crun and default ulimits, so runc, cgroupfs,
    explicit nofile/nproc ulimits, vfs storage and a file events backend; `--network none`.
    Storage lives under `workdir` and is removed afterwards. With `check=True` a nonzero exit of
    the container raises AssertionError; a failed pull always does.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    store = Path(tempfile.mkdtemp(prefix="podman-", dir=workdir))
    state = Path(tempfile.mkdtemp(prefix="vinci-pm-", dir="/tmp"))
    if len(str(state / "run")) > PODMAN_RUNROOT_MAX:
        raise AssertionError(f"podman runroot {state / 'run'} is too long for podman")
    base: list[str | os.PathLike[str]] = [
        "podman",
        "--root", store / "root",
        "--runroot", state / "run",
        "--tmpdir", state / "tmp",
        "--storage-driver", "vfs",
        "--cgroup-manager", "cgroupfs",
        "--events-backend", "file",
        "--runtime", "runc",
    ]  # fmt: skip
    try:
        pull: list[str | os.PathLike[str]] = [*base, "pull", "--quiet"]
        if platform is not None:
            pull += ["--platform", platform]
        pull.append(f"--tls-verify={str(tls_verify).lower()}")
        if creds is not None:
            pull += ["--creds", creds]
        if cert_dir is not None:
            pull += ["--cert-dir", cert_dir]
        pulled = run_tool([*pull, image_ref], timeout=timeout)
        image_id = _text(pulled.stdout).strip().splitlines()[-1]
        run: list[str | os.PathLike[str]] = [
            *base, "run", "--rm", "--pull", "never", "--network", "none",
            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
        ]  # fmt: skip
        if entrypoint is not None:
            run += ["--entrypoint", entrypoint]
        cmd = [os.fspath(a) for a in [*run, image_id, *args]]
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                encoding="utf-8",
                errors="replace",
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"{' '.join(cmd)} timed out after {timeout}s\nstderr:\n{_text(exc.stderr)}"
            ) from None
        if check and proc.returncode != 0:
            raise AssertionError(_failure(cmd, proc.returncode, proc.stdout, proc.stderr))
        return proc
    finally:
        _podman_cleanup(base, store, state)


def _podman_cleanup(base: Sequence[str | os.PathLike[str]], store: Path, state: Path) -> None:
    # A timed-out client leaves conmon and the container running: remove them by force before
    # deleting their storage.
    subprocess.run(
        [os.fspath(a) for a in [*base, "rm", "--all", "--force", "--time", "0"]],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    # Each container gets a tmpfs for /dev/shm under the store; never rmtree through a mount.
    for mountpoint in _mounts_under(store) + _mounts_under(state):
        subprocess.run(["umount", "-l", mountpoint], capture_output=True, check=False)
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[1] for line in lines if len(line.split()) > 1]
    # Deepest first so nested mounts come off before their parents.
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


# -- reference images made without vinci --------------------------------------------------------


def _tarinfo(name: str, **fields: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def build_busybox_layout(
    dest: Path,
    *,
    busybox: Path,
    tag: str = "v1",
    files: Mapping[str, bytes] | None = None,
) -> Path:
    """Write an OCI layout at `dest` holding one image `tag` built from a static busybox.

    The rootfs is `bin/busybox`, `bin/sh -> busybox` and `etc/hello` ("hello\\n"), plus `files`
    (path → contents, mode 0644). It is written as a docker-archive with tarfile and converted by
    skopeo, which gzips the layer and writes manifest and index: no vinci code involved.
    """
    layer = io.BytesIO()
    entries = {"etc/hello": b"hello\n", **(files or {})}
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_tarinfo("bin/", type=tarfile.DIRTYPE, mode=0o755))
        data = busybox.read_bytes()
        tar.addfile(_tarinfo("bin/busybox", size=len(data), mode=0o755), io.BytesIO(data))
        tar.addfile(_tarinfo("bin/sh", type=tarfile.SYMTYPE, linkname="busybox", mode=0o777))
        dirs = sorted({str(Path(p).parent) + "/" for p in entries if "/" in p} - {"bin/"})
        for directory in dirs:
            tar.addfile(_tarinfo(directory, type=tarfile.DIRTYPE, mode=0o755))
        for path, content in sorted(entries.items()):
            tar.addfile(_tarinfo(path, size=len(content), mode=0o644), io.BytesIO(content))
    layer_bytes = layer.getvalue()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {
            "type": "layers",
            "diff_ids": ["sha256:" + hashlib.sha256(layer_bytes).hexdigest()],
        },
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "tests/support"}],
    }
    manifest = [{"Config": "config.json", "RepoTags": [f"test/busybox:{tag}"], "Layers": ["l.tar"]}]
    with tempfile.TemporaryDirectory(prefix="busybox-archive-") as scratch:
        archive = Path(scratch) / "archive.tar"
        with tarfile.open(archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, content in (
                ("l.tar", layer_bytes),
                ("config.json", json.dumps(config).encode()),
                ("manifest.json", json.dumps(manifest).encode()),
            ):
                tar.addfile(_tarinfo(name, size=len(content), mode=0o644), io.BytesIO(content))
        skopeo_copy(f"docker-archive:{archive}", f"oci:{dest}:{tag}")
    return dest


def layout_manifest(layout: Path, tag: str) -> tuple[str, dict[str, Any]]:
    """The digest and parsed manifest that `layout`'s index.json names `tag`."""
    index = json.loads((layout / "index.json").read_text())
    for desc in index.get("manifests", []):
        if desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            digest: str = desc["digest"]
            algo, _, hexdigest = digest.partition(":")
            manifest: dict[str, Any] = json.loads(
                (layout / "blobs" / algo / hexdigest).read_bytes()
            )
            return digest, manifest
    raise AssertionError(f"{layout}/index.json has no manifest tagged {tag!r}")
