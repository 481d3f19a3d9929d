"""What an image holds, for people: manifest, config, layers, and each layer's files with the
spec node that put them there. The headless half of the workbench's Details and Contents panes
and all of `vinci inspect`, so the two always agree.

    BuildResult | local image -> ImageInfo (manifest, config, LayerInfo per image layer)
    LayerInfo (+ its LayerPlan when vinci built it) -> [FileEntry] -> FileTree

A layer vinci built has a plan listing exactly the tar entries it wrote (the cache key covers
every field), so its files are listed from the plan, without decompressing anything. An
imported layer, or one read from a layout or archive, has no plan: its blob is streamed through
engine.tar.read. Reading a file's contents always goes to the blob: that is the truth, and
the host file a plan names may have changed since.
"""

from __future__ import annotations

import json
import operator
import posixpath
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Generic, NamedTuple, Protocol, TypeVar

from engine.builder.plan import LayerPlan, PlannedEntry
from engine.builder.result import BuildResult
from engine.cancel import CancelToken
from engine.errors import ImageImportError, LayerReadError, VinciError
from engine.humanize import human_bytes
from engine.oci import mediatypes
from engine.oci.descriptor import Descriptor
from engine.oci.digest import Digest
from engine.sources.image import OpenedImage
from engine.tar.format import TAR_FORMAT
from engine.tar.read import (
    DEFAULT_TEXT_LIMIT,
    TYPES,
    FileContent,
    TarEntry,
    iter_layer,
    read_member,
)


class BlobSource(Protocol):
    """Where layer blobs are read from: the cache (BlobStore) or an opened image (ImageBlobs)."""

    def open_blob(self, digest: Digest) -> BinaryIO: ...


class ImageBlobs:
    """The blobs of any opened image (a layout, an archive, a registry reference), found by
    digest. Closing it closes the image."""

    def __init__(self, image: OpenedImage) -> None:
        self.image = image
        self._layers = {layer.descriptor.digest: layer for layer in image.layers}

    def open_blob(self, digest: Digest) -> BinaryIO:
        layer = self._layers.get(digest)
        if layer is None:
            raise ImageImportError(f"{self.image.ref.where}: no layer {digest}")
        return self.image.open_layer(layer)

    def close(self) -> None:
        self.image.close()


# -- the image ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerInfo:
    """One image layer (one manifest entry) and, when known, the spec node behind it."""

    position: int  # index in the manifest's layers
    descriptor: Descriptor
    diff_id: Digest
    node: int | None = None  # index of the spec's layer node
    label: str = ""  # e.g. "layers[1].file"
    summary: str = ""  # e.g. "file /message", or the history's created_by
    cache_key: str = ""
    cache_hit: bool | None = None
    uncompressed_size: int | None = None

    @property
    def compression(self) -> str:
        return mediatypes.layer_compression(self.descriptor.media_type)

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "node": self.node,
            "label": self.label,
            "summary": self.summary,
            "digest": str(self.descriptor.digest),
            "diff_id": str(self.diff_id),
            "media_type": self.descriptor.media_type,
            "size": self.descriptor.size,
            "uncompressed_size": self.uncompressed_size,
            "compression": self.compression,
            "cache_key": self.cache_key or None,
            "cache_hit": self.cache_hit,
        }


@dataclass(frozen=True)
class ImageInfo:
    source: str  # the spec or layout it came from
    reference: str  # image name, "" if none
    platform: str
    manifest: Descriptor | None  # None for a docker-archive, which has no manifest blob
    config: Descriptor
    layers: tuple[LayerInfo, ...]
    codec: str = ""  # the codec identity vinci built with, "" for a local image
    # The config's runtime part (Entrypoint, Env, User, …) and its history, as the image has
    # them: what a person running the image wants to know first.
    runtime: dict[str, Any] = field(default_factory=dict)
    history: tuple[dict[str, Any], ...] = ()
    # Every platform of the image index (or multi-platform spec) this image is one of.
    platforms: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        extra = {"platforms": list(self.platforms)} if self.platforms else {}
        return {
            **extra,
            "source": self.source,
            "reference": self.reference or None,
            "platform": self.platform,
            "manifest": self.manifest.to_json() if self.manifest is not None else None,
            "config": self.config.to_json(),
            "codec": self.codec or None,
            "layers": [layer.to_json() for layer in self.layers],
            "runtime_config": self.runtime,
            "history": list(self.history),
        }


