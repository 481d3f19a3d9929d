"""vinci.lock: a lock made with one gzip implementation (the default, libdeflate) keeps the
manifest digest when a rebuild is forced to use another (the system zlib: other compressed
bytes, same diff_ids) as long as the locked blobs are available, and `--locked` fails with a
clear difference when they are not. A lock written before the portable default (by isal)
still builds and says which layers it could not honour. The file is canonical and round-trips
byte for byte; a lock that names the wrong blob is never trusted."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import VinciRunner
from support.registry import RegistryServer

from engine.codec import get_codec
from engine.tar.compression import decompressed

SPEC = """\
spec-version: v1
image: example.com/test/lock:1
config:
  entrypoint: [/bin/app]
layers:
  - file: {path: /bin/app, source: ./app}
  - file: {path: /etc/message, mode: 0644, contents: "hello\\n"}
"""
DEFAULT = "gzip/libdeflate-members/"


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    d = tmp_path / "src"
    d.mkdir()
    (d / "app").write_bytes(b"".join(b"line %d of the app\n" % i for i in range(20000)))
    (d / "vinci.yaml").write_text(SPEC)
    return d / "vinci.yaml"


def _env(cache: Path) -> dict[str, str]:
    return {"VINCI_CACHE_DIR": str(cache)}


def _lock(spec: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((spec.parent / "vinci.lock").read_text())
    return data


def _blob(layout: Path, digest: str) -> Any:
    return json.loads((layout / "blobs/sha256" / digest.removeprefix("sha256:")).read_text())


def _manifest_of(layout: Path) -> Any:
    index = json.loads((layout / "index.json").read_text())
    return _blob(layout, index["manifests"][0]["digest"])


def _config_of(layout: Path) -> Any:
    return _blob(layout, _manifest_of(layout)["config"]["digest"])


def _layers_of(layout: Path) -> list[dict[str, Any]]:
    layers: list[dict[str, Any]] = _manifest_of(layout)["layers"]
    return layers


def _diff_ids_of(layout: Path) -> list[str]:
    """Every layer blob decompressed and hashed: what the config's diff_ids must say."""
    out = []
    for layer in _layers_of(layout):
        h = hashlib.sha256()
        blob = layout / "blobs/sha256" / layer["digest"].removeprefix("sha256:")
        with open(blob, "rb") as f, decompressed(f) as stream:
            while chunk := stream.read(1 << 20):
                h.update(chunk)
        out.append("sha256:" + h.hexdigest())
    return out


def test_lock_format_and_byte_identical_round_trip(
    tmp_path: Path, vinci: VinciRunner, spec: Path
) -> None:
    cache = tmp_path / "cache"
    run = vinci("lock", spec, env=_env(cache))
    assert "written" in run.stdout
    path = spec.parent / "vinci.lock"
    text = path.read_text()
    # Canonical: sorted keys, two-space indent, a final newline.
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    lock = json.loads(text)
    assert lock["lock_version"] == 1
    built = vinci("build", spec, "--json", "-q", env=_env(cache))
    result = json.loads(built.stdout)
    assert lock["image"]["manifest"] == result["manifest_digest"]
    assert lock["image"]["config"] == result["config_digest"]
    assert lock["imports"] == {}
    assert sorted(lock["layers"]) == sorted(x["diff_id"] for x in result["layers"])
    for layer in result["layers"]:
        entry = lock["layers"][layer["diff_id"]]
        assert entry["digest"] == layer["digest"]
        assert entry["size"] == layer["size"]
        assert entry["media_type"] == layer["media_type"]
        assert entry["codec"].startswith(DEFAULT)
        assert entry["used_by"] == [layer["label"]]

    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    again = vinci("lock", spec, env=_env(cache))
    assert "up to date" in again.stdout
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime  # not even rewritten
    vinci("lock", spec, env=_env(tmp_path / "cold-cache"))  # a cold cache changes nothing either
    assert path.read_bytes() == before
    vinci("lock", spec, "--check", env=_env(cache))
    # Another codec does not move the lock (the locked blobs win)...
    assert "up to date" in vinci("lock", spec, "--compression", "zstd", env=_env(cache)).stdout
    # ...unless asked to relock with it.
    moved = vinci("lock", spec, "--compression", "zstd", "--no-lock", env=_env(cache))
    assert "written" in moved.stdout and "locked blob" in moved.stderr
    assert {v["media_type"] for v in _lock(spec)["layers"].values()} == {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    }


