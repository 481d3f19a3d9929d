"""A `tar` layer: the entries of a host tar archive (a rootfs tarball), rewritten by our
deterministic writer as one layer.

The archive is read with the one tar reader (engine/tar/read.py) after the one decompressor
(engine/tar/compression.py). What reaches the layer is what an unpacker would make of the
archive, and nothing of how it was written:

- entries sorted by path (sort_key, as every layer), a path given twice keeps its last entry,
  as unpacking does; the archive's root entry (`./`) is left out unless `path` puts the
  entries under a directory, which it then describes;
- mtimes are the build's timestamp, owner names are dropped (numeric ids and modes are kept,
  setuid, setgid and sticky bits included), PAX records other than extended attributes are
  dropped;
- hardlinks, devices and FIFOs are kept. Of a set of hardlinked paths, the first in sort order
  carries the data and the others link to it, whichever one the archiving tool chose;
- extended attributes (file capabilities among them) are kept, from GNU tar's and bsdtar's
  spellings alike, and written one way;
- a whiteout (`.wh.` name) is refused unless the spec says `whiteouts: true`: in a layer it
  deletes files below it, which a rootfs tarball hardly means to do. Sparse files and entry
  types no unpacker knows are refused.

So the same entries give the same layer whatever tool, order, mtimes or owner names made the
archive. The cache key covers the archive's content digest (from the stat memo when the file
is unchanged), the layer's options, the tar format, this rewrite's version and the codec.

Bounds: a compressed archive is decompressed once into a temporary file in the cache (the
entries are then read from it in sorted order by seeking), a plain one is read in place; only
the entries' metadata is held in memory, data moves in READ_CHUNK pieces.
"""

from __future__ import annotations

import base64
import hashlib
import os
import posixpath
import tempfile
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from engine.builder import testhooks
from engine.builder.allocator import keep_block_memory
from engine.builder.layer import TarSink
from engine.builder.plan import READ_CHUNK, Planner, sort_key
from engine.cache.members import remember, reusable
from engine.cache.records import LayerRecord, RecordIndex
from engine.cache.statkey import StatKey, stat_key
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.codec import Codec
from engine.errors import LayerReadError, SourceError
from engine.events import EventSink, LayerCached, ProgressThrottle
from engine.oci.canonical import canonical_json
from engine.oci.descriptor import Descriptor
from engine.spec.globs import glob_match
from engine.spec.model import TarSpec, layer_summary
from engine.tar.compression import DECODE_ERRORS, SNIFF_BYTES, decompressed, sniff_compression
from engine.tar.format import (
    BLOCKDEV,
    CHARDEV,
    DIRECTORY,
    END,
    FIFO,
    HARDLINK,
    REGULAR,
    SYMLINK,
    TAR_FORMAT,
    TarHeader,
    encode_header,
    padding,
)
from engine.tar.read import TarEntry, TarReader

# Names this rewrite; part of the cache key, so a change to what it keeps means bumping it.
TAR_LAYER_FORMAT = "vinci-tar-layer/1"

_TYPES = {
    "file": REGULAR,
    "dir": DIRECTORY,
    "symlink": SYMLINK,
    "hardlink": HARDLINK,
    "char": CHARDEV,
    "block": BLOCKDEV,
    "fifo": FIFO,
}
_XATTR = "SCHILY.xattr."
_LIBARCHIVE_XATTR = "LIBARCHIVE.xattr."
_WHITEOUT = ".wh."
_MAX_LINK_CHAIN = 64


@dataclass(frozen=True)
class _Out:
    """One entry of the layer: `path` relative to the image root, no trailing '/'."""

    path: str
    type: str
    mode: int
    uid: int
    gid: int
    size: int
    data_offset: int  # where its data is in the uncompressed archive (files only)
    linkname: str
    devmajor: int
    devminor: int
    xattrs: tuple[tuple[str, bytes], ...]