def image_from_result(result: BuildResult) -> ImageInfo:
    layers: list[LayerInfo] = []
    for r in result.layers:
        record = r.record
        for descriptor, diff_id, usize in zip(
            record.descriptors, record.diff_ids, record.uncompressed_sizes, strict=True
        ):
            layers.append(
                LayerInfo(
                    position=len(layers),
                    descriptor=descriptor,
                    diff_id=diff_id,
                    node=r.index,
                    label=r.label,
                    summary=r.summary,
                    cache_key=record.key,
                    cache_hit=r.cache_hit,
                    uncompressed_size=usize or None,
                )
            )
    spec = result.spec
    config = json.loads(result.store().read_blob(result.config.digest))
    return ImageInfo(
        source=spec.display_path,
        reference=str(spec.image) if spec.image is not None else "",
        platform=str(spec.platform),
        manifest=result.manifest,
        config=result.config,
        layers=tuple(layers),
        codec=result.codec.identity,
        runtime=_runtime(config),
        history=_history_of(config),
    )


def _runtime(config: dict[str, Any]) -> dict[str, Any]:
    runtime = config.get("config")
    return dict(runtime) if isinstance(runtime, dict) else {}


def _history_of(config: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    history = config.get("history")
    if not isinstance(history, list):
        return ()
    return tuple(h for h in history if isinstance(h, dict))


def image_info(image: OpenedImage) -> ImageInfo:
    """What `vinci inspect` shows of an image it did not build."""
    layers = tuple(
        LayerInfo(
            position=layer.position,
            descriptor=layer.descriptor,
            diff_id=layer.diff_id,
            summary=layer.created_by.removeprefix("vinci: "),
        )
        for layer in image.layers
    )
    manifest = image.ref.manifest
    manifest_descriptor = None
    if manifest and image.raw_manifest is not None:
        media = str((image.manifest or {}).get("mediaType") or mediatypes.OCI_MANIFEST)
        manifest_descriptor = Descriptor(media, Digest.parse(manifest), len(image.raw_manifest))
    config = Descriptor(
        mediatypes.OCI_CONFIG, Digest.parse(image.ref.config), len(image.raw_config)
    )
    os_name = str(image.config.get("os") or "")
    arch = str(image.config.get("architecture") or "")
    variant = str(image.config.get("variant") or "")
    platform = "/".join(p for p in (os_name, arch, variant) if p)
    return ImageInfo(
        source=image.ref.where,
        reference="",
        platform=platform,
        manifest=manifest_descriptor,
        config=config,
        layers=layers,
        runtime=_runtime(image.config),
        history=_history_of(image.config),
        platforms=tuple(str(p) for p in image.platforms),
    )


# -- a layer's files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    """One file of a layer, as the Contents pane and `vinci inspect --layer` show it."""

    path: str  # absolute in the image
    type: str  # file | dir | symlink | hardlink | char | block | fifo | whiteout | opaque
    mode: int
    uid: int
    gid: int
    size: int
    target: str
    origin: str  # the spec node that put it there ("" when unknown)
    # The host file it was read from, as the spec names it ("./site/a.txt"); "" for inline
    # contents, directories, links, and layers vinci did not build.
    source: str = ""
    # What it does to the layers below (engine.analysis): added | modified | removed, or "".
    change: str = ""
    layer: int = -1  # the image layer position it is in, once analysed
    digest: str = ""  # a file's content sha256 when known (from a plan), else ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "type": self.type,
            "mode": f"{self.mode:04o}",
            "uid": self.uid,
            "gid": self.gid,
            "size": self.size,
            "target": self.target or None,
            "origin": self.origin or None,
        }
        if self.source:
            out["source"] = self.source
        if self.change:
            out["change"] = self.change
        return out


