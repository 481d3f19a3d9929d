"""`vinci login REGISTRY`: check credentials against the registry and save them where docker
keeps them (its credsStore helper if configured, else base64 in config.json), so docker,
podman's docker-compatible lookup and vinci all use the same file."""

from __future__ import annotations

import argparse
import getpass
import sys

from engine.cli.registryargs import add_registry_arguments, apply_registry_options
from engine.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("registry", metavar="REGISTRY", help="registry host, e.g. ghcr.io")
    p.add_argument("--username", "-u", metavar="USER")
    p.add_argument("--password", "-p", metavar="PASSWORD", help="insecure: prefer --password-stdin")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add_registry_arguments(p)


def _registry(text: str) -> str:
    from engine.registry.hosts import normalize_key

    host = normalize_key(text)
    if not host or "/" in host or " " in host:
        raise UsageError(f"{text!r} is not a registry host")
    return host


def run(args: argparse.Namespace) -> int:
    from engine.registry import dockerconfig
    from engine.registry.client import RegistryClient

    registry = _registry(args.registry)
    if args.password is not None and args.password_stdin:
        raise UsageError("--password and --password-stdin are exclusive")
    username = args.username
    if username is None:
        if args.password_stdin or not sys.stdin.isatty():
            raise UsageError("--username is required when the password comes from stdin")
        username = input("Username: ").strip()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif args.password is not None:
        print("vinci: --password on the command line is visible to other users", file=sys.stderr)
        password = args.password
    else:
        if not sys.stdin.isatty():
            raise UsageError("no password: pass --password-stdin")
        password = getpass.getpass("Password: ")
    if not username or not password:
        raise UsageError("username and password must not be empty")
    credentials = dockerconfig.Credentials(username, password, "login")
    options = apply_registry_options(args)
    with RegistryClient(registry, options, credentials) as client:
        client.check_login()
    where = dockerconfig.store(registry, credentials, options.docker_config)
    print(f"Login succeeded: {registry} (credentials saved in {where})")
    return 0
