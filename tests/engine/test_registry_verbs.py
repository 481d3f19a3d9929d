"""The registry verbs crane and regctl users reach for: `vinci ls`, `manifest`, `config` and
`copy` (digest unchanged: blobs mounted within a registry, streamed through the cache between
two), against real registries."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import VinciRunner
from support.registry import RegistryServer
from support.verify import skopeo_inspect_raw


def _env(tmp_path: Path) -> dict[str, str]:
    return {"VINCI_CACHE_DIR": str(tmp_path / "cache")}


def _push(vinci: VinciRunner, hello: Path, tmp_path: Path, where: str, *tags: str) -> str:
    args = [a for t in tags for a in ("--tag", t)]
    return vinci("push", hello, "--image", where, *args, env=_env(tmp_path)).digest


def test_ls_manifest_and_config(
    hello: Path, tmp_path: Path, vinci: VinciRunner, registry: RegistryServer
) -> None:
    repo = f"{registry.host}/verbs/hello"
    digest = _push(vinci, hello, tmp_path, repo, "v1", "v2")
    assert vinci("ls", repo, env=_env(tmp_path)).stdout.split() == ["v1", "v2"]
    assert json.loads(vinci("ls", repo, "--json", env=_env(tmp_path)).stdout) == ["v1", "v2"]

    # The manifest's bytes as stored: they hash to the digest the push printed.
    raw = subprocess.run(
        [sys.executable, "-m", "engine.cli", "manifest", f"{repo}:v1"],
        capture_output=True,
        check=True,
    ).stdout
    assert f"sha256:{hashlib.sha256(raw).hexdigest()}" in digest
    as_json = json.loads(vinci("manifest", f"{repo}:v1", "--json", env=_env(tmp_path)).stdout)
    assert as_json["digest"] in digest
    assert as_json["manifest"]["config"]["digest"]

    config = json.loads(vinci("config", f"{repo}:v1", env=_env(tmp_path)).stdout)
    assert config["config"]["Entrypoint"] == ["/cat", "/message"]
    assert config["rootfs"]["diff_ids"]

    missing = vinci("ls", f"{registry.host}/verbs/nothing-here", env=_env(tmp_path), check=False)
    assert missing.returncode == 1
    assert "no such repository" in missing.stderr


def test_copy_keeps_the_digest_and_mounts_within_a_registry(
    hello: Path, tmp_path: Path, vinci: VinciRunner, registry: RegistryServer
) -> None:
    source = f"{registry.host}/verbs/copy-src"
    digest = _push(vinci, hello, tmp_path, source, "v1")
    run = vinci(
        "copy", f"{source}:v1", f"{registry.host}/verbs/copy-dst:v1", "--json",
        env={"VINCI_CACHE_DIR": str(tmp_path / "other-cache")},
    )  # fmt: skip
    result = json.loads(run.stdout)
    assert result["digest"] == digest
    assert result["mounted"] == 3 and result["uploaded"] == 0  # config and two layers
    copied = skopeo_inspect_raw(f"docker://{registry.host}/verbs/copy-dst:v1", tls_verify=False)
    assert f"sha256:{hashlib.sha256(copied).hexdigest()}" == digest


def test_copy_between_registries_streams_through_the_cache(
    hello: Path,
    tmp_path: Path,
    vinci: VinciRunner,
    registry: RegistryServer,
    registry_factory: Callable[..., RegistryServer],
) -> None:
    other = registry_factory()
    source = f"{registry.host}/verbs/across"
    digest = _push(vinci, hello, tmp_path, source, "v1")
    env = {"VINCI_CACHE_DIR": str(tmp_path / "copy-cache")}
    first = json.loads(
        vinci("copy", f"{source}:v1", f"{other.host}/moved/app:v1", "--json", env=env).stdout
    )
    assert first["digest"] == digest
    assert first["uploaded"] == 3
    again = json.loads(
        vinci("copy", f"{source}:v1", f"{other.host}/moved/app:v2", "--json", env=env).stdout
    )
    assert again["skipped"] == 3 and again["bytes_sent"] == 0
    assert vinci("ls", f"{other.host}/moved/app", env=env).stdout.split() == ["v1", "v2"]
