"""`vinci lock [SPEC]`: build the spec (through the cache, using the current lock's blobs where
the cache holds them) and write vinci.lock beside it, or leave it byte for byte as it is when
nothing changed. `--check` writes nothing and fails, with the difference, if the lock is stale;
`--no-lock` relocks with what this build's codec makes (to move a lock to another codec).
The format is in docs/lock.md.
"""

from __future__ import annotations

import argparse
import json
import sys

from engine.cli.args import add_build_args, build_options
from engine.spec.locate import find_spec


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", help="spec file or its directory (default: ./vinci.yaml)")
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with the difference if the lock is not up to date",
    )
    # --no-lock (from the build options): relock with what this build's codec makes.
    p.add_argument("--json", action="store_true", help="print the lock's path and changes as JSON")
    add_build_args(p)
    from engine.cli.registryargs import add_registry_arguments

    add_registry_arguments(p)


def run(args: argparse.Namespace) -> int:
    from engine.builder.lock import (
        Lock,
        check_locked,
        differences,
        lock_path,
        read_lock,
        remember_built,
        write_lock,
    )
    from engine.builder.run import build_spec
    from engine.cache.store import BlobStore
    from engine.cli.registryargs import apply_registry_options
    from engine.spec.load import load_spec

    apply_registry_options(args)
    spec = load_spec(find_spec(args.spec))
    path = lock_path(spec)
    old = read_lock(path)
    options = build_options(args)
    store = BlobStore(options.cache_dir)
    result = build_spec(spec, options)
    remember_built(store, result)
    if args.check:
        if old is None:
            from engine.errors import LockError

            raise LockError(f"--check: no {path}; `vinci lock` writes it")
        check_locked(path, old, result, store)
        print(f"{path}: up to date")
        return 0
    new = Lock.from_result(result, previous=old, store=store)
    # With --no-lock the old blobs were left aside on purpose: say what changed, not why.
    why_store = None if args.no_lock else store
    changes = differences(old, new, why_store) if old is not None else ["new lock"]
    written = write_lock(path, new)
    if args.json:
        data = {
            "lock": str(path),
            "written": written,
            "changes": changes if written else [],
            "manifest_digest": new.manifest,
        }
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    if not written:
        print(f"{path}: up to date ({len(new.layers)} layers, {new.manifest})")
        return 0
    for line in changes:
        print(f"  {line}", file=sys.stderr)
    print(f"{path}: written ({len(new.layers)} layers, {new.manifest})")
    return 0
