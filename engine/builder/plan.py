"""Plans a layer: the exact list of tar entries a file/directory/symlink/combined node makes,
each with its content digest, and the cache key derived from them.

Planning reads no file contents when the stat memo knows a file. The cache key covers
everything that reaches the layer's bytes (paths, types, modes, owners, sizes, content digests,
link targets, mtime, tar format, codec identity) and nothing else: no host paths, so another
checkout directory hits the same cache entries.

When the memo does not know a file, its digest has to come from reading it, and then one of two
things happens:

- "verify": the memo still holds the file's last digest for the same size (a touched file, a
  fresh checkout at the same path, a file too recently modified to be trusted) and the key those
  digests give is in the cache. The file is probably unchanged, so it is hashed now, as before,
  and the layer is most likely a cache hit.
- "speculative": otherwise the layer will almost surely have to be built, so it is built right
  away, and each unknown file is hashed from the very bytes the layer writer reads
  (engine/builder/layer.py); `Planner.complete` then derives the key. Reading and hashing a file
  twice (once for the key, once into the layer) would cost a whole extra pass, done alone before
  the layer's pipeline starts. If the key turns out to be cached after all, the build was
  wasted, never wrong: the same key means the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine.builder.footprint import Footprint, LayerFootprint
from engine.cache.memo import StatMemo
from engine.cache.records import RecordIndex
from engine.cache.statkey import StatKey, stat_key
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.codec import Codec
from engine.errors import SourceError, SpecError, SpecProblem
from engine.events import EventSink, Log, ProgressThrottle
from engine.oci.canonical import canonical_json
from engine.spec.globs import glob_match
from engine.spec.model import (
    CombinablePart,
    CombinedSpec,
    DirectorySpec,
    FileSpec,
    Spec,
    SymlinkSpec,
)
from engine.tar.format import TAR_FORMAT

READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class PlannedEntry:
    """One tar entry to write. `path` is the in-image path without the leading '/'."""

    path: str
    type: str  # "file" | "dir" | "symlink"
    mode: int
    uid: int
    gid: int
    size: int
    digest: str  # content sha256 hex for files, "" otherwise
    target: str  # symlink target
    origin: str  # the spec node that put it here, e.g. "layers[2].directory"
    source: str  # host file to read ("" for inline contents and non-files)
    inline: bytes | None
    stat: StatKey | None

    def key_fields(self) -> list[object]:
        return [
            _keyed_name(self.path),
            self.type,
            self.mode,
            self.uid,
            self.gid,
            self.size,
            self.digest,
            _keyed_name(self.target),
        ]


def _keyed_name(name: str) -> object:
    """A name as the cache key holds it: itself, or, for a host name that is not UTF-8 (kept
    with surrogate escapes, which JSON cannot carry), its bytes in hex, which no name equals."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return {"bytes": name.encode("utf-8", "surrogateescape").hex()}
    return name


def _planned_entry(**fields: Any) -> PlannedEntry:
    """PlannedEntry(**fields), five times faster: a frozen dataclass's __init__ sets every
    field through object.__setattr__, which is a third of planning a 10,000-file layer. The
    instance is the same (same fields, still frozen); every field must be given."""
    entry = object.__new__(PlannedEntry)
    entry.__dict__.update(fields)
    return entry


@dataclass(frozen=True)
class LayerPlan:
    entries: tuple[PlannedEntry, ...]
    key: str  # "" while `pending` is not empty
    mtime: int
    hashed_bytes: int  # bytes read to compute digests (0 on a fully memoized plan)
    # Speculative plans: the entries (index, memo root, memo rel) whose content digest the
    # layer writer computes; their `digest` is "" until `Planner.complete` fills it in.
    pending: tuple[tuple[int, str, str], ...] = ()

    @property
    def content_bytes(self) -> int:
        return sum(e.size for e in self.entries)


def sort_key(path: str) -> tuple[str, ...]:
    """Entries sort by path component, so a directory's children follow it directly, comparing
    components as UTF-8 bytes. Python compares str by code point, and UTF-8 was designed so that
    byte order is code point order: the str components sort exactly as their encodings would,
    without encoding 10,000 paths on every plan."""
    return tuple(path.split("/"))


