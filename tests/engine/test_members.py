"""The default codec cuts a tar where its entries say, so an edit leaves every other member's
bytes alone, and a rebuild that copies members from an earlier blob writes exactly what
compressing would have: the same digest, whatever the earlier blob or its table hold."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
from pathlib import Path

import pytest
from conftest import VinciRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_codec import _members, fresh_gzip

from engine.codec import Members, Reusable, get_codec
from engine.codec.cut import CHUNK, MAX_PIECE
from engine.tar.format import END, REGULAR, TarHeader, encode_header, padding


def _tar(sizes: list[int], seed: int = 3, grow: int = -1) -> tuple[bytes, list[int]]:
    """A tar of files of `sizes` (text and random bytes, so it compresses unevenly), file
    `grow` 100 bytes longer; and the offset where each header starts."""
    rng = random.Random(seed)
    out = bytearray()
    starts = []
    for i, size in enumerate(sizes):
        vocabulary = [b"alpha ", b"beta ", b"gamma\n", b"delta "]
        words = b"".join(rng.choice(vocabulary) for _ in range(64))
        body = (rng.randbytes(97) + words * (size // len(words) + 1))[:size]
        if i == grow:
            body += b"x" * 100
        starts.append(len(out))
        out += encode_header(
            TarHeader(name=f"srv/f{i:04d}.txt", type=REGULAR, mode=0o644, size=len(body), mtime=0)
        )
        out += body + padding(len(body))
    return bytes(out + END), starts


_rng = random.Random(11)
SIZES = (
    [_rng.choice([0, 300, 5000, 40_000, 200_000]) for _ in range(120)]
    + [2_500_000]
    + [_rng.choice([700, 9000, 60_000]) for _ in range(60)]
)
TAR, STARTS = _tar(SIZES)


def _compress(data: bytes, chunks: list[int], threads: int, reuse: Reusable | None = None):
    out = io.BytesIO()
    w = get_codec("gzip").open(out, threads, reuse)
    i = k = 0
    while i < len(data):
        n = chunks[k % len(chunks)]
        w.write(data[i : i + n])
        i, k = i + n, k + 1
    w.close()
    return out.getvalue(), w


REFERENCE = hashlib.sha256(_compress(TAR, [CHUNK], 1)[0]).hexdigest()
# The default codec's output for this tar: a change here changes the digest of every layer
# over 256 KiB that vinci makes (docs/reproducibility.md says when that is allowed).
GOLDEN_TAR = "604ae565cbc88d36bbef1f524beb1f9b2a17152a1aa0aa990318649012bc078b"


def test_a_tars_members_are_pinned() -> None:
    assert REFERENCE == GOLDEN_TAR


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunks=st.lists(st.integers(min_value=1, max_value=3 * CHUNK), min_size=1, max_size=6),
    threads=st.integers(min_value=1, max_value=4),
)
def test_cuts_depend_on_the_bytes_alone(chunks: list[int], threads: int) -> None:
    assert hashlib.sha256(_compress(TAR, chunks, threads)[0]).hexdigest() == REFERENCE


def test_members_begin_at_headers_or_at_whole_chunks_of_a_files_data() -> None:
    raw, w = _compress(TAR, [65536], 2)
    members = _members(raw)
    assert b"".join(members) == TAR
    assert gzip.decompress(raw) == TAR
    big = SIZES.index(2_500_000)
    data_start = STARTS[big] + 512
    allowed = set(STARTS) | {data_start + CHUNK, data_start + 2 * CHUNK}
    offset = 0
    for m in members[:-1]:
        offset += len(m)
        assert offset in allowed
        assert len(m) <= MAX_PIECE
    # The big file starts a member, and its data is cut every CHUNK from its start.
    assert {STARTS[big], data_start + CHUNK, data_start + 2 * CHUNK} <= {
        sum(map(len, members[:i])) for i in range(len(members))
    }
    assert w.members is not None
    assert [size for size, _, _ in w.members.sizes] == [len(m) for m in members]


def test_an_edit_leaves_the_other_members_as_they_were() -> None:
    before = _members(_compress(TAR, [CHUNK], 2)[0])
    edited, _ = _tar(SIZES, grow=40)
    after = _members(_compress(edited, [CHUNK], 2)[0])
    assert len(before) > 8
    # A file 100 bytes longer changes its own member, and maybe where the next one starts.
    assert len(set(before) - set(after)) <= 2


def _reused(tmp_path: Path, old: bytes, table: Members | bytes, new: bytes) -> tuple[bytes, int]:
    path = tmp_path / "old.gz"
    path.write_bytes(old)
    members = table if isinstance(table, Members) else Members.from_bytes(table)
    raw, w = _compress(new, [CHUNK], 2, Reusable(str(path), members))
    return raw, w.reused


def test_a_rebuild_copies_members_and_writes_what_compressing_would(tmp_path: Path) -> None:
    old, w = _compress(TAR, [CHUNK], 2)
    assert w.members is not None
    edited, _ = _tar(SIZES, grow=40)
    fresh = _compress(edited, [CHUNK], 2)[0]
    raw, reused = _reused(tmp_path, old, w.members, edited)
    assert raw == fresh
    assert reused > 0.8 * len(edited)


def test_a_wrong_table_or_damaged_blob_costs_time_never_a_byte(tmp_path: Path) -> None:
    old, w = _compress(TAR, [CHUNK], 2)
    assert w.members is not None
    fresh = _compress(TAR, [CHUNK], 2)[0]
    sizes = list(w.members.sizes)
    # Members listed in another order: every copy lands on the wrong bytes.
    shuffled = Members(w.members.codec, tuple(reversed(sizes)))
    raw, reused = _reused(tmp_path, old, shuffled, TAR)
    assert raw == fresh
    # The blob damaged inside one member: that member is compressed, the others copied.
    damaged = bytearray(old)
    damaged[sizes[0][2] + 40] ^= 0xFF
    raw, reused = _reused(tmp_path, bytes(damaged), w.members, TAR)
    assert raw == fresh
    assert 0 < reused < len(TAR)
    # A table made by another codec, or cut short on disk: nothing taken from it.
    other = Members("gzip/libdeflate-members/0.1/level=9", w.members.sizes)
    assert _reused(tmp_path, old, other, TAR) == (fresh, 0)
    with pytest.raises(ValueError):
        Members.from_bytes(w.members.to_bytes()[:-5])


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_a_tar_compresses_the_same_in_fresh_processes(seed: int) -> None:
    """As test_codec's for raw bytes, for a tar, whose cuts follow its entries."""
    assert fresh_gzip(TAR, seed) == REFERENCE


