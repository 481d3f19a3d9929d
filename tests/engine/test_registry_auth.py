"""Authentication against real registries: htpasswd basic auth over TLS with a self-signed CA,
bearer tokens from a token server, docker's config.json and credential helpers, `vinci login`
and `logout`, and the rule that no secret ever reaches any output."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import REPO, Run, VinciRunner
from support.registry import RegistryServer
from support.verify import skopeo_inspect_raw

PASSWORD = "s3cret-Pa55word"
WRONG = "wrong-Pa55word"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "VINCI_CACHE_DIR": str(tmp_path / "cache"),
        "DOCKER_CONFIG": str(tmp_path / "docker"),
        **extra,
    }


def _vinci_stdin(args: list[str], stdin: str, env: dict[str, str]) -> Run:
    """`vinci ARGS` with `stdin` as its standard input (for --password-stdin)."""
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", **env}
    full.setdefault("HOME", os.environ.get("HOME", "/root"))
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        cwd=REPO,
        env=full,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def _no_secret(runs: list[Run], *secrets: str) -> None:
    """No password, no base64 of it, no token (JWTs start with eyJ) in any output."""
    forbidden = [s for s in secrets if s]
    for secret in list(forbidden):
        forbidden.append(base64.b64encode(f"testuser:{secret}".encode()).decode())
    for run in runs:
        text = run.stdout + run.stderr
        for secret in forbidden:
            assert secret not in text, f"secret leaked into output:\n{text}"
        assert "eyJ" not in text, f"a token leaked into output:\n{text}"
        assert "Traceback" not in text


def test_basic_auth_over_tls_with_custom_ca(
    hello: Path,
    tmp_path: Path,
    vinci: VinciRunner,
    registry_factory: Callable[..., RegistryServer],
) -> None:
    reg = registry_factory(auth="basic", tls=True, password=PASSWORD)
    assert reg.ca_file is not None
    env = _env(tmp_path)
    ca = ["--ca-file", str(reg.ca_file)]
    runs = []

    # Without the CA: refused, with a hint, not silently downgraded to plain HTTP.
    untrusted = vinci("push", hello, "--image", f"{reg.host}/tls/hello", env=env, check=False)
    runs.append(untrusted)
    assert untrusted.returncode == 1
    assert "TLS certificate not trusted" in untrusted.stderr and "--ca-file" in untrusted.stderr

    # Without credentials: unauthorized, naming the registry and what to do.
    anonymous = vinci("push", hello, "--image", f"{reg.host}/tls/hello", *ca, env=env, check=False)
    runs.append(anonymous)
    assert anonymous.returncode == 1
    assert f"{reg.host}: unauthorized" in anonymous.stderr
    assert f"vinci login {reg.host}" in anonymous.stderr

    login = _vinci_stdin(
        ["login", reg.host, "-u", "testuser", "--password-stdin", *ca], PASSWORD + "\n", env
    )
    runs.append(login)
    assert login.returncode == 0, login.stderr
    assert "Login succeeded" in login.stdout
    config_file = tmp_path / "docker" / "config.json"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    auths = json.loads(config_file.read_text())["auths"]
    assert base64.b64decode(auths[reg.host]["auth"]).decode() == f"testuser:{PASSWORD}"

    pushed = vinci("push", hello, "--image", f"{reg.host}/tls/hello:v1", *ca, env=env)
    runs.append(pushed)
    raw = skopeo_inspect_raw(
        reg.docker_ref("tls/hello", "v1"),
        tls_verify=True,
        creds=f"testuser:{PASSWORD}",
        cert_dir=reg.cert_dir,
    )
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == pushed.digest

    # The same through the environment (what a build's import-oci fetches use).
    again = vinci(
        "push", hello, "--image", f"{reg.host}/tls/hello:v1",
        env={**env, "VINCI_REGISTRY_CA_FILE": str(reg.ca_file)},
    )  # fmt: skip
    runs.append(again)
    assert again.digest == pushed.digest

    # --insecure-registry: HTTPS without verification (no CA given), as docker does.
    insecure = vinci(
        "push", hello, "--image", f"{reg.host}/tls/hello:v1", "--insecure-registry", reg.host,
        env=env,
    )  # fmt: skip
    runs.append(insecure)
    assert insecure.digest == pushed.digest

    logout = vinci("logout", reg.host, env=env)
    runs.append(logout)
    assert f"Removed login credentials for {reg.host}" in logout.stdout
    assert reg.host not in json.loads(config_file.read_text())["auths"]
    _no_secret(runs, PASSWORD)


def test_wrong_credentials_are_unauthorized_and_never_shown(
    hello: Path,
    tmp_path: Path,
    vinci: VinciRunner,
    registry_factory: Callable[..., RegistryServer],
) -> None:
    basic = registry_factory(auth="basic", password=PASSWORD)
    token = registry_factory(auth="token", password=PASSWORD)
    runs = []
    for reg in (basic, token):
        env = _env(tmp_path / reg.auth)
        login = _vinci_stdin(
            ["login", reg.host, "-u", "testuser", "--password-stdin"], WRONG + "\n", env
        )
        runs.append(login)
        assert login.returncode == 1
        assert login.stderr.startswith(f"vinci: {reg.host}: unauthorized")
        assert len(login.stderr.strip().splitlines()) == 1
        assert not (tmp_path / reg.auth / "docker" / "config.json").exists()

        # Wrong credentials already in config.json (as another tool may have left them).
        (tmp_path / reg.auth / "docker").mkdir(parents=True)
        (tmp_path / reg.auth / "docker" / "config.json").write_text(
            json.dumps(
                {
                    "auths": {
                        reg.host: {"auth": base64.b64encode(f"testuser:{WRONG}".encode()).decode()}
                    }
                }
            )
        )
        push = vinci("push", hello, "--image", f"{reg.host}/bad/creds", env=env, check=False)
        runs.append(push)
        assert push.returncode == 1
        assert f"{reg.host}: unauthorized" in push.stderr
        assert "testuser" in push.stderr
    _no_secret(runs, WRONG, PASSWORD)


def test_bearer_token_auth_push_and_pull(
    hello: Path,
    tmp_path: Path,
    vinci: VinciRunner,
    registry_factory: Callable[..., RegistryServer],
) -> None:
    reg = registry_factory(auth="token", password=PASSWORD)
    assert reg.token_server is not None
    env = _env(tmp_path)
    runs = [
        _vinci_stdin(
            ["login", reg.host, "--username", "testuser", "--password-stdin"], PASSWORD, env
        )
    ]
    assert runs[0].returncode == 0, runs[0].stderr
    first = vinci("push", hello, "--image", f"{reg.host}/tok/hello:v1", env=env)
    runs.append(first)
    raw = skopeo_inspect_raw(reg.docker_ref("tok/hello", "v1"), creds=f"testuser:{PASSWORD}")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == first.digest
    # Tokens were asked for the push scope, with the user's credentials.
    pushes = [
        r
        for r in reg.token_server.requests
        if "repository:tok/hello:pull,push" in r.scopes and r.status == 200
    ]
    assert pushes and all(r.account == "testuser" for r in pushes)

    # A mount from another repository needs pull on the source too: one token, both scopes.
    runs.append(vinci("push", hello, "--image", f"{reg.host}/tok/copy:v1", "--json", env=env))
    assert json.loads(runs[-1].stdout)["push"]["blobs"]["mounted"] == 3
    assert any(
        "repository:tok/copy:pull,push" in r.scopes and "repository:tok/hello:pull" in r.scopes
        for r in reg.token_server.requests
    )

    # resolve (a pull) works with the stored credentials too.
    runs.append(vinci("resolve", f"{reg.host}/tok/hello:v1", env=env))
    assert runs[-1].stdout.split()[0] == f"{reg.host}/tok/hello@{first.digest}"
    _no_secret(runs, PASSWORD)


def test_anonymous_token_push_is_refused_clearly(
    hello: Path,
    tmp_path: Path,
    vinci: VinciRunner,
    registry_factory: Callable[..., RegistryServer],
) -> None:
    reg = registry_factory(auth="token", password=PASSWORD)
    run = vinci("push", hello, "--image", f"{reg.host}/anon/x", env=_env(tmp_path), check=False)
    assert run.returncode == 1
    assert f"{reg.host}: unauthorized" in run.stderr
    assert f"vinci login {reg.host}" in run.stderr
    _no_secret([run], PASSWORD)


def _helper(bin_dir: Path, store_file: Path) -> None:
    """A real docker-credential-* executable keeping one credential in a file."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "docker-credential-vtest"
    script.write_text(
        "#!/bin/sh\n"
        f'STORE="{store_file}"\n'
        'case "$1" in\n'
        '  store) cat > "$STORE" ;;\n'
        '  get) read server; if [ -f "$STORE" ]; then cat "$STORE"; '
        'else echo "credentials not found in native keychain"; exit 1; fi ;;\n'
        '  erase) rm -f "$STORE" ;;\n'
        '  *) echo "unknown action $1" >&2; exit 2 ;;\n'
        "esac\n"
    )
    script.chmod(0o755)


