"""The verifying ingest's background decompression (engine/cache/ingest.py): results equal
to a one-shot decompress whatever the write sizes, errors reported at commit, and no thread or
blob left behind by a discard, a reset or a failure."""

from __future__ import annotations

import gzip
import os
import random
import threading
from pathlib import Path

import pytest

from engine.cache import ingest as ingest_mod
from engine.cache.ingest import Ingest
from engine.cache.store import BlobStore
from engine.errors import CorruptImportedImage
from engine.oci.digest import Digest


def _layer_bytes(n: int) -> bytes:
    """Compressible but not trivially so: inflating it takes many blocks."""
    rng = random.Random(7)
    words = [bytes(rng.choices(b"abcdefghijklmnop", k=rng.randint(2, 9))) for _ in range(500)]
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words) + b" "
    return bytes(out[:n])


def _gzipped(n: int) -> tuple[bytes, bytes]:
    """A layer of `n` bytes and its gzip blob."""
    raw = _layer_bytes(n)
    return raw, gzip.compress(raw, mtime=0)


def _interrupted(
    store: BlobStore, n: int, compression: str, part: int
) -> tuple[bytes, bytes, Ingest]:
    """An ingest of an `n`-byte layer fed the first 1/`part` of its gzip blob."""
    raw, blob = _gzipped(n)
    sink = Ingest(store, "t", compression)
    sink.write(blob[: len(blob) // part])
    return raw, blob, sink


def _inflaters() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "vinci-inflate"]


def _blobs(store: BlobStore) -> list[str]:
    return sorted(p.name for p in store.blob_dir.iterdir())


def _feed(sink: Ingest, data: bytes, sizes: list[int]) -> None:
    i = 0
    while i < len(data):
        n = sizes[i % len(sizes)]
        sink.write(data[i : i + n])
        i += n


@pytest.mark.parametrize("sizes", [[1], [7, 65536, 3], [ingest_mod.BLOCK * 3 + 1]])
def test_multi_member_padded_gzip_in_any_write_sizes(tmp_path: Path, sizes: list[int]) -> None:
    raw = _layer_bytes(3 << 20)
    third = len(raw) // 3
    blob = (
        gzip.compress(raw[:third], mtime=0)
        + gzip.compress(raw[third : 2 * third], mtime=0)
        + gzip.compress(raw[2 * third :], mtime=0)
        + b"\0" * 512
    )
    if sizes == [1]:  # a byte at a time is slow in Python: only the first MiB of it
        sizes = [1] * 4 + [1 << 20]
    store = BlobStore(tmp_path)
    sink = Ingest(store, "t", "gzip")
    _feed(sink, blob, sizes)
    got = sink.commit(Digest.of_bytes(blob), len(blob), Digest.of_bytes(raw))
    assert (got.diff_id, got.uncompressed_size) == (Digest.of_bytes(raw), len(raw))
    assert _blobs(store) == [got.digest.hex]
    assert _inflaters() == []


def test_a_reused_write_buffer_is_copied_before_it_is_queued(tmp_path: Path) -> None:
    raw, blob = _gzipped(2 << 20)
    sink = Ingest(BlobStore(tmp_path), "t", "gzip")
    buf = bytearray(4096)
    for i in range(0, len(blob), len(buf)):
        piece = blob[i : i + len(buf)]
        buf[: len(piece)] = piece
        sink.write(memoryview(buf)[: len(piece)])  # type: ignore[arg-type]
    assert sink.commit(None, None, Digest.of_bytes(raw)).diff_id == Digest.of_bytes(raw)


def test_a_broken_stream_keeps_draining_and_fails_at_commit(tmp_path: Path) -> None:
    # Far more than the queue holds: the producer must never block on a thread that gave up.
    junk = os.urandom(ingest_mod.BLOCK * (ingest_mod.DEPTH + 4))
    store = BlobStore(tmp_path)
    sink = Ingest(store, "img", "gzip")
    _feed(sink, b"\x1f\x8b" + junk, [65536])
    with pytest.raises(CorruptImportedImage, match="does not decompress as gzip"):
        sink.commit(None)
    assert _blobs(store) == [] and _inflaters() == []


def test_data_after_the_last_member_is_refused(tmp_path: Path) -> None:
    blob = _gzipped(100_000)[1] + b"trailing"
    sink = Ingest(BlobStore(tmp_path), "img", "gzip")
    sink.write(blob)
    with pytest.raises(CorruptImportedImage, match="data after the end"):
        sink.commit(None)


def test_discard_mid_stream_stops_the_thread_and_stores_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    _raw, _blob, sink = _interrupted(store, 4 << 20, "gzip", 2)
    assert len(_inflaters()) == 1
    sink.discard()
    sink.discard()  # idempotent, as the callers' finally blocks expect
    assert _inflaters() == [] and _blobs(store) == []


def test_reset_mid_stream_starts_over(tmp_path: Path) -> None:
    raw, blob, sink = _interrupted(BlobStore(tmp_path), 2 << 20, "detect", 3)
    sink.reset()
    _feed(sink, blob, [100_000])
    got = sink.commit(Digest.of_bytes(blob), len(blob), Digest.of_bytes(raw))
    assert got.compression == "gzip" and got.diff_id == Digest.of_bytes(raw)
    assert _inflaters() == []


def test_an_uncompressed_layer_s_diff_id_is_its_digest(tmp_path: Path) -> None:
    raw = _layer_bytes(300_000)
    sink = Ingest(BlobStore(tmp_path), "t", "none")
    _feed(sink, raw, [65536])
    got = sink.commit(Digest.of_bytes(raw), len(raw), Digest.of_bytes(raw))
    assert (got.diff_id, got.uncompressed_size) == (got.digest, len(raw))
    assert _inflaters() == []
