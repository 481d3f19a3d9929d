"""Writes a built image as ONE tarball that is both an OCI archive and a docker-archive.

    oci-layout                 {"imageLayoutVersion":"1.0.0"}           OCI image layout...
    index.json                 the manifest, named by the spec's tag
    manifest.json              [{"Config","RepoTags","Layers"}]          ...and docker save's index
    blobs/sha256/<hex>         config, layers, manifest (shared by both)

`--output oci-archive:FILE` and `--output docker-archive:FILE` write the same bytes, as
`regctl image export` and docker ≥ 25's `docker save` do: `skopeo`/`podman` read it as either
transport, `docker load` reads manifest.json. Layers stay as built (compressed); docker and
podman decompress layer files on load, so nothing is re-encoded and digests survive.

Deterministic: entries in a fixed order, ustar headers with mtime 0, uid/gid 0, fixed modes
(engine/tar/format.py), so the same image gives the same archive bytes.

Where it goes depends on what the path names, never replacing what is not a regular file:
- a regular file (or nothing yet): written to a temporary file beside it and renamed into
  place, so a reader never sees half an archive; under flock(2) on the file (on its directory
  while it does not exist), so two builds writing it take turns;
- a symlink: written through it, as above, to the file it names; the link stays a link;
- `-` (stdout), a pipe, a FIFO, a character or block device, and `/dev/stdout`-like links to
  an open file descriptor: streamed to, as `tar cf -` does (`| podman load` reads it);
- anything else (a directory, a socket) is refused by name.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.errors import OutputError
from engine.oci import mediatypes
from engine.oci.canonical import canonical_json
from engine.oci.descriptor import Descriptor, Platform
from engine.oci.reference import ImageReference
from engine.output import locking
from engine.output.layout import LAYOUT_FILE
from engine.tar.format import DIRECTORY, END, REGULAR, TarHeader, encode_header, padding

COPY_CHUNK = 1 << 20
CONTAINERD_NAME = "io.containerd.image.name"


def docker_manifest(
    config: Descriptor, layers: Sequence[Descriptor], repo_tags: Sequence[str]
) -> bytes:
    entry = {
        "Config": f"blobs/sha256/{config.digest.hex}",
        "RepoTags": list(repo_tags),
        "Layers": [f"blobs/sha256/{d.digest.hex}" for d in layers],
    }
    return canonical_json([entry])


def archive_index(
    manifest: Descriptor, tag: str, platform: Platform | None, image: ImageReference | None
) -> bytes:
    """index.json: the manifest named by its tag (what skopeo's and umoci's `FILE:TAG` look up)
    and, when the spec names an image, by its full name in the annotation containerd and
    docker ≥ 25 write and `podman load` names the loaded image by."""
    annotations = [(mediatypes.REF_NAME_ANNOTATION, tag)]
    if image is not None:
        annotations.append((CONTAINERD_NAME, f"{image.name}:{tag}"))
    entry = Descriptor(
        manifest.media_type,
        manifest.digest,
        manifest.size,
        annotations=tuple(sorted(annotations)),
        platform=platform,
    )
    return canonical_json(
        {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [entry.to_json()]}
    )


def repo_tags(image: ImageReference | None, tag: str) -> list[str]:
    """`docker load` names the image by these; none when the spec names no image."""
    if image is None:
        return []
    return [f"{image.name}:{tag}"]


def _file(out: BinaryIO, name: str, data: bytes) -> None:
    out.write(encode_header(TarHeader(name=name, type=REGULAR, mode=0o644, size=len(data))))
    out.write(data)
    out.write(padding(len(data)))


def _blob(out: BinaryIO, store: BlobStore, d: Descriptor, cancel: CancelToken | None) -> None:
    name = f"blobs/sha256/{d.digest.hex}"
    with store.open_blob(d.digest) as f:
        size = os.fstat(f.fileno()).st_size
        if size != d.size:
            raise OutputError(
                f"cached blob {d.digest} is {size} bytes, expected {d.size}; run "
                "`vinci cache verify --remove`"
            )
        out.write(encode_header(TarHeader(name=name, type=REGULAR, mode=0o644, size=size)))
        left = size
        while left:
            if cancel is not None:
                cancel.check()
            chunk = f.read(min(COPY_CHUNK, left))
            if not chunk:
                raise OutputError(f"cached blob {d.digest} shrank while being copied")
            out.write(chunk)
            left -= len(chunk)
        out.write(padding(size))


def is_stream(path: str) -> bool:
    """Whether an archive to `path` is streamed rather than renamed into place: `-`, a pipe, a
    FIFO, a device, or a link to an open file descriptor (/dev/stdout, /dev/fd/N,
    /proc/self/fd/N), whatever that descriptor is open on."""
    if path == "-" or _fd_link(path):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


def _fd_link(path: str) -> bool:
    """Whether `path`, or a link on the way from it, names /proc/…/fd/N or /dev/fd/N."""
    p = os.path.abspath(path)
    for _hop in range(40):
        parts = p.split("/")  # /proc/<pid or self>/fd/<n> -> "", proc, pid, fd, n
        if p.startswith("/dev/fd/") or (len(parts) == 5 and parts[1:4:2] == ["proc", "fd"]):
            return True
        try:
            link = os.readlink(p)
        except OSError:
            return False
        p = os.path.normpath(os.path.join(os.path.dirname(p), link))
    return False


def write_archive(
    target: Path,
    store: BlobStore,
    manifest: Descriptor,
    config: Descriptor,
    layers: Sequence[Descriptor],
    tag: str,
    platform: Platform,
    image: ImageReference | None,
    *,
    cancel: CancelToken | None = None,
    waiting: Callable[[], None] | None = None,
) -> None:
    """Write the image as one archive to `target` (see the module's text for where)."""
    # Each blob once (an image may list the same layer twice), config first, manifest last.
    blobs = list({d.digest: d for d in (config, *layers, manifest)}.values())

    def body(out: BinaryIO) -> None:
        _file(out, "oci-layout", canonical_json(LAYOUT_FILE))
        _file(out, "index.json", archive_index(manifest, tag, platform, image))
        _file(out, "manifest.json", docker_manifest(config, layers, repo_tags(image, tag)))
        for directory in ("blobs/", "blobs/sha256/"):
            out.write(encode_header(TarHeader(name=directory, type=DIRECTORY, mode=0o755)))
        for d in blobs:
            _blob(out, store, d, cancel)
        out.write(END)

    write_target(target, body, cancel=cancel, waiting=waiting)


def write_index_archive(
    target: Path,
    store: BlobStore,
    index: Descriptor,
    blobs: Sequence[Descriptor],
    tag: str,
    image: ImageReference | None,
    *,
    cancel: CancelToken | None = None,
    waiting: Callable[[], None] | None = None,
) -> None:
    """Write an image index and every blob it reaches (`blobs`) as one OCI archive. No
    docker manifest.json: docker-archive holds one image, not an index."""

    def body(out: BinaryIO) -> None:
        _file(out, "oci-layout", canonical_json(LAYOUT_FILE))
        _file(out, "index.json", archive_index(index, tag, None, image))
        for directory in ("blobs/", "blobs/sha256/"):
            out.write(encode_header(TarHeader(name=directory, type=DIRECTORY, mode=0o755)))
        for d in (*blobs, index):
            _blob(out, store, d, cancel)
        out.write(END)

    write_target(target, body, cancel=cancel, waiting=waiting)


def write_target(
    target: Path,
    body: Callable[[BinaryIO], None],
    *,
    cancel: CancelToken | None = None,
    waiting: Callable[[], None] | None = None,
) -> None:
    """Write what `body` writes to `target`, a file, a link to one, `-` or a stream, as an
    archive is written (see the module's text); `vinci export` writes its tarball so too."""
    text = str(target)
    if is_stream(text):
        _stream(text, body)
        return
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise OutputError(f"cannot write archive {target}: {e.strerror or e}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise OutputError(f"{target} is a directory; an archive output needs a file path")
    if mode is not None and not stat.S_ISREG(mode):
        raise OutputError(
            f"{target} is not a regular file, a FIFO or a device (a socket?); an archive "
            "output needs one of those, or - for stdout"
        )
    # Through a symlink (even a dangling one) to the file it names: the link stays.
    _replace(Path(os.path.realpath(target)), body, cancel, waiting)


def _stream(path: str, body: Callable[[BinaryIO], None]) -> None:
    where = "stdout" if path == "-" else path
    try:
        if path == "-":
            if os.isatty(sys.stdout.fileno()):
                raise OutputError(
                    "refusing to write an archive to a terminal; redirect stdout, or name a file"
                )
            sys.stdout.flush()
            out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
        else:
            # No O_CREAT, no O_TRUNC: a FIFO or a device is written to, never made or cut.
            out = os.fdopen(os.open(path, os.O_WRONLY | os.O_CLOEXEC), "wb")
        with out:
            body(out)
            out.flush()
    except BrokenPipeError:
        raise OutputError(
            f"cannot write archive to {where}: its reader closed it before the end"
        ) from None
    except OSError as e:
        raise OutputError(f"cannot write archive to {where}: {e.strerror or e}") from None


def _replace(
    real: Path,
    body: Callable[[BinaryIO], None],
    cancel: CancelToken | None,
    waiting: Callable[[], None] | None,
) -> None:
    """Write to a temporary file beside `real` and rename it into place, under the lock."""
    tmp = real.parent / f".{real.name}.tmp-{os.urandom(6).hex()}"
    try:
        with _locked(real, cancel, waiting):
            with open(tmp, "xb") as out:
                body(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, real)
    except OSError as e:
        raise OutputError(f"cannot write archive {real}: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def _locked(
    real: Path, cancel: CancelToken | None, waiting: Callable[[], None] | None
) -> Iterator[None]:
    """flock on the file at `real`, or on its directory while there is none; again on the new
    file if another writer replaced it (or made it) while this one waited."""
    while True:
        try:
            fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
            held: Path = real
        except FileNotFoundError:
            fd = os.open(real.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            held = real.parent
        except PermissionError:
            # A file we may replace but not read: its directory's lock, for as long as the
            # write takes, is the best there is.
            fd = os.open(real.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            locking.take(fd, cancel, waiting)
            break
        try:
            locking.take(fd, cancel, waiting)
            waiting = None  # said once is enough
            if held == real and locking.same_file(fd, real):
                break
            if held != real and not os.path.lexists(real):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)
