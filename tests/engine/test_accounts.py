"""`accounts:` users and groups merged with the base's /etc/passwd and /etc/group into one
layer on top; `run-as` sets the config's user; a clash with a base account is a spec error
naming both; podman runs the image as the account."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import VinciRunner
from support.verify import podman_run

BASE_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n"
BASE_GROUP = "root:x:0:\nnogroup:x:65534:\n"


def _env(tmp_path: Path) -> dict[str, str]:
    return {"VINCI_CACHE_DIR": str(tmp_path / "cache")}


def _base(d: Path, busybox: Path, passwd: str = BASE_PASSWD) -> None:
    """A rootfs tarball with busybox and the base's account files."""
    root = d / "root"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copyfile(busybox, root / "bin/busybox")
    (root / "bin/busybox").chmod(0o755)
    (root / "bin/sh").symlink_to("busybox")
    (root / "etc/passwd").write_text(passwd)
    (root / "etc/group").write_text(BASE_GROUP)
    subprocess.run(["tar", "-C", root, "-czf", d / "rootfs.tar.gz", "."], check=True)
    shutil.rmtree(root)


def _spec(d: Path, accounts: str, config: str = "  entrypoint: [/bin/sh, -c]\n") -> Path:
    spec = d / "vinci.yaml"
    spec.write_text(
        f"spec-version: v1\nconfig:\n{config}accounts:\n{accounts}"
        "layers:\n  - tar: ./rootfs.tar.gz\n"
    )
    return spec


APP = (
    "  groups:\n"
    "    - {groupname: app, gid: 1000}\n"
    "  users:\n"
    "    - {username: app, uid: 1000, gid: 1000, homedir: /srv}\n"
    "  run-as: app\n"
)


def _top_files(layout: Path) -> dict[str, str]:
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].removeprefix("sha256:")
    manifest = json.loads((layout / "blobs/sha256" / manifest_digest).read_text())
    top = manifest["layers"][-1]["digest"].removeprefix("sha256:")
    with tarfile.open(layout / "blobs/sha256" / top) as tar:
        return {
            m.name: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in tar.getmembers()
        }


def test_accounts_merge_into_the_base_and_run_as_sets_the_user(
    vinci: VinciRunner, tmp_path: Path, busybox_path: Path
) -> None:
    d = tmp_path / "spec"
    d.mkdir()
    _base(d, busybox_path)
    _spec(d, APP)
    first = json.loads(
        vinci("build", d, "--json", "-o", f"oci:{d}/out.oci", env=_env(tmp_path)).stdout
    )
    files = _top_files(d / "out.oci")
    assert files == {
        "etc/group": BASE_GROUP + "app:x:1000:\n",
        "etc/passwd": BASE_PASSWD + "app:x:1000:1000::/srv:/bin/sh\n",
    }
    assert [layer["label"] for layer in first["layers"]] == ["layers[0].tar", "accounts"]
    config = json.loads(
        (d / "out.oci/blobs/sha256" / first["config_digest"].removeprefix("sha256:")).read_text()
    )
    assert config["config"]["User"] == "1000:1000"
    assert config["history"][-1]["created_by"] == "vinci: accounts"
    again = json.loads(vinci("build", d, "--json", env=_env(tmp_path)).stdout)
    assert again["manifest_digest"] == first["manifest_digest"]
    assert again["layers"][-1]["cache_hit"] is True


def test_the_same_account_in_the_base_is_replaced_not_doubled(
    vinci: VinciRunner, tmp_path: Path, busybox_path: Path
) -> None:
    d = tmp_path / "spec"
    d.mkdir()
    _base(d, busybox_path, BASE_PASSWD + "app:x:1000:1000:old:/home/app:/bin/false\n")
    _spec(d, APP)
    vinci("build", d, "-o", f"oci:{d}/out.oci", env=_env(tmp_path))
    assert _top_files(d / "out.oci")["etc/passwd"] == (
        BASE_PASSWD + "app:x:1000:1000::/srv:/bin/sh\n"
    )


def test_a_clash_with_a_base_account_names_both(
    vinci: VinciRunner, tmp_path: Path, busybox_path: Path
) -> None:
    d = tmp_path / "spec"
    d.mkdir()
    _base(d, busybox_path, BASE_PASSWD + "app:x:999:999::/home/app:/bin/sh\n")
    _spec(d, APP)
    run = vinci("build", d, env=_env(tmp_path), check=False)
    assert run.returncode == 2
    assert (
        "vinci.yaml:8:7: accounts.users[0]: user 'app' (uid 1000) conflicts with "
        "'app:x:999:999::/home/app:/bin/sh' in /etc/passwd of layers[0].tar"
    ) in run.stderr
    # An id taken by another name is the same mistake.
    _spec(d, "  users:\n    - {username: web, uid: 65534}\n")
    run = vinci("build", d, env=_env(tmp_path), check=False)
    assert run.returncode == 2
    assert "user 'web' (uid 65534) conflicts with 'nobody:x:65534:" in run.stderr


def test_spec_errors(vinci: VinciRunner, tmp_path: Path) -> None:
    d = tmp_path / "spec"
    d.mkdir()
    (d / "rootfs.tar.gz").write_bytes(b"")
    spec = _spec(
        d,
        "  users:\n"
        "    - {username: app, uid: 1000}\n"
        "    - {username: web, uid: 1000}\n"
        "  run-as: nobody-here\n",
        config="  user: '1000'\n",
    )
    run = vinci("validate", spec, check=False)
    assert run.returncode == 2
    assert (
        "vinci.yaml:7:28: accounts.users[1].uid: 1000 is already taken by accounts.users[0]"
        in run.stderr
    )
    assert (
        "vinci.yaml:8:11: accounts.run-as: 'nobody-here' is not one of accounts.users "
        "('app') nor a uid"
    ) in run.stderr


def test_run_as_and_config_user_exclude_each_other(vinci: VinciRunner, tmp_path: Path) -> None:
    d = tmp_path / "spec"
    d.mkdir()
    subprocess.run(["tar", "-czf", d / "rootfs.tar.gz", "-T", "/dev/null"], check=True)
    _spec(d, APP, config="  user: root\n")
    run = vinci("validate", d, check=False)
    assert run.returncode == 2
    assert (
        "vinci.yaml:3:3: config.user: accounts.run-as already says who runs the image" in run.stderr
    )


@pytest.mark.slow
def test_podman_runs_the_image_as_the_account(
    vinci: VinciRunner, tmp_path: Path, busybox_path: Path
) -> None:
    d = tmp_path / "spec"
    d.mkdir()
    _base(d, busybox_path)
    _spec(d, APP, config="  entrypoint: [/bin/busybox, id]\n  cmd: [-un]\n")
    vinci("build", d, "-o", f"oci:{d}/out.oci", env=_env(tmp_path))
    proc = podman_run(f"oci:{d}/out.oci:latest", workdir=tmp_path / "podman")
    assert proc.stdout.strip() == "app"
