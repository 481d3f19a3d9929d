"""What one built image holds, file by file, and where each file came from: the facts every
SBOM format is written from (engine/attest/spdx.py, cyclonedx.py).

A layer vinci built from files has a plan naming, per entry, its content digest, the spec
node that put it there and the host file it was read from: those layers are listed from the
plan, as the workbench's Contents pane lists them, without reading a blob. Every other layer
(an import, a tar, the accounts layer) is streamed once through the one tar reader, each file
hashed as it passes; /var/lib/dpkg/status is parsed on the way (engine/attest/dpkg.py). The
layers are then merged as a container sees them (engine.inspection.merged_index: whiteouts
honoured, a later layer wins), so the list is the image's files, not every layer's.

Nothing here depends on the host: host paths are given relative to the spec's directory,
spec positions as `<spec file name>:<line>`.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.attest.dpkg import DebPackage, StatusParser
from engine.builder.plan import PlannedEntry
from engine.builder.pool import ACCOUNTS_LABEL
from engine.builder.result import BuildResult
from engine.cache.records import IMPORT_CODEC
from engine.cancel import CancelToken
from engine.inspection import LayerInfo, image_from_result, merged_index
from engine.spec.model import (
    CombinedSpec,
    ImportOCISpec,
    ImportSpec,
    Spec,
    TarSpec,
)
from engine.tar.read import TarEntry, iter_hashed

DPKG_STATUS = "var/lib/dpkg/status"


@dataclass(frozen=True)
class ImageFile:
    """One regular file of the image, as a container sees it."""

    path: str  # absolute in the image
    sha256: str  # hex
    size: int
    mode: int
    layer: str  # the digest of the layer that put it there
    origin: str  # the spec node, e.g. "layers[2].directory" ("" when none is known)
    position: str  # where that node is written, "vinci.yaml:12"
    source: str  # the host file it came from, relative to the spec's directory ("" if none)


@dataclass(frozen=True)
class BaseImage:
    """An image the spec imports."""

    origin: str  # "layers[0].import-oci"
    position: str
    reference: str  # as the spec names it (a registry reference, or the path it wrote)
    digest: str  # its manifest digest (its config digest when it has no manifest)


@dataclass(frozen=True)
class ImageContents:
    manifest: str  # the image's manifest digest
    config: str
    name: str  # the image's name (repository), "" if the spec gives none
    platform: str
    created: int
    spec_file: str  # the spec's file name
    files: tuple[ImageFile, ...]  # sorted by path
    bases: tuple[BaseImage, ...]
    packages: tuple[DebPackage, ...]  # from the image's /var/lib/dpkg/status, sorted
    layers: tuple[str, ...]  # layer digests, bottom first


def image_contents(result: BuildResult, cancel: CancelToken | None = None) -> ImageContents:
    """The files, bases and Debian packages of the image `result` built."""
    spec = result.spec
    info = image_from_result(result)
    store = result.store()
    positions = _positions(spec)
    planned: dict[int, dict[str, PlannedEntry]] = {}
    statuses: dict[int, tuple[DebPackage, ...]] = {}
    for r in result.layers:
        if r.plan is not None:
            planned[r.index] = {e.path: e for e in r.plan.entries}

    @contextmanager
    def read(layer: LayerInfo) -> Iterator[Iterable[TarEntry]]:
        plan = planned.get(layer.node) if layer.node is not None else None
        if plan is not None:
            yield (_as_tar(e) for e in plan.values())
            return
        parser: list[StatusParser] = []

        def tee(entry: TarEntry) -> StatusParser | None:
            if entry.path != DPKG_STATUS:
                return None
            parser[:] = [StatusParser()]
            return parser[0]

        with store.open_blob(layer.descriptor.digest) as raw:
            yield iter_hashed(raw, cancel, tee)
        if parser:
            statuses[layer.position] = parser[0].packages()

    merged = merged_index(store, info.layers, cancel, read)
    base_dir = spec.base_dir
    files: list[ImageFile] = []
    for path in sorted(merged):
        m = merged[path]
        e = m.entry
        if e.type != "file":
            continue
        label = m.layer.label
        source = ""
        plan = planned.get(m.layer.node) if m.layer.node is not None else None
        if plan is not None:
            p = plan[path]
            label = p.origin
            if p.source:
                source = _relative(Path(p.source), base_dir)
        else:
            node = (
                spec.layers[m.layer.node]
                if m.layer.node is not None and m.layer.node < len(spec.layers)
                else None
            )
            if isinstance(node, TarSpec):
                source = _relative(node.source, base_dir)
        files.append(
            ImageFile(
                path="/" + path,
                sha256=e.digest,
                size=e.size,
                mode=e.mode & 0o7777,
                layer=str(m.layer.descriptor.digest),
                origin=label,
                position=positions.get(label, ""),
                source=source,
            )
        )
    packages: tuple[DebPackage, ...] = ()
    status = merged.get(DPKG_STATUS)
    if status is not None and status.entry.type == "file":
        if status.layer.position not in statuses and status.layer.node is not None:
            # A layer listed from its plan (a `directory` of a rootfs, say): its blob is the
            # truth, and the status file is read from it, streamed.
            planned.pop(status.layer.node, None)
            with read(status.layer) as entries:
                for _ in entries:
                    pass
        packages = statuses.get(status.layer.position, ())
    return ImageContents(
        manifest=str(result.manifest.digest),
        config=str(result.config.digest),
        name=spec.image.name if spec.image is not None else "",
        platform=str(spec.platform),
        created=result.created,
        spec_file=spec.path.name,
        files=tuple(files),
        bases=base_images(result),
        packages=packages,
        layers=tuple(str(layer.descriptor.digest) for layer in info.layers),
    )


def _as_tar(e: PlannedEntry) -> TarEntry:
    return TarEntry(
        path=e.path,
        type=e.type,
        mode=e.mode,
        uid=e.uid,
        gid=e.gid,
        uname="",
        gname="",
        size=e.size if e.type == "file" else 0,
        mtime="0",
        linkname=e.target,
        devmajor=0,
        devminor=0,
        digest=e.digest,
        format="",
        pax_keys=(),
        extra=(),
        header="",
        offset=0,
        data_offset=0,
    )


def _relative(path: Path, base: Path) -> str:
    """`path` relative to the spec's directory, with '/' separators: never absolute, so the
    SBOM is the same in any checkout."""
    return Path(os.path.relpath(path, base)).as_posix()


def _positions(spec: Spec) -> dict[str, str]:
    """Spec node label -> "<spec file>:<line>"."""
    name = spec.path.name
    out: dict[str, str] = {}
    for node in spec.layers:
        out[node.label] = f"{name}:{node.pos.line}"
        if isinstance(node, CombinedSpec):
            for part in node.parts:
                out[part.label] = f"{name}:{part.pos.line}"
    if spec.accounts is not None:
        out[ACCOUNTS_LABEL] = f"{name}:{spec.accounts.pos.line}"
    return out


def base_images(result: BuildResult) -> tuple[BaseImage, ...]:
    """The images the spec imports, each with the digest it was imported at."""
    positions = _positions(result.spec)
    out = []
    for node, r in zip(result.spec.layers, result.layers, strict=False):
        if not isinstance(node, ImportSpec | ImportOCISpec) or r.record.codec != IMPORT_CODEC:
            continue
        extra = dict(r.record.extra)
        digest = extra.get("manifest") or extra.get("config", "")
        if isinstance(node, ImportOCISpec):
            reference = str(node.ref)
        else:
            reference = posixpath.normpath(node.written) + (f":{node.tag}" if node.tag else "")
        out.append(BaseImage(node.label, positions.get(node.label, ""), reference, digest))
    return tuple(out)
