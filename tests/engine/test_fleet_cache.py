"""The fleet cache (docs/fleet-cache.md): runners that share nothing but a real registry share
their layers, through the library and the command line.

Two cache directories stand for two CI runners. The registry is the Debian docker-registry of
the test session (or one of this test's own); the fault proxy stands for a slow one.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import subprocess
import sys
import tarfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import REPO, Run, run_vinci
from support.faultproxy import FaultProxy
from support.registry import RegistryServer

from engine import BuildOptions

OLD = 1_600_000_000  # an mtime long past: the stat memo trusts it
ARTIFACT_TYPE = "application/vnd.vinci.layer-cache.v1"
ACCEPT = "application/vnd.oci.image.manifest.v1+json"

SPEC = """\
spec-version: v1
layers:
  - directory: {path: /app, source: ./app}
  - file: {path: /big, source: ./big}
  - file: {path: /message, contents: "Hello, fleet!\\n"}
  - symlink: {path: /hello, target: /message}
"""
SOURCES = Counter({"app/a.txt": 1, "app/b.txt": 1, "app/sub/c.bin": 1, "big": 1})


def _tree(root: Path) -> Path:
    (root / "app/sub").mkdir(parents=True)
    (root / "app/a.txt").write_bytes(b"alpha\n" * 1000)
    (root / "app/b.txt").write_bytes(b"beta\n")
    (root / "app/sub/c.bin").write_bytes(os.urandom(200_000))
    (root / "big").write_bytes(os.urandom(2 << 20))
    (root / "vinci.yaml").write_text(SPEC)
    for p in [*root.rglob("*")]:
        os.utime(p, (OLD, OLD), follow_symlinks=False)
    return root / "vinci.yaml"


# A runner: the library's build in a process of its own, counting what it opens under the
# spec's directory (an audit hook sees every open, os.open included), and its warnings.
RUNNER = r"""
import json, os, sys
from collections import Counter
spec, cache, out, repo = sys.argv[1:5]
root = os.path.dirname(spec)
opened = Counter()
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)):
        path = os.fsdecode(args[0])
        if path.startswith(root + os.sep) and not path.endswith((".yaml", ".json")):
            opened[os.path.relpath(path, root)] += 1
sys.addaudithook(hook)
import engine
from pathlib import Path
from engine.events import Log
warnings = []
def sink(event):
    if isinstance(event, Log) and event.level == "warning":
        warnings.append(event.message)
