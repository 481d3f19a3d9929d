"""Tests of the test support layer itself, against the real tools.

If these pass, a failure elsewhere that blames the registry, the proxy or a verifier is about
vinci, not about the harness: the registry variants accept right and reject wrong credentials,
the fault proxy really injects each fault and counts what it should, and the verifiers pass a
good image and fail a bad one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.faultproxy import FaultProxy, classify
from support.registry import RegistryServer
from support.tokenserver import Grant, parse_scope
from support.verify import (
    layout_manifest,
    oci_image_tool_validate,
    podman_run,
    require_tool,
    skopeo_copy,
    skopeo_inspect_raw,
    umoci_unpack,
)

OCI_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob_path(layout: Path, digest: str) -> Path:
    algo, _, hexdigest = digest.partition(":")
    return layout / "blobs" / algo / hexdigest


def _layer_digest(layout: Path, tag: str = "v1") -> str:
    _, manifest = layout_manifest(layout, tag)
    digest: str = manifest["layers"][0]["digest"]
    return digest


def _push(layout: Path, ref: str, **kwargs: Any) -> None:
    skopeo_copy(f"oci:{layout}:v1", ref, **kwargs)


def _rewrite_config(
    layout: Path, tag: str, mutate: Callable[[dict[str, Any]], None], *, fix_size: bool = True
) -> None:
    """Edit the config blob of `tag` and re-address config, manifest and index consistently."""
    _, manifest = layout_manifest(layout, tag)
    config = json.loads(_blob_path(layout, manifest["config"]["digest"]).read_bytes())
    mutate(config)
    config_bytes = json.dumps(config).encode()
    _blob_path(layout, _sha256(config_bytes)).write_bytes(config_bytes)
    manifest["config"]["digest"] = _sha256(config_bytes)
    manifest["config"]["size"] = len(config_bytes) if fix_size else len(config_bytes) + 1
    manifest_bytes = json.dumps(manifest).encode()
    _blob_path(layout, _sha256(manifest_bytes)).write_bytes(manifest_bytes)
    index = json.loads((layout / "index.json").read_text())
    for desc in index["manifests"]:
        if desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            desc["digest"] = _sha256(manifest_bytes)
            desc["size"] = len(manifest_bytes)
    (layout / "index.json").write_text(json.dumps(index))


# -- pure parts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "kind"),
    [
        ("GET", "/v2/", "base"),
        ("GET", "/v2/_catalog?n=1", "catalog"),
        ("HEAD", "/v2/a/b/blobs/sha256:abc", "blob"),
        ("POST", "/v2/a/b/blobs/uploads/", "upload"),
        ("POST", "/v2/a/b/blobs/uploads/?mount=sha256:abc&from=c", "mount"),
        ("PATCH", "/v2/a/blobs/uploads/1234-uuid?_state=x", "upload"),
        ("PUT", "/v2/a/blobs/uploads/1234-uuid?_state=x&digest=sha256:1", "upload"),
        ("PUT", "/v2/a/b/manifests/v1", "manifest"),
        ("GET", "/v2/a/tags/list", "tags"),
        ("GET", "/v2/a/referrers/sha256:abc", "referrers"),
        ("GET", "/elsewhere", "other"),
    ],
)
def test_classify(method: str, target: str, kind: str) -> None:
    assert classify(method, target) == kind


def test_parse_scope() -> None:
    assert parse_scope("repository:test/bb:pull,push") == Grant(
        "repository", "test/bb", ("pull", "push")
    )
    assert parse_scope("registry:catalog:*") == Grant("registry", "catalog", ("*",))
    assert parse_scope("nonsense") is None


# -- registry variants ----------------------------------------------------------------------------


def test_registry_plain_push_pull(
    registry: RegistryServer, busybox_layout: Path, tmp_path: Path
) -> None:
    require_tool("skopeo", "umoci")
    assert registry.scheme == "http"
    assert registry.url == f"http://{registry.host}"
    resp = httpx.get(f"{registry.url}/v2/")
    assert resp.status_code == 200
    assert resp.headers["Docker-Distribution-Api-Version"] == "registry/2.0"

    digest, _ = layout_manifest(busybox_layout, "v1")
    _push(busybox_layout, registry.docker_ref("support/plain", "v1"))
    # skopeo keeps the manifest bytes, so the registry serves exactly the layout's manifest.
    assert _sha256(skopeo_inspect_raw(registry.docker_ref("support/plain", "v1"))) == digest
    by_digest = httpx.get(
        f"{registry.url}/v2/support/plain/manifests/{digest}", headers={"Accept": OCI_ACCEPT}
    )
    assert by_digest.status_code == 200
    assert _sha256(by_digest.content) == digest

    back = tmp_path / "back"
    skopeo_copy(registry.docker_ref("support/plain", "v1"), f"oci:{back}:v1")
    assert layout_manifest(back, "v1")[0] == digest
    rootfs = umoci_unpack(back, "v1", tmp_path / "bundle")
    assert (rootfs / "etc" / "hello").read_bytes() == b"hello\n"
    assert os.readlink(rootfs / "bin" / "sh") == "busybox"


def test_registries_get_own_ports_and_stop_by_pid(
    registry_factory: Callable[..., RegistryServer],
) -> None:
    first, second = registry_factory(), registry_factory()
    assert first.port != second.port
    pid = first.pid
    assert pid is not None and Path(f"/proc/{pid}").exists()
    first.stop()
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(RuntimeError):
        _ = first.host
    assert httpx.get(f"{second.url}/v2/").status_code == 200


def test_basic_auth_over_tls(
    registry_factory: Callable[..., RegistryServer], busybox_layout: Path
) -> None:
    require_tool("skopeo", "openssl", "htpasswd")
    reg = registry_factory(auth="basic", tls=True, username="alice", password="s3cret")
    assert reg.scheme == "https" and reg.url.startswith("https://127.0.0.1:")
    assert reg.ca_file is not None and reg.cert_dir is not None
    assert (reg.cert_dir / "ca.crt").is_file()
    assert reg.creds == "alice:s3cret"

    verify = reg.ssl_context()
    assert verify is not None
    with httpx.Client(verify=verify) as client:
        anonymous = client.get(f"{reg.url}/v2/")
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
        assert client.get(f"{reg.url}/v2/", auth=("alice", "s3cret")).status_code == 200
        assert client.get(f"{reg.url}/v2/", auth=("alice", "wrong")).status_code == 401
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{reg.url}/v2/")

    ref = reg.docker_ref("support/basic", "v1")
    _push(
        busybox_layout, ref, dest_tls_verify=True, dest_cert_dir=reg.cert_dir, dest_creds=reg.creds
    )
    raw = skopeo_inspect_raw(ref, tls_verify=True, cert_dir=reg.cert_dir, creds=reg.creds)
    assert _sha256(raw) == layout_manifest(busybox_layout, "v1")[0]

    with pytest.raises(AssertionError, match="unauthorized"):
        _push(
            busybox_layout,
            ref,
            dest_tls_verify=True,
            dest_cert_dir=reg.cert_dir,
            dest_creds="alice:nope",
        )
    with pytest.raises(AssertionError, match="unauthorized"):
        skopeo_inspect_raw(ref, tls_verify=True, cert_dir=reg.cert_dir)
    with pytest.raises(AssertionError, match="x509"):
        skopeo_inspect_raw(ref, tls_verify=True, creds=reg.creds)


def test_basic_auth_over_plain_http(
    registry_factory: Callable[..., RegistryServer], busybox_layout: Path
) -> None:
    require_tool("skopeo", "htpasswd")
    reg = registry_factory(auth="basic")
    assert reg.scheme == "http" and reg.ca_file is None and reg.cert_dir is None
    ref = reg.docker_ref("support/basic-http", "v1")
    _push(busybox_layout, ref, dest_creds=reg.creds)
    with pytest.raises(AssertionError, match="unauthorized"):
        skopeo_inspect_raw(ref, creds="testuser:wrong")


def test_token_auth(registry_factory: Callable[..., RegistryServer], busybox_layout: Path) -> None:
    require_tool("skopeo")
    reg = registry_factory(auth="token")
    tokens = reg.token_server
    assert tokens is not None

    challenge = httpx.get(f"{reg.url}/v2/").headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer realm="{tokens.realm}"')
    assert f'service="{tokens.service}"' in challenge

    ref = reg.docker_ref("support/token", "v1")
    _push(busybox_layout, ref, dest_creds=reg.creds)
    granted = [g for r in tokens.requests if r.account == "testuser" for g in r.granted]
    assert any("push" in g.actions and g.name == "support/token" for g in granted)

    # Anonymous pull is allowed by the token server's policy; anonymous push is not.
    digest = layout_manifest(busybox_layout, "v1")[0]
    assert _sha256(skopeo_inspect_raw(ref)) == digest
    with pytest.raises(AssertionError, match=r"denied|unauthorized"):
        _push(busybox_layout, reg.docker_ref("support/token-anon", "v1"))
    with pytest.raises(AssertionError, match=r"unauthorized|401"):
        skopeo_inspect_raw(ref, creds="testuser:wrong")
    assert any(r.status == 401 for r in tokens.requests)

    # The token endpoint itself, as a client library would use it.
    scope = "repository:support/token:pull"
    token = httpx.get(tokens.realm, params={"service": tokens.service, "scope": scope}).json()
    manifest = httpx.get(
        f"{reg.url}/v2/support/token/manifests/v1",
        headers={"Authorization": f"Bearer {token['token']}", "Accept": OCI_ACCEPT},
    )
    assert manifest.status_code == 200 and _sha256(manifest.content) == digest
    form = {"grant_type": "password", "username": "testuser", "password": "testpass"}
    posted = httpx.post(tokens.realm, data={**form, "service": tokens.service, "scope": scope})
    assert posted.status_code == 200 and posted.json()["access_token"]


# -- fault proxy ----------------------------------------------------------------------------------


def _raw_get(host: str, target: str) -> bytes:
    hostname, _, port = host.rpartition(":")
    with socket.create_connection((hostname, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        return sock.recv(65536)


def test_fault_proxy_reset(fault_proxy: FaultProxy) -> None:
    fault_proxy.inject("reset", method="GET", path_kind="base")
    with pytest.raises(ConnectionResetError):
        _raw_get(fault_proxy.host, "/v2/")
    # times=1: the next request goes through, on a new connection.
    assert httpx.get(f"{fault_proxy.url}/v2/").status_code == 200
    assert [(e.kind, e.status, e.fault) for e in fault_proxy.exchanges] == [
        ("base", None, "reset"),
        ("base", 200, None),
    ]
    fault_proxy.inject("reset", path_kind="base")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{fault_proxy.url}/v2/")


def test_fault_proxy_unavailable_with_skip(fault_proxy: FaultProxy) -> None:
    fault_proxy.inject("unavailable", path_kind="base", skip=1, times=2)
    with httpx.Client() as client:
        statuses = [client.get(f"{fault_proxy.url}/v2/") for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 503, 503, 200]
    assert statuses[1].headers["Retry-After"] == "1"
    assert statuses[1].json()["errors"][0]["code"] == "UNAVAILABLE"
    assert fault_proxy.count("GET", "base") == 4


def test_fault_proxy_truncates_a_blob(
    fault_proxy: FaultProxy, registry: RegistryServer, busybox_layout: Path
) -> None:
    require_tool("skopeo")
    _push(busybox_layout, registry.docker_ref("support/truncate", "v1"))
    layer = _layer_digest(busybox_layout)
    url = f"{fault_proxy.url}/v2/support/truncate/blobs/{layer}"
    fault_proxy.inject("truncate", method="GET", path_kind="blob")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)
    whole = httpx.get(url)
    assert whole.status_code == 200 and _sha256(whole.content) == layer
    truncated, complete = fault_proxy.exchanges
    assert truncated.fault == "truncate" and truncated.response_bytes < complete.response_bytes
    # HEAD keeps the upstream Content-Length (no body is relayed).
    head = httpx.head(url)
    assert int(head.headers["Content-Length"]) == len(whole.content)


def test_fault_proxy_counts_upload_bytes_and_mounts(
    fault_proxy: FaultProxy, busybox_layout: Path
) -> None:
    require_tool("skopeo")
    layer = _layer_digest(busybox_layout)
    layer_size = _blob_path(busybox_layout, layer).stat().st_size
    ref = f"docker://{fault_proxy.host}/support/count:v1"

    _push(busybox_layout, ref)
    assert fault_proxy.upload_bytes >= layer_size
    assert fault_proxy.count("PUT", "manifest") == 1
    # Upload Locations were built from the proxy's Host, so the upload came back through it.
    assert fault_proxy.count("PUT", "upload") >= 1

    fault_proxy.reset_counts()
    _push(busybox_layout, ref)
    assert fault_proxy.upload_bytes == 0
    assert fault_proxy.count("HEAD", "blob") >= 1

    fault_proxy.reset_counts()
    mounted = httpx.post(
        f"{fault_proxy.url}/v2/support/count-mounted/blobs/uploads/",
        params={"mount": layer, "from": "support/count"},
    )
    assert mounted.status_code == 201
    assert mounted.headers["Location"].startswith(fault_proxy.url)
    assert fault_proxy.count("POST", "mount") == 1 and fault_proxy.mounts_succeeded == 1
    assert fault_proxy.upload_bytes == 0


def test_fault_proxy_stops_by_itself(registry: RegistryServer) -> None:
    proxy = FaultProxy(registry.host, max_lifetime=0.2).start()
    port = proxy.port
    try:
        assert proxy.wait_stopped(timeout=5)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        proxy.stop()


def test_fault_proxy_refuses_non_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("example.com:443")


# -- verifiers ------------------------------------------------------------------------------------


def test_verifiers_pass_on_a_good_layout(busybox_layout: Path, tmp_path: Path) -> None:
    require_tool("umoci", "oci-image-tool", "skopeo")
    oci_image_tool_validate(busybox_layout)
    oci_image_tool_validate(busybox_layout, "v1")
    rootfs = umoci_unpack(busybox_layout, "v1", tmp_path / "bundle")
    assert (rootfs / "bin" / "busybox").stat().st_mode & 0o111
    raw = skopeo_inspect_raw(f"oci:{busybox_layout}:v1")
    assert _sha256(raw) == layout_manifest(busybox_layout, "v1")[0]
    config = json.loads(skopeo_inspect_raw(f"oci:{busybox_layout}:v1", config=True))
    assert config["rootfs"]["type"] == "layers"


def test_umoci_rejects_a_wrong_diff_id(busybox_layout: Path, tmp_path: Path) -> None:
    require_tool("umoci", "oci-image-tool")
    bad = tmp_path / "bad"
    shutil.copytree(busybox_layout, bad)

    def zero_diff_id(config: dict[str, Any]) -> None:
        config["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]

    _rewrite_config(bad, "v1", zero_diff_id)
    with pytest.raises(AssertionError, match="diffid mismatch"):
        umoci_unpack(bad, "v1", tmp_path / "bundle")
    # The reason umoci is the content verifier: oci-image-tool calls this image fine.
    oci_image_tool_validate(bad, "v1")


def test_oci_image_tool_rejects_a_wrong_size(busybox_layout: Path, tmp_path: Path) -> None:
    require_tool("oci-image-tool")
    bad = tmp_path / "bad"
    shutil.copytree(busybox_layout, bad)
    _rewrite_config(bad, "v1", lambda config: None, fix_size=False)
    with pytest.raises(AssertionError, match="size mismatch"):
        oci_image_tool_validate(bad, "v1")


# -- podman ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_podman_runs_an_oci_layout(busybox_layout: Path, tmp_path: Path) -> None:
    require_tool("podman", "runc")
    result = podman_run(f"oci:{busybox_layout}:v1", ["busybox", "echo", "hi"], workdir=tmp_path)
    assert result.stdout == "hi\n"
    failed = podman_run(
        f"oci:{busybox_layout}:v1", ["-c", "echo oops >&2; exit 3"], workdir=tmp_path,
        entrypoint="/bin/sh", check=False,
    )  # fmt: skip
    assert failed.returncode == 3 and failed.stderr == "oops\n"
    with pytest.raises(AssertionError, match="exited 3"):
        podman_run(f"oci:{busybox_layout}:v1", ["sh", "-c", "exit 3"], workdir=tmp_path)
    # Storage is per call and removed afterwards; nothing stays mounted.
    assert list(tmp_path.iterdir()) == []
    assert str(tmp_path) not in Path("/proc/self/mounts").read_text()


@pytest.mark.slow
def test_podman_runs_from_registries(
    registry: RegistryServer,
    registry_factory: Callable[..., RegistryServer],
    busybox_layout: Path,
    tmp_path: Path,
) -> None:
    require_tool("podman", "runc", "skopeo")
    _push(busybox_layout, registry.docker_ref("support/podman", "v1"))
    result = podman_run(
        registry.ref("support/podman", "v1"), ["busybox", "cat", "/etc/hello"], workdir=tmp_path
    )
    assert result.stdout == "hello\n"

    secure = registry_factory(auth="basic", tls=True)
    _push(
        busybox_layout, secure.docker_ref("support/podman", "v1"),
        dest_tls_verify=True, dest_cert_dir=secure.cert_dir, dest_creds=secure.creds,
    )  # fmt: skip
    result = podman_run(
        f"docker://{secure.ref('support/podman', 'v1')}", ["busybox", "echo", "tls"],
        workdir=tmp_path, tls_verify=True, cert_dir=secure.cert_dir, creds=secure.creds,
    )  # fmt: skip
    assert result.stdout == "tls\n"


def test_fault_proxy_relays_a_chunked_upload(fault_proxy: FaultProxy) -> None:
    blob = b"chunked upload through the proxy\n" * 1000
    digest = _sha256(blob)

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(blob), 4096):
            yield blob[start : start + 4096]

    with httpx.Client() as client:
        started = client.post(f"{fault_proxy.url}/v2/support/chunked/blobs/uploads/")
        assert started.status_code == 202
        location = httpx.URL(started.headers["Location"])
        assert location.host == "127.0.0.1" and location.port == fault_proxy.port
        # No length given: httpx sends Transfer-Encoding: chunked.
        patched = client.patch(location, content=pieces())
        assert patched.status_code == 202
        done = client.put(
            httpx.URL(patched.headers["Location"]).copy_merge_params({"digest": digest})
        )
        assert done.status_code == 201
        assert client.get(f"{fault_proxy.url}/v2/support/chunked/blobs/{digest}").content == blob
    assert fault_proxy.upload_bytes == len(blob)
    assert [e.method for e in fault_proxy.exchanges if e.kind == "upload"] == [
        "POST",
        "PATCH",
        "PUT",
    ]
