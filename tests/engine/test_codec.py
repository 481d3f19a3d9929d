"""Compressed bytes depend on the uncompressed bytes alone: not on how they are fed (chunk
sizes), the thread count, the process or where its heap lies. Each codec's stream
decompresses to the input, says whether it is portable, and a codec that does not exist is a
usage error."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import pytest
import zstandard
from conftest import REPO, VinciRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.codec import CODEC_NAMES, get_codec
from engine.codec.cut import CHUNK as BLOCK_SIZE
from engine.errors import CodecError, VinciError


def _sample(size: int = 3 * BLOCK_SIZE + 12345) -> bytes:
    rng = random.Random(7)
    parts = []
    while sum(map(len, parts)) < size:
        if rng.random() < 0.5:
            parts.append(rng.randbytes(rng.randint(1, 200_000)))
        else:
            parts.append(b"the quick brown fox %d\n" % rng.randint(0, 99) * rng.randint(1, 5000))
    return b"".join(parts)[:size]


DATA = _sample()


def _compress(name: str, chunks: list[int], threads: int) -> bytes:
    out = io.BytesIO()
    w = get_codec(name).open(out, threads)
    i = 0
    k = 0
    while i < len(DATA):
        n = chunks[k % len(chunks)]
        w.write(DATA[i : i + n])
        i += n
        k += 1
    w.close()
    return out.getvalue()


REFERENCE = {
    name: hashlib.sha256(_compress(name, [BLOCK_SIZE], 1)).hexdigest() for name in CODEC_NAMES
}


# The default codec's output for DATA, on every machine: a change here changes every image
# digest vinci makes (docs/reproducibility.md says when that is allowed).
GOLDEN_GZIP = "8fd3e2e407b0428471990126551592d8bb4e3e15429531efcb9b901181314d41"


def test_default_gzip_output_is_pinned() -> None:
    assert REFERENCE["gzip"] == GOLDEN_GZIP


@pytest.mark.parametrize("name", ["gzip", "gzip-isal"])
def test_one_thread_is_the_callers_own(name: str) -> None:
    # `--jobs 1` promises one thread at work: no pool is started for it.
    before = {t.ident for t in threading.enumerate()}
    out = io.BytesIO()
    w = get_codec(name).open(out, 1)
    w.write(DATA)
    started = [t.name for t in threading.enumerate() if t.ident not in before]
    w.close()
    assert started == []
    assert gzip.decompress(out.getvalue()) == DATA
    assert hashlib.sha256(out.getvalue()).hexdigest() == REFERENCE[name]


@pytest.mark.parametrize("name", CODEC_NAMES)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunks=st.lists(st.integers(min_value=1, max_value=3 * BLOCK_SIZE), min_size=1, max_size=6),
    threads=st.integers(min_value=1, max_value=4),
)
def test_output_depends_on_bytes_alone(name: str, chunks: list[int], threads: int) -> None:
    assert hashlib.sha256(_compress(name, chunks, threads)).hexdigest() == REFERENCE[name]


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_tiny_writes_same_as_big(name: str) -> None:
    # 4 KiB writes: the size a naive tar writer would use.
    assert hashlib.sha256(_compress(name, [4096], 2)).hexdigest() == REFERENCE[name]


_FRESH = """
import hashlib, io, random, sys
seed = int(sys.argv[1])
rng = random.Random(seed)
keep = [bytearray(rng.randrange(1, 1 << 16)) for _ in range(rng.randrange(1, 200))]  # heap shift
sys.path.insert(0, sys.argv[2])
from engine.codec import get_codec
data = sys.stdin.buffer.read()
out = io.BytesIO()
w = get_codec("gzip").open(out, rng.randint(1, 4))
i = 0
while i < len(data):
    n = rng.choice([1, 511, 4096, 65536, 1 << 20, 3 << 20, rng.randrange(1, 1 << 22)])
    w.write(memoryview(data)[i : i + n])
    i += n
