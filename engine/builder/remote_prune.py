"""`vinci cache prune-remote`: delete a fleet cache's entries written longer ago than a given
age (docs/fleet-cache.md, "Garbage").

An entry's age is the `org.opencontainers.image.created` annotation its writer put in it
(engine/builder/remote.py). Only tags `vc-<key>` whose manifest is a vinci layer cache entry
for that very key are touched; an entry with no readable time is kept and counted. Each old
entry's manifest is deleted by digest (the registry API deletes manifests by digest only,
and that removes its tag). Layer blobs are left to the registry's own garbage collection:
they may be layers of images in the same repository, and a registry knows which are not.

A build that meets a deleted entry misses it and builds the layer, also when it races the
deletion (its HEAD found the entry, its GET does not).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from engine.builder.remote import ARTIFACT_TYPE, CREATED, TAG_PREFIX, parse_rfc3339
from engine.cancel import CancelToken
from engine.errors import NotInRegistry, RegistryError, RegistryStatusError, UsageError
from engine.oci.digest import Digest
from engine.oci.reference import parse_repository
from engine.registry.client import RegistryClient
from engine.registry.options import RegistryOptions

KEY_ANNOTATION = "dev.vinci.cache.key"
DELETES_OFF = ("UNSUPPORTED",)


@dataclass(frozen=True)
class PruneReport:
    entries: int  # vinci cache entries found
    deleted: int  # deleted now (or, with dry_run, that would be)
    kept: int  # younger than the age asked for
    undated: int  # without a readable time: kept
    deleted_bytes: int  # their layer blobs' sizes: what the registry's gc may then free
    other_tags: int  # tags of the repository that are not vinci cache entries: untouched


@dataclass(frozen=True)
class _Entry:
    tag: str
    digest: Digest
    written: float | None
    layer_bytes: int


def prune_remote(
    repository: str,
    older_than: float,
    options: RegistryOptions | None = None,
    *,
    now: float | None = None,
    dry_run: bool = False,
    cancel: CancelToken | None = None,
) -> PruneReport:
    """Delete the entries of the fleet cache in `repository` (registry/repository) written
    more than `older_than` seconds before `now` (default: the clock)."""
    if older_than < 0:
        raise UsageError("--older-than must not be negative")
    ref = parse_repository(repository)
    cutoff = (time.time() if now is None else now) - older_than
    with RegistryClient(ref.registry, options) as client:
        tags = client.list_tags(ref.repository, cancel)
        ours = sorted(t for t in tags if t.startswith(TAG_PREFIX))
        workers = max(1, min(len(ours), client.options.max_requests_per_host))
        with ThreadPoolExecutor(workers, thread_name_prefix="vinci-prune") as pool:
            found = list(pool.map(lambda t: _read(client, ref.repository, t, cancel), ours))
            entries = [e for e in found if e is not None]
            old = [e for e in entries if e.written is not None and e.written < cutoff]
            if not dry_run and old:
                _delete(client, ref.repository, old, pool, cancel)
    undated = sum(1 for e in entries if e.written is None)
    return PruneReport(
        entries=len(entries),
        deleted=len(old),
        kept=len(entries) - len(old) - undated,
        undated=undated,
        deleted_bytes=sum(e.layer_bytes for e in old),
        other_tags=len(tags) - len(entries),
    )


def _read(
    client: RegistryClient, repository: str, tag: str, cancel: CancelToken | None
) -> _Entry | None:
    """The entry under `tag`, None if it is not one (gone meanwhile, or not ours)."""
    try:
        manifest = client.get_manifest(repository, tag, cancel)
    except NotInRegistry:
        return None  # deleted since the tags were listed
    try:
        doc = json.loads(manifest.data)
        notes = doc.get("annotations") or {}
        if doc.get("artifactType") != ARTIFACT_TYPE or tag != TAG_PREFIX + str(
            notes.get(KEY_ANNOTATION, "")
        ):
            return None
        layer_bytes = sum(int(layer.get("size", 0)) for layer in doc.get("layers") or [])
    except (ValueError, TypeError, AttributeError):
        return None
    written = notes.get(CREATED)
    return _Entry(
        tag,
        manifest.digest,
        parse_rfc3339(written) if isinstance(written, str) else None,
        layer_bytes,
    )


def _delete(
    client: RegistryClient,
    repository: str,
    old: list[_Entry],
    pool: ThreadPoolExecutor,
    cancel: CancelToken | None,
) -> None:
    # One first: a registry that allows no deletes says so once, before anything else is sent.
    try:
        client.delete_manifest(repository, old[0].digest, cancel)
    except RegistryStatusError as e:
        if e.status == 405 or set(DELETES_OFF).intersection(e.codes):
            raise RegistryError(
                f"{client.registry}/{repository}: the registry does not allow deletes "
                f"(HTTP {e.status}); nothing was deleted. distribution (docker-registry) "
                "needs storage.delete.enabled: true (REGISTRY_STORAGE_DELETE_ENABLED=true); "
                "other registries: their retention policy (docs/fleet-cache.md)"
            ) from None
        raise
    list(pool.map(lambda e: client.delete_manifest(repository, e.digest, cancel), old[1:]))


__all__ = ["PruneReport", "prune_remote"]