def tar_layer_key(node: TarSpec, source_digest: str, mtime: int, codec: Codec) -> str:
    body = {
        "kind": TAR_LAYER_FORMAT,
        "tar": TAR_FORMAT,
        "codec": codec.identity,
        "mtime": mtime,
        "source": source_digest,
        "path": node.path,
        "include": list(node.include),
        "exclude": list(node.exclude),
        "whiteouts": node.whiteouts,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


@dataclass(frozen=True)
class TarKey:
    """A tar layer's cache key, and the stat of the archive it was hashed from."""

    key: str
    stat: StatKey


def tar_key_of(node: TarSpec, planner: Planner, codec: Codec, index: int) -> TarKey:
    """The cache key of `node`: its archive is hashed unless the stat memo knows it."""
    digest, key_stat = planner.file_digest(node.source, index, f"{node.pos}: {node.label}.source")
    return TarKey(tar_layer_key(node, digest, planner.mtime, codec), key_stat)


def tar_layer(
    node: TarSpec,
    planner: Planner,
    store: BlobStore,
    codec: Codec,
    index: int,
    sink: EventSink,
    cancel: CancelToken | None,
    threads: int,
    slot: str,
    known: TarKey | None = None,
) -> tuple[LayerRecord, bool, int]:
    """The layer of `node`, from the cache or written now; whether it was cached; and how
    many of its bytes were copied from its last build's members (the blob `slot` names,
    engine/cache/members.py) instead of compressed. `known`: its key, if tar_key_of made it
    already."""
    known = known or tar_key_of(node, planner, codec, index)
    key, key_stat = known.key, known.stat
    cached = RecordIndex(store).get(key)
    if cached is not None:
        sink(LayerCached(index, key, cached.descriptors))
        return cached, True, 0
    with _uncompressed(node, key_stat, store, cancel) as archive:
        entries = _entries(node, archive, cancel)
        total = sum(e.size for e in entries)
        progress = ProgressThrottle(sink, index, "building", total)
        # A new version of the same archive shares most members with the last one's layer.
        with store.writer() as blob:
            keep_block_memory()
            compressor = testhooks.open_codec(
                codec,
                blob,  # type: ignore[arg-type]
                threads,
                reusable(store, slot),
            )
            tar = TarSink(compressor, progress, cancel)
            try:
                _write(entries, archive, tar, planner.mtime, node)
            finally:
                compressor.close()
            blob_digest = blob.commit()
            size = blob.size
        members = compressor.members
        if members is not None:
            remember(store, slot, blob_digest, members)
    record = LayerRecord(
        key=key,
        descriptors=(Descriptor(codec.media_type, blob_digest, size),),
        diff_ids=(tar.digest,),
        codec=codec.identity,
        uncompressed_sizes=(tar.size,),
        summary=layer_summary(node),
    )
    RecordIndex(store).put(record)
    return record, False, compressor.reused


@contextmanager
def _uncompressed(
    node: TarSpec, planned: StatKey, store: BlobStore, cancel: CancelToken | None
) -> Iterator[IO[bytes]]:
    """The archive, uncompressed and seekable: the file itself when it is plain, else a
    temporary copy in the cache directory (removed on exit)."""
    where = f"{node.pos}: {node.label}"
    real = os.path.realpath(node.source)
    try:
        f = open(real, "rb")  # noqa: SIM115 - closed below, after the copy or the read
    except OSError as e:
        raise SourceError(f"{where}: cannot read {node.written}: {e.strerror}") from None
    with f:
        if stat_key(os.fstat(f.fileno())) != planned:
            raise SourceError(f"{where}: {node.written} changed since it was hashed; build again")
        kind = sniff_compression(f.read(SNIFF_BYTES))
        f.seek(0)
        if kind == "none":
            yield f
            return
        with tempfile.TemporaryFile(dir=store.root, prefix="tar-layer-") as spool:
            try:
                with decompressed(f) as stream:
                    while chunk := stream.read(READ_CHUNK):
                        spool.write(chunk)
                        if cancel is not None:
                            cancel.check()
            except DECODE_ERRORS as e:
                raise SourceError(
                    f"{where}: {node.written} cannot be decompressed ({kind}): {e}"
                ) from None
            spool.seek(0)
            yield spool


def _entries(node: TarSpec, archive: IO[bytes], cancel: CancelToken | None) -> list[_Out]:
    """The layer's entries in order, from the archive's headers."""
    where = f"{node.pos}: {node.label}: {node.written}"
    found: dict[str, TarEntry] = {}
    try:
        for entry in TarReader(archive, cancel, digests=False):
            _check(entry, node, where)
            found.pop(entry.path, None)  # a later entry replaces it, and takes its place
            found[entry.path] = entry
    except LayerReadError as e:
        raise SourceError(f"{where}: not a readable tar archive: {e}") from None
    kept = _filtered(node, found)
    for path in kept:
        _check_whiteout(path, node, where)  # one left out by `exclude` is no concern
    prefix = node.path.strip("/")
    # Hardlink sets: the path that holds the data in the archive -> its kept paths.
    holders: dict[str, list[str]] = {}
    for path in kept:
        entry = found[path]
        if entry.type == "hardlink":
            holders.setdefault(_link_holder(found, entry, where), []).append(path)
        elif entry.type == "file":
            holders.setdefault(path, []).append(path)
    first = {h: min(paths, key=sort_key) for h, paths in holders.items()}
    out: list[_Out] = []
    for path in kept:
        entry = found[path]
        if not path and not prefix:
            continue  # the archive's root: the image's root is not ours to describe
        name = posixpath.join(prefix, path) if path else prefix
        kind, linkname, data_from = entry.type, "", entry
        if kind in ("file", "hardlink"):
            holder = path if kind == "file" else _link_holder(found, entry, where)
            data_from = found[holder]
            lead = first[holder]
            if lead == path:
                kind = "file"
            else:
                kind, linkname = "hardlink", posixpath.join(prefix, lead)
        elif kind == "symlink":
            linkname = entry.linkname
        out.append(
            _Out(
                path=name,
                type=kind,
                mode=data_from.mode,
                uid=data_from.uid,
                gid=data_from.gid,
                size=data_from.size if kind == "file" else 0,
                data_offset=data_from.data_offset,
                linkname=linkname,
                devmajor=entry.devmajor,
                devminor=entry.devminor,
                xattrs=_xattrs(data_from),
            )
        )
    out.sort(key=lambda e: sort_key(e.path))
    return out


def _check(entry: TarEntry, node: TarSpec, where: str) -> None:
    if entry.type not in _TYPES:
        raise SourceError(f"{where}: /{entry.path} is of {entry.type}, which no unpacker knows")
    if any(k.startswith("GNU.sparse") for k, _ in entry.extra):
        raise SourceError(
            f"{where}: /{entry.path} is a sparse file; write the archive without --sparse"
        )


def _check_whiteout(path: str, node: TarSpec, where: str) -> None:
    name = posixpath.basename(path)
    if name.startswith(_WHITEOUT) and not node.whiteouts:
        raise SourceError(
            f"{where}: /{path} is a whiteout, which deletes /"
            f"{posixpath.join(posixpath.dirname(path), name[len(_WHITEOUT) :])} from "
            "the layers below; add `whiteouts: true` to the tar layer if that is meant"
        )


def _filtered(node: TarSpec, found: dict[str, TarEntry]) -> list[str]:
    """The paths `include` and `exclude` keep. An excluded directory takes everything below
    it; with `include`, a directory is kept if it matches or anything below it is kept."""
    paths = [p for p in found if not (node.exclude and _excluded(node.exclude, p))]
    if not node.include:
        return paths
    kept = {p for p in paths if found[p].type != "dir" and glob_match(node.include, p)}
    kept |= {p for p in paths if found[p].type == "dir" and glob_match(node.include, p)}
    for p in list(kept):
        parent = posixpath.dirname(p)
        while parent and parent not in kept:
            if parent in found and found[parent].type == "dir":
                kept.add(parent)
            parent = posixpath.dirname(parent)
    if kept and "" in found:
        kept.add("")  # the root, which `path` may turn into a directory of the image
    return [p for p in paths if p in kept]


def _excluded(patterns: tuple[str, ...], path: str) -> bool:
    if not path:
        return False
    steps = path.split("/")
    return any(glob_match(patterns, "/".join(steps[: i + 1])) for i in range(len(steps)))


def _link_holder(found: dict[str, TarEntry], entry: TarEntry, where: str) -> str:
    """The path whose regular file a hardlink's chain ends at."""
    path, current = entry.path, entry
    for _ in range(_MAX_LINK_CHAIN):
        target = posixpath.normpath("/" + current.linkname).lstrip("/")
        linked = found.get(target)
        if linked is None or linked.type not in ("file", "hardlink"):
            raise SourceError(
                f"{where}: /{path} is a hardlink to /{target}, which is not a file in the archive"
            )
        if linked.type == "file":
            return target
        current = linked
    raise SourceError(f"{where}: /{path} is a hardlink in a chain of more than 64 links")


def _xattrs(entry: TarEntry) -> tuple[tuple[str, bytes], ...]:
    """The entry's extended attributes, by name: GNU tar's SCHILY spelling (raw value), or
    bsdtar's LIBARCHIVE one (URL-encoded name, base64 value) where only that is given."""
    out: dict[str, bytes] = {}
    for key, value in entry.extra:
        if key.startswith(_LIBARCHIVE_XATTR):
            name = urllib.parse.unquote(key[len(_LIBARCHIVE_XATTR) :], errors="surrogateescape")
            try:
                out.setdefault(name, base64.b64decode(value, validate=False))
            except ValueError:
                continue
    for key, value in entry.extra:
        if key.startswith(_XATTR):
            out[key[len(_XATTR) :]] = value.encode("utf-8", "surrogateescape")
    return tuple(sorted(out.items()))


def _write(
    entries: list[_Out], archive: IO[bytes], tar: TarSink, mtime: int, node: TarSpec
) -> None:
    for e in entries:
        tar.write(
            encode_header(
                TarHeader(
                    name=e.path + "/" if e.type == "dir" else e.path,
                    type=_TYPES[e.type],
                    mode=e.mode,
                    uid=e.uid,
                    gid=e.gid,
                    size=e.size,
                    mtime=mtime,
                    linkname=e.linkname,
                    devmajor=e.devmajor,
                    devminor=e.devminor,
                    xattrs=e.xattrs,
                )
            )
        )
        if e.type != "file":
            continue
        archive.seek(e.data_offset)
        left = e.size
        while left:
            data = archive.read(min(left, READ_CHUNK))
            if not data:
                raise SourceError(
                    f"{node.pos}: {node.label}: {node.written} is truncated inside /{e.path}"
                )
            tar.write(data)
            left -= len(data)
        tar.write(padding(e.size))
    tar.write(END)