def cache_key(entries: Iterable[PlannedEntry], mtime: int, codec: Codec) -> str:
    body = {
        "tar": TAR_FORMAT,
        "codec": codec.identity,
        "mtime": mtime,
        "entries": [e.key_fields() for e in entries],
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def hash_file(path: str, cancel: CancelToken | None, progress: ProgressThrottle | None) -> str:
    h = hashlib.sha256()
    buf = bytearray(READ_CHUNK)
    view = memoryview(buf)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror}") from None
    try:
        while n := os.readv(fd, [view]):
            h.update(view[:n])
            if progress is not None:
                progress.advance(n)
            if cancel is not None:
                cancel.check()
    finally:
        os.close(fd)
    return h.hexdigest()


def copying_layer(spec: Spec, path: str) -> DirectorySpec | None:
    """The directory layer (or combined part) of `spec` whose walk takes in `path`, which
    need not exist yet; None if none does. A layer with include patterns is never named
    (whether it keeps a directory depends on what will be in it)."""
    real = os.path.realpath(path)
    for node in spec.layers:
        parts = node.parts if isinstance(node, CombinedSpec) else (node,)
        for part in parts:
            if not isinstance(part, DirectorySpec) or part.source is None or part.include:
                continue
            root = os.path.realpath(part.source)
            rel = os.path.relpath(real, root)
            if rel == ".." or rel.startswith("../"):
                continue
            steps = rel.split("/")
            ancestors = ("/".join(steps[: i + 1]) for i in range(len(steps)))
            if not any(glob_match(part.exclude, a) for a in ancestors):
                return part
    return None


