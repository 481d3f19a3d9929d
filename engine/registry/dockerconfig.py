"""Registry credentials as docker keeps them: `config.json` and `docker-credential-*` helpers.

Lookup order for a registry, as docker does it:

1. `credHelpers[<registry>]`: run `docker-credential-<name> get`;
2. `credsStore`: the default helper, same protocol;
3. `auths[<registry>]`: `auth` (base64 "user:password") or `username`/`password`.

The file lives in `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. `vinci login`
writes there the way `docker login` does: into the credsStore helper when one is configured,
else base64 into `auths`, keeping every other key of the file as it was.

Secrets are held in `Credentials` whose repr hides them; no message here ever includes one.
Helper failures surface the helper's own stderr (the one clue a user has), with any secret we
know scrubbed out of it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import RegistryError
from engine.registry.hosts import credential_key, normalize_key

HELPER_PREFIX = "docker-credential-"
HELPER_TIMEOUT = 30.0
_NOT_FOUND = "credentials not found"


@dataclass(frozen=True)
class Credentials:
    """A username and its secret. `repr` never shows the secret."""

    username: str
    secret: str = field(repr=False)
    origin: str = ""  # where they came from, for messages: "config.json", "helper pass"

    def basic(self) -> str:
        raw = f"{self.username}:{self.secret}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def config_dir(override: Path | None = None) -> Path:
    if override is not None:
        return override
    env = os.environ.get("DOCKER_CONFIG", "").strip()
    if env:
        return Path(env)
    return Path.home() / ".docker"


def config_path(override: Path | None = None) -> Path:
    return config_dir(override) / "config.json"


def load_config(override: Path | None = None) -> dict[str, Any]:
    path = config_path(override)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        # Not naming the content: a half-readable file may hold secrets.
        raise RegistryError(f"cannot read docker config {path}: {_reason(e)}") from None
    if not isinstance(data, dict):
        raise RegistryError(f"cannot read docker config {path}: not a JSON object")
    return data


def _reason(e: Exception) -> str:
    if isinstance(e, OSError):
        return e.strerror or type(e).__name__
    return "invalid JSON"


def _auth_entry(auths: dict[str, Any], registry: str) -> tuple[str, dict[str, Any]] | None:
    want = normalize_key(credential_key(registry))
    for key, entry in auths.items():
        if isinstance(entry, dict) and normalize_key(key) == want:
            return key, entry
    return None


def lookup(registry: str, override: Path | None = None) -> Credentials | None:
    """The credentials docker would use for `registry`, or None (anonymous)."""
    config = load_config(override)
    key = credential_key(registry)
    helpers = config.get("credHelpers") or {}
    if isinstance(helpers, dict):
        for name, helper in helpers.items():
            if normalize_key(name) == normalize_key(key) and isinstance(helper, str) and helper:
                return helper_get(helper, key)
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        found = helper_get(store, key)
        if found is not None:
            return found
    auths = config.get("auths") or {}
    if not isinstance(auths, dict):
        return None
    hit = _auth_entry(auths, registry)
    if hit is None:
        return None
    entry_key, entry = hit
    where = f"{config_path(override)} auths[{entry_key!r}]"
    if entry.get("identitytoken"):
        raise RegistryError(
            f"{where} holds an identity token (OAuth refresh token); vinci supports only "
            "username/password credentials: run `vinci login` for this registry"
        )
    if entry.get("auth"):
        try:
            raw = base64.b64decode(str(entry["auth"]), validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise RegistryError(f"{where}: `auth` is not base64 of user:password") from None
        user, sep, secret = raw.partition(":")
        if not sep:
            raise RegistryError(f"{where}: `auth` is not base64 of user:password")
        return Credentials(user, secret, "config.json")
    if entry.get("username") and entry.get("password"):
        return Credentials(str(entry["username"]), str(entry["password"]), "config.json")
    return None


def _helper_binary(helper: str) -> str:
    path = shutil.which(HELPER_PREFIX + helper)
    if path is None:
        raise RegistryError(
            f"docker config names credential helper {helper!r}, but {HELPER_PREFIX}{helper} "
            "is not on PATH"
        )
    return path


def _run_helper(helper: str, action: str, stdin: str, hide: tuple[str, ...] = ()) -> str:
    binary = _helper_binary(helper)
    try:
        proc = subprocess.run(
            [binary, action],
            input=stdin.encode(),
            capture_output=True,
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RegistryError(
            f"credential helper {HELPER_PREFIX}{helper} {action} did not answer in "
            f"{HELPER_TIMEOUT:.0f}s"
        ) from None
    except OSError as e:
        raise RegistryError(f"cannot run {binary}: {e.strerror}") from None
    out = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        # Helpers print their error on stdout (the docker protocol) or stderr.
        message = (proc.stderr.decode("utf-8", "replace").strip() or out.strip())[:300]
        for secret in hide:
            if secret:
                message = message.replace(secret, "***")
        raise _HelperFailed(message or f"exit status {proc.returncode}")
    return out


class _HelperFailed(Exception):
    pass


def helper_get(helper: str, server: str) -> Credentials | None:
    try:
        out = _run_helper(helper, "get", server)
    except _HelperFailed as e:
        if _NOT_FOUND in str(e).lower():
            return None
        raise RegistryError(
            f"credential helper {HELPER_PREFIX}{helper} failed for {server}: {e}"
        ) from None
    try:
        data = json.loads(out)
        user, secret = str(data["Username"]), str(data["Secret"])
    except (ValueError, KeyError, TypeError):
        raise RegistryError(
            f"credential helper {HELPER_PREFIX}{helper} gave an unreadable answer for {server}"
        ) from None
    if user == "<token>":
        raise RegistryError(
            f"credential helper {HELPER_PREFIX}{helper} holds an identity token for {server}; "
            "vinci supports only username/password credentials"
        )
    if not user and not secret:
        return None
    return Credentials(user, secret, f"helper {helper}")


def store(registry: str, credentials: Credentials, override: Path | None = None) -> str:
    """Save credentials as `docker login` would; return where they went (for the message)."""
    config = load_config(override)
    key = credential_key(registry)
    helper = _helper_for(config, key)
    if helper is not None:
        payload = json.dumps(
            {"ServerURL": key, "Username": credentials.username, "Secret": credentials.secret}
        )
        try:
            _run_helper(helper, "store", payload, (credentials.secret,))
        except _HelperFailed as e:
            raise RegistryError(
                f"credential helper {HELPER_PREFIX}{helper} could not store credentials for "
                f"{key}: {e}"
            ) from None
        # docker keeps an empty entry so `docker logout` and listings know the registry.
        auths = _auths(config)
        auths.pop(_existing_key(auths, registry) or key, None)
        auths[key] = {}
        _write(config, override)
        return f"credential helper {HELPER_PREFIX}{helper}"
    auths = _auths(config)
    existing = _existing_key(auths, registry)
    entry = dict(auths.pop(existing)) if existing else {}
    for stale in ("username", "password", "identitytoken"):
        entry.pop(stale, None)
    raw = f"{credentials.username}:{credentials.secret}".encode()
    entry["auth"] = base64.b64encode(raw).decode("ascii")
    auths[key] = entry
    _write(config, override)
    return str(config_path(override))


def erase(registry: str, override: Path | None = None) -> bool:
    """Forget the credentials for `registry`; True if there were any."""
    config = load_config(override)
    key = credential_key(registry)
    removed = False
    helper = _helper_for(config, key)
    if helper is not None:
        try:
            _run_helper(helper, "erase", key)
            removed = True
        except _HelperFailed as e:
            if _NOT_FOUND not in str(e).lower():
                raise RegistryError(
                    f"credential helper {HELPER_PREFIX}{helper} could not erase {key}: {e}"
                ) from None
    auths = _auths(config)
    existing = _existing_key(auths, registry)
    if existing is not None:
        entry = auths.pop(existing)
        removed = removed or bool(entry)
        _write(config, override)
    return removed


def _helper_for(config: dict[str, Any], key: str) -> str | None:
    helpers = config.get("credHelpers") or {}
    if isinstance(helpers, dict):
        for name, helper in helpers.items():
            if normalize_key(name) == normalize_key(key) and isinstance(helper, str) and helper:
                return helper
    store_name = config.get("credsStore")
    return store_name if isinstance(store_name, str) and store_name else None


def _auths(config: dict[str, Any]) -> dict[str, Any]:
    auths = config.get("auths")
    if not isinstance(auths, dict):
        auths = {}
        config["auths"] = auths
    return auths


def _existing_key(auths: dict[str, Any], registry: str) -> str | None:
    hit = _auth_entry(auths, registry)
    return hit[0] if hit else None


def _write(config: dict[str, Any], override: Path | None) -> None:
    path = config_path(override)
    data = (json.dumps(config, indent="\t") + "\n").encode()
    # A config.json that is a symlink (dotfiles kept in a repository, a mounted secret) is
    # written through, as docker does: the new file replaces the link's target, the link stays.
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    tmp = target.parent / f".config.json.{secrets.token_hex(6)}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The file holds secrets (base64 is not encryption): owner-only from its first byte,
        # like docker, and renamed into place so a reader never sees half of it.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as e:
        raise RegistryError(f"cannot write docker config {path}: {e.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