options = engine.BuildOptions(cache_dir=Path(cache), output=f"oci:{out}", cache_to=repo, jobs=2)
result = engine.build(spec, options, sink=sink)
print(json.dumps({
    "digest": str(result.manifest.digest),
    "hits": [r.cache_hit for r in result.layers],
    "keys": [r.record.key for r in result.layers],
    "opened": dict(opened),
    "warnings": warnings,
}))
"""


def _runner(spec: Path, cache: Path, out: Path, repo: str) -> dict[str, Any]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cache), "LANG": "C.UTF-8"}
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(spec), str(cache), str(out), repo],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _tags(registry: str, repository: str) -> set[str]:
    reply = httpx.get(f"http://{registry}/v2/{repository}/tags/list")
    if reply.status_code == 404:
        return set()
    reply.raise_for_status()
    return set(reply.json().get("tags") or [])


def _entry(registry: str, repository: str, tag: str) -> dict[str, Any]:
    reply = httpx.get(
        f"http://{registry}/v2/{repository}/manifests/{tag}", headers={"Accept": ACCEPT}
    )
    reply.raise_for_status()
    data: dict[str, Any] = reply.json()
    return data


def _valid_entry(registry: str, repository: str, tag: str) -> bool:
    """Whether the entry under `tag` is what it says: its blob has its digest and, gunzipped,
    the diff_id its annotation names."""
    doc = _entry(registry, repository, tag)
    notes = doc["annotations"]
    (layer,) = doc["layers"]
    blob = httpx.get(f"http://{registry}/v2/{repository}/blobs/{layer['digest']}").content
    return (
        doc["artifactType"] == ARTIFACT_TYPE
        and doc["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
        and tag == f"vc-{notes['dev.vinci.cache.key']}"
        and f"sha256:{hashlib.sha256(blob).hexdigest()}" == layer["digest"]
        and f"sha256:{hashlib.sha256(gzip.decompress(blob)).hexdigest()}"
        == notes["dev.vinci.cache.diff-id"]
    )


def _build(
    spec: Path, cache: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> Run:
    out = cache.parent / f"{cache.name}.oci"
    return run_vinci(
        "build", spec, "-o", f"oci:{out}", "--cache-dir", cache, "--json", *args, env=env,
        check=check,
    )  # fmt: skip


def _warnings(run: Run) -> list[str]:
    return [line for line in run.stderr.splitlines() if "warning" in line]


def _local_digest(spec: Path, tmp_path: Path) -> str:
    run = _build(spec, tmp_path / "reference-cache")
    return str(json.loads(run.stdout)["manifest_digest"])


def test_second_runner_is_all_remote_hits(
    tmp_path: Path, registry: RegistryServer, fault_proxy: FaultProxy
) -> None:
    """Runner B, sharing only the registry with runner A, fetches every layer: it reads each
    source once (to hash it for its key), compresses and sends nothing, asks for each key
    with one HEAD, and makes the same image. The registry holds one entry per layer key."""
    spec = _tree(tmp_path / "src")
    repo = f"{fault_proxy.host}/fleet/second"
    a = _runner(spec, tmp_path / "a", tmp_path / "a.oci", repo)
    assert a["hits"] == [False] * 4 and a["warnings"] == []
    assert _tags(registry.host, "fleet/second") == {f"vc-{k}" for k in a["keys"]}
    assert all(_valid_entry(registry.host, "fleet/second", f"vc-{k}") for k in a["keys"])

    fault_proxy.reset_counts()
    b = _runner(spec, tmp_path / "b", tmp_path / "b.oci", repo)
    assert b["digest"] == a["digest"]
    assert b["hits"] == [True] * 4 and b["warnings"] == []
    # Each source hashed once for its key; no layer written from it (A read each twice).
    assert Counter(b["opened"]) == SOURCES
    assert Counter(a["opened"]) == Counter({k: 2 for k in SOURCES})
    assert fault_proxy.count("HEAD", "manifest") == 4
    assert fault_proxy.count("GET", "blob") == 4
    assert fault_proxy.upload_bytes == 0 and fault_proxy.count("PUT") == 0
    assert b["digest"] == _local_digest(spec, tmp_path)
    assert _tags(registry.host, "fleet/second") == {f"vc-{k}" for k in a["keys"]}


def test_concurrent_writers_of_one_key(tmp_path: Path, registry: RegistryServer) -> None:
    """Four runners write the same keys at once (the repository set by environment): none
    fails, each key has one entry, every entry is valid, and a fifth runner hits them all."""
    spec = _tree(tmp_path / "src")
    repo = f"{registry.host}/fleet/race"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "VINCI_CACHE_TO": repo,
    }
    procs = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "engine.cli", "build", str(spec), "--json"),
                *("-o", f"oci:{tmp_path}/out{i}.oci", "--cache-dir", str(tmp_path / f"c{i}")),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    outcomes = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert [code for code, _, _ in outcomes] == [0] * 4, [err for _, _, err in outcomes]
    digests = {json.loads(out)["manifest_digest"] for _, out, _ in outcomes}
    assert len(digests) == 1
    keys = {layer["cache_key"] for layer in json.loads(outcomes[0][1])["layers"]}
    assert _tags(registry.host, "fleet/race") == {f"vc-{k}" for k in keys}
    assert all(_valid_entry(registry.host, "fleet/race", f"vc-{k}") for k in keys)
    fifth = _build(spec, tmp_path / "c5", env={"VINCI_CACHE_FROM": repo})
    data = json.loads(fifth.stdout)
    assert data["manifest_digest"] in digests
    assert all(layer["cache_hit"] for layer in data["layers"])


def test_poisoned_entry_is_rejected_and_rebuilt(tmp_path: Path, registry: RegistryServer) -> None:
    """An entry whose blob is another layer (its digest true, its diff_id not the one the
    annotation names) is refused with a warning; the layer is built here, the image right."""
    spec = _tree(tmp_path / "src")
    repo = f"{registry.host}/fleet/poison"
    a = json.loads(_build(spec, tmp_path / "a", "--cache-to", repo).stdout)
    key0, key1 = a["layers"][0]["cache_key"], a["layers"][1]["cache_key"]
    poisoned = _entry(registry.host, "fleet/poison", f"vc-{key0}")
    poisoned["layers"] = _entry(registry.host, "fleet/poison", f"vc-{key1}")["layers"]
    put = httpx.put(
        f"http://{registry.host}/v2/fleet/poison/manifests/vc-{key0}",
        content=json.dumps(poisoned).encode(),
        headers={"Content-Type": ACCEPT},
    )
    assert put.status_code == 201, put.text

    b = _build(spec, tmp_path / "b", "--cache-from", repo)
    (warning,) = _warnings(b)
    assert "rejected" in warning and "diff_id" in warning
    data = json.loads(b.stdout)
    assert [layer["cache_hit"] for layer in data["layers"]] == [False, True, True, True]
    assert data["manifest_digest"] == a["manifest_digest"] == _local_digest(spec, tmp_path)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_warning_and_right(spec: Path, tmp_path: Path, repo: str, **env: str) -> str:
    run = _build(spec, tmp_path / "c", "--cache-to", repo, env=env)
    (warning,) = _warnings(run)
    data = json.loads(run.stdout)
    assert not any(layer["cache_hit"] for layer in data["layers"])
    assert data["manifest_digest"] == _local_digest(spec, tmp_path)
    return warning


def test_registry_down_costs_one_warning(tmp_path: Path) -> None:
    spec = _tree(tmp_path / "src")
    repo = f"127.0.0.1:{_closed_port()}/fleet/down"
    warning = _one_warning_and_right(spec, tmp_path, repo)
    assert "remote cache" in warning and "building locally" in warning


def test_registry_down_fails_with_cache_required(tmp_path: Path) -> None:
    spec = _tree(tmp_path / "src")
    repo = f"127.0.0.1:{_closed_port()}/fleet/down"
    run = run_vinci(
        "build", spec, "--cache-dir", tmp_path / "c", "--cache-to", repo, "--cache-required",
        check=False,
    )  # fmt: skip
    assert run.returncode == 1
    assert "--cache-required" in run.stderr and "Traceback" not in run.stderr


def test_slow_registry_costs_one_warning(
    tmp_path: Path, registry: RegistryServer, fault_proxy: FaultProxy
) -> None:
    """Lookups slower than the cache's deadline: given up on, the build goes on locally."""
    spec = _tree(tmp_path / "src")
    fault_proxy.inject("delay", method="HEAD", path_kind="manifest", seconds=5, times=100)
    repo = f"{fault_proxy.host}/fleet/slow"
    warning = _one_warning_and_right(spec, tmp_path, repo, VINCI_CACHE_TIMEOUT="0.5")
    assert "remote cache" in warning
    assert fault_proxy.count("PUT") == 0  # nothing written to a registry that did not answer


