"""Multi-platform images: examples/multiarch (Debian's busybox-static for amd64 and arm64,
fetched by .ci/setup) builds to an OCI image index that skopeo, oci-image-tool, umoci and
podman read; each platform's image holds its own busybox (the ELF machine field says which);
the layer both share is built once and has one digest; push sends every manifest, then the
index, and skopeo pulls each platform back. One build of the example, shared by the module.

Also the annotations users expect (--label, --annotation, created from SOURCE_DATE_EPOCH, the
imported base's digest) and the spec's platform keys' errors."""

from __future__ import annotations

import hashlib
import json
import os
import platform as host
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, VinciRunner, copy_example, run_vinci
from support.registry import RegistryServer
from support.verify import (
    in_ci,
    oci_image_tool_validate,
    podman_run,
    require_tool,
    skopeo_copy,
    skopeo_inspect_raw,
    umoci_unpack,
)

import engine
from engine.errors import SpecError

TAG = "1.0"
ELF_MACHINE = {"amd64": 0x3E, "arm64": 0xB7}
UNAME = {"amd64": "x86_64", "arm64": "aarch64"}
BUSYBOXES = ("busybox-amd64", "busybox-arm64")


def _elf_machine(path: Path) -> int:
    with path.open("rb") as f:
        head = f.read(20)
    assert head[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int(struct.unpack("<H", head[18:20])[0])


def _index(layout: Path) -> dict[str, Any]:
    top = json.loads((layout / "index.json").read_bytes())["manifests"][0]
    data: dict[str, Any] = json.loads(
        (layout / "blobs" / "sha256" / top["digest"].removeprefix("sha256:")).read_bytes()
    )
    return data


class Built:
    def __init__(self, root: Path, spec: Path, layout: Path, data: dict[str, Any]) -> None:
        self.root = root
        self.spec = spec
        self.layout = layout
        self.data = data
        self.env = {"VINCI_CACHE_DIR": str(root / "cache")}

    def platform(self, arch: str) -> dict[str, Any]:
        found: dict[str, Any] = next(
            p for p in self.data["platforms"] if p["platform"] == f"linux/{arch}"
        )
        return found


@pytest.fixture(scope="module")
def multiarch(tmp_path_factory: pytest.TempPathFactory) -> Built:
    missing = [b for b in BUSYBOXES if not (EXAMPLES / "multiarch" / b).is_file()]
    if missing:
        reason = f"examples/multiarch lacks {', '.join(missing)} (.ci/setup fetches them)"
        if in_ci():
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("multiarch")
    spec = copy_example("multiarch", root / "example")
    layout = root / "out.oci"
    run = run_vinci(
        "build", spec, "-o", f"oci:{layout}", "--json", env={"VINCI_CACHE_DIR": str(root / "cache")}
    )
    return Built(root, spec, layout, json.loads(run.stdout))


def test_the_index_is_what_skopeo_and_oci_image_tool_read(multiarch: Built) -> None:
    require_tool("skopeo", "oci-image-tool")
    raw = skopeo_inspect_raw(f"oci:{multiarch.layout}:{TAG}")
    assert f"sha256:{hashlib.sha256(raw).hexdigest()}" == multiarch.data["index_digest"]
    index = json.loads(raw)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["platform"] for m in index["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux"},
    ]
    assert [m["digest"] for m in index["manifests"]] == [
        p["manifest_digest"] for p in multiarch.data["platforms"]
    ]
    top = json.loads((multiarch.layout / "index.json").read_bytes())["manifests"]
    assert top[0]["annotations"] == {"org.opencontainers.image.ref.name": TAG}
    oci_image_tool_validate(multiarch.layout, TAG)


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_each_platform_unpacks_with_its_own_busybox(
    multiarch: Built, arch: str, tmp_path: Path
) -> None:
    require_tool("skopeo", "umoci", "oci-image-tool")
    # skopeo picks the platform's manifest out of the index, bytes unchanged.
    single = tmp_path / "single.oci"
    skopeo_copy(
        f"oci:{multiarch.layout}:{TAG}",
        f"oci:{single}:{arch}",
        extra_args=["--override-arch", arch, "--override-os", "linux"],
    )
    raw = skopeo_inspect_raw(f"oci:{single}:{arch}")
    assert (
        f"sha256:{hashlib.sha256(raw).hexdigest()}" == multiarch.platform(arch)["manifest_digest"]
    )
    oci_image_tool_validate(single, arch)
    rootfs = umoci_unpack(single, arch, tmp_path / "bundle")
    assert _elf_machine(rootfs / "bin" / "busybox") == ELF_MACHINE[arch]
    assert os.readlink(rootfs / "bin" / "sh") == "busybox"
    assert (rootfs / "etc" / "arm64-only").exists() == (arch == "arm64")
    config = json.loads(skopeo_inspect_raw(f"oci:{single}:{arch}", config=True))
    assert (config["os"], config["architecture"]) == ("linux", arch)
    emulator = shutil.which(f"qemu-{UNAME[arch]}")
    if emulator is not None:
        # User-mode emulation runs the binary itself, whatever the host.
        out = subprocess.run(
            [emulator, rootfs / "bin" / "busybox", "uname", "-m"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == UNAME[arch]


def test_a_layer_the_same_for_both_platforms_is_built_once(multiarch: Built) -> None:
    amd64, arm64 = (
        {x["label"]: x for x in multiarch.platform(a)["layers"]} for a in ("amd64", "arm64")
    )
    shared = "layers[0].combined"
    assert amd64[shared]["digest"] == arm64[shared]["digest"]
    # The fresh cache's first platform made it; the second found it.
    assert (amd64[shared]["cache_hit"], arm64[shared]["cache_hit"]) == (False, True)
    busybox = "layers[1].file"
    assert amd64[busybox]["digest"] != arm64[busybox]["digest"]
    assert "layers[2].file" in arm64 and "layers[2].file" not in amd64
    manifests = [
        json.loads((multiarch.layout / "blobs" / "sha256" / m["digest"][7:]).read_bytes())
        for m in _index(multiarch.layout)["manifests"]
    ]
    firsts = {m["layers"][0]["digest"] for m in manifests}
    assert firsts == {amd64[shared]["digest"]}


def test_one_platform_is_the_same_image_as_in_the_index(multiarch: Built, tmp_path: Path) -> None:
    """--platform picks one: that platform's plain image, byte for byte the index's member, so
    a docker-archive can hold it; without it a docker-archive is refused in one line."""
    archive = tmp_path / "arm64.tar"
    refused = run_vinci(
        "build", multiarch.spec, "-o", f"docker-archive:{archive}", env=multiarch.env, check=False
    )
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "--platform" in refused.stderr
    assert "Traceback" not in refused.stderr and not archive.exists()
    run = run_vinci(
        "build",
        multiarch.spec,
        "-o",
        f"docker-archive:{archive}",
        "--platform",
        "linux/arm64",
        env=multiarch.env,
    )
    assert run.digest == multiarch.platform("arm64")["manifest_digest"]
    wrong = run_vinci("build", multiarch.spec, "--platform", "linux/s390x", check=False)
    assert wrong.returncode == 2 and "linux/s390x" in wrong.stderr


def test_the_oci_archive_holds_the_index(multiarch: Built, tmp_path: Path) -> None:
    require_tool("skopeo")
    archive = tmp_path / "multi.tar"
    run = run_vinci("build", multiarch.spec, "-o", f"oci-archive:{archive}", env=multiarch.env)
    assert run.digest == multiarch.data["index_digest"]
    raw = skopeo_inspect_raw(f"oci-archive:{archive}:{TAG}")
    assert f"sha256:{hashlib.sha256(raw).hexdigest()}" == multiarch.data["index_digest"]


def test_podman_runs_each_platform_the_machine_can(multiarch: Built, tmp_path: Path) -> None:
    require_tool("podman")
    native = {"x86_64": "amd64", "aarch64": "arm64"}.get(host.machine())
    emulated = {
        a for a in ("amd64", "arm64") if Path(f"/proc/sys/fs/binfmt_misc/qemu-{UNAME[a]}").exists()
    }
    ran = []
    for arch in ("amd64", "arm64"):
        if arch != native and arch not in emulated:
            continue
        proc = podman_run(
            f"oci:{multiarch.layout}:{TAG}",
            workdir=tmp_path / arch,
            platform=f"linux/{arch}",
        )
        assert proc.stdout.splitlines() == [
            "Hello from a multi-platform image built by vinci.",
            UNAME[arch],
        ]
        ran.append(arch)
    if "arm64" not in ran:
        pytest.skip(
            f"ran {', '.join(ran) or 'nothing'}: this {host.machine()} machine has no "
            "qemu-aarch64 binfmt_misc handler, so podman cannot run the arm64 image (its bytes "
            "are checked with umoci and qemu-aarch64 user mode above)"
        )


def test_push_sends_every_manifest_then_the_index(
    multiarch: Built, registry: RegistryServer, tmp_path: Path
) -> None:
    require_tool("skopeo", "umoci")
    repo = f"{registry.host}/multi/arch"
    run = run_vinci("push", multiarch.spec, "--image", f"{repo}:{TAG}", env=multiarch.env)
    assert run.digest == multiarch.data["index_digest"]
    raw = skopeo_inspect_raw(registry.docker_ref("multi/arch", TAG))
    assert f"sha256:{hashlib.sha256(raw).hexdigest()}" == multiarch.data["index_digest"]
    # Imported back by digest, each platform takes its own manifest, named as its base.
    pinned = f"{repo}@{multiarch.data['index_digest']}"
    data = _on_top(multiarch, "remote", f"import-oci: {pinned}")
    for image in data["platforms"]:
        arch = image["platform"].removeprefix("linux/")
        assert image["annotations"] == {
            "org.opencontainers.image.base.digest": multiarch.platform(arch)["manifest_digest"],
            "org.opencontainers.image.base.name": pinned,
        }
    for arch in ("amd64", "arm64"):
        pulled = tmp_path / f"{arch}.oci"
        skopeo_copy(
            registry.docker_ref("multi/arch", TAG),
            f"oci:{pulled}:{arch}",
            extra_args=["--override-arch", arch, "--override-os", "linux"],
        )
        got = skopeo_inspect_raw(f"oci:{pulled}:{arch}")
        assert (
            f"sha256:{hashlib.sha256(got).hexdigest()}"
            == multiarch.platform(arch)["manifest_digest"]
        )
        rootfs = umoci_unpack(pulled, arch, tmp_path / f"bundle-{arch}")
        assert _elf_machine(rootfs / "bin" / "busybox") == ELF_MACHINE[arch]


def _on_top(multiarch: Built, name: str, base: str) -> dict[str, Any]:
    """A two-platform spec over `base` (an import layer's YAML), built: its --json."""
    spec = multiarch.root / name / "vinci.yaml"
    spec.parent.mkdir()
    spec.write_text(
        "spec-version: v1\nplatforms: [linux/amd64, linux/arm64]\nlayers:\n"
        f"  - {base}\n  - file: {{path: /etc/on-top, contents: x}}\n"
    )
    out = multiarch.root / f"{name}.oci"
    data: dict[str, Any] = json.loads(
        run_vinci("build", spec, "-o", f"oci:{out}", "--json", env=multiarch.env).stdout
    )
    for image in data["platforms"]:
        manifest = (out / "blobs" / "sha256" / image["manifest_digest"][7:]).read_bytes()
        image["annotations"] = json.loads(manifest).get("annotations", {})
    return data


def test_an_import_takes_each_platforms_image_from_the_index(multiarch: Built) -> None:
    data = _on_top(multiarch, "local", f"import: {{path: {multiarch.layout}, tag: '{TAG}'}}")
    for image in data["platforms"]:
        arch = image["platform"].removeprefix("linux/")
        assert image["annotations"] == {
            "org.opencontainers.image.base.digest": multiarch.platform(arch)["manifest_digest"]
        }


def test_lock_records_each_platform_and_locked_builds_hold(multiarch: Built) -> None:
    spec = multiarch.spec
    run_vinci("lock", spec, env=multiarch.env)
    lock = json.loads(spec.with_suffix(".lock").read_bytes())
    assert lock["image"]["index"] == multiarch.data["index_digest"]
    assert {p: v["manifest"] for p, v in lock["image"]["platforms"].items()} == {
        p["platform"]: p["manifest_digest"] for p in multiarch.data["platforms"]
    }
    run = run_vinci(
        "build", spec, "--locked", "-o", f"oci:{multiarch.root / 'locked.oci'}", env=multiarch.env
    )
    assert run.digest == multiarch.data["index_digest"]
    # One platform is held to what the lock says of it.
    one = run_vinci(
        "build", spec, "--locked", "--platform", "linux/arm64", "-o",
        f"oci:{multiarch.root / 'locked-arm64.oci'}", env=multiarch.env,
    )  # fmt: skip
    assert one.digest == multiarch.platform("arm64")["manifest_digest"]
    spec.with_suffix(".lock").unlink()


def test_inspect_and_diff_take_a_platform(multiarch: Built, tmp_path: Path) -> None:
    shown = run_vinci(
        "inspect", multiarch.spec, "--platform", "linux/arm64", "--json", env=multiarch.env
    )
    arm64 = multiarch.platform("arm64")["manifest_digest"]
    assert json.loads(shown.stdout)["manifest"]["digest"] == arm64
    assert json.loads(shown.stdout)["platforms"] == ["linux/amd64", "linux/arm64"]
    layout = run_vinci(
        "inspect", f"oci:{multiarch.layout}:{TAG}", "--platform", "linux/arm64", env=multiarch.env
    )
    assert "index     linux/amd64, linux/arm64" in layout.stdout
    index = f"oci:{multiarch.layout}:{TAG}"
    same = run_vinci("diff", multiarch.spec, index, env=multiarch.env, check=False)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "== linux/amd64 ==" in same.stdout and "== linux/arm64 ==" in same.stdout
    # One platform of the two: the other is named as removed, the one kept is identical.
    single = tmp_path / "arm64.oci"
    run_vinci(
        "build", multiarch.spec, "--platform", "linux/arm64", "-o", f"oci:{single}",
        env=multiarch.env,
    )  # fmt: skip
    fewer = run_vinci(
        "diff", index, f"oci:{single}:{TAG}", "--json", env=multiarch.env, check=False
    )
    assert fewer.returncode == 1, fewer.stderr
    data = json.loads(fewer.stdout)
    assert data["platforms"] == {"added": [], "removed": ["linux/amd64"]}
    assert list(data["images"]) == ["linux/arm64"]
    assert data["images"]["linux/arm64"]["identical"] is True


def test_the_library_gives_an_index_and_its_images(multiarch: Built, tmp_path: Path) -> None:
    options = engine.BuildOptions(cache_dir=multiarch.root / "cache")
    result = engine.build(multiarch.spec, options)
    assert str(result.manifest.digest) == multiarch.data["index_digest"]
    images = engine.images_of(result)
    assert [str(r.spec.platform) for r in images] == ["linux/amd64", "linux/arm64"]
    assert [str(r.manifest.digest) for r in images] == [
        p["manifest_digest"] for p in multiarch.data["platforms"]
    ]
    engine.write(result, f"oci:{tmp_path / 'lib.oci'}")
    assert _index(tmp_path / "lib.oci") == _index(multiarch.layout)
    with pytest.raises(engine.OutputError):
        engine.write(result, f"docker-archive:{tmp_path / 'no.tar'}")


# -- annotations ------------------------------------------------------------------------------


def test_labels_annotations_and_created(hello: Path, tmp_path: Path, vinci: VinciRunner) -> None:
    out = tmp_path / "out.oci"
    env = {"VINCI_CACHE_DIR": str(tmp_path / "c"), "SOURCE_DATE_EPOCH": "1700000000"}
    vinci(
        "build",
        hello,
        "-o",
        f"oci:{out}",
        "--label",
        "team=core",
        "--label",
        "a=b=c",
        "--annotation",
        "org.example.note=hi",
        env=env,
    )
    image = engine.open_image(f"oci:{out}", cache_dir=tmp_path / "c")
    with image:
        manifest = image.manifest
        config = image.config
    assert manifest is not None
    annotations = manifest["annotations"]
    assert annotations["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    assert annotations["org.example.note"] == "hi"
    assert config["config"]["Labels"]["team"] == "core"
    assert config["config"]["Labels"]["a"] == "b=c"
    bad = vinci("build", hello, "--label", "novalue", check=False)
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr


def test_an_imported_base_is_named_by_its_digest(
    hello: Path, tmp_path: Path, vinci: VinciRunner
) -> None:
    env = {"VINCI_CACHE_DIR": str(tmp_path / "c")}
    base = tmp_path / "base.oci"
    base_digest = vinci("build", hello, "-o", f"oci:{base}", env=env).digest
    spec = tmp_path / "on-top" / "vinci.yaml"
    spec.parent.mkdir()
    spec.write_text(
        "spec-version: v1\nlayers:\n  - import: ../base.oci\n"
        "  - file: {path: /etc/extra, contents: x}\n"
    )
    out = tmp_path / "top.oci"
    vinci("build", spec, "-o", f"oci:{out}", env=env)
    with engine.open_image(f"oci:{out}", cache_dir=tmp_path / "c") as image:
        assert image.manifest is not None
        annotations = image.manifest["annotations"]
    assert annotations == {"org.opencontainers.image.base.digest": base_digest}


# -- the spec's platform keys -----------------------------------------------------------------


def _problems(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "a").write_text("a")
    spec = tmp_path / "vinci.yaml"
    spec.write_text(text)
    with pytest.raises(SpecError) as e:
        engine.load_spec(spec)
    return str(e.value).splitlines()


def test_platform_key_errors_point_at_the_key(tmp_path: Path) -> None:
    lines = _problems(
        tmp_path,
        "spec-version: v1\n"
        "platform: linux/amd64\n"
        "platforms: [linux/amd64, linux/arm64]\n"
        "layers:\n"
        "  - file: {path: /x, source: {linux/amd64: ./a}}\n"
        "  - file: {path: /y, contents: y, platforms: [linux/s390x]}\n",
    )
    assert any(x.startswith(f"{tmp_path}/vinci.yaml:3:1: platforms: give") for x in lines)
    assert any(":5:" in x and "no path for linux/arm64" in x for x in lines)
    assert any(":6:" in x and "linux/s390x is not one of the spec's platforms" in x for x in lines)


def test_items_of_one_layer_may_share_a_path_on_different_platforms(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    spec_file = tmp_path / "vinci.yaml"
    spec_file.write_text(
        "spec-version: v1\n"
        "platforms: [linux/amd64, linux/arm64]\n"
        "layers:\n"
        "  - combined:\n"
        "      - file: {path: /x, source: ./a, platforms: [linux/amd64]}\n"
        "      - file: {path: /x, source: ./b, platforms: [linux/arm64]}\n"
    )
    spec = engine.load_spec(spec_file)
    sources = [
        [part.source for part in spec.for_platform(p).layers[0].parts]  # type: ignore[union-attr]
        for p in spec.platforms
    ]
    assert sources == [[tmp_path / "a"], [tmp_path / "b"]]
    spec_file.write_text(spec_file.read_text().replace("[linux/arm64]}", "[linux/amd64]}"))
    with pytest.raises(SpecError, match="is already in this layer"):
        engine.load_spec(spec_file)


def test_each_platform_gets_its_sboms_and_the_provenance_rebuilds_the_index(
    multiarch: Built, tmp_path: Path
) -> None:
    out = tmp_path / "attested.oci"
    env = multiarch.env
    run = run_vinci(
        "build", multiarch.spec, "-o", f"oci:{out}", "--sbom", "both", "--provenance", env=env
    )
    assert run.digest == multiarch.data["index_digest"]
    for arch in ("amd64", "arm64"):
        spdx = json.loads((tmp_path / f"attested.oci.linux-{arch}.spdx.json").read_bytes())
        cdx = json.loads((tmp_path / f"attested.oci.linux-{arch}.cdx.json").read_bytes())
        digest = multiarch.platform(arch)["manifest_digest"]
        assert digest.removeprefix("sha256:") in json.dumps(spdx)
        assert digest.removeprefix("sha256:") in json.dumps(cdx)
        # Each names its own busybox, and only its own platform's arm64-only file.
        names = json.dumps(cdx)
        assert (f"busybox-{arch}" in names) and (
            f"busybox-{'arm64' if arch == 'amd64' else 'amd64'}" not in names
        )
    statement = tmp_path / "attested.oci.provenance.json"
    subject = json.loads(statement.read_bytes())["subject"][0]["digest"]["sha256"]
    assert f"sha256:{subject}" == multiarch.data["index_digest"]
    check = run_vinci("verify", "--provenance", statement, multiarch.spec.parent, env=env)
    assert check.returncode == 0
    # One platform of the spec, with a label: the statement says so, and rebuilds that image.
    one = tmp_path / "one.oci"
    run = run_vinci(
        "build",
        multiarch.spec,
        "-o",
        f"oci:{one}",
        "--platform",
        "linux/arm64",
        "--label",
        "team=edge",
        "--provenance",
        env=env,
    )
    assert run.digest != multiarch.platform("arm64")["manifest_digest"]  # the label
    check = run_vinci(
        "verify",
        "--provenance",
        tmp_path / "one.oci.provenance.json",
        multiarch.spec.parent,
        env=env,
    )
    assert check.returncode == 0
    assert run.digest in check.stdout + check.stderr


def test_attach_puts_each_platform_s_sboms_on_its_manifest_and_the_provenance_on_the_index(
    multiarch: Built, registry: RegistryServer
) -> None:
    repo = f"{registry.host}/multi/attested"
    pushed = run_vinci(
        "push",
        multiarch.spec,
        "--image",
        f"{repo}:{TAG}",
        "--attach",
        "--sbom",
        "spdx",
        "--provenance",
        env=multiarch.env,
    )
    assert pushed.digest == multiarch.data["index_digest"]

    def referrers(digest: str) -> list[str]:
        listed = run_vinci("referrers", f"{repo}@{digest}", "--json", env=multiarch.env)
        return sorted(r["artifactType"] for r in json.loads(listed.stdout)["referrers"])

    for arch in ("amd64", "arm64"):
        assert referrers(multiarch.platform(arch)["manifest_digest"]) == ["application/spdx+json"]
    assert referrers(multiarch.data["index_digest"]) == ["application/vnd.in-toto+json"]