def source_text(host: str, base: str | None) -> str:
    """A host path as the origin column shows it: relative to the spec's directory
    ("./site/a.txt") when it is under it, else as it is."""
    if not host or base is None:
        return host
    rel = posixpath.relpath(host, base) if host.startswith(base.rstrip("/") + "/") else ""
    return "./" + rel if rel else host


def _from_planned(e: PlannedEntry, base: str | None = None) -> FileEntry:
    return FileEntry(
        "/" + e.path,
        e.type,
        e.mode,
        e.uid,
        e.gid,
        e.size,
        e.target,
        e.origin,
        source_text(e.source, base),
        digest=e.digest,
    )


WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"


def _layer_type(e: TarEntry) -> str:
    """The tar type, or what an OCI layer means by the entry: a whiteout hides a path below,
    an opaque whiteout a whole directory. A type no unpacker knows is shown as a file, with
    the data it carries."""
    base = posixpath.basename(e.path)
    if base == OPAQUE_WHITEOUT:
        return "opaque"
    if base.startswith(WHITEOUT_PREFIX):
        return "whiteout"
    return e.type if e.type in TYPES.values() else "file"


def _from_tar(e: TarEntry, origin: str) -> FileEntry:
    kind = _layer_type(e)
    target = e.linkname
    if kind == "hardlink":
        target = "/" + posixpath.normpath("/" + target).lstrip("/")
    size = e.size if kind == "file" else 0
    return FileEntry("/" + e.path, kind, e.mode, e.uid, e.gid, size, target, origin)


def entries_from_plan(plan: LayerPlan, base: str | None = None) -> list[FileEntry]:
    """The entries of a plan; host paths shown relative to `base` (the spec's directory)."""
    return [_from_planned(e, base) for e in plan.entries]


def entries_from_blob(
    blobs: BlobSource,
    descriptor: Descriptor,
    origin: str = "",
    cancel: CancelToken | None = None,
) -> list[FileEntry]:
    try:
        with blobs.open_blob(descriptor.digest) as raw:
            return [_from_tar(e, origin) for e in iter_layer(raw, cancel)]
    except LayerReadError as e:
        raise LayerReadError(f"layer {descriptor.digest.short}: {e}") from None


def layer_entries(
    blobs: BlobSource,
    layer: LayerInfo,
    plan: LayerPlan | None = None,
    cancel: CancelToken | None = None,
    *,
    base: str | None = None,
) -> list[FileEntry]:
    """The files of `layer`: from its plan when vinci built it (host paths relative to `base`),
    else from its blob."""
    if plan is not None:
        return entries_from_plan(plan, base)
    return entries_from_blob(blobs, layer.descriptor, layer.label, cancel)


def read_layer_file(
    blobs: BlobSource,
    descriptor: Descriptor,
    path: str,
    limit: int = DEFAULT_TEXT_LIMIT,
    cancel: CancelToken | None = None,
) -> FileContent | None:
    """The first `limit` bytes of `path` as the layer blob holds it."""
    try:
        with blobs.open_blob(descriptor.digest) as raw:
            return read_member(raw, path, limit, cancel)
    except LayerReadError as e:
        raise LayerReadError(f"layer {descriptor.digest.short}: {e}") from None


def plan_for(result: BuildResult, layer: LayerInfo) -> LayerPlan | None:
    """The plan of the spec node behind `layer`, if vinci built it (None for imports)."""
    if layer.node is None:
        return None
    for r in result.layers:
        if r.index == layer.node:
            return r.plan
    return None


# -- a tree of files ---------------------------------------------------------------------------


