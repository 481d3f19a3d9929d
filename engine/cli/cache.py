"""`vinci cache ls|verify|gc|path`: look after the layer cache; `vinci cache prune-remote
REPO --older-than 30d`: delete old entries of a fleet cache in a registry."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.cache import maintenance
from engine.cache.store import BlobStore
from engine.cli.args import add_cache_args, duration, parsed_by
from engine.cli.registryargs import add_registry_arguments, apply_registry_options
from engine.humanize import human_bytes


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    cl = sub.add_parser("ls", help="list cached blobs")
    cl.add_argument("--json", action="store_true")
    add_cache_args(cl)
    cv = sub.add_parser("verify", help="re-hash every blob; exit 1 on any corruption")
    cv.add_argument("--json", action="store_true")
    cv.add_argument(
        "--remove",
        action="store_true",
        help="remove the corrupt blobs found, and the layer records naming them (rebuilt when "
        "next needed)",
    )
    add_cache_args(cv)
    cg = sub.add_parser("gc", help="remove what recent builds do not reference")
    cg.add_argument(
        "--keep-days",
        type=parsed_by(maintenance.parse_keep_days),
        default=maintenance.DEFAULT_KEEP_DAYS,
        metavar="DAYS",
        help="keep builds (and the layers they use) this recent; default 30",
    )
    cg.add_argument(
        "--max-size",
        type=parsed_by(maintenance.parse_size),
        metavar="SIZE",
        help="size budget, e.g. 5G",
    )
    cg.add_argument(
        "--dry-run", action="store_true", help="say what would be removed, remove nothing"
    )
    cg.add_argument("--json", action="store_true")
    add_cache_args(cg)
    cp = sub.add_parser("path", help="print the cache directory")
    add_cache_args(cp)
    pr = sub.add_parser(
        "prune-remote",
        help="delete the fleet cache entries in a registry repository written longer ago "
        "than --older-than (docs/fleet-cache.md)",
    )
    pr.add_argument("repository", metavar="REPO", help="the --cache-to repository")
    pr.add_argument(
        "--older-than",
        type=duration,
        required=True,
        metavar="AGE",
        help="entries written longer ago than this go, e.g. 30d, 12h, 2w",
    )
    pr.add_argument("--dry-run", action="store_true", help="count them, delete nothing")
    pr.add_argument("--json", action="store_true")
    add_registry_arguments(pr)


def run(args: argparse.Namespace) -> int:
    if args.cache_command == "prune-remote":
        return _prune_remote(args)
    store = BlobStore(Path(args.cache_dir) if args.cache_dir else None)
    if args.cache_command == "path":
        print(store.root)
        return 0
    if args.cache_command == "ls":
        entries = maintenance.list_entries(store)
        if args.json:
            print(
                json.dumps([e.__dict__ | {"used_by": list(e.used_by)} for e in entries], indent=2)
            )
            return 0
        for e in entries:
            what = e.summary or e.media_type
            print(f"{e.digest[:19]}  {e.kind:8} {human_bytes(e.size):>10}  {what}")
        print(f"{len(entries)} blobs, {human_bytes(sum(e.size for e in entries))} in {store.root}")
        return 0
    if args.cache_command == "verify":
        report = maintenance.verify(store)
        removed = None
        if args.remove and report.corrupt:
            removed = maintenance.remove_blobs(store, (d for d, _ in report.corrupt))
        if args.json:
            out = {
                "blobs": report.blobs,
                "bytes": report.bytes,
                "problems": list(report.problems),
                "corrupt": [d for d, _ in report.corrupt],
            }
            if removed is not None:
                out["removed"] = removed.__dict__
            print(json.dumps(out))
        else:
            for problem in report.problems:
                print(problem)
            status = "ok" if report.ok else f"{len(report.problems)} problems"
            print(f"verified {report.blobs} blobs ({human_bytes(report.bytes)}): {status}")
            if removed is not None:
                print(
                    f"removed {removed.blobs} corrupt blobs ({human_bytes(removed.bytes)}) and "
                    f"{removed.records} layer records naming them"
                )
        # Exit 1 even after removing: the cache was corrupt, which a script wants to know.
        return 0 if report.ok else 1
    plan = maintenance.plan_garbage(store, args.keep_days, args.max_size)
    if args.dry_run:
        if args.json:
            print(
                json.dumps(
                    {
                        "removed_records": len(plan.records),
                        "removed_blobs": len(plan.blobs),
                        "freed_bytes": plan.freed_bytes,
                        "kept_blobs": plan.kept_blobs,
                        "kept_bytes": plan.kept_bytes,
                        "blobs": [{"digest": d, "size": n} for d, n in plan.blobs],
                        "dry_run": True,
                    }
                )
            )
            return 0
        for digest, n in plan.blobs:
            print(f"would remove {digest[:19]}  {human_bytes(n):>10}")
        print(
            f"would remove {len(plan.blobs)} blobs ({human_bytes(plan.freed_bytes)}) and "
            f"{len(plan.records)} layer records; would keep {plan.kept_blobs} blobs "
            f"({human_bytes(plan.kept_bytes)})"
        )
        return 0
    report_gc = maintenance.apply_garbage(store, plan)
    if args.json:
        print(json.dumps(report_gc.__dict__))
    else:
        print(
            f"removed {report_gc.removed_blobs} blobs ({human_bytes(report_gc.freed_bytes)}) and "
            f"{report_gc.removed_records} layer records; kept {report_gc.kept_blobs} blobs "
            f"({human_bytes(report_gc.kept_bytes)})"
        )
    return 0


def _prune_remote(args: argparse.Namespace) -> int:
    from engine.builder.remote_prune import prune_remote

    report = prune_remote(
        args.repository, args.older_than, apply_registry_options(args), dry_run=args.dry_run
    )
    if args.json:
        print(json.dumps(report.__dict__ | {"dry_run": args.dry_run}))
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    undated = f", {report.undated} with no time kept" if report.undated else ""
    print(
        f"{verb} {report.deleted} of {report.entries} cache entries "
        f"({human_bytes(report.deleted_bytes)} of layers, freed by the registry's garbage "
        f"collection); kept {report.kept}{undated}"
    )
    return 0