def test_credential_helpers_store_get_erase(
    hello: Path,
    tmp_path: Path,
    vinci: VinciRunner,
    registry_factory: Callable[..., RegistryServer],
) -> None:
    reg = registry_factory(auth="basic", password=PASSWORD)
    bin_dir, store_file = tmp_path / "bin", tmp_path / "helper-store.json"
    _helper(bin_dir, store_file)
    env = _env(tmp_path, PATH=f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(json.dumps({"credsStore": "vtest", "other": {"kept": 1}}))

    runs = [_vinci_stdin(["login", reg.host, "-u", "testuser", "--password-stdin"], PASSWORD, env)]
    assert runs[0].returncode == 0, runs[0].stderr
    assert "docker-credential-vtest" in runs[0].stdout
    saved = json.loads(store_file.read_text())
    assert saved == {"ServerURL": reg.host, "Username": "testuser", "Secret": PASSWORD}
    config = json.loads((docker / "config.json").read_text())
    assert config["auths"] == {reg.host: {}}  # no secret in the file itself
    assert config["other"] == {"kept": 1}

    runs.append(vinci("push", hello, "--image", f"{reg.host}/helper/hello", env=env))
    runs.append(vinci("logout", reg.host, env=env))
    assert not store_file.exists()

    # credHelpers for this registry wins over credsStore; a helper that fails says so.
    (docker / "config.json").write_text(
        json.dumps({"credsStore": "vtest", "credHelpers": {reg.host: "missing"}})
    )
    runs.append(vinci("push", hello, "--image", f"{reg.host}/helper/x", env=env, check=False))
    assert runs[-1].returncode == 1
    assert "docker-credential-missing" in runs[-1].stderr
    _no_secret(runs, PASSWORD)
