"""Runs a build: a worker pool turns each layer node into cached layers, then the image is
assembled. Every stage reports to one event sink.

    spec -> plan (per layer, with cache key) -> cache hit | produce -> assemble -> BuildResult
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.builder.assemble import History, assemble, built_history, imported_history
from engine.builder.footprint import Footprint, HeldLayer, HeldLayers, LayerFootprint
from engine.builder.layer import write_layer
from engine.builder.lock import Lock, LockReuse
from engine.builder.options import RemoteSettings, default_jobs
from engine.builder.plan import LayerPlan, Planner
from engine.builder.result import BuildResult, LayerResult
from engine.cache.atomic import write_atomic
from engine.cache.records import IMPORT_CODEC, LayerRecord, RecordIndex
from engine.cache.statkey import stat_key
from engine.cache.store import BlobStore
from engine.cancel import CancelToken
from engine.codec import MAX_THREADS, Codec, get_codec
from engine.errors import BuildCancelled, VinciError, describe_os_error
from engine.events import (
    BuildFailed,
    BuildFinished,
    BuildStarted,
    EventSink,
    ImageAssembled,
    LayerCached,
    LayerDone,
    LayerFailed,
    LayerQueued,
    LayerStarted,
    discard,
)
from engine.oci import mediatypes
from engine.oci.canonical import canonical_json
from engine.oci.digest import Digest
from engine.spec.locate import beside_spec
from engine.spec.model import ImportOCISpec, ImportSpec, LayerSpec, Spec, TarSpec, layer_summary
from engine.tar.format import MAX_MTIME

if TYPE_CHECKING:
    from engine.builder.remote import RemoteCache
    from engine.builder.tarlayer import TarKey

ACCOUNTS_LABEL = "accounts"  # the accounts layer's label: it sits above every spec layer
BUILD_HISTORY = 20  # builds remembered per spec, for gc and for "what changed since"
# Threads per job that take layers through plan -> lookup -> fetch with a remote cache: some
# wait on the pool for a miss while the others plan or fetch (the registry client bounds the
# requests per host, planning takes a `jobs` slot). More threads only contend for the GIL:
# measured on the fleet benchmark, 16 threads for 2 jobs cost a hit 8% more CPU than 4.
FRONT_PER_JOB = 2


def _note_import(seen: LayerFootprint, path: Path) -> None:
    """What an `import` read on the host, for the up-to-date check: the archive file, or the
    layout's index.json and oci-layout (its blobs are named by their digests; an image that
    changes changes index.json)."""
    real = os.path.realpath(path)
    seen.links.append((str(path), real))
    files = (
        [real]
        if not os.path.isdir(real)
        else [
            os.path.join(real, "index.json"),
            os.path.join(real, "oci-layout"),
        ]
    )
    for file in files:
        try:
            seen.saw(file, stat_key(os.lstat(file)))
        except OSError:
            seen.too_big = True  # unreadable now: never stamp this build


def own_files(spec: Spec, store: BlobStore) -> frozenset[str]:
    """What vinci itself writes beside a spec, and its cache: the spec's default output
    (vinci.oci for vinci.yaml) and lock (vinci.lock), and the cache directory. A directory
    layer never takes them in, whatever command builds it: a layer of the spec's own directory
    would otherwise hold the last build's output, and every build would differ from the one
    before it."""
    spec_file = str(spec.path)
    # The cache's base directory and its versioned root: the base may be a copied directory
    # itself (`--cache-dir .`), and then it is the root that a walk would meet.
    mine = (
        beside_spec(spec_file, ".oci"),
        beside_spec(spec_file, ".lock"),
        store.root.parent,
        store.root,
    )
    return frozenset(os.path.realpath(p) for p in mine)


@contextlib.contextmanager
def _failure_reported(sink: EventSink, index: int) -> Iterator[None]:
    """A layer that fails says so (LayerFailed: "cancelled", or the error) before it raises."""
    try:
        yield
    except BuildCancelled:
        sink(LayerFailed(index, "cancelled"))
        raise
    except VinciError as e:
        sink(LayerFailed(index, str(e)))
        raise


class Builder:
    """Builds specs against one cache. Safe to use from several threads, one build each."""

    def __init__(
        self,
        store: BlobStore | None = None,
        codec: Codec | None = None,
        jobs: int = 0,
        threads: int = 0,
        lock: Lock | None = None,
        remote: RemoteSettings | None = None,
    ) -> None:
        """`jobs` is how many threads may work at once (0: default_jobs()): that many layers
        are built in parallel, each compressed on up to that many threads (at most
        MAX_THREADS; `threads` overrides it). `jobs=1` is one thread doing everything, as
        `make -j1` or `pigz -p 1`. Neither number ever changes a byte of the image.
        `remote`: a registry repository shared as a layer cache (engine/builder/remote.py)."""
        if jobs < 0 or threads < 0:
            raise VinciError("--jobs must be at least 1")
        self.store = store or BlobStore()
        self.codec = codec or get_codec()
        self.jobs = jobs or default_jobs()
        self.threads = threads or min(self.jobs, MAX_THREADS)
        self.index = RecordIndex(self.store)
        # vinci.lock: a layer whose tar bytes are locked uses the locked blob
        # (engine/builder/lock.py).
        self.lock: LockReuse | None = None
        if lock is not None:
            self.lock = LockReuse(lock, self.store, self.codec)
        self.remote = remote

    def build(
        self,
        spec: Spec,
        sink: EventSink = discard,
        cancel: CancelToken | None = None,
        created: int = 0,
        footprint: Footprint | None = None,
        mirror: Path | None = None,
        held: HeldLayers | None = None,
    ) -> BuildResult:
        """Build `spec`; what planning looks at on the host is added to `footprint`. Every
        blob the build writes is also written into `mirror` if given (an OCI layout's blob
        directory: BlobStore.mirrored). A `held` layer (engine/builder/footprint.py) is taken
        from its cache record without planning, unless a remote cache is in use (a layer
        there is looked up and offered by its plan's key)."""
        if not 0 <= created <= MAX_MTIME:
            raise VinciError(
                f"the image's timestamp {created} (SOURCE_DATE_EPOCH or --source-date-epoch) "
                f"is out of range: 0 to {MAX_MTIME} (2242-03-16), what a tar header holds"
            )
        started = time.monotonic()
        token = CancelToken(cancel)
        count = len(spec.layers) + (1 if spec.accounts is not None else 0)
        sink(BuildStarted(spec.display_path, count, self.jobs, self.codec.identity))
        for i, layer in enumerate(spec.layers):
            sink(LayerQueued(i, layer.label))
        if spec.accounts is not None:
            sink(LayerQueued(len(spec.layers), ACCOUNTS_LABEL))
        # With a lock, layers are matched by their tar digest before anything is built, and
        # with a remote cache they are looked up by key before anything is built: so every
        # source is hashed first (no speculative builds, engine/builder/plan.py).
        planner = Planner(
            self.store,
            self.codec,
            created,
            sink,
            token,
            self.lock is None and self.remote is None,
            footprint,
            own_files(spec, self.store),
        )
        # The remote cache's client is imported and connected on a thread of its own while
        # the layers are planned: the import (httpx) and the first connection cost a hit
        # path as much as a few layers' hashing, and need no CPU the hashing wants.
        opening: Future[RemoteCache] | None = None
        if self.remote is not None:
            opener = ThreadPoolExecutor(1, thread_name_prefix="vinci-cache-open")
            opening = opener.submit(self._open_remote, self.remote, sink, token)
            opener.shutdown(wait=False)
        try:
            store = self.store.mirrored(mirror) if mirror is not None else self.store
            held = held if self.remote is None else None
            results = self._run(spec, planner, sink, token, store, opening, held)
            base = self._base_config(spec, results)
            remote = opening.result() if opening is not None else None
            if spec.accounts is not None:
                results.append(self._accounts(spec, results, created, sink, token, store, remote))
            if remote is not None:
                remote.finish()  # the image is built: its layers' writes go out first
            parts = [p for r in results for p in r.parts]
            history = [h for r in results for h in self._history(r, created)]
            named = self._base_annotations(spec, results)
            manifest, config = assemble(spec, parts, history, store, created, base, named)
        except VinciError as e:
            sink(BuildFailed(str(e), isinstance(e, BuildCancelled)))
            raise
        except OSError as e:
            # A full disk or a cache it may not write: the workbench shows it as the CLI does.
            sink(BuildFailed(describe_os_error(e), False))
            raise
        except Exception as e:
            sink(BuildFailed(f"internal error: {e!r}", False))
            raise
        finally:
            if opening is not None and opening.exception() is None:
                opening.result().close()
        sink(ImageAssembled(manifest, config))
        result = BuildResult(
            spec,
            manifest,
            config,
            tuple(results),
            self.codec,
            time.monotonic() - started,
            created,
            str(self.store.root),
        )
        self._record_build(result)
        sink(BuildFinished(manifest.digest, result.seconds, len(results), result.cached))
        return result

    def _open_remote(
        self, settings: RemoteSettings, sink: EventSink, token: CancelToken
    ) -> RemoteCache:
        # Imported only when asked for: it brings in the registry client.
        from engine.builder.remote import RemoteCache

        remote = RemoteCache(settings, self.codec, sink, token)
        remote.warm()
        return remote

    def _run(
        self,
        spec: Spec,
        planner: Planner,
        sink: EventSink,
        token: CancelToken,
        store: BlobStore,
        opening: Future[RemoteCache] | None = None,
        held: HeldLayers | None = None,
    ) -> list[LayerResult]:
        if not spec.layers:
            return []
        pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="vinci-layer")
        # With a remote cache each layer goes plan -> lookup -> fetch (a hit) on a thread of
        # its own, handing a miss to the pool: so hits are fetched while misses build, and no
        # layer waits for another's lookup. Planning (hashing) still uses at most `jobs` CPUs.
        front = None
        if opening is not None:
            workers = max(4, FRONT_PER_JOB * self.jobs)
            front = ThreadPoolExecutor(workers, thread_name_prefix="vinci-remote")
        cpu = threading.BoundedSemaphore(self.jobs)
        futures: list[Future[LayerResult]] = []
        try:
            for i, node in enumerate(spec.layers):
                if front is not None and opening is not None and _remote_kind(node):
                    args = (spec, i, node, planner, sink, token, store, opening, pool, cpu)
                    futures.append(front.submit(self._via_remote, *args))
                else:
                    kept = held.get(i) if held is not None else None
                    futures.append(
                        pool.submit(
                            self._layer, spec, i, node, planner, sink, token, store, held=kept
                        )
                    )
            wait(futures, return_when=FIRST_EXCEPTION)
            if any(f.done() and not f.cancelled() and f.exception() for f in futures):
                # A failure (a cancelled build's layers fail with BuildCancelled): stop the
                # rest, then report the first failure in spec order (a cancelled sibling is
                # not the cause).
                self._stop(futures, token, sink)
                errors = [e for f in futures if not f.cancelled() and (e := f.exception())]
                real = [e for e in errors if not isinstance(e, BuildCancelled)]
                raise (real or errors)[0]
            return [f.result() for f in futures]
        except BaseException:
            # KeyboardInterrupt or another error in this thread: the same, fast.
            self._stop(futures, token, sink)
            raise
        finally:
            if front is not None:
                front.shutdown(wait=True, cancel_futures=True)
            pool.shutdown(wait=True, cancel_futures=True)

    def _via_remote(
        self,
        spec: Spec,
        index: int,
        node: LayerSpec,
        planner: Planner,
        sink: EventSink,
        token: CancelToken,
        store: BlobStore,
        opening: Future[RemoteCache],
        pool: ThreadPoolExecutor,
        cpu: threading.BoundedSemaphore,
    ) -> LayerResult:
        """One layer with a remote cache: its key (hashing every unknown source: a fresh CI
        checkout has no stat memo), one HEAD for it, then the fetch on this thread, or the
        build on the pool."""
        plan: LayerPlan | None = None
        tar_key: TarKey | None = None
        with _failure_reported(sink, index):
            token.check()
            sink(LayerStarted(index, node.label))
            with cpu:
                if isinstance(node, TarSpec):
                    from engine.builder.tarlayer import tar_key_of

                    tar_key = tar_key_of(node, planner, self.codec, index)
                else:
                    assert not isinstance(node, ImportSpec | ImportOCISpec)  # _remote_kind
                    plan = planner.plan(node, index)
            remote = opening.result()  # its errors are the settings' (a bad timeout)
        key = plan.key if plan is not None else tar_key.key if tar_key is not None else ""
        held = self.index.get(key) is not None
        found = remote.lookup(key, held)
        args = (spec, index, node, planner, sink, token, store, plan, remote, tar_key)
        if held or found:
            return self._layer(*args)
        return pool.submit(self._layer, *args).result()

    @staticmethod
    def _stop(futures: list[Future[LayerResult]], token: CancelToken, sink: EventSink) -> None:
        """Stops a build's layers: queued ones never start, running ones stop at their next
        chunk; returns once none is running."""
        token.cancel()
        for i, f in enumerate(futures):
            if not f.done() and f.cancel():
                sink(LayerFailed(i, "cancelled"))
        wait(futures)

    def _layer(
        self,
        spec: Spec,
        index: int,
        node: LayerSpec,
        planner: Planner,
        sink: EventSink,
        token: CancelToken,
        store: BlobStore,
        planned: LayerPlan | None = None,
        remote: RemoteCache | None = None,
        tar_key: TarKey | None = None,
        held: HeldLayer | None = None,
    ) -> LayerResult:
        """Layer `index`'s result; `planned` (`tar_key` for a tar layer) is its plan if it
        was made already, `remote` the remote cache to fetch it from and offer it to, `held`
        what it is held by (engine/builder/footprint.py): taken from that record if the
        cache still has it, and then never planned."""
        started = time.monotonic()
        summary = layer_summary(node)
        with _failure_reported(sink, index):
            token.check()
            if planned is None and tar_key is None:
                sink(LayerStarted(index, node.label))
            if isinstance(node, ImportSpec | ImportOCISpec):
                # Imported here: the image readers and the registry client they may need
                # cost a local build's start-up ~12 ms for nothing (docs/performance.md).
                from engine.builder.imports import import_layers

                record, hit = import_layers(node, store, spec.platform, index, sink, token)
                if isinstance(node, ImportSpec):
                    _note_import(planner.footprint.layer(index), node.path)
                result = LayerResult(
                    index, node.label, summary, record, hit, time.monotonic() - started
                )
            elif isinstance(node, TarSpec):
                from engine.builder.tarlayer import tar_key_of, tar_layer

                if tar_key is None:
                    tar_key = tar_key_of(node, planner, self.codec, index)
                cached = self.index.get(tar_key.key)
                if cached is None and remote is not None:
                    cached = remote.fetch(tar_key.key, summary, store, index)
                reused = 0
                if cached is not None:
                    record, hit = cached, True
                    sink(LayerCached(index, tar_key.key, record.descriptors))
                else:
                    record, hit, reused = tar_layer(
                        node,
                        planner,
                        store,
                        self.codec,
                        index,
                        sink,
                        token,
                        self.threads,
                        self._slot(spec, node, summary),
                        tar_key,
                    )
                if remote is not None:
                    remote.offer(record, store)
                result = LayerResult(
                    index,
                    node.label,
                    summary,
                    record,
                    hit,
                    time.monotonic() - started,
                    reused=reused,
                )
            else:
                # Held: its record is what planning it would find (the same inputs give the
                # same key), so it is a cache hit without the plan.
                cached = self.index.get(held.record) if held is not None else None
                plan: LayerPlan | None = None
                if cached is not None and held is not None:
                    planner.footprint.hold(held)
                else:
                    plan = planned if planned is not None else planner.plan(node, index)
                    # No key yet: a source the stat memo did not know is hashed as it is
                    # written.
                    cached = self.index.get(plan.key) if plan.key else None
                    if cached is None and remote is not None:
                        cached = remote.fetch(plan.key, summary, store, index)
                    if cached is not None and remote is not None:
                        remote.offer(cached, store)
                if self.lock is not None:
                    # A locked blob for these tar bytes wins over what this codec makes.
                    cached = self.lock.record_for(plan, cached, summary, token, sink) or cached
                hit = cached is not None
                reused = 0
                if cached is not None:
                    record = cached
                    sink(LayerCached(index, record.key, record.descriptors))
                else:
                    from engine.cache.members import remember, reusable

                    assert plan is not None  # planned whenever no record was found
                    slot = self._slot(spec, node, summary)
                    built = write_layer(
                        plan,
                        self.codec,
                        store,
                        index,
                        sink,
                        token,
                        self.threads,
                        reusable(store, slot),
                    )
                    if built.members is not None:
                        remember(store, slot, built.descriptor.digest, built.members)
                    reused = built.reused
                    plan = planner.complete(plan, built.content_digests)
                    record = LayerRecord(
                        key=plan.key,
                        descriptors=(built.descriptor,),
                        diff_ids=(built.diff_id,),
                        codec=self.codec.identity,
                        uncompressed_sizes=(built.uncompressed_size,),
                        summary=summary,
                    )
                    self.index.put(record)
                    if remote is not None:
                        remote.offer(record, store)
                if self.lock is not None:
                    self.lock.not_honoured(record, summary, sink)
                result = LayerResult(
                    index,
                    node.label,
                    summary,
                    record,
                    hit,
                    time.monotonic() - started,
                    plan,
                    reused,
                )
        done = result.record
        sink(LayerDone(index, done.descriptors, done.diff_ids, result.cache_hit, result.seconds))
        return result

    def _slot(self, spec: Spec, node: LayerSpec, summary: str) -> str:
        """The slot naming the blob this layer's last build made (engine/cache/members.py):
        which layer of which spec this is, as written, never its contents."""
        from engine.cache.members import slot_of

        where = f"{spec.path}|{node.label}|{summary}|{getattr(node, 'source', '')}"
        return slot_of(where, self.codec.identity)

    def _accounts(
        self,
        spec: Spec,
        below: list[LayerResult],
        created: int,
        sink: EventSink,
        token: CancelToken,
        store: BlobStore,
        remote: RemoteCache | None = None,
    ) -> LayerResult:
        """The accounts layer, on top: it reads what the layers below leave in /etc."""
        from engine.builder.accounts import SUMMARY, accounts_layer

        assert spec.accounts is not None
        index = len(spec.layers)
        started = time.monotonic()
        sink(LayerStarted(index, ACCOUNTS_LABEL))
        with _failure_reported(sink, index):
            record, hit = accounts_layer(
                spec.accounts,
                below,
                store,
                self.codec,
                created,
                index,
                sink,
                token,
                self.threads,
                remote,
            )
        seconds = time.monotonic() - started
        sink(LayerDone(index, record.descriptors, record.diff_ids, hit, seconds))
        return LayerResult(index, ACCOUNTS_LABEL, SUMMARY, record, hit, seconds)

    def _history(self, result: LayerResult, created: int) -> History:
        """The history entries of one layer node's image layers."""
        record = result.record
        count = len(record.descriptors)
        if record.codec != IMPORT_CODEC:
            return built_history(result.summary, count, created)
        extra = dict(record.extra)
        config = json.loads(self.store.read_blob(Digest.parse(extra["config"])))
        pinned_by = extra.get("manifest") or extra["config"]
        return imported_history(config, count, pinned_by, created)

    def _base_config(self, spec: Spec, results: Sequence[LayerResult]) -> dict[str, Any] | None:
        base = None
        for node, result in zip(spec.layers, results[: len(spec.layers)], strict=True):
            if isinstance(node, ImportSpec | ImportOCISpec) and node.inherit_config:
                config_digest = dict(result.record.extra).get("config")
                if config_digest:
                    data = json.loads(self.store.read_blob(Digest.parse(config_digest)))
                    base = data.get("config") or {}
        return base

    @staticmethod
    def _base_annotations(
        spec: Spec, results: Sequence[LayerResult]
    ) -> tuple[tuple[str, str], ...]:
        """org.opencontainers.image.base.name and .base.digest when the bottom layer imports
        an image: the manifest taken (this platform's, from an index), and for a registry
        import the reference as pinned. A local import has no name to give: its path is the
        host's."""
        if not spec.layers or not results:
            return ()
        node = spec.layers[0]
        if not isinstance(node, ImportSpec | ImportOCISpec):
            return ()
        digest = dict(results[0].record.extra).get("manifest")
        out = []
        if digest:
            out.append((mediatypes.BASE_DIGEST_ANNOTATION, digest))
        if isinstance(node, ImportOCISpec):
            out.append((mediatypes.BASE_NAME_ANNOTATION, str(node.ref)))
        return tuple(out)

    def _record_build(self, result: BuildResult) -> None:
        """Remember what this spec's recent builds reference, so gc keeps it."""
        ident = hashlib.sha256(os.fsencode(result.spec.path)).hexdigest()
        path = self.store.build_dir / f"{ident}.json"
        blobs = [str(result.manifest.digest), str(result.config.digest)]
        for r in result.layers:
            blobs.extend(str(d.digest) for d in r.record.descriptors)
            config = dict(r.record.extra).get("config")
            if config:
                blobs.append(config)
        entry = {
            "time": int(time.time()),
            "manifest": str(result.manifest.digest),
            "keys": [r.record.key for r in result.layers],
            "blobs": blobs,
        }
        try:
            history = list(json.loads(path.read_bytes()).get("builds", []))
        except (OSError, ValueError, AttributeError):
            history = []
        history = [entry, *(h for h in history if h.get("manifest") != entry["manifest"])]
        data = {"spec": str(result.spec.path), "builds": history[:BUILD_HISTORY]}
        with contextlib.suppress(OSError):
            write_atomic(path, canonical_json(data), sync_name=False)


def _remote_kind(node: LayerSpec) -> bool:
    """Whether a layer node is in the remote cache: every kind we write. Imports enter byte
    for byte from an image already (docs/fleet-cache.md)."""
    return not isinstance(node, ImportSpec | ImportOCISpec)
