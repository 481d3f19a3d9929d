"""docs/tutorial.md, step by step, on examples/app: a rootfs tarball made from Debian's
busybox-static (no mirror needed), an account, build and load, run under podman as the
account, change, rebuild (only the app's layer), diff, push, and inspect what was pushed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import EXAMPLES, VinciRunner
from support.registry import RegistryServer
from support.verify import require_tool
from test_load import _podman, _podman_env

# Starts the server as the image's user, asks /health until it answers, then says who it is.
PROBE = (
    "httpd -p 8080 -h /srv/app/www; "
    "for i in $(seq 100); do wget -qO- http://127.0.0.1:8080/cgi-bin/health && break; "
    "sleep 0.1; done; id -un"
)


def _app(tmp_path: Path, busybox: Path) -> Path:
    """A copy of examples/app with its rootfs.tar.xz made, as the tutorial's first step."""
    d = tmp_path / "app"
    subprocess.run(
        ["cp", "-a", EXAMPLES / "app", d], check=True
    )  # -a: the CGI script keeps its execute bit
    subprocess.run([d / "make-rootfs.sh", busybox], check=True, capture_output=True)
    return d


def test_the_app_builds_and_shows_its_account(
    tmp_path: Path, vinci: VinciRunner, busybox_path: Path
) -> None:
    d = _app(tmp_path, busybox_path)
    env = {"VINCI_CACHE_DIR": str(tmp_path / "cache")}
    assert "ok (2 layers)" in vinci("validate", d, env=env).stdout
    vinci("build", d, "-o", f"oci:{tmp_path}/v1.oci", env=env)
    shown = vinci("inspect", f"oci:{tmp_path}/v1.oci", env=env).stdout
    assert "user           1000:1000" in shown
    passwd = vinci("inspect", f"oci:{tmp_path}/v1.oci", "--cat", "/etc/passwd", env=env).stdout
    assert passwd.endswith("app:x:1000:1000::/srv/app:/bin/sh\n")
    os_release = vinci("inspect", d, "--cat", "/etc/os-release", env=env).stdout
    assert "ID=debian" in os_release


@pytest.mark.slow
def test_the_tutorial(
    tmp_path: Path, vinci: VinciRunner, busybox_path: Path, registry: RegistryServer
) -> None:
    require_tool("podman")
    d = _app(tmp_path, busybox_path)
    env = _podman_env(tmp_path)

    # Build, load into podman, run as the account.
    vinci("build", d, "--load", "-o", f"oci:{tmp_path}/v1.oci", env=env)
    run = _podman(
        env, "run", "--rm", "--pull", "never", "--network", "none",
        "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
        "--entrypoint", "/bin/sh", "localhost:5000/tutorial/app:1", "-c", PROBE,
    )  # fmt: skip
    assert run.stdout == "ok\napp\n"

    # Change the app; the rebuild makes only its layer again.
    page = d / "www/index.html"
    page.write_text(page.read_text().replace("Hello", "Hello again"))
    rebuilt = json.loads(
        vinci("build", d, "--json", "-o", f"oci:{tmp_path}/v2.oci", env=env).stdout
    )
    assert [layer["cache_hit"] for layer in rebuilt["layers"]] == [True, False, True]

    # diff names the one file that changed.
    diff = vinci("diff", f"oci:{tmp_path}/v1.oci", f"oci:{tmp_path}/v2.oci", env=env, check=False)
    assert diff.returncode == 1  # they differ
    assert "/srv/app/www/index.html" in diff.stdout

    # Push, then look at what the registry holds.
    repo = f"{registry.host}/tutorial/app"
    pushed = vinci("push", d, "--image", repo, "--tag", "2", env=env).digest
    assert pushed == rebuilt["manifest_digest"]
    assert vinci("ls", repo, env=env).stdout.split() == ["2"]
    shown = vinci("inspect", f"{repo}:2", env=env).stdout
    assert "user           1000:1000" in shown
    _podman(env, "rmi", "--all", "--force")
    assert os.path.exists(tmp_path / "v2.oci")