@dataclass
class TreeNode:
    """A directory or file in a layer's tree. `entry` is None for a directory the layer does
    not hold itself but that its paths imply (vinci adds no implicit parents)."""

    name: str
    path: str
    entry: FileEntry | None
    children: dict[str, TreeNode] = field(default_factory=dict)
    total: int = 0  # bytes of regular files at or below this node

    @property
    def is_dir(self) -> bool:
        return bool(self.children) or self.entry is None or self.entry.type == "dir"

    def sorted_children(self, by: str = "name") -> list[TreeNode]:
        nodes = self.children.values()
        if by == "size":
            return sorted(nodes, key=_by_size)
        return sorted(nodes, key=_by_name)


_by_name = operator.attrgetter("name")


def _by_size(node: TreeNode) -> tuple[int, str]:
    return -node.total, node.name


def build_tree(entries: Iterable[FileEntry]) -> TreeNode:
    root = TreeNode("/", "/", None)
    # Every node by path, parents before children (a parent is made before what is below
    # it): each entry finds its parent by one lookup, and the totals are summed in one pass
    # over this order reversed, with no recursion (a tree may be deeper than Python's limit).
    nodes: dict[str, TreeNode] = {"/": root}
    for entry in entries:
        path = "/" + entry.path.strip("/")
        node = nodes.get(path)
        if node is None:
            above, _, name = path.rpartition("/")
            parent = nodes.get(above or "/")
            if parent is None:
                node = _make(nodes, path)
            else:  # the usual case (a tar lists a directory before what is in it)
                node = parent.children[name] = nodes[path] = TreeNode(name, path, None)
        # A later entry for the same path wins, as it does when the layer is unpacked.
        node.entry = entry
    for path, node in reversed(nodes.items()):
        held = node.entry
        # A removed entry (engine.analysis) shows what it removed, which the layer no longer holds.
        if held is not None and held.type == "file" and held.change != "removed":
            node.total += held.size
        if node is not root:
            nodes[path.rpartition("/")[0] or "/"].total += node.total
    return root


def _make(nodes: dict[str, TreeNode], path: str) -> TreeNode:
    """The node at `path`, made with every missing directory above it (implied: no entry)."""
    missing = []
    at = path
    while at not in nodes:
        missing.append(at)
        at = at.rpartition("/")[0] or "/"
    node = nodes[at]
    for at in reversed(missing):
        name = at.rpartition("/")[2]
        child = TreeNode(name, at, None)
        node.children[name] = child
        nodes[at] = child
        node = child
    return node


def matching_paths(root: TreeNode, needle: str) -> set[str]:
    """Paths to show for a filter: every node whose path contains `needle` (case-insensitive)
    and every directory above one, so a match is never shown without its place."""
    needle = needle.lower()
    keep: set[str] = set()
    # Iterative, parents before children; a hit keeps every ancestor on its way up.
    stack: list[tuple[TreeNode, tuple[str, ...]]] = [(root, ())]
    while stack:
        node, above = stack.pop()
        if needle in node.path.lower() and node.path != "/":
            keep.add(node.path)
            for path in reversed(above):
                if path in keep:
                    break
                keep.add(path)
        below = (*above, node.path)
        stack.extend((child, below) for child in node.children.values())
    return keep


class TreeRow(NamedTuple):
    """One visible line of a tree: `guides` are the branch characters before the name.
    A named tuple, not a frozen dataclass: the workbench makes one per visible row on every
    sort, filter keystroke and fold, and a tuple is made five times faster."""

    node: TreeNode
    depth: int
    guides: str


