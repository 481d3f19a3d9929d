"""Looking after the cache: list what is in it, verify every blob, collect garbage."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from engine.cache.atomic import write_atomic
from engine.cache.records import RecordIndex
from engine.cache.store import BlobStore
from engine.oci.canonical import canonical_json
from engine.oci.digest import CHUNK

STALE_TMP_SECONDS = 3600


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

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(store: BlobStore) -> VerifyReport:
    """Re-hash every blob and check every record names blobs that exist."""
    problems: list[str] = []
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
            problems.append(
                f"blob sha256:{path.name} is corrupt: its content hashes to sha256:{h.hexdigest()}"
            )
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
                    problems.append(
                        f"layer record {path.stem[:12]}: blob {layer['digest']} has the wrong size"
                    )
        except (OSError, ValueError, KeyError, TypeError):
            problems.append(f"layer record {path.name} is unreadable")
    return VerifyReport(count, total, tuple(problems))


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


def collect_garbage(
    store: BlobStore,
    keep_days: float = 30.0,
    max_bytes: int | None = None,
    now: float | None = None,
) -> GcReport:
    """Drop what recent builds do not reference.

    Kept: the newest build of every spec that still exists, every build made within
    `keep_days`, and layer records used within `keep_days`. Then, over `max_bytes`, the least
    recently used records that no kept build needs go first.
    """
    now = time.time() if now is None else now
    horizon = now - keep_days * 86400
    index = RecordIndex(store)
    all_builds = build_refs(store)
    newest: dict[str, BuildRef] = {}
    for b in all_builds:
        if os.path.exists(b.spec) and (b.spec not in newest or b.time > newest[b.spec].time):
            newest[b.spec] = b
    recent = [b for b in all_builds if b.time >= horizon] + list(newest.values())
    pinned_blobs = {blob for b in recent for blob in b.blobs}
    pinned_keys = {k for b in recent for k in b.keys}
    records = index.all()
    removed_records = 0
    live = []
    for record, used in records:
        if record.key in pinned_keys or used >= horizon:
            live.append((record, used))
        else:
            index.remove(record.key)
            removed_records += 1
    _forget_builds_before(store, horizon)

    def blob_sizes() -> dict[str, int]:
        return {
            f"sha256:{p.name}": p.stat().st_size
            for p in store.blob_dir.iterdir()
            if not p.name.startswith(".")
        }

    def referenced() -> set[str]:
        refs = set(pinned_blobs)
        for record, _ in live:
            refs.update(str(d.digest) for d in record.descriptors)
            config = dict(record.extra).get("config")
            if config:
                refs.add(config)
        return refs

    removed_blobs = freed = 0
    sizes = blob_sizes()
    refs = referenced()
    if max_bytes is not None:
        live.sort(key=lambda item: item[1])
        while live and sum(s for d, s in sizes.items() if d in refs) > max_bytes:
            record, _ = live.pop(0)
            if record.key in pinned_keys:
                continue
            index.remove(record.key)
            removed_records += 1
            refs = referenced()
    for digest, size in sizes.items():
        if digest not in refs:
            hexpart = digest.removeprefix("sha256:")
            (store.blob_dir / hexpart).unlink(missing_ok=True)
            # What we knew of the blob's origin goes with it.
            (store.source_dir / f"{hexpart}.json").unlink(missing_ok=True)
            removed_blobs += 1
            freed += size
    present = {p.name for p in store.blob_dir.iterdir()}
    for facts in store.source_dir.glob("*.json"):
        if facts.stem not in present:
            facts.unlink(missing_ok=True)
    for directory in (
        store.blob_dir,
        store.layer_dir,
        store.memo_dir,
        store.build_dir,
        store.source_dir,
    ):
        for p in directory.glob(".tmp-*"):
            try:
                if now - p.stat().st_mtime > STALE_TMP_SECONDS:
                    p.unlink()
            except OSError:
                pass
    kept = {d: s for d, s in blob_sizes().items()}
    return GcReport(removed_records, removed_blobs, freed, len(kept), sum(kept.values()))
