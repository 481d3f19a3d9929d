"""SBOMs, provenance and referrers (docs/supply-chain.md), through the command line.

One module-scoped pair of builds: a spec importing a Debian-like base (a rootfs tarball with
/var/lib/dpkg/status, built into a layout first) plus files of its own, built in two
directories with `--sbom both --provenance`. The SBOMs are checked by independent libraries
(the SPDX project's spdx-python-model for SPDX 3.0.1, cyclonedx-python-lib's JSON schema for
CycloneDX 1.6) and against the image's files as `vinci export` writes them, read with
Python's tarfile; the referrers pushed to Debian's docker-registry (no referrers API: the
tag-schema fallback) are read back by skopeo.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from conftest import Run, run_vinci
from support.verify import require_tool, skopeo_inspect_raw

STATUS = b"""Package: base-files
Status: install ok installed
Priority: required
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy.

Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
"""

BASE_SPEC = """spec-version: v1
layers:
  - tar: ./rootfs.tar
"""

SPEC = """spec-version: v1
image: registry.example/supply/app:1
sbom: [spdx]
config:
  entrypoint: [/app]
layers:
  - import: ./base.oci
  - file: {path: /app, source: ./app.sh}
  - directory: {path: /srv, source: ./site}
  - file:
      path: /message
      contents: "hi\\n"
"""


def _rootfs(path: Path) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in [
            ("etc/debian_version", b"12.5\n"),
            ("var/lib/dpkg/status", STATUS),
            ("usr/bin/tool", b"#!/bin/sh\n"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))


def _tree(root: Path, cache: Path) -> None:
    root.mkdir(parents=True)
    _rootfs(root / "rootfs.tar")
    (root / "base.yaml").write_text(BASE_SPEC)
    run_vinci("build", root / "base.yaml", "-o", f"oci:{root / 'base.oci'}", "-q", env=_env(cache))
    (root / "app.sh").write_text("#!/bin/sh\necho app\n")
    (root / "app.sh").chmod(0o755)
    (root / "site").mkdir()
    (root / "site" / "index.html").write_text("<p>hello</p>\n")
    (root / "vinci.yaml").write_text(SPEC)


def _env(cache: Path) -> dict[str, str]:
    return {"VINCI_CACHE_DIR": str(cache), "SOURCE_DATE_EPOCH": "1700000000"}


class Built:
    def __init__(self, root: Path, cache: Path, run: Run) -> None:
        self.root = root
        self.cache = cache
        self.run = run
        self.digest = run.digest
        self.spdx = (root / "vinci.oci.spdx.json").read_bytes()
        self.cdx = (root / "vinci.oci.cdx.json").read_bytes()
        self.provenance = root / "vinci.oci.provenance.json"


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Built, Built]:
    out = []
    for name in ("one", "elsewhere/deeper/two"):
        base = tmp_path_factory.mktemp("supply")
        root, cache = base / name, base / "cache"
        _tree(root, cache)
        run = run_vinci("build", root, "--sbom", "both", "--provenance", "-q", env=_env(cache))
        out.append(Built(root, cache, run))
    return out[0], out[1]


def _image_files(built: Built) -> dict[str, str]:
    """Path -> sha256 of every regular file of the image, read from `vinci export`'s tar."""
    rootfs = built.root / "rootfs-export.tar"
    run_vinci("export", built.root / "vinci.oci", "-o", rootfs, env=_env(built.cache))
    files = {}
    with tarfile.open(rootfs) as tar:
        for member in tar:
            if member.isfile():
                data = tar.extractfile(member)
                assert data is not None
                files["/" + member.name.lstrip("./")] = hashlib.sha256(data.read()).hexdigest()
    rootfs.unlink()
    return files


def test_sboms_are_byte_identical_across_checkout_directories(
    builds: tuple[Built, Built],
) -> None:
    one, two = builds
    assert one.digest == two.digest
    assert one.spdx == two.spdx
    assert one.cdx == two.cdx
    assert one.provenance.read_bytes() == two.provenance.read_bytes()
    for data in (one.spdx, one.cdx, one.provenance.read_bytes()):
        assert str(one.root).encode() not in data
        assert str(two.root).encode() not in data


def test_spdx_validates_and_lists_every_file(builds: tuple[Built, Built]) -> None:
    from spdx_python_model import v3_0_1 as spdx

    one = builds[0]
    objects = spdx.SHACLObjectSet()
    spdx.JSONLDDeserializer().deserialize_data(json.loads(one.spdx), objects)
    assert objects.link() == set()  # every reference resolves
    spdx.JSONLDSerializer().write(objects, io.BytesIO())  # required properties present
    files = {f.name: f.verifiedUsing[0].hashValue for f in objects.foreach_type(spdx.software_File)}
    assert files == _image_files(one)
    packages = {
        p.name: p.software_packageVersion for p in objects.foreach_type(spdx.software_Package)
    }
    assert packages["libc6"] == "2.36-9+deb12u4"
    assert packages["base-files"] == "12.4+deb12u5"
    assert "gone" not in packages  # not installed
    assert packages["base.oci"].startswith("sha256:")  # the imported base, by digest
    assert packages["registry.example/supply/app"] == one.digest


def _props(component: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in component.get("properties", [])}