def test_a_rebuild_after_one_edit_copies_the_rest(vinci: VinciRunner, tmp_path: Path) -> None:
    """Through `vinci build`: the layer with the edited file reports the bytes it copied, and
    its image is the one a build with an empty cache makes."""
    src = tmp_path / "src"
    src.mkdir()
    for i, size in enumerate(SIZES):
        (src / f"f{i:03d}").write_bytes(TAR[STARTS[i] + 512 : STARTS[i] + 512 + size])
    (tmp_path / "vinci.yaml").write_text(
        "spec-version: v1\nlayers:\n  - directory: {path: /srv, source: ./src}\n"
    )
    cache = tmp_path / "cache"

    def build(cache: Path) -> dict[str, object]:
        out = f"oci:{tmp_path / 'out'}"
        r = vinci("build", tmp_path, "--json", "--cache-dir", cache, "-o", out)
        data: dict[str, object] = json.loads(r.stdout)
        return data

    first = build(cache)
    with open(src / "f090", "ab") as f:
        f.write(b"one more line\n")
    again = build(cache)
    layer = again["layers"][0]  # type: ignore[index]
    assert layer["cache_hit"] is False
    # Of about ten members, the edited file's and perhaps its neighbour's were made again.
    assert layer["reused_bytes"] > 0.7 * layer["uncompressed_size"]
    assert again["manifest_digest"] != first["manifest_digest"]
    assert build(tmp_path / "empty")["manifest_digest"] == again["manifest_digest"]