def tree_rows(
    root: TreeNode,
    by: str = "name",
    expanded: Callable[[str], bool] = lambda _path: True,
    only: set[str] | None = None,
) -> Iterator[TreeRow]:
    """The visible rows of `root` (not itself), depth first, siblings sorted `by`."""

    def shown(node: TreeNode) -> list[TreeNode]:
        kids = node.sorted_children(by)
        return kids if only is None else [c for c in kids if c.path in only]

    # A stack of the (siblings, next index, guide prefix) above, not recursion: a tree may be
    # deeper than Python's recursion limit. Siblings are walked in the inner branch without
    # touching the stack: this runs for every visible row on each sort, filter and fold.
    stack: list[tuple[list[TreeNode], int, str]] = []
    kids, i, prefix = shown(root), 0, ""
    while True:
        if i < len(kids):
            child = kids[i]
            i += 1
            last = i == len(kids)
            yield TreeRow(child, len(stack), prefix + ("└── " if last else "├── "))
            if child.children and (only is not None or expanded(child.path)):
                stack.append((kids, i, prefix))
                kids, i, prefix = shown(child), 0, prefix + ("    " if last else "│   ")
        elif stack:
            kids, i, prefix = stack.pop()
        else:
            return


# -- formatting shared by the CLI and the workbench ----------------------------------------------

_TYPE_CHARS = {
    "file": "-",
    "dir": "d",
    "symlink": "l",
    "hardlink": "h",
    "char": "c",
    "block": "b",
    "fifo": "p",
    "whiteout": "w",
    "opaque": "w",
}


def format_mode(kind: str, mode: int) -> str:
    """ls-style: '-rwxr-xr-x', 'drwxr-xr-x', 'lrwxrwxrwx'; 'h' for hardlinks, 'w' whiteouts."""
    return _TYPE_CHARS.get(kind, "?") + stat.filemode(mode)[1:]


def entry_columns(entry: FileEntry | None) -> tuple[str, str, str]:
    """(mode, uid:gid, size) as printed; an implied directory shows as such."""
    if entry is None:
        return "d?????????", "-", "-"
    size = human_bytes(entry.size) if entry.type == "file" else "-"
    return format_mode(entry.type, entry.mode), f"{entry.uid}:{entry.gid}", size


def entry_name(node: TreeNode) -> str:
    """A node's name as shown: directories end in '/', links show their target."""
    entry = node.entry
    if entry is not None and entry.type == "symlink":
        return f"{node.name} -> {entry.target}"
    if entry is not None and entry.type == "hardlink":
        return f"{node.name} => {entry.target}"
    return node.name + "/" if node.is_dir else node.name


# -- the cache key and what changed --------------------------------------------------------------


def key_inputs(plan: LayerPlan, codec_identity: str) -> list[tuple[str, str]]:
    """What went into a built layer's cache key (engine.builder.plan.cache_key), as labelled
    values."""
    return [
        ("tar format", TAR_FORMAT),
        ("codec", codec_identity),
        ("mtime", str(plan.mtime)),
        ("entries", f"{len(plan.entries)} ({human_bytes(plan.content_bytes)} of content)"),
    ]


@dataclass(frozen=True)
class InputChange:
    path: str
    change: str  # added | removed | content | mode | owner | type | target | size
    before: str = ""
    after: str = ""

    def __str__(self) -> str:
        if self.change in ("added", "removed"):
            return f"{self.path}: {self.change}"
        return f"{self.path}: {self.change} {self.before} -> {self.after}"


def input_changes(before: LayerPlan | None, after: LayerPlan) -> list[InputChange]:
    """How the inputs of a layer node differ between two plans of it, path by path."""
    if before is None:
        return []
    old = {e.path: e for e in before.entries}
    new = {e.path: e for e in after.entries}
    out: list[InputChange] = []
    for path in sorted(old.keys() | new.keys()):
        shown = "/" + path
        a, b = old.get(path), new.get(path)
        if a is None:
            out.append(InputChange(shown, "added"))
        elif b is None:
            out.append(InputChange(shown, "removed"))
        else:
            out.extend(_entry_changes(shown, a, b))
    if before.mtime != after.mtime:
        out.append(InputChange("(mtime)", "mtime", str(before.mtime), str(after.mtime)))
    return out