def test_cyclonedx_validates_and_says_where_each_file_came_from(
    builds: tuple[Built, Built],
) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    one = builds[0]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(one.cdx.decode()) is None
    bom = json.loads(one.cdx)
    files = {c["name"]: c for c in bom["components"] if c["type"] == "file"}
    assert {n: c["hashes"][0]["content"] for n, c in files.items()} == _image_files(one)
    app = _props(files["/app"])
    assert app["vinci:source"] == "app.sh"
    assert app["vinci:spec-node"] == "layers[1].file"
    assert app["vinci:spec-position"] == "vinci.yaml:8"
    assert app["vinci:mode"] == "0755"
    assert app["vinci:size"] == str(len("#!/bin/sh\necho app\n"))
    assert _props(files["/srv/index.html"])["vinci:source"] == "site/index.html"
    assert "vinci:source" not in _props(files["/message"])
    tool = _props(files["/usr/bin/tool"])
    assert tool["vinci:spec-node"] == "layers[0].import"
    assert tool["vinci:layer"].startswith("sha256:")
    libs = {c["name"]: c for c in bom["components"] if c["type"] == "library"}
    assert libs["libc6"]["purl"] == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64"
    base = [c for c in bom["components"] if c["type"] == "container"]
    assert [b["name"] for b in base] == ["base.oci"]
    assert bom["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"  # SOURCE_DATE_EPOCH
    assert bom["metadata"]["component"]["version"] == one.digest


def test_provenance_rebuilds_to_the_same_digest_and_a_tampered_one_fails(
    builds: tuple[Built, Built], tmp_path: Path
) -> None:
    one = builds[0]
    statement = json.loads(one.provenance.read_text())
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"][0]["digest"]["sha256"] == one.digest.removeprefix("sha256:")
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert {d["uri"] for d in deps} >= {"file:app.sh", "file:site", "file:base.oci"}
    ok = run_vinci("verify", "--provenance", one.provenance, one.root, env=_env(one.cache))
    assert one.digest in ok.stdout

    tampered = tmp_path / "tampered.json"
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    tampered.write_text(json.dumps(statement))
    bad = run_vinci("verify", "--provenance", tampered, one.root, check=False)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1] == (
        f"vinci: provenance {tampered}: rebuilt {one.digest}, but the statement's subject is "
        f"sha256:{'0' * 64}"
    )


def test_attached_referrers_use_the_tag_fallback_and_skopeo_sees_them(
    builds: tuple[Built, Built], registry: Any
) -> None:
    require_tool("skopeo")
    one = builds[0]
    repo = f"{registry.host}/supply/app"
    pushed = run_vinci(
        "push",
        one.root,
        "--image",
        repo,
        "--tag",
        "1",
        "--attach",
        "--sbom",
        "both",
        "--provenance",
        "--json",
        env=_env(one.cache),
    )
    data = json.loads(pushed.stdout)
    assert data["push"]["digest"] == one.digest
    tag = "sha256-" + one.digest.removeprefix("sha256:")
    assert {r["indexed"] for r in data["referrers"]} == {tag}  # distribution 2.8: no API
    # Pushing again (from `build --push` this time) adds nothing: the fallback index is
    # read, extended only by what it lacks, and written back.
    again = run_vinci("build", one.root, "--push", "--image", repo, "--attach", env=_env(one.cache))
    # The spec's `sbom: [spdx]` chooses the formats when --sbom does not: SPDX, provenance.
    assert again.stderr.count(f"(tag {tag})") == 2

    listed = json.loads(run_vinci("referrers", f"{repo}:1", "--json", env=_env(one.cache)).stdout)
    types = sorted(r["artifactType"] for r in listed["referrers"])
    assert types == [
        "application/spdx+json",
        "application/vnd.cyclonedx+json",
        "application/vnd.in-toto+json",
    ]
    assert listed["source"] == f"tag {tag}"

    index = json.loads(skopeo_inspect_raw(f"docker://{repo}:{tag}"))
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert sorted(m["digest"] for m in index["manifests"]) == sorted(
        r["digest"] for r in listed["referrers"]
    )
    for entry in index["manifests"]:
        artifact = json.loads(skopeo_inspect_raw(f"docker://{repo}@{entry['digest']}"))
        assert artifact["subject"]["digest"] == one.digest
        assert artifact["artifactType"] == entry["artifactType"]
        assert artifact["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    sbom = next(m for m in index["manifests"] if m["artifactType"] == "application/spdx+json")
    layer = json.loads(skopeo_inspect_raw(f"docker://{repo}@{sbom['digest']}"))["layers"][0]
    assert layer["digest"] == "sha256:" + hashlib.sha256(one.spdx).hexdigest()


def test_spec_key_and_bad_sbom_format(tmp_path: Path) -> None:
    spec = tmp_path / "vinci.yaml"
    spec.write_text(
        "spec-version: v1\nsbom: [spdx, swid]\nlayers:\n  - file: {path: /a, contents: a}\n"
    )
    bad = run_vinci("validate", spec, check=False)
    assert bad.returncode == 2
    assert "vinci.yaml:2:14: sbom[1]: 'swid' is not an SBOM format (spdx, cyclonedx)" in bad.stderr
    spec.write_text(
        "spec-version: v1\nsbom: [cyclonedx]\nlayers:\n  - file: {path: /a, contents: a}\n"
    )
    env = {"VINCI_CACHE_DIR": str(tmp_path / "c")}
    streamed = run_vinci("build", spec, "-o", "oci-archive:-", env=env, check=False)
    assert streamed.returncode == 2 and streamed.stdout == ""  # refused before building
    assert "say where with --sbom-out" in streamed.stderr
    first = run_vinci("build", spec, "-q", env=env)
    cdx = tmp_path / "vinci.oci.cdx.json"
    made = cdx.read_bytes()
    assert not (tmp_path / "vinci.oci.spdx.json").exists()
    # The up-to-date check answers a rebuild only while the SBOM beside the image is there.
    cdx.unlink()
    assert run_vinci("build", spec, "-q", env=env).digest == first.digest
    assert cdx.read_bytes() == made
