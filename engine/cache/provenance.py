"""What the cache knows about a blob beyond its bytes: where it came from, and its diff_id.

    <cache>/v1/sources/<hex>.json
    {"diff_id": "sha256:…", "uncompressed_size": N,
     "sources": [{"registry": "127.0.0.1:5000", "repository": "test/base"}, …]}

`sources` lists the repositories the blob was fetched from or pushed to, most recent last: a
push to another repository of the same registry mounts the blob from one of them instead of
uploading it. `diff_id` is recorded only after the layer was decompressed and hashed, so an
import that meets the blob again need not decompress it a second time.

These records are hints: a lost update (two processes writing at once) costs at most one
upload or one decompression, never a wrong image, so a plain atomic replace is enough.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from engine.cache.atomic import write_atomic
from engine.cache.store import BlobStore
from engine.oci.canonical import canonical_json
from engine.oci.digest import Digest

MAX_SOURCES = 8


@dataclass(frozen=True)
class BlobSource:
    registry: str
    repository: str


@dataclass(frozen=True)
class BlobFacts:
    sources: tuple[BlobSource, ...] = ()
    diff_id: Digest | None = None
    uncompressed_size: int = -1


def _path(store: BlobStore, digest: Digest) -> Any:
    return store.source_dir / f"{digest.hex}.json"


def read_facts(store: BlobStore, digest: Digest) -> BlobFacts:
    try:
        data = json.loads(_path(store, digest).read_bytes())
        sources = tuple(
            BlobSource(str(s["registry"]), str(s["repository"])) for s in data.get("sources", [])
        )
        diff_id = Digest.parse(data["diff_id"]) if data.get("diff_id") else None
        return BlobFacts(sources, diff_id, int(data.get("uncompressed_size", -1)))
    except (OSError, ValueError, KeyError, TypeError):
        return BlobFacts()


def _write(store: BlobStore, digest: Digest, facts: BlobFacts) -> None:
    data: dict[str, Any] = {
        "sources": [{"registry": s.registry, "repository": s.repository} for s in facts.sources]
    }
    if facts.diff_id is not None:
        data["diff_id"] = str(facts.diff_id)
        data["uncompressed_size"] = facts.uncompressed_size
    # A hint that could not be saved, or was lost or torn in a crash (so not fsync'd), only
    # costs a later upload or decompression.
    with contextlib.suppress(OSError):
        write_atomic(_path(store, digest), canonical_json(data), replace=True, durable=False)


def add_source(
    store: BlobStore,
    digest: Digest,
    registry: str,
    repository: str,
    fetched: tuple[Digest, int] | None = None,
) -> None:
    """Records that `registry/repository` holds the blob and, for a blob just fetched and
    checked, its diff_id and uncompressed size (`fetched`): both in one write."""
    facts = read_facts(store, digest)
    entry = BlobSource(registry, repository)
    diff_id, size = fetched or (facts.diff_id, facts.uncompressed_size)
    if (
        facts.sources
        and facts.sources[-1] == entry
        and (diff_id, size)
        == (
            facts.diff_id,
            facts.uncompressed_size,
        )
    ):
        return
    sources = (*(s for s in facts.sources if s != entry), entry)
    _write(store, digest, BlobFacts(sources[-MAX_SOURCES:], diff_id, size))


def set_diff_id(store: BlobStore, digest: Digest, diff_id: Digest, uncompressed_size: int) -> None:
    facts = read_facts(store, digest)
    if facts.diff_id == diff_id and facts.uncompressed_size == uncompressed_size:
        return
    _write(store, digest, BlobFacts(facts.sources, diff_id, uncompressed_size))


def mount_candidates(store: BlobStore, digest: Digest, registry: str, repository: str) -> list[str]:
    """Repositories of `registry` (other than `repository`) known to hold the blob, newest
    first."""
    facts = read_facts(store, digest)
    return [
        s.repository
        for s in reversed(facts.sources)
        if s.registry == registry and s.repository != repository
    ]