def _entry_changes(path: str, a: PlannedEntry, b: PlannedEntry) -> list[InputChange]:
    out = []
    if a.type != b.type:
        out.append(InputChange(path, "type", a.type, b.type))
    if a.digest != b.digest:
        out.append(InputChange(path, "content", _short(a.digest), _short(b.digest)))
    elif a.size != b.size:
        out.append(InputChange(path, "size", str(a.size), str(b.size)))
    if a.mode != b.mode:
        out.append(InputChange(path, "mode", f"{a.mode:04o}", f"{b.mode:04o}"))
    if (a.uid, a.gid) != (b.uid, b.gid):
        out.append(InputChange(path, "owner", f"{a.uid}:{a.gid}", f"{b.uid}:{b.gid}"))
    if a.target != b.target:
        out.append(InputChange(path, "target", a.target, b.target))
    return out


def _short(hexdigest: str) -> str:
    return hexdigest[:12] if hexdigest else "-"


def require_layer(image: ImageInfo, position: int) -> LayerInfo:
    if not 0 <= position < len(image.layers):
        raise VinciError(
            f"layer {position} does not exist: the image has {len(image.layers)} layers "
            f"(0..{len(image.layers) - 1})"
        )
    return image.layers[position]


# -- the merged image --------------------------------------------------------------------------
#
# What a container sees: every layer applied in order. A whiteout (`.wh.NAME`) removes NAME of
# the layers below, an opaque whiteout (`.wh..wh..opq`) everything below its directory from
# the layers below, and a non-directory replaces a directory with everything under it.

MAX_SYMLINKS = 40  # as the kernel's path walk: more hops than this is a loop


@dataclass(frozen=True)
class MergedEntry:
    """The entry an unpacker leaves at a path, and the layer (position) it came from."""

    layer: LayerInfo
    entry: TarEntry


LayerReader = Callable[[LayerInfo], ContextManager[Iterable[TarEntry]]]


def merged_index(
    blobs: BlobSource,
    layers: Iterable[LayerInfo],
    cancel: CancelToken | None = None,
    read: LayerReader | None = None,
) -> dict[str, MergedEntry]:
    """Path (relative, as TarEntry.path) -> what the image holds there. Holds metadata only:
    one entry per path of the image. `read` gives a layer's entries (the SBOM's hashes them,
    or lists a built layer from its plan); by default each blob is streamed, unhashed."""

    @contextmanager
    def from_blob(layer: LayerInfo) -> Iterator[Iterable[TarEntry]]:
        with blobs.open_blob(layer.descriptor.digest) as raw:
            yield iter_layer(raw, cancel)

    tree: PathTree[MergedEntry] = PathTree()
    for layer in layers:
        added: dict[str, MergedEntry] = {}
        removed: list[str] = []
        opaque: list[str] = []
        try:
            with (read or from_blob)(layer) as entries:
                for e in entries:
                    parent, base = posixpath.split(e.path)
                    if base == OPAQUE_WHITEOUT:
                        opaque.append(parent)
                    elif base.startswith(WHITEOUT_PREFIX):
                        removed.append(posixpath.join(parent, base[len(WHITEOUT_PREFIX) :]))
                    elif e.path:
                        added[e.path] = MergedEntry(layer, e)  # a later one in a layer wins
        except LayerReadError as err:
            raise LayerReadError(f"layer {layer.descriptor.digest.short}: {err}") from None
        for path in removed:
            tree.remove(path, itself=True)
        for path in opaque:
            tree.remove(path, itself=False)
        for path, merged in added.items():
            if merged.entry.type != "dir":
                tree.remove(path, itself=False)
            tree.put(path, merged)
    return tree.values


T = TypeVar("T")


