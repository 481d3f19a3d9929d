"""The one tar reader and compression module (engine/tar/read.py, engine/tar/compression.py):
every gzip member is read, by the pull stream and the push inflater alike; broken streams
and hostile headers are one LayerReadError, never an arithmetic or library error."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest
import zstandard

from engine.errors import LayerReadError
from engine.tar.compression import decompressed, inflater, sniff_compression
from engine.tar.read import iter_layer, read_layer


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


TAR = _tar({"a": b"x" * 5000, "b/c": b"hello\n"})
HALF = len(TAR) // 2


def _pulled(blob: bytes) -> bytes:
    with decompressed(io.BytesIO(blob)) as stream:
        return stream.read()


def _pushed(blob: bytes) -> bytes:
    out: list[bytes] = []
    decoder = inflater(sniff_compression(blob[:4]), out.append)
    assert decoder is not None
    for i in range(0, len(blob), 7):  # odd chunks: member ends fall anywhere
        decoder.write(blob[i : i + 7])
    decoder.close()
    return b"".join(out)


MULTI = {
    "gzip, two members": gzip.compress(TAR[:HALF], mtime=0) + gzip.compress(TAR[HALF:], mtime=0),
    "gzip, zero padding after": gzip.compress(TAR, mtime=0) + b"\0" * 512,
    "zstd, two frames": zstandard.ZstdCompressor().compress(TAR[:HALF])
    + zstandard.ZstdCompressor().compress(TAR[HALF:]),
}


@pytest.mark.parametrize("blob", MULTI.values(), ids=MULTI.keys())
def test_every_member_is_read_by_both_shapes(blob: bytes) -> None:
    assert _pulled(blob) == TAR
    assert _pushed(blob) == TAR
    entries, summary = read_layer(io.BytesIO(blob))
    assert [e.path for e in entries] == ["a", "b/c"]
    assert summary.end_offset > 0


BROKEN = {
    "garbage after the last member": gzip.compress(TAR, mtime=0) + b"not gzip",
    "cut inside a member": gzip.compress(TAR, mtime=0)[:-20],
    "a tar header with a bad checksum": TAR[:148] + b"0000000\0" + TAR[156:],
}


@pytest.mark.parametrize("blob", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_layer_is_one_error(blob: bytes) -> None:
    with pytest.raises(LayerReadError):
        read_layer(io.BytesIO(blob))
    with pytest.raises(LayerReadError):
        list(iter_layer(io.BytesIO(blob)))


def test_a_negative_pax_size_is_refused() -> None:
    info = tarfile.TarInfo("a")
    info.pax_headers = {"size": "-5"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(LayerReadError, match="negative size"):
        read_layer(io.BytesIO(buf.getvalue()))