def test_another_gzip_keeps_the_locked_digest_when_the_blobs_are_there(
    tmp_path: Path, vinci: VinciRunner, spec: Path
) -> None:
    cache = tmp_path / "cache"
    vinci("lock", spec, env=_env(cache))  # the default gzip
    locked = _lock(spec)
    # Without the lock, the system zlib really makes other bytes for the same tar.
    plain = tmp_path / "plain.oci"
    vinci(
        "build",
        spec,
        "--compression",
        "gzip-zlib",
        "--no-lock",
        "-o",
        f"oci:{plain}",
        env=_env(tmp_path / "c2"),
    )
    assert {x["digest"] for x in _layers_of(plain)}.isdisjoint(
        v["digest"] for v in locked["layers"].values()
    )
    assert sorted(_diff_ids_of(plain)) == sorted(locked["layers"])

    out = tmp_path / "out.oci"
    run = vinci(
        "build", spec, "--compression", "gzip-zlib", "--locked", "-o", f"oci:{out}", env=_env(cache)
    )
    assert run.digest == locked["image"]["manifest"]
    assert [x["digest"] for x in _layers_of(out)] == [
        locked["layers"][d]["digest"] for d in _diff_ids_of(out)
    ]
    # The locked blobs were used instead of compressing: zlib made no layer in this cache.
    records = [json.loads(p.read_text()) for p in (cache / "v1" / "layers").glob("*.json")]
    assert records and not any(r["codec"].startswith("gzip/zlib/") for r in records)
    # And the lock still round-trips: nothing about the image changed.
    text = (spec.parent / "vinci.lock").read_bytes()
    vinci("lock", spec, "--compression", "gzip-zlib", env=_env(cache))
    assert (spec.parent / "vinci.lock").read_bytes() == text


