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

from engine.cli import _add_build_args, _codec, _created, _store, find_spec


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", help="spec file or its directory (default: ./vinci.yaml)")
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with the difference if the lock is not up to date",
    )
    # --no-lock (from the build options): relock with what this build's codec makes.
    p.add_argument("--json", action="store_true", help="print the lock's path and changes as JSON")
    _add_build_args(p)
    from engine.cli_registry import add_registry_arguments

    add_registry_arguments(p)


def run(args: argparse.Namespace) -> int:
    from engine.build import Builder
    from engine.cli_registry import apply_registry_options
    from engine.lock import (
        Lock,
        check_locked,
        differences,
        lock_path,
        read_lock,
        remember_built,
        write_lock,
    )
    from engine.spec import load_spec

    apply_registry_options(args)
    spec = load_spec(find_spec(args.spec))
    path = lock_path(spec)
    old = read_lock(path)
    builder = Builder(_store(args), _codec(args), args.jobs, lock=None if args.no_lock else old)
    result = builder.build(spec, created=_created(args))
    remember_built(builder.store, result)
    if args.check:
        if old is None:
            from engine.lock import LockError

            raise LockError(f"--check: no {path}; `vinci lock` writes it")
        check_locked(path, old, result, builder.store)
        print(f"{path}: up to date")
        return 0
    new = Lock.from_result(result, previous=old, store=builder.store)
    # With --no-lock the old blobs were left aside on purpose: say what changed, not why.
    store = None if args.no_lock else builder.store
    changes = differences(old, new, store) if old is not None else ["new lock"]
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