class PathTree(Generic[T]):
    """An image's paths as its layers leave them: path -> value, and each directory's children,
    so removing a subtree visits that subtree only (a scan of every path per replaced file made
    merging a 10,000-file layer take seconds). Paths are relative ("" the root) or absolute
    ("/" the root). Directories no path names (a tar without its parents' entries) are kept
    as parents too, as an unpacker creates them."""

    def __init__(self) -> None:
        self.values: dict[str, T] = {}
        self._children: dict[str, set[str]] = {}

    def put(self, path: str, value: T) -> None:
        child, parent = path, posixpath.dirname(path)
        while parent != child:
            siblings = self._children.setdefault(parent, set())
            if child in siblings:
                break
            siblings.add(child)
            child, parent = parent, posixpath.dirname(parent)
        self.values[path] = value

    def remove(self, path: str, *, itself: bool) -> list[T]:
        """Removes everything below `path` (and `path` itself, with `itself`); what was there."""
        gone: list[T] = []
        parent = posixpath.dirname(path)
        if itself and parent != path:
            if (value := self.values.pop(path, None)) is not None:
                gone.append(value)
            self._children.get(parent, set()).discard(path)
        todo = [path]
        while todo:
            for child in self._children.pop(todo.pop(), ()):
                if (value := self.values.pop(child, None)) is not None:
                    gone.append(value)
                todo.append(child)
        return gone


def resolve_path(index: dict[str, MergedEntry], path: str) -> str:
    """`path` with every symlink on the way resolved inside the image (never on the host), the
    last one too; relative links from their directory, absolute ones from the image's root,
    `..` never above it."""
    pending = [p for p in reversed(path.split("/")) if p]
    resolved = ""
    hops = 0
    while pending:
        name = pending.pop()
        if name == ".":
            continue
        if name == "..":
            resolved = posixpath.dirname(resolved)
            continue
        candidate = posixpath.join(resolved, name) if resolved else name
        merged = index.get(candidate)
        if merged is not None and merged.entry.type == "symlink":
            hops += 1
            if hops > MAX_SYMLINKS:
                raise VinciError(f"/{path}: too many levels of symbolic links in the image")
            target = merged.entry.linkname
            if target.startswith("/"):
                resolved = ""
            pending.extend(p for p in reversed(target.split("/")) if p)
            continue
        resolved = candidate
    return resolved


def image_file(
    blobs: BlobSource, layers: Iterable[LayerInfo], path: str, cancel: CancelToken | None = None
) -> MergedEntry:
    """The regular file at `path` in the merged image, symlinks followed (a hardlink is the
    file it links to); a VinciError saying why when there is none."""
    index = merged_index(blobs, layers, cancel)
    wanted = posixpath.normpath("/" + path).lstrip("/")
    resolved = resolve_path(index, wanted)
    merged = index.get(resolved)
    shown = "/" + wanted + (f" (-> /{resolved})" if resolved != wanted else "")
    if merged is None:
        raise VinciError(f"{shown} is not in the image")
    if merged.entry.type == "hardlink":
        target = posixpath.normpath("/" + merged.entry.linkname).lstrip("/")
        linked = index.get(target)
        if linked is None or linked.entry.type != "file":
            raise VinciError(f"{shown} is a hardlink to /{target}, which is not a file")
        merged = linked
    if merged.entry.type != "file":
        raise VinciError(f"{shown} is a {merged.entry.type}, not a file")
    return merged


def copy_file_data(
    blobs: BlobSource,
    merged: MergedEntry,
    write: Callable[[bytes], object],
    limit: int | None = None,
    cancel: CancelToken | None = None,
) -> int:
    """Streams the data of `merged` (found by merged_index) to `write`, at most `limit`
    bytes; returns how many were written."""
    from engine.tar.compression import decompressed
    from engine.tar.read import TarReader

    wanted = merged.entry.offset
    left = merged.entry.size if limit is None else min(limit, merged.entry.size)
    written = 0
    with blobs.open_blob(merged.layer.descriptor.digest) as raw, decompressed(raw) as stream:
        reader = TarReader(stream, cancel, digests=False)
        for e in reader:
            if e.offset != wanted:
                continue
            while left:
                chunk = reader.read_data(min(left, 1 << 20))
                if not chunk:
                    break
                write(chunk)
                written += len(chunk)
                left -= len(chunk)
            break
    return written


