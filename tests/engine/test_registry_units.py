"""The registry code's pure parts, without a server: challenge and Retry-After parsing, docker's
config.json, registry names, streaming layer verification; and the rule that a local build
(with a local import and an archive output) never imports httpx."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard
from conftest import REPO

from engine.cache.ingest import ingest_stream
from engine.cache.store import BlobStore
from engine.errors import CorruptImportedImage, RegistryError
from engine.oci.digest import Digest
from engine.registry import dockerconfig
from engine.registry.auth import parse_challenges
from engine.registry.hosts import api_host, credential_key, is_loopback, normalize_key
from engine.registry.options import RegistryOptions
from engine.registry.retry import parse_retry_after


def test_parse_challenges() -> None:
    (bearer,) = parse_challenges(
        'Bearer realm="http://127.0.0.1:5102/token",service="reg",scope="repository:a/b:pull,push"'
    )
    assert bearer.scheme == "bearer"
    assert bearer.get("realm") == "http://127.0.0.1:5102/token"
    assert bearer.get("scope") == "repository:a/b:pull,push"
    basic, other = parse_challenges(
        'Basic realm="x y", Bearer realm="r",error="insufficient_scope"'
    )
    assert (basic.scheme, basic.get("realm")) == ("basic", "x y")
    assert other.get("error") == "insufficient_scope"
    assert (
        parse_challenges('Basic realm="a \\"quoted\\" realm"')[0].get("realm") == 'a "quoted" realm'
    )
    assert parse_challenges("") == []


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0) == 6.0


def test_registry_names() -> None:
    assert api_host("docker.io") == "registry-1.docker.io"
    assert api_host("127.0.0.1:5000") == "127.0.0.1:5000"
    assert credential_key("docker.io") == "https://index.docker.io/v1/"
    assert normalize_key("https://index.docker.io/v1/") == "docker.io"
    assert normalize_key("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000"
    assert is_loopback("127.0.0.1:5000") and is_loopback("localhost") and is_loopback("[::1]:80")
    assert not is_loopback("ghcr.io") and not is_loopback("10.0.0.1:5000")
    options = RegistryOptions().with_cli(["a.example:5000", " "], "/ca.pem")
    assert options.insecure == frozenset({"a.example:5000"})
    assert str(options.ca_file) == "/ca.pem"


def test_docker_config_auths_forms(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {
                        "auth": base64.b64encode(b"hubuser:hubpass").decode()
                    },
                    "http://reg.example:5000/v2/": {"username": "u", "password": "p:with:colons"},
                    "token.example": {"identitytoken": "opaque"},
                }
            }
        )
    )
    hub = dockerconfig.lookup("docker.io", tmp_path)
    assert hub is not None and (hub.username, hub.secret) == ("hubuser", "hubpass")
    assert "hubpass" not in repr(hub)
    other = dockerconfig.lookup("reg.example:5000", tmp_path)
    assert other is not None and other.secret == "p:with:colons"
    assert dockerconfig.lookup("nowhere.example", tmp_path) is None
    with pytest.raises(RegistryError, match="identity token") as err:
        dockerconfig.lookup("token.example", tmp_path)
    assert "opaque" not in str(err.value)


def test_docker_config_store_keeps_other_keys_and_erase(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"psFormat": "x", "auths": {}}))
    creds = dockerconfig.Credentials("me", "pw")
    dockerconfig.store("127.0.0.1:5000", creds, tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["psFormat"] == "x"
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == 0o600
    found = dockerconfig.lookup("127.0.0.1:5000", tmp_path)
    assert found is not None and found.secret == "pw"
    assert dockerconfig.erase("127.0.0.1:5000", tmp_path)
    assert dockerconfig.lookup("127.0.0.1:5000", tmp_path) is None
    assert not dockerconfig.erase("127.0.0.1:5000", tmp_path)


def test_unreadable_docker_config_names_the_file_not_its_content(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"auths": {"x": {"auth": "c2VjcmV0"}')  # cut short
    with pytest.raises(RegistryError) as err:
        dockerconfig.lookup("x", tmp_path)
    assert str(tmp_path / "config.json") in str(err.value)
    assert "c2VjcmV0" not in str(err.value)


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["gzip", "gzip-multi", "zstd", "zstd-frames", "none"])
def test_ingest_verifies_digest_and_diff_id_streaming(tmp_path: Path, kind: str) -> None:
    raw = _tar({"a": b"x" * 300_000, "b": bytes(range(256)) * 2000})
    half = len(raw) // 2
    blob = {
        "gzip": lambda: gzip.compress(raw, mtime=0),
        "gzip-multi": lambda: gzip.compress(raw[:half], mtime=0) + gzip.compress(raw[half:]),
        "zstd": lambda: zstandard.ZstdCompressor().compress(raw),
        "zstd-frames": lambda: (
            zstandard.ZstdCompressor().compress(raw[:half])
            + zstandard.ZstdCompressor().compress(raw[half:])
        ),
        "none": lambda: raw,
    }[kind]()
    store = BlobStore(tmp_path)
    digest = Digest.of_bytes(blob)
    diff_id = Digest.of_bytes(raw)
    got = ingest_stream(
        store, io.BytesIO(blob), "test", digest=digest, size=len(blob), compression="detect",
        diff_id=diff_id,
    )  # fmt: skip
    assert (got.digest, got.diff_id, got.uncompressed_size) == (digest, diff_id, len(raw))
    assert store.has_blob(digest, len(blob))

    wrong = Digest(hashlib.sha256(b"other").hexdigest())
    with pytest.raises(CorruptImportedImage, match="diff_id"):
        ingest_stream(store, io.BytesIO(blob), "t", digest=None, size=None,
                      compression="detect", diff_id=wrong)  # fmt: skip


def test_ingest_refuses_a_wrong_digest_and_keeps_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    data = gzip.compress(_tar({"a": b"a"}), mtime=0)
    claimed = Digest("0" * 64)
    with pytest.raises(CorruptImportedImage) as err:
        ingest_stream(store, io.BytesIO(data), "img", digest=claimed, size=len(data),
                      compression="gzip")  # fmt: skip
    assert str(claimed) in str(err.value) and str(err.value).startswith("corrupt imported image")
    assert list((tmp_path / "v1" / "blobs" / "sha256").iterdir()) == []


def test_ingest_refuses_a_broken_gzip_stream(tmp_path: Path) -> None:
    data = gzip.compress(_tar({"a": b"a" * 10_000}), mtime=0)[:-20]
    with pytest.raises(CorruptImportedImage, match="does not decompress"):
        ingest_stream(BlobStore(tmp_path), io.BytesIO(data), "img", digest=None, size=None,
                      compression="gzip")  # fmt: skip


def test_local_build_with_import_and_archive_never_imports_httpx(
    busybox_layout: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "vinci.yaml"
    spec.write_text(
        f"spec-version: v1\nlayers:\n  - import: {busybox_layout}\n"
        "  - file: {path: /x, contents: x}\n"
    )
    code = (
        "import sys\n"
        "from engine.cli.main import main\n"
        f"rc = main(['build', {str(spec)!r}, '-q', '--output', "
        f"'oci-archive:{tmp_path / 'out.tar'}', '--cache-dir', {str(tmp_path / 'c')!r}])\n"
        "assert rc == 0, rc\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'httpcore'))\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


def test_registry_client_reads_responses_in_large_pieces() -> None:
    # httpcore's own 64 KiB read size made each blob thousands of trips through h11.
    import httpcore

    from engine.registry import client

    assert httpcore.HTTP11Connection.READ_NUM_BYTES == client.READ_BYTES == 256 << 10


def test_every_registry_connection_goes_through_the_deadline_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The overall deadline needs httpx's pools to keep their network backend where
    transport.make_client replaces it, including the pools for proxies from the environment."""
    from engine.registry import transport

    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with transport.make_client(False, 5.0, 2) as client:
        transports = [client._transport, *(t for t in client._mounts.values() if t is not None)]
        assert len(transports) >= 2
        for each in transports:
            assert isinstance(each._pool._network_backend, transport._Backend)  # type: ignore[attr-defined]


def test_deadline_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.registry.options import options_from_env

    monkeypatch.setenv("VINCI_REGISTRY_DEADLINE", "7")
    monkeypatch.setenv("VINCI_REGISTRY_BLOB_DEADLINE", "30")
    options = options_from_env()
    assert options.deadline == 7.0
    assert options.blob_deadline_for(1 << 20) == 30.0 + options.blob_seconds_per_mib
    monkeypatch.setenv("VINCI_REGISTRY_DEADLINE", "soon")
    with pytest.raises(RegistryError, match="VINCI_REGISTRY_DEADLINE"):
        options_from_env()