class Planner:
    """Plans layer nodes against one cache's stat memos."""

    def __init__(
        self,
        store: BlobStore,
        codec: Codec,
        mtime: int,
        sink: EventSink,
        cancel: CancelToken | None = None,
        speculate: bool = True,
        footprint: Footprint | None = None,
        skip: frozenset[str] = frozenset(),
    ) -> None:
        """`skip`: real paths a directory walk passes over as if excluded (the build's own
        files, engine/builder/pool.py own_files)."""
        self.store = store
        self.codec = codec
        self.mtime = mtime
        self.sink = sink
        self.cancel = cancel
        self.speculate = speculate
        # What this build looked at on the host, for the up-to-date check (engine/cli/uptodate.py).
        self.footprint = footprint or Footprint()
        self.skip = skip
        # One memo per source root for the whole build, shared by the layers that read it (two
        # layers of one directory must not each save only their own half), saved after each
        # layer's plan. Layers plan on several threads: the lock guards the memos.
        self._memos: dict[str, StatMemo] = {}
        self._memo_lock = threading.Lock()

    def _memo(self, root: str) -> StatMemo:
        memo = self._memos.get(root)
        if memo is None:
            memo = self._memos[root] = StatMemo(self.store, Path(root))
        return memo

    def plan(self, node: CombinablePart | CombinedSpec, index: int) -> LayerPlan:
        parts: tuple[CombinablePart, ...] = (
            node.parts if isinstance(node, CombinedSpec) else (node,)
        )
        seen = self.footprint.layer(index)
        if len(parts) == 1:
            # One node's entries come out unique and already in order: a directory walk
            # sorts each directory's children by name, and puts what is below a directory
            # right after it, which is sort_key's order. Sorting 10,000 entries again is a
            # tenth of a no-op rebuild's planning.
            entries, hashed, pending = self._digest_all(self._entries(parts[0], seen), index)
            return self._plan_of(entries, hashed, pending)
        raw: list[_Raw] = []
        for part in parts:
            raw.extend(self._entries(part, seen))
        by_path: dict[str, _Raw] = {}
        for r in raw:
            if r.path in by_path:
                first = by_path[r.path]
                raise SpecError(
                    [
                        SpecProblem(
                            r.part.pos,
                            f"{r.part.label}: /{r.path} is already in this layer "
                            f"(from {first.part.label} at {first.part.pos})",
                        )
                    ]
                )
            by_path[r.path] = r
        ordered = sorted(by_path.values(), key=lambda r: sort_key(r.path))
        entries, hashed, pending = self._digest_all(ordered, index)
        return self._plan_of(entries, hashed, pending)

    def _plan_of(
        self,
        entries: list[PlannedEntry],
        hashed: int,
        pending: tuple[tuple[int, str, str], ...],
    ) -> LayerPlan:
        if pending:
            return LayerPlan(tuple(entries), "", self.mtime, 0, pending)
        return LayerPlan(
            tuple(entries), cache_key(entries, self.mtime, self.codec), self.mtime, hashed
        )

    def file_digest(self, source: Path, index: int, origin: str) -> tuple[str, StatKey]:
        """The content digest of the host file `source` (a symlink is followed) and the stat
        key it stands for: from the stat memo when the file is unchanged, else read once and
        remembered. Noted in layer `index`'s footprint, as a file source is."""
        real = os.path.realpath(source)
        try:
            st = os.stat(real)
        except OSError as e:
            raise SourceError(f"{origin}: {source}: {e.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise SourceError(f"{origin}: {source} is not a regular file")
        key = stat_key(st)
        seen = self.footprint.layer(index)
        seen.links.append((str(source), real))
        seen.saw(real, key)
        with self._memo_lock:
            memo = self._memo(real)
            known = memo.lookup("", key)
        if known is not None:
            return known, key
        progress = ProgressThrottle(self.sink, index, "hashing", st.st_size)
        digest = hash_file(real, self.cancel, progress)
        try:
            after = stat_key(os.stat(real))
        except OSError as e:
            raise SourceError(f"cannot read {real}: {e.strerror}") from None
        if after != key:
            raise SourceError(f"{real} changed while it was being read; build again")
        with self._memo_lock:
            memo.remember("", key, digest)
            memo.save()
        return digest, key

    # -- entries per node kind ---------------------------------------------------------------

    def _entries(self, part: CombinablePart, seen: LayerFootprint) -> list[_Raw]:
        if isinstance(part, FileSpec):
            return [self._file(part, seen)]
        if isinstance(part, SymlinkSpec):
            return [
                _Raw(
                    part,
                    part.path.lstrip("/"),
                    "symlink",
                    0o777,
                    part.uid,
                    part.gid,
                    target=part.target,
                )
            ]
        return self._directory(part, seen)

    def _file(self, part: FileSpec, seen: LayerFootprint) -> _Raw:
        rel = part.path.lstrip("/")
        if part.contents is not None:
            return _Raw(
                part,
                rel,
                "file",
                0o644 if part.mode is None else part.mode,
                part.uid,
                part.gid,
                size=len(part.contents),
                inline=part.contents,
                digest=hashlib.sha256(part.contents).hexdigest(),
            )
        assert part.source is not None
        # A file source may be a symlink: we copy what it points to.
        real = os.path.realpath(part.source)
        try:
            st = os.stat(real)
        except OSError as e:
            raise SourceError(
                f"{part.pos}: {part.label}.source: {part.source}: {e.strerror}"
            ) from None
        if not stat.S_ISREG(st.st_mode):
            raise SourceError(
                f"{part.pos}: {part.label}.source: {part.source} is not a regular file"
            )
        mode = part.mode if part.mode is not None else (0o755 if st.st_mode & 0o111 else 0o644)
        key = stat_key(st)
        seen.links.append((str(part.source), real))
        seen.saw(real, key)
        return _Raw(
            part,
            rel,
            "file",
            mode,
            part.uid,
            part.gid,
            size=st.st_size,
            source=real,
            memo_root=real,
            memo_rel="",
            stat=key,
        )

    def _directory(self, part: DirectorySpec, seen: LayerFootprint) -> list[_Raw]:
        out: list[_Raw] = []
        base = part.path.lstrip("/")
        if base:
            out.append(_Raw(part, base, "dir", part.mode, part.uid, part.gid))
        if part.source is None:
            return out
        root = os.path.realpath(part.source)
        if not os.path.isdir(root):
            raise SourceError(f"{part.pos}: {part.label}.source: {part.source} is not a directory")
        seen.links.append((str(part.source), root))
        self._walk(part, root, "", base, out, seen)
        return out

    def _walk(
        self,
        part: DirectorySpec,
        root: str,
        rel_dir: str,
        image_dir: str,
        out: list[_Raw],
        seen: LayerFootprint,
    ) -> None:
        """Appends the entries below `rel_dir` to `out`, depth first, each directory's children
        in name order. Iterative, with a stack of open directories: a tree may be deeper than
        Python's recursion limit (1,000 frames), and one list for the whole walk, not nested
        generators, passes no entry up through a frame per level."""
        # Each frame: a directory's remaining children, its rel and image paths, and where its
        # own entry sits in `out` (-1 for the walk's root, which has none here).
        stack = [(iter(self._listing(part, root, rel_dir, seen)), rel_dir, image_dir, -1)]
        while stack:
            children, rel_dir, image_dir, mark = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                # A directory is kept if anything below it is, or if it matches itself.
                empty = mark >= 0 and len(out) == mark + 1
                if empty and part.include and not glob_match(part.include, rel_dir):
                    out.pop()
                continue
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            image_path = f"{image_dir}/{child.name}" if image_dir else child.name
            if part.exclude and glob_match(part.exclude, rel):
                continue
            if child.path in self.skip:
                continue
            try:
                st = child.stat(follow_symlinks=False)
            except OSError as e:
                raise SourceError(
                    f"{part.pos}: {part.label}: cannot stat {child.path}: {e.strerror}"
                ) from None
            if stat.S_ISDIR(st.st_mode):
                mark = len(out)
                out.append(_Raw(part, image_path, "dir", part.dir_mode, part.uid, part.gid))
                listing = self._listing(part, root, rel, seen)
                stack.append((iter(listing), rel, image_path, mark))
                continue
            if part.include and not glob_match(part.include, rel):
                continue
            key = stat_key(st)
            if stat.S_ISLNK(st.st_mode):
                seen.saw(child.path, key)
                # Kept as a link, never followed: nothing outside the tree is ever read.
                out.append(
                    _Raw(
                        part,
                        image_path,
                        "symlink",
                        0o777,
                        part.uid,
                        part.gid,
                        target=os.readlink(child.path),
                    )
                )
            elif stat.S_ISREG(st.st_mode):
                seen.saw(child.path, key)
                mode = part.file_mode
                if mode is None:
                    mode = 0o755 if st.st_mode & 0o111 else 0o644
                out.append(
                    _Raw(
                        part,
                        image_path,
                        "file",
                        mode,
                        part.uid,
                        part.gid,
                        size=st.st_size,
                        source=child.path,
                        memo_root=root,
                        memo_rel=rel,
                        stat=key,
                    )
                )
            else:
                self.sink(
                    Log("warning", f"{part.label}: skipped {rel}: not a file, directory or symlink")
                )

    def _listing(
        self, part: DirectorySpec, root: str, rel_dir: str, seen: LayerFootprint
    ) -> list[os.DirEntry[str]]:
        """The children of `rel_dir`, sorted by name, and noted in the footprint."""
        here = os.path.join(root, rel_dir) if rel_dir else root
        try:
            with os.scandir(here) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as e:
            raise SourceError(
                f"{part.pos}: {part.label}: cannot list {here}: {e.strerror}"
            ) from None
        if self.cancel is not None:
            self.cancel.check()  # once per directory: lstat is cheap, the check is not
        seen.listings.append((here, [c.name for c in children]))
        return children

    # -- content digests -------------------------------------------------------------------

    def _digest_all(
        self, raws: list[_Raw], index: int
    ) -> tuple[list[PlannedEntry], int, tuple[tuple[int, str, str], ...]]:
        pending: list[tuple[int, _Raw, StatMemo]] = []
        digests: dict[int, str] = {}
        guesses: dict[int, str] = {}
        memo: StatMemo | None = None
        memo_root = ""
        with self._memo_lock:
            for i, r in enumerate(raws):
                if r.type != "file" or r.inline is not None:
                    continue
                if memo is None or r.memo_root != memo_root:
                    memo_root = r.memo_root
                    memo = self._memo(memo_root)
                assert r.stat is not None
                known = memo.lookup(r.memo_rel, r.stat)
                if known is not None:
                    digests[i] = known
                    continue
                pending.append((i, r, memo))
                guess = memo.guess(r.memo_rel, r.size)
                if guess is not None:
                    guesses[i] = guess
        if pending and self.speculate and not self._probably_cached(raws, digests, guesses):
            # Saved now, with the entries it knew, though nothing new is in it yet.
            self._save_memos({m for _, _, m in pending})
            speculative = tuple((i, r.memo_root, r.memo_rel) for i, r, _ in pending)
            return self._entries_of(raws, digests), 0, speculative
        total = sum(r.size for _, r, _ in pending)
        progress = ProgressThrottle(self.sink, index, "hashing", total) if pending else None
        for i, r, memo in pending:
            digest = hash_file(r.source, self.cancel, progress)
            # The file must still be what we stat'ed, or the digest may not match the bytes
            # the tar writer will read.
            try:
                after = stat_key(os.lstat(r.source))
            except OSError as e:
                raise SourceError(f"cannot read {r.source}: {e.strerror}") from None
            if after != r.stat:
                raise SourceError(f"{r.source} changed while it was being read; build again")
            digests[i] = digest
            with self._memo_lock:
                memo.remember(r.memo_rel, r.stat, digest)
        self._save_memos({self._memos[root] for root in {r.memo_root for r in raws} if root})
        return self._entries_of(raws, digests), total, ()

    def _probably_cached(
        self, raws: list[_Raw], digests: dict[int, str], guesses: dict[int, str]
    ) -> bool:
        """Whether the layer's key, with the memo's last digests for the unknown files, is in
        the cache: then hashing first is likely to save the build."""
        if len(guesses) + len(digests) < sum(
            1 for r in raws if r.type == "file" and r.inline is None
        ):
            return False
        guessed = self._entries_of(raws, {**digests, **guesses})
        return RecordIndex(self.store).get(cache_key(guessed, self.mtime, self.codec)) is not None

    def _save_memos(self, memos: Iterable[StatMemo]) -> None:
        with self._memo_lock:
            for memo in memos:
                memo.save()

    def _entries_of(self, raws: list[_Raw], digests: dict[int, str]) -> list[PlannedEntry]:
        return [
            _planned_entry(
                path=r.path,
                type=r.type,
                mode=r.mode,
                uid=r.uid,
                gid=r.gid,
                size=r.size if r.type == "file" else 0,
                digest=digests.get(i, r.digest),
                target=r.target,
                origin=r.part.label,
                source=r.source,
                inline=r.inline,
                stat=r.stat,
            )
            for i, r in enumerate(raws)
        ]

    def complete(self, plan: LayerPlan, hashed: Iterable[tuple[int, str]]) -> LayerPlan:
        """A speculative plan with the digests the layer writer computed, and so its key; the
        digests go into the stat memo. A complete plan is returned as it is."""
        if not plan.pending:
            return plan
        digests = dict(hashed)
        entries = list(plan.entries)
        with self._memo_lock:
            for i, root, rel in plan.pending:
                e = entries[i]
                assert e.stat is not None
                entries[i] = replace(e, digest=digests[i])
                self._memo(root).remember(rel, e.stat, digests[i])
        self._save_memos({self._memos[root] for _, root, _ in plan.pending})
        return LayerPlan(
            tuple(entries),
            cache_key(entries, plan.mtime, self.codec),
            plan.mtime,
            sum(entries[i].size for i, _, _ in plan.pending),
        )


@dataclass
class _Raw:
    part: CombinablePart
    path: str
    type: str
    mode: int
    uid: int
    gid: int
    size: int = 0
    target: str = ""
    source: str = ""
    inline: bytes | None = None
    digest: str = ""
    memo_root: str = ""
    memo_rel: str = ""
    stat: StatKey | None = None
