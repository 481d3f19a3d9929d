"""vinci.lock: pins each layer's compressed blob to its tar bytes, so an image's digest does not
depend on which compressor build a machine has.

The tar bytes of a layer (its diff_id) are fully vinci's; its compressed bytes are the codec's,
and the system zlib, say, differs between machines. The lock records, for every layer of the
image, diff_id -> (compressed digest, size, media type, codec identity), the digests of the
image itself, and what each import-oci reference resolved to. A build that produces a locked
diff_id uses the locked blob instead of its own compressor's output whenever that blob is in
the cache, so the manifest digest stays the locked one. See docs/lock.md for the format.

    Lock.from_result(result)  the lock a build implies     Lock.parse / Lock.to_bytes
    LockReuse                 the per-layer decision the Builder asks for (pool.py)
    differences(old, new)     what `vinci build --locked` reports when they disagree

The locked blob is only used once the cache knows it decompresses to the diff_id (checked by
streaming it once, then remembered with the blob's other facts): a lock is a file anyone can
edit, and an image whose layer does not match its diff_id would be corrupt.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine.builder.layer import tar_digest
from engine.builder.plan import READ_CHUNK, LayerPlan
from engine.builder.result import BuildResult, Built, images_of
from engine.cache.atomic import write_atomic
from engine.cache.records import IMPORT_CODEC, LayerRecord
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.codec import Codec
from engine.errors import BuildCancelled, LockError, VinciError
from engine.events import EventSink, Log, discard
from engine.oci.descriptor import Descriptor
from engine.oci.digest import Digest
from engine.spec.locate import beside_spec
from engine.spec.model import ImportOCISpec, Spec

LOCK_VERSION = 1


def lock_path(spec: Spec) -> Path:
    """Beside the spec: vinci.yaml -> vinci.lock (as the default output is vinci.oci)."""
    return Path(beside_spec(str(spec.path), ".lock"))


@dataclass(frozen=True)
class LockedLayer:
    diff_id: Digest
    digest: Digest
    size: int
    media_type: str
    codec: str
    uncompressed_size: int
    used_by: tuple[str, ...]  # spec labels whose layers have this diff_id
    # Repositories known to hold the blob ("registry/repository"), where a machine that lacks
    # it fetches it from: those it was pushed to or pulled from, as the cache recorded.
    sources: tuple[str, ...] = ()

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "codec": self.codec,
            "digest": str(self.digest),
            "media_type": self.media_type,
            "size": self.size,
            "uncompressed_size": self.uncompressed_size,
            "used_by": list(self.used_by),
        }
        if self.sources:
            out["sources"] = list(self.sources)
        return out


@dataclass(frozen=True)
class LockedImport:
    ref: str  # as the spec writes it, pinned: registry/repo@sha256:…
    manifest: str  # the image manifest the spec's platform resolved to
    config: str
    platform: str = ""  # of a multi-platform lock: the platform that resolved it

    @property
    def key(self) -> str:
        """Its key in the lock's `imports`: the ref, after the platform in an index's lock."""
        return f"{self.platform} {self.ref}" if self.platform else self.ref

    def to_json(self) -> dict[str, str]:
        return {"config": self.config, "manifest": self.manifest}


@dataclass(frozen=True)
class LockedImage:
    """One platform's image of a multi-platform lock."""

    platform: str
    manifest: str
    config: str

    def to_json(self) -> dict[str, str]:
        return {"config": self.config, "manifest": self.manifest}