def test_read_only_registry_costs_one_warning(
    tmp_path: Path, registry_factory: Callable[..., RegistryServer]
) -> None:
    spec = _tree(tmp_path / "src")
    readonly = registry_factory(readonly=True)
    warning = _one_warning_and_right(spec, tmp_path, f"{readonly.host}/fleet/ro")
    assert "cannot write" in warning


@pytest.mark.parametrize("value", ["127.0.0.1:5000/cache:v1", "not a reference"])
def test_cache_repository_must_be_a_repository(tmp_path: Path, value: str) -> None:
    spec = _tree(tmp_path / "src")
    run = run_vinci(
        "build", spec, "--cache-dir", tmp_path / "c", "--cache-from", value, check=False
    )
    assert run.returncode == 2 and "--cache-from" in run.stderr


def test_local_hits_fill_the_registry_once(
    tmp_path: Path, registry: RegistryServer, fault_proxy: FaultProxy
) -> None:
    """Layers a runner already holds are written to a registry that lacks them, and only
    then: the next build asks for each key once and writes nothing."""
    spec = _tree(tmp_path / "src")
    repo = f"{fault_proxy.host}/fleet/fill"
    local = json.loads(_build(spec, tmp_path / "c").stdout)
    assert _tags(registry.host, "fleet/fill") == set()
    again = json.loads(_build(spec, tmp_path / "c", "--replan", "--cache-to", repo).stdout)
    assert all(layer["cache_hit"] for layer in again["layers"])
    keys = {layer["cache_key"] for layer in local["layers"]}
    assert _tags(registry.host, "fleet/fill") == {f"vc-{k}" for k in keys}
    fault_proxy.reset_counts()
    _build(spec, tmp_path / "c", "--replan", "--cache-to", repo)
    assert fault_proxy.count("HEAD", "manifest") == len(keys)
    assert fault_proxy.count("PUT") == 0 and fault_proxy.count("POST") == 0