def test_locked_fails_with_a_clear_diff_when_the_blobs_are_not_there(
    tmp_path: Path, vinci: VinciRunner, spec: Path
) -> None:
    vinci("lock", spec, env=_env(tmp_path / "cache"))
    locked = _lock(spec)
    out = tmp_path / "out.oci"
    run = vinci(
        "build",
        spec,
        "--compression",
        "gzip-zlib",
        "--locked",
        "-o",
        f"oci:{out}",
        env=_env(tmp_path / "fresh"),
        check=False,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    err = run.stderr
    # Each layer's warning (the lock could not be honoured, and why) comes first.
    assert err.count("vinci: warning: vinci.lock: layer ") == len(locked["layers"])
    assert "\nvinci: --locked: this build differs from " in err
    for diff_id, entry in locked["layers"].items():
        short = diff_id.removeprefix("sha256:")[:12]
        assert f"layer {short} ({entry['used_by'][0]}): same tar bytes, but the locked blob" in err
    assert (
        "is not available here (not in the cache; the lock lists no source); this build has" in err
    )
    assert "gzip/zlib/" in err and DEFAULT in err
    assert f"image manifest: locked {locked['image']['manifest']}, built sha256:" in err
    assert f'-    "manifest": "{locked["image"]["manifest"]}",' in err  # the lock file's diff
    assert not out.exists()  # nothing written on failure

    missing = vinci("build", spec, "--locked", "--no-lock", env=_env(tmp_path / "c"), check=False)
    assert missing.returncode == 1 and "--locked: no " in missing.stderr


# What `vinci lock` wrote for examples/hello when the default gzip was isal's (before the
# portable default): its blobs are made by a codec this vinci no longer has.
ISAL_HELLO_LOCK = """\
{
  "image": {
    "config": "sha256:4d40e32f195ce720e72189d40c73dee85aa2be6012e5b9f5f3d1ad3d4d135dbc",
    "manifest": "sha256:ca07983e94fb5572dc980b7b63fa75c535b229d30b5975f24e70d4f8fdf3f5fc",
    "platform": "linux/amd64"
  },
  "imports": {},
  "layers": {
    "sha256:594dcf17f7561ba186266d4f6f6c7b1c795e8131f17a9fb23bcc2f5d7b761801": {
      "codec": "gzip/isal-igzip-threaded/1.9.1/level=2/block=1048576",
      "digest": "sha256:1a26480ba6758abc6453beebe459e3c7a8d5f79883dbd99dcad8b362b2c4043d",
      "media_type": "application/vnd.oci.image.layer.v1.tar+gzip",
      "size": 1127741,
      "uncompressed_size": 1984000,
      "used_by": [
        "layers[0].file"
      ]
    },
    "sha256:fe366d13a630fc0f539fc44e7160f0ebe495f79d551f2a078c42fddef3a9f5a0": {
      "codec": "gzip/isal-igzip-threaded/1.9.1/level=2/block=1048576",
      "digest": "sha256:89f361af931e81bc10b85d8bddb52fb55c763ed847b1536bda71ca4a5f4720db",
      "media_type": "application/vnd.oci.image.layer.v1.tar+gzip",
      "size": 124,
      "uncompressed_size": 2048,
      "used_by": [
        "layers[1].file"
      ]
    }
  },
  "lock_version": 1
}
"""


def test_a_lock_from_the_isal_codec_builds_and_says_what_it_could_not_honour(
    tmp_path: Path, vinci: VinciRunner, hello: Path
) -> None:
    (hello.parent / "vinci.lock").write_text(ISAL_HELLO_LOCK)
    out = tmp_path / "out.oci"
    run = vinci("build", hello, "-o", f"oci:{out}", env=_env(tmp_path / "fresh"))
    for diff_id, blob, label in (
        ("594dcf17f756", "1a26480ba675", "/cat"),
        ("fe366d13a630", "89f361af931e", "/message"),
    ):
        line = next(x for x in run.stderr.splitlines() if f"layer {diff_id} (" in x)
        assert label in line
        assert f"locked to blob {blob}, made by gzip/isal-igzip-threaded/1.9.1/level=2/" in line
        assert "not in the cache and the lock lists no source" in line
        assert f"with {DEFAULT}" in line
    # The image is what the portable default makes, and it is a whole, valid image.
    assert run.digest != json.loads(ISAL_HELLO_LOCK)["image"]["manifest"]
    assert run.digest == vinci("build", hello, "--no-lock", env=_env(tmp_path / "c2")).digest
    assert sorted(_diff_ids_of(out)) == sorted(json.loads(ISAL_HELLO_LOCK)["layers"])
    # --locked refuses it, naming both codecs; `vinci lock` moves the lock to the new blobs.
    strict = vinci("build", hello, "--locked", env=_env(tmp_path / "fresh"), check=False)
    assert strict.returncode == 1
    assert "gzip/isal-igzip-threaded/" in strict.stderr and DEFAULT in strict.stderr
    vinci("lock", hello, env=_env(tmp_path / "fresh"))
    assert {v["codec"] for v in _lock(hello)["layers"].values()} == {get_codec().identity}
    quiet = vinci("build", hello, "--locked", env=_env(tmp_path / "fresh"))
    assert "vinci.lock" not in quiet.stderr


def test_a_changed_input_fails_locked_and_relocks(
    tmp_path: Path, vinci: VinciRunner, spec: Path
) -> None:
    cache = tmp_path / "cache"
    vinci("lock", spec, env=_env(cache))
    spec.write_text(SPEC.replace("hello", "hullo"))
    run = vinci("build", spec, "--locked", env=_env(cache), check=False)
    assert run.returncode == 1
    assert "is not in the lock: its tar bytes are new (a spec or input change)" in run.stderr
    assert "locked layer" in run.stderr and "is not in this build" in run.stderr
    relock = vinci("lock", spec, env=_env(cache))
    assert "written" in relock.stdout
    vinci("build", spec, "--locked", env=_env(cache))


def test_a_lock_naming_the_wrong_blob_is_not_trusted(
    tmp_path: Path, vinci: VinciRunner, spec: Path
) -> None:
    cache = tmp_path / "cache"
    vinci("lock", spec, env=_env(cache))
    path = spec.parent / "vinci.lock"
    lock = json.loads(path.read_text())
    # Swap the two layers' blobs: both are in the cache, neither is the other's tar.
    first, second = sorted(lock["layers"])
    for key in ("digest", "size"):
        lock["layers"][first][key], lock["layers"][second][key] = (
            lock["layers"][second][key],
            lock["layers"][first][key],
        )
    path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    out = tmp_path / "out.oci"
    vinci("build", spec, "--compression", "gzip-zlib", "-o", f"oci:{out}", env=_env(cache))
    # A consistent image regardless: each layer decompresses to the diff_id its config lists.
    assert _diff_ids_of(out) == _config_of(out)["rootfs"]["diff_ids"]


def test_malformed_lock_is_one_line(tmp_path: Path, vinci: VinciRunner, spec: Path) -> None:
    (spec.parent / "vinci.lock").write_text('{"lock_version": 7}\n')
    run = vinci("build", spec, env=_env(tmp_path / "cache"), check=False)
    assert run.returncode == 1
    [line] = run.stderr.strip().splitlines()
    assert "not a valid vinci.lock" in line and "lock_version 7" in line


def test_import_oci_resolution_is_locked(
    tmp_path: Path, vinci: VinciRunner, spec: Path, registry: RegistryServer
) -> None:
    env = {**_env(tmp_path / "cache"), "DOCKER_CONFIG": str(tmp_path / "docker")}
    repo = f"{registry.host}/lock/base"
    vinci("build", spec, "--push", "--image", repo, "--tag", "v1", env=env)
    pinned = vinci("resolve", f"{repo}:v1", env=env).stdout.splitlines()[0]
    derived = tmp_path / "derived"
    derived.mkdir()
    (derived / "vinci.yaml").write_text(
        "spec-version: v1\n"
        "layers:\n"
        f"  - import-oci: {{ref: {pinned}}}\n"
        '  - file: {path: /etc/extra, contents: "extra\\n"}\n'
    )
    vinci("lock", derived, env=env)
    lock = json.loads((derived / "vinci.lock").read_text())
    assert list(lock["imports"]) == [pinned]
    assert lock["imports"][pinned]["manifest"] == pinned.partition("@")[2]
    imported = [v for v in lock["layers"].values() if v["used_by"] == ["layers[0].import-oci"]]
    assert len(imported) == 2 and all(v["codec"] == "import" for v in imported)
    vinci("build", derived, "--locked", env=env)


def test_locked_blobs_come_from_the_registry_they_were_pushed_to(
    tmp_path: Path, vinci: VinciRunner, spec: Path, registry: RegistryServer
) -> None:
    env = {**_env(tmp_path / "cache"), "DOCKER_CONFIG": str(tmp_path / "docker")}
    repo = f"{registry.host}/lock/pushed"
    vinci("lock", spec, env=env)
    vinci("build", spec, "--push", "--image", repo, "--tag", "v1", env=env)
    relock = vinci("lock", spec, env=env)  # learns where the blobs are
    assert "blob now known at" in relock.stderr
    lock = _lock(spec)
    assert all(v["sources"] == [repo] for v in lock["layers"].values())
    # Another machine: an empty cache and another gzip. The locked blobs come from the
    # registry (verified as they stream in) instead of being recompressed.
    other = {**env, "VINCI_CACHE_DIR": str(tmp_path / "elsewhere")}
    run = vinci("build", spec, "--compression", "gzip-zlib", "--locked", env=other)
    assert run.digest == lock["image"]["manifest"]
    records = [json.loads(p.read_text()) for p in (tmp_path / "elsewhere/v1/layers").glob("*")]
    assert not any(r["codec"].startswith("gzip/zlib/") for r in records)
    # The lock round-trips there too: sources are kept, not forgotten.
    text = (spec.parent / "vinci.lock").read_bytes()
    vinci("lock", spec, "--compression", "gzip-zlib", env=other)
    assert (spec.parent / "vinci.lock").read_bytes() == text
