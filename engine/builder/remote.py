"""The fleet cache: layer records kept in an OCI registry repository, so that CI runners
with nothing else in common share layers (docs/fleet-cache.md).

One immutable manifest per layer cache key, tagged `vc-<key>`: the empty config and the layer
blob itself, annotated with the diff_id, codec identity and tar format. A build asks for each
key it lacks with one HEAD as soon as the key is known (`lookup`, every layer at once, as many
in flight as the registry client allows per host), fetches hits through the same verifying
ingest as a pull (`fetch`), and with a write repository offers what it has that the registry
lacks (`offer`): blob first, manifest last, never over an existing tag.

Nothing here fails a build unless `required`: the first failure to read stops reading, the
first refused write stops writing, each with one warning line; a rejected entry (wrong
digest, diff_id, codec or format) is one warning and its layer is built locally.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

from engine.builder.options import RemoteSettings
from engine.cache.imported import verify_cached_layer
from engine.cache.ingest import Ingest
from engine.cache.provenance import add_source, mount_candidates
from engine.cache.records import LayerRecord, RecordIndex
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.codec import Codec
from engine.errors import (
    BuildCancelled,
    NotInRegistry,
    RegistryError,
    RegistryStatusError,
    UsageError,
    VinciError,
)
from engine.events import EventSink, Log, ProgressThrottle
from engine.oci import mediatypes
from engine.oci.canonical import canonical_json
from engine.oci.descriptor import Descriptor
from engine.oci.digest import Digest
from engine.oci.reference import ImageReference, parse_reference
from engine.registry.client import RegistryClient
from engine.registry.options import RegistryOptions, default_options
from engine.registry.retry import retry_pause
from engine.registry.upload import upload_blob
from engine.tar.format import TAR_FORMAT

ARTIFACT_TYPE = "application/vnd.vinci.layer-cache.v1"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
TAG_PREFIX = "vc-"
ANNOTATION = "dev.vinci.cache."
CREATED = "org.opencontainers.image.created"  # when the entry was written (RFC 3339, UTC)
TIMEOUT_ENV = "VINCI_CACHE_TIMEOUT"
DEFAULT_TIMEOUT = 5.0  # seconds per request: a slow cache is worth less than a local build
ATTEMPTS = 2  # a cache that fails twice is skipped, not waited on as a push would be
MAX_ENTRY_BYTES = 64 << 10  # one entry's manifest is ~700 bytes
WRITE_ATTEMPTS = 3
_BLOB_UNKNOWN = frozenset({"MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN"})


def cache_tag(key: str) -> str:
    """The tag of a layer key's entry: 67 characters, within the tag grammar's 128."""
    return f"{TAG_PREFIX}{key}"


def entry_manifest(record: LayerRecord, written: int, tar_format: str = TAR_FORMAT) -> bytes:
    """The entry for a built layer: canonical JSON of the record's values, and the time it
    was `written` (seconds since the epoch, UTC), which `vinci cache prune-remote` ages it by.
    That time is the entry's only byte not fixed by its key; it is in no image."""
    layer = record.descriptors[0]
    manifest = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "digest": str(Digest.of_bytes(EMPTY)),
            "size": len(EMPTY),
        },
        "layers": [layer.to_json()],
        "annotations": {
            f"{ANNOTATION}key": record.key,
            f"{ANNOTATION}diff-id": str(record.diff_ids[0]),
            f"{ANNOTATION}codec": record.codec,
            f"{ANNOTATION}tar-format": tar_format,
            f"{ANNOTATION}uncompressed-size": str(record.uncompressed_sizes[0]),
            CREATED: rfc3339(written),
        },
    }
    return canonical_json(manifest)


def rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 time, None if it is not one."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def cache_options() -> RegistryOptions:
    """The registry options for cache traffic: the command's, with a short deadline per
    request and two attempts."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        seconds = float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise UsageError(f"{TIMEOUT_ENV}={text!r} is not a positive number of seconds")
    base = default_options()
    return replace(base, attempts=ATTEMPTS, deadline=seconds, timeout=seconds)


class RemoteCache:
    """One build's use of the remote layer cache. Thread-safe."""

    def __init__(
        self,
        settings: RemoteSettings,
        codec: Codec,
        sink: EventSink,
        cancel: CancelToken,
        options: RegistryOptions | None = None,
    ) -> None:
        self.settings = settings
        self.codec = codec
        self.sink = sink
        self.cancel = cancel
        self.options = options or cache_options()
        self._refs = {r: _ref(r) for r in (*settings.read, settings.write or "") if r}
        self._clients: dict[str, RegistryClient] = {}
        self._lock = threading.Lock()
        self._reading = bool(settings.read)
        self._writing = settings.write is not None
        self._found: dict[str, str] = {}  # key -> repository holding it
        self._written: set[str] = set()  # keys the write repository holds or was given
        self._config_sent = False
        self._writes: list[Future[None]] = []
        self._writer = ThreadPoolExecutor(2, thread_name_prefix="vinci-cache-write")
        # A blob download holds one of the client's requests per host for its whole length:
        # one is kept free of them, so that the other layers' HEADs (and the misses they
        # decide) never wait for a download to end.
        self._downloads = threading.BoundedSemaphore(max(1, self.options.max_requests_per_host - 1))
        self.fetched = 0
        self.uploaded = 0

    # -- plumbing --------------------------------------------------------------------------

    def _client(self, repository: str) -> tuple[RegistryClient, str]:
        ref = self._refs[repository]
        with self._lock:
            client = self._clients.get(ref.registry)
            if client is None:
                client = self._clients[ref.registry] = RegistryClient(ref.registry, self.options)
        return client, ref.repository

    def _failed(self, reading: bool, error: BaseException, writes_too: bool = False) -> None:
        """The remote is unusable for reads (or writes, or with `writes_too` both): one
        warning, then none again."""
        if isinstance(error, BuildCancelled):
            raise error
        what = "read" if reading else "write"
        repository = self.settings.read[0] if reading else self.settings.write
        message = f"remote cache {repository}: cannot {what}: {_said(error)}"
        if self.settings.required:
            raise RegistryError(f"{message} (--cache-required)") from None
        with self._lock:
            active = self._reading if reading else self._writing
            if reading:
                self._reading = False
            if not reading or writes_too:
                self._writing = False
        if active:
            more = "building locally" if reading else "not writing to it"
            if writes_too and self.settings.write is not None:
                more += ", and not writing to it"
            self.sink(Log("warning", f"{message}; {more}"))

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        for client in self._clients.values():
            client.close()

    # -- lookup ----------------------------------------------------------------------------

    def warm(self) -> None:
        """Connect to each registry now (scheme, auth challenge), so that the first lookups
        do not each wait out a dead host; a failure is the one warning."""
        if not (self._reading or self._writing):
            return
        try:
            for repo in self._refs:
                self._client(repo)[0].connect()
        except (VinciError, OSError) as e:
            # Writing would only meet the same registry: one warning stops both.
            self._failed(True, e, writes_too=True)

    def lookup(self, key: str, held: bool) -> bool:
        """One HEAD per repository, until one answers: whether a read repository holds `key`
        (the local cache lacks it: `held` False), so that `fetch` may get it; or, with `held`
        and a write repository, whether that holds it (else `offer` writes it)."""
        write = self.settings.write
        if held:
            repos: tuple[str, ...] = (write,) if self._writing and write is not None else ()
            with self._lock:
                if key in self._written:
                    return False
        else:
            # The write repository is read too, first: its answer is also the write's.
            repos = self.settings.read if self._reading else ()
        try:
            for repo in repos:
                client, repository = self._client(repo)
                if client.head_manifest(repository, cache_tag(key), self.cancel) is None:
                    continue
                with self._lock:
                    if repo == write:
                        self._written.add(key)
                    if not held:
                        self._found.setdefault(key, repo)
                return not held
        except (VinciError, OSError) as e:
            self._failed(True, e, writes_too=True)
        return False

    # -- reading ---------------------------------------------------------------------------

    def fetch(self, key: str, summary: str, store: BlobStore, index: int) -> LayerRecord | None:
        """The layer of a key `lookup` found, verified into `store` and recorded there; None
        when it cannot be had (a warning says why) and must be built. Progress goes out as
        layer `index`'s "fetching"."""
        repo = self._found.get(key)
        if repo is None or not self._reading:
            return None
        client, repository = self._client(repo)
        try:
            manifest = client.get_manifest(repository, cache_tag(key), self.cancel)
            layer, diff_id, usize = self._entry(manifest.data, key)
            where = f"remote cache entry {repo}:{cache_tag(key)[:15]}…"
            fetched: tuple[Digest, int] | None = None
            if store.has_blob(layer.digest, layer.size):
                got = verify_cached_layer(
                    store,
                    layer.digest,
                    layer.size,
                    layer.media_type,
                    diff_id,
                    where,
                    self.cancel,
                )
            else:
                ingest = Ingest(store, where, mediatypes.layer_compression(layer.media_type))
                progress = ProgressThrottle(self.sink, index, "fetching", layer.size)
                try:
                    with self._downloads:
                        client.fetch_blob(
                            repository,
                            layer.digest,
                            layer.size,
                            ingest,
                            progress.advance,
                            self.cancel,
                        )
                    got = ingest.commit(layer.digest, layer.size, diff_id)
                finally:
                    ingest.discard()
                assert got.diff_id is not None
                fetched = (got.diff_id, got.uncompressed_size)
            if usize >= 0 and got.uncompressed_size != usize:
                raise _Rejected(f"its layer is {got.uncompressed_size} bytes uncompressed")
        except _Rejected as e:
            self._reject(repo, key, str(e))
            return None
        except NotInRegistry:
            # Deleted since its HEAD (`vinci cache prune-remote`, a retention policy): a miss.
            with self._lock:
                self._found.pop(key, None)
            return None
        except VinciError as e:
            if isinstance(e, BuildCancelled):
                raise
            if isinstance(e, RegistryError):
                self._failed(True, e)
                return None
            # Bytes that are not what the entry says: this entry is bad, not the registry.
            self._reject(repo, key, str(e))
            return None
        except OSError as e:
            self._failed(True, e)
            return None
        add_source(store, layer.digest, client.registry, repository, fetched)
        record = LayerRecord(
            key=key,
            descriptors=(layer,),
            diff_ids=(diff_id,),
            codec=self.codec.identity,
            uncompressed_sizes=(got.uncompressed_size,),
            summary=summary,
        )
        RecordIndex(store).put(record)
        with self._lock:
            self.fetched += 1
        return record

    def _entry(self, data: bytes, key: str) -> tuple[Descriptor, Digest, int]:
        """The layer, diff_id and uncompressed size an entry names, once it is checked to be
        an entry for `key` made with this build's codec and tar format."""
        if len(data) > MAX_ENTRY_BYTES:
            raise _Rejected("its manifest is too large to be an entry")
        try:
            doc = json.loads(data)
            notes = doc.get("annotations") or {}
            layers = doc.get("layers") or []
            if doc.get("artifactType") != ARTIFACT_TYPE or len(layers) != 1:
                raise _Rejected("it is not a vinci layer cache entry")
            layer = Descriptor.from_json(layers[0])
            diff_id = Digest.parse(str(notes.get(f"{ANNOTATION}diff-id", "")))
            usize = int(notes.get(f"{ANNOTATION}uncompressed-size", -1))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise _Rejected(f"its manifest does not parse: {e}") from None
        checks = (
            ("key", notes.get(f"{ANNOTATION}key"), key),
            ("codec", notes.get(f"{ANNOTATION}codec"), self.codec.identity),
            ("tar format", notes.get(f"{ANNOTATION}tar-format"), TAR_FORMAT),
            ("media type", layer.media_type, self.codec.media_type),
        )
        for name, got, want in checks:
            if got != want:
                raise _Rejected(f"its {name} is {got!r}, this build's is {want!r}")
        return layer, diff_id, usize

    def _reject(self, repo: str, key: str, why: str) -> None:
        message = f"remote cache {repo}: entry {cache_tag(key)[:15]}… rejected: {why}"
        if self.settings.required:
            raise RegistryError(f"{message} (--cache-required)")
        self.sink(Log("warning", f"{message}; building the layer locally"))
        with self._lock:
            self._found.pop(key, None)

    # -- writing ---------------------------------------------------------------------------

    def offer(self, record: LayerRecord, store: BlobStore) -> None:
        """Write `record`'s entry to the write repository in the background, unless it holds
        the key already; `finish` waits for it."""
        if not self._writing or record.codec != self.codec.identity:
            return
        if len(record.descriptors) != 1:
            return
        with self._lock:
            if record.key in self._written:
                return
            self._written.add(record.key)
            self._writes.append(self._writer.submit(self._write, record, store))

    def _write(self, record: LayerRecord, store: BlobStore) -> None:
        write = self.settings.write
        if write is None or not self._writing:
            return
        client, repository = self._client(write)
        tag = cache_tag(record.key)
        try:
            for attempt in range(1, WRITE_ATTEMPTS + 1):
                try:
                    self._write_once(client, repository, record, store, tag)
                    break
                except RegistryStatusError as e:
                    # Runners uploading one blob at once: distribution may, for a moment,
                    # not know a blob that another upload of it is committing. Sent again
                    # (or found by its HEAD), it is known.
                    if attempt == WRITE_ATTEMPTS or not _BLOB_UNKNOWN.intersection(e.codes):
                        raise
                    with self._lock:
                        self._config_sent = False
                    retry_pause(self.options.backoff * attempt, self.cancel)
        except (VinciError, OSError) as e:
            self._failed(False, e)

    def _write_once(
        self,
        client: RegistryClient,
        repository: str,
        record: LayerRecord,
        store: BlobStore,
        tag: str,
    ) -> None:
        layer = record.descriptors[0]
        self._send_config(client, repository, store)
        candidates = mount_candidates(store, layer.digest, client.registry, repository)
        upload_blob(
            client,
            repository,
            layer.digest,
            layer.size,
            store.blob_path(layer.digest),
            candidates,
            cancel=self.cancel,
        )
        add_source(store, layer.digest, client.registry, repository)
        # Never over an existing tag: another runner may have written it meanwhile (with the
        # same bytes, but a registry need not know that).
        if client.head_manifest(repository, tag, self.cancel) is None:
            data = entry_manifest(record, int(time.time()))
            client.put_manifest(repository, tag, data, mediatypes.OCI_MANIFEST, self.cancel)
            with self._lock:
                self.uploaded += 1

    def _send_config(self, client: RegistryClient, repository: str, store: BlobStore) -> None:
        with self._lock:
            if self._config_sent:
                return
        digest = store.put_bytes(EMPTY)
        upload_blob(
            client, repository, digest, len(EMPTY), store.blob_path(digest), [], cancel=self.cancel
        )
        with self._lock:
            self._config_sent = True

    def finish(self) -> None:
        """Wait for the writes offered so far (their failures are warnings, or with
        `required` the first is raised)."""
        with self._lock:
            writes, self._writes = self._writes, []
        for f in writes:
            f.result()


class _Rejected(Exception):
    """An entry that is not what its key promises."""


def _ref(repository: str) -> ImageReference:
    return parse_reference(repository)


def _said(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0] if text else text


__all__ = [
    "ARTIFACT_TYPE",
    "CREATED",
    "TAG_PREFIX",
    "RemoteCache",
    "cache_tag",
    "entry_manifest",
    "parse_rfc3339",
]