@dataclass(frozen=True)
class Lock:
    manifest: str
    config: str
    platform: str
    layers: tuple[LockedLayer, ...]  # sorted by diff_id
    imports: tuple[LockedImport, ...]  # sorted by key
    # A multi-platform spec's lock: `manifest` is the index's, `config` empty, `platform` the
    # platforms joined by commas, and each platform's image here.
    images: tuple[LockedImage, ...] = ()

    def of_platform(self, platform: str, diff_ids: set[Digest]) -> Lock:
        """What an index's lock says of one platform's image (`--platform` with `--locked`):
        its manifest and config, its imports, and the locked layers among `diff_ids` (those
        the build made; one it made that is not locked is still told)."""
        image = next((i for i in self.images if i.platform == platform), None)
        if image is None:
            raise LockError(f"the lock has no image for {platform}; `vinci lock` records it")
        return Lock(
            image.manifest,
            image.config,
            platform,
            tuple(x for x in self.layers if x.diff_id in diff_ids),
            tuple(replace(i, platform="") for i in self.imports if i.platform == platform),
        )

    def layer(self, diff_id: Digest) -> LockedLayer | None:
        for entry in self.layers:
            if entry.diff_id == diff_id:
                return entry
        return None

    def to_json(self) -> dict[str, Any]:
        image: dict[str, Any] = {
            "config": self.config,
            "manifest": self.manifest,
            "platform": self.platform,
        }
        if self.images:
            image = {
                "index": self.manifest,
                "platforms": {i.platform: i.to_json() for i in self.images},
            }
        return {
            "lock_version": LOCK_VERSION,
            "image": image,
            "imports": {i.key: i.to_json() for i in self.imports},
            "layers": {str(x.diff_id): x.to_json() for x in self.layers},
        }

    def to_bytes(self) -> bytes:
        """Canonical and diff-friendly: sorted keys, two-space indent, one value per line,
        UTF-8, a final newline. The same lock always gives the same bytes."""
        text = json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False)
        return (text + "\n").encode("utf-8")

    @classmethod
    def parse(cls, data: bytes, where: str) -> Lock:
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            version = doc.get("lock_version")
            if version != LOCK_VERSION:
                raise ValueError(f"lock_version {version!r}; this vinci reads {LOCK_VERSION}")
            image = doc["image"]
            layers = tuple(
                LockedLayer(
                    Digest.parse(diff_id),
                    Digest.parse(str(v["digest"])),
                    int(v["size"]),
                    str(v["media_type"]),
                    str(v["codec"]),
                    int(v.get("uncompressed_size", 0)),
                    tuple(str(x) for x in v.get("used_by") or ()),
                    tuple(sorted(str(x) for x in v.get("sources") or ())),
                )
                for diff_id, v in sorted(doc.get("layers", {}).items())
            )
            imports = tuple(
                LockedImport(
                    key.rpartition(" ")[2],
                    str(v["manifest"]),
                    str(v["config"]),
                    key.rpartition(" ")[0],
                )
                for key, v in sorted(doc.get("imports", {}).items())
            )
            if "index" in image:
                images = tuple(
                    LockedImage(p, str(v["manifest"]), str(v["config"]))
                    for p, v in image["platforms"].items()
                )
                platforms = ",".join(i.platform for i in images)
                return cls(str(image["index"]), "", platforms, layers, imports, images)
            return cls(
                str(image["manifest"]),
                str(image["config"]),
                str(image["platform"]),
                layers,
                imports,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise LockError(
                f"{where}: not a valid vinci.lock ({e}); `vinci lock` rewrites it"
            ) from None

    @classmethod
    def from_result(
        cls,
        result: Built,
        previous: Lock | None = None,
        store: BlobStore | None = None,
    ) -> Lock:
        """The lock that records `result` exactly. Each blob's `sources` are those `previous`
        listed for the same blob, plus (given `store`) the repositories the cache knows hold
        it: a lock only learns sources, so one made on a machine that never pushed keeps them.
        """
        first: dict[Digest, tuple[Descriptor, str, int]] = {}  # blob, codec, tar size
        used: dict[Digest, set[str]] = {}
        imports: list[LockedImport] = []
        index = result.spec.is_index
        for image in images_of(result):
            nodes = image.spec.layers
            for r in image.layers:
                # The accounts layer, above the spec's layers, has no node.
                node = nodes[r.index] if r.index < len(nodes) else None
                record = r.record
                if isinstance(node, ImportOCISpec):
                    extra = dict(record.extra)
                    imports.append(
                        LockedImport(
                            str(node.ref),
                            extra.get("manifest", ""),
                            extra.get("config", ""),
                            str(image.spec.platform) if index else "",
                        )
                    )
                for d, diff_id, usize in zip(
                    record.descriptors, record.diff_ids, record.uncompressed_sizes, strict=True
                ):
                    first.setdefault(diff_id, (d, record.codec, usize))
                    used.setdefault(diff_id, set()).add(r.label)
        layers = tuple(
            LockedLayer(
                diff_id,
                d.digest,
                d.size,
                d.media_type,
                codec,
                usize,
                tuple(sorted(used[diff_id])),
                _sources(d.digest, previous, store),
            )
            for diff_id, (d, codec, usize) in sorted(first.items())
        )
        locked_imports = tuple(sorted(set(imports), key=lambda i: i.key))
        if isinstance(result, BuildResult):
            return cls(
                str(result.manifest.digest),
                str(result.config.digest),
                str(result.spec.platform),
                layers,
                locked_imports,
            )
        images = tuple(
            LockedImage(str(r.spec.platform), str(r.manifest.digest), str(r.config.digest))
            for r in result.images
        )
        platforms = ",".join(i.platform for i in images)
        return cls(str(result.index.digest), "", platforms, layers, locked_imports, images)


def _sources(digest: Digest, previous: Lock | None, store: BlobStore | None) -> tuple[str, ...]:
    found: set[str] = set()
    if previous is not None:
        for x in previous.layers:
            if x.digest == digest:
                found.update(x.sources)
    if store is not None:
        from engine.cache.provenance import read_facts

        found.update(f"{s.registry}/{s.repository}" for s in read_facts(store, digest).sources)
    return tuple(sorted(found))


def read_lock(path: Path) -> Lock | None:
    """The lock at `path`, or None if there is none."""
    # Most specs have no lock: a stat, not an open, says so (the cache tests audit every
    # open() beside the spec to prove an unchanged build reads no source).
    if not os.path.lexists(path):
        return None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise LockError(f"cannot read {path}: {e.strerror}") from None
    return Lock.parse(data, str(path))


def write_lock(path: Path, lock: Lock) -> bool:
    """Write `lock` to `path` unless it already holds exactly these bytes; True if written."""
    data = lock.to_bytes()
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except OSError as e:
        raise LockError(f"cannot read {path}: {e.strerror}") from None
    try:
        write_atomic(path, data, replace=True)
    except OSError as e:
        raise LockError(f"cannot write {path}: {e.strerror}") from None
    return True


def differences(old: Lock, new: Lock, store: BlobStore | None = None) -> list[str]:
    """Why `new` (what the build made) is not `old` (the lock), one line per cause. Given the
    build's `store`, a locked blob the build did not use is said to be missing or unused."""
    lines: list[str] = []
    old_layers = {x.diff_id: x for x in old.layers}
    new_layers = {x.diff_id: x for x in new.layers}
    for diff_id in sorted(old_layers.keys() | new_layers.keys()):
        o, n = old_layers.get(diff_id), new_layers.get(diff_id)
        if o is None:
            assert n is not None
            lines.append(
                f"layer {diff_id.short} ({', '.join(n.used_by)}) is not in the lock: its tar "
                "bytes are new (a spec or input change)"
            )
        elif n is None:
            lines.append(
                f"locked layer {diff_id.short} ({', '.join(o.used_by)}) is not in this build"
            )
        elif (o.digest, o.size, o.media_type) != (n.digest, n.size, n.media_type):
            why = ""
            if store is not None and not store.has_blob(o.digest, o.size):
                where = "no listed source served it" if o.sources else "the lock lists no source"
                why = f" is not available here (not in the cache; {where})"
            elif store is not None:
                why = " was not used (it does not hold these tar bytes, or the lock was ignored)"
            lines.append(
                f"layer {diff_id.short} ({', '.join(n.used_by)}): same tar bytes, but the locked "
                f"blob {o.digest.short} ({o.codec}, {o.size} bytes){why}; this build has "
                f"{n.digest.short} ({n.codec}, {n.size} bytes)"
            )
        elif o.used_by != n.used_by:
            lines.append(
                f"layer {diff_id.short}: made by {', '.join(n.used_by)}, locked as made by "
                f"{', '.join(o.used_by)}"
            )
        elif o.sources != n.sources:
            lines.append(
                f"layer {diff_id.short}: blob now known at {', '.join(n.sources)} (was: "
                f"{', '.join(o.sources) or 'nowhere'})"
            )
    old_imports = {i.key: i for i in old.imports}
    new_imports = {i.key: i for i in new.imports}
    for ref in sorted(old_imports.keys() | new_imports.keys()):
        oi, ni = old_imports.get(ref), new_imports.get(ref)
        if oi != ni:
            before = f"{oi.manifest}" if oi else "not locked"
            after = f"{ni.manifest}" if ni else "not imported"
            lines.append(f"import-oci {ref}: locked {before}, resolved now to {after}")
    old_images = {i.platform: i for i in old.images}
    new_images = {i.platform: i for i in new.images}
    for platform in sorted(old_images.keys() | new_images.keys()):
        oim, nim = old_images.get(platform), new_images.get(platform)
        if oim is None:
            lines.append(f"platform {platform}: not in the lock (added)")
        elif nim is None:
            lines.append(f"platform {platform}: locked, not built (removed)")
        elif oim != nim:
            lines.append(f"platform {platform}: locked {oim.manifest}, built {nim.manifest}")
    if old.platform != new.platform and not (old.images and new.images):
        lines.append(f"platform: locked {old.platform}, built {new.platform}")
    if old.config != new.config:
        lines.append(f"image config: locked {old.config}, built {new.config}")
    if old.manifest != new.manifest:
        lines.append(f"image manifest: locked {old.manifest}, built {new.manifest}")
    return lines


# -- reuse during a build ----------------------------------------------------------------------


def blob_diff_id(store: BlobStore, digest: Digest, cancel: CancelToken | None = None) -> Digest:
    """The diff_id of a cached layer blob: remembered, or found by decompressing it once."""
    from engine.cache.provenance import read_facts, set_diff_id
    from engine.tar.compression import decompressed

    known = read_facts(store, digest).diff_id
    if known is not None:
        return known
    h = hashlib.sha256()
    size = 0
    with store.open_blob(digest) as raw, decompressed(raw) as stream:
        while chunk := stream.read(READ_CHUNK):
            h.update(chunk)
            size += len(chunk)
            if cancel is not None:
                cancel.check()
    found = Digest(h.hexdigest())
    set_diff_id(store, digest, found, size)
    return found


def remember_built(store: BlobStore, result: Built) -> None:
    """Record the diff_id of every layer this build compressed, so reusing its blobs under a
    lock later needs no decompression."""
    from engine.cache.provenance import set_diff_id

    for r in result.layers:
        if r.record.codec == IMPORT_CODEC:
            continue  # imports record their own facts as they are verified
        for d, diff_id, usize in zip(
            r.record.descriptors, r.record.diff_ids, r.record.uncompressed_sizes, strict=True
        ):
            set_diff_id(store, d.digest, diff_id, usize)


class LockReuse:
    """The Builder's question for each built layer: is there a locked blob to use instead of
    what the codec makes (or made)? The blob comes from the cache, or is fetched (and
    verified against its digest and diff_id) from a repository the lock lists for it."""

    def __init__(self, lock: Lock, store: BlobStore, codec: Codec) -> None:
        self.lock = lock
        self.store = store
        self.codec = codec

    def _candidates(self) -> dict[Digest, LockedLayer]:
        """Locked blobs another codec made that the cache holds or a registry serves: only
        these are worth a hash-only pass over a layer (with the same codec identity, the
        compressor makes the locked bytes itself)."""
        return {
            x.diff_id: x
            for x in self.lock.layers
            if x.codec not in (self.codec.identity, IMPORT_CODEC)
            and (x.sources or self.store.has_blob(x.digest, x.size))
        }

    def record_for(
        self,
        plan: LayerPlan | None,
        cached: LayerRecord | None,
        summary: str,
        cancel: CancelToken | None = None,
        sink: EventSink = discard,
    ) -> LayerRecord | None:
        """A record naming the locked blob for this layer, or None to go on as without a lock.
        Why a locked blob could not be used goes to `sink` as a warning.

        Never stored in the cache's index: the index maps a key (which includes the codec)
        to what that codec made, and must stay true for builds without the lock. `plan` may
        be None when `cached` is given (a held layer, engine/builder/footprint.py): then
        the record's diff_id says all the plan would.
        """
        if cached is not None:
            diff_id = cached.diff_ids[0]
            locked = self.lock.layer(diff_id)
            if locked is None or locked.descriptor == cached.descriptors[0]:
                return None
        else:
            candidates = self._candidates()
            if not candidates:
                return None
            assert plan is not None  # nothing cached: the layer was planned
            diff_id, _ = tar_digest(plan, cancel)
            found = candidates.get(diff_id)
            if found is None:
                return None
            locked = found
        held = self.store.has_blob(locked.digest, locked.size)
        if not held and not self._fetch(locked, cancel, sink):
            return None
        if blob_diff_id(self.store, locked.digest, cancel) != diff_id:
            sink(
                Log(
                    "warning",
                    f"vinci.lock: blob {locked.digest.short} does not hold layer "
                    f"{diff_id.short}; ignoring that entry",
                )
            )
            return None  # a lock is a file anyone can edit: build the layer ourselves
        sink(
            Log(
                "info",
                f"{summary}: locked blob {locked.digest.short} ({locked.codec}) used for "
                f"layer {diff_id.short}",
            )
        )
        return LayerRecord(
            key=plan.key if plan is not None else cached.key if cached is not None else "",
            descriptors=(locked.descriptor,),
            diff_ids=(diff_id,),
            codec=locked.codec,
            uncompressed_sizes=(locked.uncompressed_size,),
            summary=summary,
            extra=(("lock", "reused"),),
        )

    def not_honoured(self, record: LayerRecord, summary: str, sink: EventSink) -> None:
        """Warns when the lock pins this layer's tar bytes to a blob the build did not use
        (a lock written by another codec or codec version, say the isal gzip before the
        portable one, whose blob this machine lacks): the build goes on with what this
        codec makes, and the image digest will not be the locked one."""
        diff_id = record.diff_ids[0]
        locked = self.lock.layer(diff_id)
        if locked is None or locked.descriptor == record.descriptors[0]:
            return
        if not self.store.has_blob(locked.digest, locked.size):
            where = "no listed source served it" if locked.sources else "the lock lists no source"
            why = f"that blob is not in the cache and {where}"
        else:
            why = "that blob was not used"
        sink(
            Log(
                "warning",
                f"vinci.lock: layer {diff_id.short} ({summary}) is locked to blob "
                f"{locked.digest.short}, made by {locked.codec}; {why}, so this build made "
                f"{record.descriptors[0].digest.short} with {record.codec} and the image "
                "digest differs from the lock's (`vinci lock` records the new blob)",
            )
        )

    def _fetch(self, locked: LockedLayer, cancel: CancelToken | None, sink: EventSink) -> bool:
        """Bring the locked blob into the cache from the first listed repository that has
        it; its digest and diff_id are checked as it streams in."""
        from engine.cache.ingest import Ingest
        from engine.cache.provenance import add_source
        from engine.oci import mediatypes
        from engine.registry.client import RegistryClient

        for source in locked.sources:
            registry, _, repository = source.partition("/")
            ingest = Ingest(
                self.store,
                f"{source}@{locked.digest}",
                mediatypes.layer_compression(locked.media_type),
            )
            try:
                with RegistryClient(registry) as client:
                    client.fetch_blob(repository, locked.digest, locked.size, ingest, cancel=cancel)
                got = ingest.commit(locked.digest, locked.size, locked.diff_id)
            except BuildCancelled:
                raise
            except VinciError as e:
                sink(Log("warning", f"vinci.lock: cannot fetch {locked.digest.short}: {e}"))
                continue
            finally:
                ingest.discard()
            assert got.diff_id is not None
            fetched = (got.diff_id, got.uncompressed_size)
            add_source(self.store, got.digest, registry, repository, fetched)
            return True
        return False


def check_locked(path: Path, lock: Lock, result: Built, store: BlobStore | None = None) -> None:
    """For `vinci build --locked`: raise LockError, with the causes and the change to the lock
    file, unless the build is exactly what the lock records. `store`: the build's cache, to
    say why a locked blob was not used."""
    import difflib

    if lock.images and isinstance(result, BuildResult):
        # One platform of a multi-platform spec: held to what the lock says of that platform.
        made = {d for r in result.layers for d in r.record.diff_ids}
        lock = lock.of_platform(str(result.spec.platform), made)
    built = Lock.from_result(result, previous=lock)  # sources: the lock's own, nothing new
    if built.to_bytes() == lock.to_bytes():
        return
    causes = differences(lock, built, store) or ["the lock file is not in canonical form"]
    patch = list(
        difflib.unified_diff(
            lock.to_bytes().decode().splitlines(),
            built.to_bytes().decode().splitlines(),
            f"{path} (locked)",
            f"{path} (this build)",
            lineterm="",
        )
    )
    if len(patch) > 80:
        patch = [*patch[:80], f"… {len(patch) - 80} more lines"]
    text = "\n".join(["  " + c for c in causes] + ["", *patch])
    raise LockError(
        f"--locked: this build differs from {path}; `vinci lock` records it if that is "
        f"intended:\n{text}"
    )