def test_tar_and_accounts_layers_are_shared(tmp_path: Path, registry: RegistryServer) -> None:
    """A `tar` layer and the `accounts` layer go through the remote cache as every layer
    does: runner B fetches both from runner A's entries and makes the same image."""
    root = tmp_path / "src"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    with tarfile.open(root / "rootfs.tar", "w") as tar:
        tar.add(root / "etc", "etc")
    (root / "vinci.yaml").write_text(
        "spec-version: v1\n"
        "accounts:\n"
        "  groups: [{groupname: app, gid: 1000}]\n"
        "  users: [{username: app, uid: 1000, gid: 1000, homedir: /app}]\n"
        "layers:\n"
        "  - tar: ./rootfs.tar\n"
    )
    repo = f"{registry.host}/fleet/kinds"
    a = json.loads(_build(root / "vinci.yaml", tmp_path / "a", "--cache-to", repo).stdout)
    assert [layer["cache_hit"] for layer in a["layers"]] == [False, False]
    keys = {layer["cache_key"] for layer in a["layers"]}
    assert _tags(registry.host, "fleet/kinds") == {f"vc-{k}" for k in keys}
    b = _build(root / "vinci.yaml", tmp_path / "b", "--cache-from", repo)
    data = json.loads(b.stdout)
    assert [layer["cache_hit"] for layer in data["layers"]] == [True, True]
    assert data["manifest_digest"] == a["manifest_digest"] and _warnings(b) == []