w.close()
print(hashlib.sha256(out.getvalue()).hexdigest())
"""


def fresh_gzip(data: bytes, seed: int) -> str:
    """The default codec's digest of `data` in a fresh interpreter: another hash seed, the C
    heap (PYTHONMALLOC=malloc) shifted by a random number of allocations, a random thread
    count and chunking, all drawn from `seed`."""
    env = {**os.environ, "PYTHONMALLOC": "malloc", "PYTHONHASHSEED": str(seed % 4294967296)}
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH, str(seed), str(REPO)],
        input=data,
        env=env,
        capture_output=True,
        timeout=120,
        check=True,
    )
    return proc.stdout.decode().strip()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_default_gzip_is_the_same_in_fresh_processes(seed: int) -> None:
    assert fresh_gzip(DATA, seed) == REFERENCE["gzip"]


def _members(raw: bytes) -> list[bytes]:
    """The decompressed contents of each gzip member in `raw`, member by member."""
    found = []
    while raw:
        d = zlib.decompressobj(31)
        found.append(d.decompress(raw))
        assert d.eof
        raw = d.unused_data
    return found


def test_default_gzip_is_one_member_per_block() -> None:
    raw = _compress("gzip", [999_999], 3)
    members = _members(raw)
    assert [len(m) for m in members] == [BLOCK_SIZE] * 3 + [12345]
    assert b"".join(members) == DATA
    # Every member's header is the same fixed ten bytes: magic, deflate, no flags (so no
    # file name), mtime 0, XFL 4 (fastest, level 1), OS 255; never the host's OS or the clock.
    assert raw.count(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff") == 4
    assert raw[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
    # What a reader that stops after one member would see: why every reader must loop.
    assert zlib.decompress(raw, 31) == DATA[:BLOCK_SIZE]


def test_empty_input_is_a_gzip_file() -> None:
    out = io.BytesIO()
    get_codec("gzip").open(out, 2).close()
    assert gzip.decompress(out.getvalue()) == b""


@pytest.mark.parametrize(
    ("name", "header"),
    [
        # isal's header and the system zlib's: fixed bytes, never the host's OS or the clock.
        ("gzip-isal", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\xff\x00"),
        ("gzip-zlib", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"),
    ],
)
def test_single_stream_gzip_header_is_fixed(name: str, header: bytes) -> None:
    raw = _compress(name, [BLOCK_SIZE], 1)
    assert raw[:10] == header
    assert len(_members(raw)) == 1
    assert gzip.decompress(raw) == DATA


def test_gzip_isal_never_deflates_without_history() -> None:
    """The first byte goes out stored (a 1-byte, non-final stored block) and the rest of the
    first block is deflated with it as dictionary: the isal path that depends on the heap is
    never taken."""
    raw = _compress("gzip-isal", [BLOCK_SIZE], 2)
    assert raw[10:16] == b"\x00\x01\x00\xfe\xff" + DATA[:1]


def test_zstd_and_none_roundtrip() -> None:
    assert (
        zstandard.ZstdDecompressor().decompressobj().decompress(_compress("zstd", [999], 2)) == DATA
    )
    assert _compress("none", [999], 1) == DATA


def test_identity_names_library_version_and_settings() -> None:
    gz = get_codec("gzip")
    assert gz.identity == "gzip/libdeflate-members/0.9.0/level=1/tar-cut=1m,256k,4m,1m"
    assert gz.portable
    assert get_codec("gzip", 4).identity != gz.identity
    isal = get_codec("gzip-isal")
    assert isal.identity.startswith("gzip-isal/isal-pigz-layout/1.9.1/level=2/")
    assert not isal.portable
    assert "one CPU class" in isal.summary
    assert "zlib" in get_codec("gzip-zlib").identity
    assert not get_codec("gzip-zlib").portable
    assert get_codec("zstd").portable
    assert get_codec("none").media_type == "application/vnd.oci.image.layer.v1.tar"
    with pytest.raises(CodecError, match="unknown compression") as e:
        get_codec("brotli")
    assert isinstance(e.value, VinciError)
    assert not isinstance(e.value, ValueError)


@pytest.mark.parametrize(
    ("name", "level", "message"),
    [
        ("gzip", 13, "choose 1 to 12"),
        ("gzip-isal", 4, "choose 0 to 3"),
        ("gzip-zlib", 10, "choose 0 to 9"),
        ("zstd", 0, "choose 1 to 22"),
        ("none", 1, "takes no level"),
    ],
)
def test_a_level_the_library_lacks_is_refused_up_front(name: str, level: int, message: str) -> None:
    # isal used to fail inside the layer's compression threads: an "internal error".
    with pytest.raises(CodecError, match=message):
        get_codec(name, level)


def test_an_unknown_codec_is_a_usage_error(vinci: VinciRunner, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    (tmp_path / "vinci.yaml").write_text(
        "spec-version: v1\nlayers:\n  - file: {path: /f, source: ./f}\n"
    )
    r = vinci("build", tmp_path, "--compression", "brotli", cwd=tmp_path, check=False)
    assert r.returncode == 2
    assert "unknown compression 'brotli'" in r.stderr
    assert "Traceback" not in r.stderr


def test_isal_alone_depends_on_write_sizes() -> None:
    """Why the re-blocker exists: fed directly, isal's threaded writer gives different bytes
    when writes do not line up with its block size."""
    from isal import igzip_threaded

    def raw(write: int) -> bytes:
        out = io.BytesIO()
        f = igzip_threaded.open(out, "wb", compresslevel=2, threads=1, block_size=BLOCK_SIZE)
        for i in range(0, len(DATA), write):
            f.write(DATA[i : i + write])
        f.close()
        return out.getvalue()

    assert raw(700_000) != raw(BLOCK_SIZE)


_PLACEMENTS = """
import hashlib, io, json, random, sys
from isal import isal_zlib
from engine.codec import get_codec
from engine.codec.cut import CHUNK as BLOCK_SIZE
from engine.tar.format import REGULAR, TarHeader, encode_header
rng = random.Random(42)
big = b"".join(rng.randbytes(4096) + b"A" * 12288 for _ in range(BLOCK_SIZE // 16384))
header = TarHeader(name="data/big.bin", type=REGULAR, mode=0o644, size=3 * 2**20 + 17, mtime=0)
block = (encode_header(header) + big)[:BLOCK_SIZE]  # the first block of the tree's big layer
codec = get_codec("gzip-isal")
raw, ours, keep = set(), set(), []
for pad in range(0, 16 * int(sys.argv[1]), 16):
    keep.append(bytearray(pad))  # kept alive: what is allocated next lies elsewhere
    c = isal_zlib._ParallelCompress(buffersize=BLOCK_SIZE + BLOCK_SIZE // 10, level=2)
    keep.append(c)
    raw.add(hashlib.sha256(c.compress_and_crc(block, memoryview(b""))[0]).hexdigest())
    out = io.BytesIO()
    w = codec.open(out, 1)
    w.write(block)
    w.close()
    ours.add(hashlib.sha256(out.getvalue()).hexdigest())
print(json.dumps({"isal": len(raw), "vinci": len(ours)}))
"""


@pytest.mark.slow
def test_gzip_isal_first_block_is_the_same_wherever_the_compressor_lies() -> None:
    """isal deflates a block without history (every layer's first) into a stream that
    depends on where its compressor lies in memory (about 1 placement in 400 here: a few
    bytes apart, same size, valid). Threads and load only move the heap; this moves it by
    hand, 16 bytes at a time, in one thread (PYTHONMALLOC=malloc: every allocation from
    glibc's heap). isal alone is allowed to vary; gzip-isal, whose first byte is stored and
    whose every deflate has history, must not."""
    env = {**os.environ, "PYTHONMALLOC": "malloc", "PYTHONPATH": str(REPO)}
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", _PLACEMENTS, "2000"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        seen = json.loads(proc.stdout)
        assert seen["vinci"] == 1, seen
