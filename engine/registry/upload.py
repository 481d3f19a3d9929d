"""Getting one blob into a repository with as few bytes on the wire as possible.

    HEAD blob                      present already  -> "exists", nothing sent
    POST ?mount=D&from=R           201              -> "mounted" (R: a repository of the same
                                                      registry the cache knows holds D)
                                   202              -> that answer is an upload session: use it
    POST (no mount)                202              -> an upload session
    PUT  session?digest=D  whole body               -> monolithic upload (distribution 2.8 does
                                                      not take a body on the POST itself)
    PATCH session  chunk after chunk, then PUT ?digest=D with no body
                                                    -> for blobs above the chunk threshold, when
                                                      the registry states OCI-Chunk-Min-Length,
                                                      or when it refuses the monolithic PUT

The whole sequence is the unit of retry: an attempt that fails part-way starts again from the
HEAD, which finds a blob that did land. Single PATCHes are never repeated on their own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.cancel import CancelToken
from engine.errors import CacheError, RegistryStatusError
from engine.oci.digest import Digest
from engine.registry.client import RegistryClient, UploadStart
from engine.registry.retry import with_retries

READ_CHUNK = 1 << 20
MAX_MOUNT_TRIES = 3
# Statuses with which registries refuse a monolithic PUT they would take in chunks.
_CHUNK_FALLBACK = frozenset({400, 405, 413, 416})
_CORRUPT = frozenset({"DIGEST_INVALID", "SIZE_INVALID"})


@dataclass(frozen=True)
class UploadOutcome:
    """How the blob got there: 'exists', 'mounted' (from `source`) or 'uploaded'."""

    how: str
    bytes_sent: int = 0
    source: str = ""


class _MonolithicRefused(Exception):
    pass


def _reader(
    path: Path,
    start: int,
    length: int,
    progress: Callable[[int], None] | None,
    cancel: CancelToken | None,
) -> Callable[[], Iterator[bytes]]:
    """A body factory streaming `length` bytes of `path` from `start`; each call restarts."""

    def body() -> Iterator[bytes]:
        with open(path, "rb") as f:
            f.seek(start)
            left = length
            while left > 0:
                if cancel is not None:
                    cancel.check()
                data = f.read(min(READ_CHUNK, left))
                if not data:
                    raise CacheError(f"{path} ended early: the cached blob is truncated")
                left -= len(data)
                if progress is not None:
                    progress(len(data))
                yield data

    return body


def upload_blob(
    client: RegistryClient,
    repository: str,
    digest: Digest,
    size: int,
    path: Path,
    mount_from: list[str],
    progress: Callable[[int], None] | None = None,
    cancel: CancelToken | None = None,
    reset_progress: Callable[[], None] | None = None,
    on_retry: Callable[[str, float], None] | None = None,
) -> UploadOutcome:
    """Make `repository` hold the blob stored at `path`. Retries as a whole; `on_retry` hears
    each failed attempt (what failed, seconds until the next) before its wait."""
    options = client.options
    try:
        if os.stat(path).st_size != size:
            raise CacheError(
                f"cached blob {digest} has the wrong size; run `vinci cache verify --remove`"
            )
    except FileNotFoundError:
        raise CacheError(f"blob {digest} is not in the cache") from None

    def attempt() -> UploadOutcome:
        if reset_progress is not None:
            reset_progress()
        if client.head_blob(repository, digest, push=True) is not None:
            return UploadOutcome("exists")
        session: UploadStart | None = None
        for source in mount_from[:MAX_MOUNT_TRIES]:
            start = client.start_upload(repository, mount=digest, source=source)
            if start.mounted:
                return UploadOutcome("mounted", 0, source)
            session = start  # distribution answers a failed mount with a usable session
        if session is None:
            session = client.start_upload(repository)
        chunked = size > options.chunk_threshold or session.min_chunk > 0
        if not chunked:
            try:
                client.put_upload(
                    repository,
                    session.location,
                    digest,
                    size,
                    _reader(path, 0, size, progress, cancel),
                )
                return UploadOutcome("uploaded", size)
            except RegistryStatusError as e:
                if not _refused_monolithic(e):
                    raise
            if reset_progress is not None:
                reset_progress()
            session = client.start_upload(repository)
        return _chunked(client, repository, digest, size, path, session, progress, cancel)

    outcome: UploadOutcome = with_retries(
        attempt,
        options,
        f"{client.registry}: upload of {digest} to {repository}",
        cancel,
        on_retry,
    )
    return outcome


def _refused_monolithic(error: RegistryStatusError) -> bool:
    if _CORRUPT.intersection(error.codes):
        # The registry hashed what we sent and it is not the blob: our cached copy is bad.
        raise CacheError(
            f"{error}: the cached copy of this blob is corrupt; run `vinci cache verify --remove`"
        ) from None
    return error.status in _CHUNK_FALLBACK


def _chunked(
    client: RegistryClient,
    repository: str,
    digest: Digest,
    size: int,
    path: Path,
    session: UploadStart,
    progress: Callable[[int], None] | None,
    cancel: CancelToken | None,
) -> UploadOutcome:
    chunk = max(client.options.chunk_size, session.min_chunk, 1)
    location = session.location
    offset = 0
    while offset < size:
        length = min(chunk, size - offset)
        location = client.patch_upload(
            repository, location, offset, length, _reader(path, offset, length, progress, cancel)
        )
        offset += length
    client.put_upload(repository, location, digest, 0, None)
    return UploadOutcome("uploaded", size)