def test_settings_file_names_the_cache(
    tmp_path: Path, registry: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cache-to` in the settings file is used by a build that names no cache; its
    environment variable wins over the file, and a flag over both; a bad file is one line."""
    spec = _tree(tmp_path / "src")
    settings = tmp_path / "config.toml"
    settings.write_text(f'cache-to = "{registry.host}/fleet/file"\ncache-required = true\n')
    data = json.loads(_build(spec, tmp_path / "c", env={"VINCI_CONFIG": str(settings)}).stdout)
    keys = {layer["cache_key"] for layer in data["layers"]}
    assert _tags(registry.host, "fleet/file") == {f"vc-{k}" for k in keys}

    monkeypatch.setenv("VINCI_CONFIG", str(settings))
    monkeypatch.delenv("VINCI_CACHE_TO", raising=False)
    monkeypatch.delenv("VINCI_CACHE_REQUIRED", raising=False)
    from_file = BuildOptions().remote()
    assert from_file.write == f"{registry.host}/fleet/file" and from_file.required
    monkeypatch.setenv("VINCI_CACHE_TO", "")  # set and empty: none, whatever the file says
    assert BuildOptions().remote().write is None
    monkeypatch.setenv("VINCI_CACHE_TO", "127.0.0.1:5000/from/env")
    assert BuildOptions().remote().write == "127.0.0.1:5000/from/env"
    assert BuildOptions(cache_to="127.0.0.1:5000/flag").remote().write == "127.0.0.1:5000/flag"

    settings.write_text('cache-too = "x"\n')
    run = _build(spec, tmp_path / "c", env={"VINCI_CONFIG": str(settings)}, check=False)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    known = "cache-from, cache-to, cache-required"
    assert (
        run.stderr.strip()
        == f"vinci: {settings}: unknown setting 'cache-too' (vinci knows {known})"
    )


def test_prune_remote_deletes_old_entries(
    tmp_path: Path, registry: RegistryServer, registry_factory: Callable[..., RegistryServer]
) -> None:
    """`vinci cache prune-remote` deletes the entries written before the age given, by the
    time each entry records, and keeps the rest; the next build rebuilds and rewrites the
    pruned layer and hits the others. A registry that allows no deletes is one line."""
    spec = _tree(tmp_path / "src")
    repo = f"{registry.host}/fleet/prune"
    a = json.loads(_build(spec, tmp_path / "a", "--cache-to", repo).stdout)
    keys = [layer["cache_key"] for layer in a["layers"]]
    old = _entry(registry.host, "fleet/prune", f"vc-{keys[0]}")
    assert old["annotations"]["org.opencontainers.image.created"].endswith("Z")
    old["annotations"]["org.opencontainers.image.created"] = "2020-01-01T00:00:00Z"
    put = httpx.put(
        f"http://{registry.host}/v2/fleet/prune/manifests/vc-{keys[0]}",
        content=json.dumps(old).encode(),
        headers={"Content-Type": ACCEPT},
    )
    assert put.status_code == 201, put.text

    dry = run_vinci("cache", "prune-remote", repo, "--older-than", "30d", "--dry-run", "--json")
    assert json.loads(dry.stdout)["deleted"] == 1
    assert len(_tags(registry.host, "fleet/prune")) == 4
    pruned = run_vinci("cache", "prune-remote", repo, "--older-than", "30d")
    assert pruned.stdout.startswith("deleted 1 of 4 cache entries")
    assert _tags(registry.host, "fleet/prune") == {f"vc-{k}" for k in keys[1:]}

    b = json.loads(_build(spec, tmp_path / "b", "--cache-to", repo).stdout)
    assert [layer["cache_hit"] for layer in b["layers"]] == [False, True, True, True]
    assert b["manifest_digest"] == a["manifest_digest"]
    assert _tags(registry.host, "fleet/prune") == {f"vc-{k}" for k in keys}

    keeper = registry_factory(delete=False)
    _build(spec, tmp_path / "c", "--cache-to", f"{keeper.host}/fleet/keep")
    refused = run_vinci(
        "cache", "prune-remote", f"{keeper.host}/fleet/keep", "--older-than", "0s", check=False
    )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "does not allow deletes" in refused.stderr and len(refused.stderr.splitlines()) == 1


def test_verify_compares_with_the_fleet(tmp_path: Path, registry: RegistryServer) -> None:
    """`vinci verify --cache-from` holds the fleet's entries to the key's promise: the same
    bytes as this machine's build. An entry with other bytes under a key fails verify."""
    spec = _tree(tmp_path / "src")
    repo = f"{registry.host}/fleet/verify"
    a = json.loads(_build(spec, tmp_path / "a", "--cache-to", repo).stdout)
    args = ("verify", spec, "--only", "serial", "--cache-from", repo)
    same = run_vinci(*args, "--json")
    fleet = json.loads(same.stdout)["fleet"]
    assert (fleet["layers"], fleet["present"], fleet["differing"]) == (4, 4, [])

    key0, key1 = a["layers"][0]["cache_key"], a["layers"][1]["cache_key"]
    other = _entry(registry.host, "fleet/verify", f"vc-{key0}")
    other["layers"] = _entry(registry.host, "fleet/verify", f"vc-{key1}")["layers"]
    put = httpx.put(
        f"http://{registry.host}/v2/fleet/verify/manifests/vc-{key0}",
        content=json.dumps(other).encode(),
        headers={"Content-Type": ACCEPT},
    )
    assert put.status_code == 201, put.text
    differs = run_vinci(*args, check=False)
    assert differs.returncode == 1
    assert "NOT reproducible across machines: 1 of the 4 layers" in differs.stdout
