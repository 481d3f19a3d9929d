"""Looking after the cache: list what is in it, verify every blob (and remove the corrupt
ones), plan and collect garbage. `vinci cache` and the workbench's Cache pane both call these;
the gc options (keep days, a size budget) are parsed here too, so both read them alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.cache.atomic import write_atomic
from engine.cache.members import forget_orphans
from engine.cache.records import RecordIndex
from engine.cache.store import BlobStore
from engine.errors import InvalidValue
from engine.oci.canonical import canonical_json
from engine.oci.digest import CHUNK

STALE_TMP_SECONDS = 3600
DEFAULT_KEEP_DAYS = 30.0
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """A size budget as people write it: `500M`, `2G`, `1.5GiB`, `10kb`, `4096` (binary
    units; a trailing `b` or `ib` is optional). InvalidValue, with a line to act on, if not."""
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = t[-1:] if t[-1:] in _UNITS and t[-1:] != "" and not t[-1:].isdigit() else ""
    number = t[: len(t) - len(unit)] if unit else t
    try:
        value = int(float(number) * _UNITS[unit])
    except (ValueError, OverflowError):
        raise InvalidValue(f"{text!r} is not a size like 500M or 2G") from None
    if value < 0:
        raise InvalidValue(f"{text!r} is not a size like 500M or 2G: it is negative")
    return value


def parse_keep_days(text: str) -> float:
    """How many days of builds gc keeps: a number, fractions allowed (`0.5` is twelve hours)."""
    try:
        value = float(text.strip())
    except ValueError:
        raise InvalidValue(f"{text!r} is not a number of days like 30 or 0.5") from None
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise InvalidValue(f"{text!r} is not a number of days like 30 or 0.5")
    return value


@dataclass(frozen=True)
class CacheEntry:
    digest: str  # sha256:<hex>
    size: int
    kind: str  # "layer", "config", "manifest", "index" or "blob"
    media_type: str
    last_used: float
    summary: str
    used_by: tuple[str, ...]  # spec files whose latest build references it


@dataclass(frozen=True)
class BuildRef:
    spec: str
    time: float
    manifest: str
    keys: tuple[str, ...]
    blobs: tuple[str, ...]


def build_refs(store: BlobStore) -> list[BuildRef]:
    """Every remembered build of every spec, newest first per spec."""
    out = []
    for path in sorted(store.build_dir.glob("*.json")):
        try:
            data = json.loads(path.read_bytes())
            for b in data["builds"]:
                out.append(
                    BuildRef(
                        str(data["spec"]),
                        float(b["time"]),
                        str(b["manifest"]),
                        tuple(b.get("keys", ())),
                        tuple(b.get("blobs", ())),
                    )
                )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def _sniff(path: Path, size: int) -> tuple[str, str]:
    """(kind, media type) of a small JSON blob; ('blob', '') for anything else."""
    if size > 1 << 20:
        return "blob", ""
    try:
        with open(path, "rb") as f:
            head = f.read(1)
            if head != b"{":
                return "blob", ""
            data = json.loads(head + f.read())
    except (OSError, ValueError):
        return "blob", ""
    media = str(data.get("mediaType", "")) if isinstance(data, dict) else ""
    if not isinstance(data, dict):
        return "blob", ""
    if "manifests" in data:
        return "index", media
    if "layers" in data and "config" in data:
        return "manifest", media
    if "rootfs" in data:
        return "config", media or "application/vnd.oci.image.config.v1+json"
    return "blob", media


def list_entries(store: BlobStore) -> list[CacheEntry]:
    layer_info: dict[str, tuple[str, str, float]] = {}
    for record, used in RecordIndex(store).all():
        for d in record.descriptors:
            layer_info[str(d.digest)] = (d.media_type, record.summary, used)
    users: dict[str, set[str]] = {}
    for ref in build_refs(store):
        for blob in ref.blobs:
            users.setdefault(blob, set()).add(ref.spec)
    out = []
    for path in sorted(store.blob_dir.iterdir()):
        if path.name.startswith("."):
            continue
        st = path.stat()
        digest = f"sha256:{path.name}"
        if digest in layer_info:
            media, summary, used = layer_info[digest]
            kind = "layer"
        else:
            kind, media = _sniff(path, st.st_size)
            summary, used = "", st.st_mtime
        out.append(
            CacheEntry(
                digest, st.st_size, kind, media, used, summary, tuple(sorted(users.get(digest, ())))
            )
        )
    return out


@dataclass(frozen=True)
class VerifyReport:
    blobs: int
    bytes: int
    problems: tuple[str, ...]
    # The blobs whose bytes do not hash to their name (or have the size a record says they
    # have not), each with its problem: what `remove_blobs` is for.
    corrupt: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(store: BlobStore) -> VerifyReport:
    """Re-hash every blob and check every record names blobs that exist."""
    problems: list[str] = []
    corrupt: dict[str, str] = {}
    count = total = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    for path in sorted(store.blob_dir.iterdir()):
        if path.name.startswith(".tmp-"):
            continue
        h = hashlib.sha256()
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(view):
                h.update(view[:n])
                total += n
        count += 1
        if h.hexdigest() != path.name:
            problem = (
                f"blob sha256:{path.name} is corrupt: its content hashes to sha256:{h.hexdigest()}"
            )
            problems.append(problem)
            corrupt[f"sha256:{path.name}"] = problem
    for path in sorted(store.layer_dir.glob("*.json")):
        try:
            data = json.loads(path.read_bytes())
            for layer in data["layers"]:
                hexpart = str(layer["digest"]).removeprefix("sha256:")
                blob = store.blob_dir / hexpart
                if not blob.exists():
                    problems.append(
                        f"layer record {path.stem[:12]} names missing blob {layer['digest']}"
                    )
                elif blob.stat().st_size != int(layer["size"]):
                    problem = (
                        f"layer record {path.stem[:12]}: blob {layer['digest']} has the wrong size"
                    )
                    problems.append(problem)
                    corrupt.setdefault(str(layer["digest"]), problem)
        except (OSError, ValueError, KeyError, TypeError):
            problems.append(f"layer record {path.name} is unreadable")
    return VerifyReport(count, total, tuple(problems), tuple(sorted(corrupt.items())))


@dataclass(frozen=True)
class RemoveReport:
    blobs: int
    bytes: int
    records: int


def remove_blobs(store: BlobStore, digests: Iterable[str]) -> RemoveReport:
    """Remove blobs (`sha256:<hex>`), what is known of their origin, and the layer records
    that name them, so the next build that needs one makes it again instead of reusing it.
    What verify found corrupt goes this way."""
    wanted = {d if d.startswith("sha256:") else f"sha256:{d}" for d in digests}
    index = RecordIndex(store)
    records = 0
    for record, _ in index.all():
        if any(str(d.digest) in wanted for d in record.descriptors):
            index.remove(record.key)
            records += 1
    blobs = freed = 0
    for digest in sorted(wanted):
        hexpart = digest.removeprefix("sha256:")
        if not hexpart or "/" in hexpart or hexpart.startswith("."):
            continue  # not a blob name: nothing outside the blob directory is touched
        path = store.blob_dir / hexpart
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
        (store.source_dir / f"{hexpart}.json").unlink(missing_ok=True)
        (store.member_dir / hexpart).unlink(missing_ok=True)
        blobs += 1
        freed += size
    return RemoveReport(blobs, freed, records)


def _forget_builds_before(store: BlobStore, horizon: float) -> None:
    for path in store.build_dir.glob("*.json"):
        try:
            data = json.loads(path.read_bytes())
            keep_newest = os.path.exists(str(data["spec"]))
            builds = [
                b
                for i, b in enumerate(data["builds"])
                if float(b["time"]) >= horizon or (i == 0 and keep_newest)
            ]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not builds:
            path.unlink(missing_ok=True)
        elif len(builds) != len(data["builds"]):
            write_atomic(path, canonical_json({**data, "builds": builds}), sync_name=False)


@dataclass(frozen=True)
class GcReport:
    removed_records: int
    removed_blobs: int
    freed_bytes: int
    kept_blobs: int
    kept_bytes: int


@dataclass(frozen=True)
class GcPlan:
    """What a garbage collection would do, decided before it does anything: the layer records
    it drops, the blobs it removes (digest, size) and what stays."""

    keep_days: float
    max_bytes: int | None
    now: float
    records: tuple[str, ...]
    blobs: tuple[tuple[str, int], ...]
    kept_blobs: int
    kept_bytes: int

    @property
    def freed_bytes(self) -> int:
        return sum(size for _, size in self.blobs)


def _blob_sizes(store: BlobStore) -> dict[str, int]:
    return {
        f"sha256:{p.name}": p.stat().st_size
        for p in store.blob_dir.iterdir()
        if not p.name.startswith(".")
    }


def plan_garbage(
    store: BlobStore,
    keep_days: float = DEFAULT_KEEP_DAYS,
    max_bytes: int | None = None,
    now: float | None = None,
) -> GcPlan:
    """What `collect_garbage` would remove, without removing anything.

    Kept: the newest build of every spec that still exists, every build made within
    `keep_days`, and layer records used within `keep_days`. Then, over `max_bytes`, the least
    recently used records that no kept build needs go first.
    """
    now = time.time() if now is None else now
    horizon = now - keep_days * 86400
    all_builds = build_refs(store)
    newest: dict[str, BuildRef] = {}
    for b in all_builds:
        if os.path.exists(b.spec) and (b.spec not in newest or b.time > newest[b.spec].time):
            newest[b.spec] = b
    recent = [b for b in all_builds if b.time >= horizon] + list(newest.values())
    pinned_blobs = {blob for b in recent for blob in b.blobs}
    pinned_keys = {k for b in recent for k in b.keys}
    dropped: list[str] = []
    live = []
    for record, used in RecordIndex(store).all():
        if record.key in pinned_keys or used >= horizon:
            live.append((record, used))
        else:
            dropped.append(record.key)

    def referenced() -> set[str]:
        refs = set(pinned_blobs)
        for record, _ in live:
            refs.update(str(d.digest) for d in record.descriptors)
            config = dict(record.extra).get("config")
            if config:
                refs.add(config)
        return refs

    sizes = _blob_sizes(store)
    refs = referenced()
    if max_bytes is not None:
        live.sort(key=lambda item: item[1])
        while live and sum(s for d, s in sizes.items() if d in refs) > max_bytes:
            record, _ = live.pop(0)
            if record.key in pinned_keys:
                continue
            dropped.append(record.key)
            refs = referenced()
    gone = tuple(sorted((d, s) for d, s in sizes.items() if d not in refs))
    kept = {d: s for d, s in sizes.items() if d in refs}
    return GcPlan(
        keep_days,
        max_bytes,
        now,
        tuple(dropped),
        gone,
        len(kept),
        sum(kept.values()),
    )


def apply_garbage(store: BlobStore, plan: GcPlan) -> GcReport:
    """Do what `plan` says: drop its records and blobs, forget builds older than its horizon,
    and clear temporary files a crash left behind."""
    index = RecordIndex(store)
    for key in plan.records:
        index.remove(key)
    _forget_builds_before(store, plan.now - plan.keep_days * 86400)
    removed_blobs = freed = 0
    for digest, size in plan.blobs:
        hexpart = digest.removeprefix("sha256:")
        try:
            (store.blob_dir / hexpart).unlink()
        except FileNotFoundError:
            continue
        # What we knew of the blob's origin goes with it.
        (store.source_dir / f"{hexpart}.json").unlink(missing_ok=True)
        removed_blobs += 1
        freed += size
    present = {p.name for p in store.blob_dir.iterdir()}
    for facts in store.source_dir.glob("*.json"):
        if facts.stem not in present:
            facts.unlink(missing_ok=True)
    forget_orphans(store, present)
    for directory in (
        store.blob_dir,
        store.layer_dir,
        store.memo_dir,
        store.build_dir,
        store.source_dir,
        store.member_dir,
        store.slot_dir,
    ):
        for p in directory.glob(".tmp-*"):
            try:
                if plan.now - p.stat().st_mtime > STALE_TMP_SECONDS:
                    p.unlink()
            except OSError:
                pass
    kept = _blob_sizes(store)
    return GcReport(len(plan.records), removed_blobs, freed, len(kept), sum(kept.values()))


def collect_garbage(
    store: BlobStore,
    keep_days: float = DEFAULT_KEEP_DAYS,
    max_bytes: int | None = None,
    now: float | None = None,
) -> GcReport:
    """Drop what recent builds do not reference (plan_garbage says what, apply_garbage does it)."""
    return apply_garbage(store, plan_garbage(store, keep_days, max_bytes, now))