# Tar type names (TarEntry.type) -> typeflags, for writing the merged filesystem.
_TYPEFLAGS = {
    "file": b"0",
    "hardlink": b"1",
    "symlink": b"2",
    "char": b"3",
    "block": b"4",
    "dir": b"5",
    "fifo": b"6",
}


def export_filesystem(
    blobs: BlobSource,
    layers: Sequence[LayerInfo],
    out: BinaryIO,
    cancel: CancelToken | None = None,
) -> int:
    """Writes the merged filesystem of `layers` to `out` as one tar stream, in one pass over
    each layer from the top down: an entry is written unless a layer above already wrote its
    path, removed it (whiteout, opaque directory) or put a non-directory above it. Entries
    keep their metadata (mtime, owner, mode, xattrs); whiteouts are applied, never written.
    Returns how many entries were written."""
    from engine.tar.compression import decompressed
    from engine.tar.format import END, TarHeader, encode_header, padding
    from engine.tar.read import TarReader

    seen: set[str] = set()
    covered: set[str] = set()  # removed, or a non-directory above: nothing below survives
    removed: set[str] = set()
    count = 0
    for layer in reversed(layers):
        whiteouts: set[str] = set()
        opaques: set[str] = set()
        try:
            with (
                blobs.open_blob(layer.descriptor.digest) as raw,
                decompressed(raw) as stream,
            ):
                reader = TarReader(stream, cancel, digests=False)
                for e in reader:
                    parent, base = posixpath.split(e.path)
                    if base == OPAQUE_WHITEOUT:
                        opaques.add(parent)
                        continue
                    if base.startswith(WHITEOUT_PREFIX):
                        whiteouts.add(posixpath.join(parent, base[len(WHITEOUT_PREFIX) :]))
                        continue
                    if not e.path or e.path in seen or e.path in removed:
                        continue
                    if e.type not in _TYPEFLAGS or _under(covered, e.path):
                        continue
                    seen.add(e.path)
                    if e.type != "dir":
                        covered.add(e.path)
                    linkname = e.linkname
                    if e.type == "hardlink":
                        linkname = posixpath.normpath("/" + linkname).lstrip("/")
                    out.write(
                        encode_header(
                            TarHeader(
                                name=e.path + "/" if e.type == "dir" else e.path,
                                type=_TYPEFLAGS[e.type],
                                mode=e.mode,
                                uid=e.uid,
                                gid=e.gid,
                                size=e.size,
                                mtime=_mtime(e.mtime),
                                linkname=linkname,
                                devmajor=e.devmajor,
                                devminor=e.devminor,
                                xattrs=_xattrs(e),
                            )
                        )
                    )
                    count += 1
                    if e.type == "file":
                        left = e.size
                        while left:
                            chunk = reader.read_data(min(left, 1 << 20))
                            if not chunk:
                                raise LayerReadError("truncated tar member data")
                            out.write(chunk)
                            left -= len(chunk)
                        out.write(padding(e.size))
        except LayerReadError as err:
            raise LayerReadError(f"layer {layer.descriptor.digest.short}: {err}") from None
        # For the layers below: a whiteout removes its path and all under it, an opaque
        # directory all under it (the directory itself stays).
        removed |= whiteouts
        covered |= whiteouts | opaques
    out.write(END)
    return count


def _xattrs(e: TarEntry) -> tuple[tuple[str, bytes], ...]:
    prefix = "SCHILY.xattr."
    return tuple(
        (k[len(prefix) :], v.encode("utf-8", "surrogateescape"))
        for k, v in e.extra
        if k.startswith(prefix)
    )


def _under(covered: set[str], path: str) -> bool:
    """Whether a strict ancestor of `path` is in `covered`."""
    parent = posixpath.dirname(path)
    while parent:
        if parent in covered:
            return True
        parent = posixpath.dirname(parent)
    return False


def _mtime(text: str) -> int:
    try:
        return max(0, min(int(float(text)), 0o77777777777))
    except ValueError:
        return 0
