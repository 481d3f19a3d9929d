"""A fault-injecting proxy on loopback in front of the real registry: connection resets, 503 with
Retry-After, truncated bodies. Pushes and pulls still succeed and verify with umoci; only
idempotent steps are repeated; retries are bounded."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from conftest import VinciRunner
from support.faultproxy import FaultProxy
from support.verify import layout_manifest, skopeo_copy, skopeo_inspect_raw, umoci_unpack

import engine
from engine import BuildOptions
from engine.cache.store import BlobStore
from engine.errors import RegistryError
from engine.oci.reference import parse_reference
from engine.registry.options import RegistryOptions
from engine.registry.push import push_image


def _env(tmp_path: Path, cache: str = "cache") -> dict[str, str]:
    return {"VINCI_CACHE_DIR": str(tmp_path / cache), "DOCKER_CONFIG": str(tmp_path / "docker")}


def test_push_survives_resets_and_503s(
    hello: Path, tmp_path: Path, vinci: VinciRunner, fault_proxy: FaultProxy
) -> None:
    fault_proxy.inject("reset", path_kind="base", times=1)
    fault_proxy.inject("unavailable", method="HEAD", path_kind="blob", times=2, retry_after=1)
    fault_proxy.inject("reset", method="PUT", path_kind="upload", times=2)
    fault_proxy.inject("unavailable", method="POST", path_kind="upload", times=1, retry_after=1)
    fault_proxy.inject("unavailable", method="PUT", path_kind="manifest", times=1, retry_after=1)
    started = time.monotonic()
    run = vinci("push", hello, "--image", f"{fault_proxy.host}/faults/push:v1", env=_env(tmp_path))
    elapsed = time.monotonic() - started
    faults = [e for e in fault_proxy.exchanges if e.fault]
    assert len(faults) == 7  # every scripted fault was met...
    assert elapsed >= 1.0  # ...and Retry-After was waited for, not ignored
    raw = skopeo_inspect_raw(f"docker://{fault_proxy.host}/faults/push:v1")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == run.digest
    layout = tmp_path / "back"
    skopeo_copy(f"docker://{fault_proxy.host}/faults/push:v1", f"oci:{layout}:v1")
    rootfs = umoci_unpack(layout, "v1", tmp_path / "bundle")
    assert (rootfs / "message").read_bytes() == b"Hello, World!\n"


def test_pull_survives_truncated_bodies_resets_and_503s(
    tmp_path: Path, vinci: VinciRunner, fault_proxy: FaultProxy, busybox_layout: Path
) -> None:
    skopeo_copy(f"oci:{busybox_layout}:v1", f"docker://{fault_proxy.host}/faults/base:v1")
    pinned = vinci("resolve", f"{fault_proxy.host}/faults/base:v1", env=_env(tmp_path)).stdout
    spec = tmp_path / "vinci.yaml"
    spec.write_text(
        "spec-version: v1\n"
        "layers:\n"
        f"  - import-oci: {pinned.split()[0]}\n"
        '  - file: {path: /etc/extra, contents: "extra\\n"}\n'
    )
    fault_proxy.reset_counts()
    fault_proxy.inject("truncate", method="GET", path_kind="manifest", times=1)
    fault_proxy.inject("unavailable", method="GET", path_kind="manifest", times=1, retry_after=1)
    # The layer: cut short, then reset, then cut short again: resumed with Range each time.
    layer = layout_manifest(busybox_layout, "v1")[1]["layers"][0]["digest"]
    fault_proxy.inject("truncate", method="GET", path_regex=layer, times=1, keep_bytes=300_000)
    fault_proxy.inject("reset", method="GET", path_regex=layer, times=1)
    fault_proxy.inject("truncate", method="GET", path_regex=layer, times=1, keep_bytes=200_000)
    out = tmp_path / "out.oci"
    vinci("build", spec, "--output", f"oci:{out}", env=_env(tmp_path, "fresh-cache"))
    assert len([e for e in fault_proxy.exchanges if e.fault]) == 5
    layer_gets = [e for e in fault_proxy.exchanges if e.method == "GET" and layer in e.target]
    statuses = [e.status for e in layer_gets]
    assert statuses == [200, None, 206, 206], statuses  # resumed, not restarted
    rootfs = umoci_unpack(out, "latest", tmp_path / "bundle")
    assert (rootfs / "etc" / "hello").read_bytes() == b"hello\n"
    assert (rootfs / "etc" / "extra").read_bytes() == b"extra\n"


def test_chunked_upload_restarts_whole_never_repeats_a_patch(
    hello: Path, tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    store = BlobStore(tmp_path / "cache")
    result = engine.build(hello, BuildOptions(cache_dir=tmp_path / "cache"))
    options = RegistryOptions(chunk_threshold=64 << 10, chunk_size=256 << 10, backoff=0.05)
    fault_proxy.inject("reset", method="PATCH", path_kind="upload", skip=1, times=1)
    target = parse_reference(f"{fault_proxy.host}/faults/chunked")
    pushed = push_image(store, result.manifest, target, ["v1"], options=options)
    assert pushed.uploaded == 3
    exchanges = fault_proxy.exchanges
    reset_at = next(i for i, e in enumerate(exchanges) if e.fault == "reset")
    broken_session = exchanges[reset_at].target.split("?")[0]
    # The interrupted session is abandoned: no request goes to it again.
    assert all(broken_session not in e.target for e in exchanges[reset_at + 1 :])
    patches = [e for e in exchanges if e.method == "PATCH" and e.status == 202]
    assert len(patches) >= 1_127_741 // (256 << 10) + 1  # the busybox layer went in chunks
    layout = tmp_path / "back"
    skopeo_copy(f"docker://{fault_proxy.host}/faults/chunked:v1", f"oci:{layout}:v1")
    umoci_unpack(layout, "v1", tmp_path / "bundle")


def test_retries_are_bounded_and_reported_in_one_line(
    hello: Path, tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    store = BlobStore(tmp_path / "cache")
    result = engine.build(hello, BuildOptions(cache_dir=tmp_path / "cache"))
    options = RegistryOptions(attempts=3, backoff=0.01, retry_after_cap=0.2)
    # Retry-After of an hour is capped; a registry that never recovers is given up on.
    fault_proxy.inject(
        "unavailable", method="PUT", path_kind="manifest", times=99, retry_after=3600
    )
    target = parse_reference(f"{fault_proxy.host}/faults/bounded")
    started = time.monotonic()
    with pytest.raises(RegistryError) as err:
        push_image(store, result.manifest, target, ["v1"], options=options)
    assert time.monotonic() - started < 5
    assert fault_proxy.count("PUT", "manifest") == 3
    message = str(err.value)
    assert "\n" not in message
    assert fault_proxy.host in message and "HTTP 503" in message and "3 attempts" in message


def test_manifest_put_is_retried_but_not_duplicated_in_effect(
    hello: Path, tmp_path: Path, vinci: VinciRunner, fault_proxy: FaultProxy
) -> None:
    # The registry got the PUT but the answer was lost: repeating it is harmless (same bytes).
    fault_proxy.inject("truncate", method="PUT", path_kind="manifest", times=1, keep_bytes=0)
    run = vinci(
        "push", hello, "--image", f"{fault_proxy.host}/faults/lost:v1", "--json", env=_env(tmp_path)
    )
    digest = json.loads(run.stdout)["push"]["digest"]
    raw = skopeo_inspect_raw(f"docker://{fault_proxy.host}/faults/lost:v1")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
