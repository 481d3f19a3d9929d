"""The hand-written tar headers: exact bytes for the simple case, and an independent reader
(Python's tarfile) agreeing with every field, including the PAX cases."""

from __future__ import annotations

import io
import tarfile

import pytest

from engine.tar.format import (
    DIRECTORY,
    END,
    REGULAR,
    SYMLINK,
    TarHeader,
    encode_header,
    padding,
)


def _archive(headers_and_data: list[tuple[TarHeader, bytes]]) -> bytes:
    out = io.BytesIO()
    for header, data in headers_and_data:
        out.write(encode_header(header))
        out.write(data)
        out.write(padding(len(data)))
    out.write(END)
    return out.getvalue()


def _read(raw: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
        return tf.getmembers()


def test_simple_header_is_plain_ustar_with_no_host_data() -> None:
    block = encode_header(TarHeader("etc/motd", REGULAR, 0o644, size=5))
    assert len(block) == 512
    assert block[257:265] == b"ustar\x0000"
    assert block[0:8] == b"etc/motd"
    assert block[100:108] == b"0000644\0"
    assert block[108:124] == b"0000000\x000000000\0"
    assert block[136:148] == b"00000000000\0"  # mtime 0
    assert block[265:329] == b"\0" * 64  # uname and gname empty
    assert block[156:157] == REGULAR
    # The checksum is the byte sum with the checksum field read as spaces.
    field = block[148:156]
    expected = sum(block[:148]) + 8 * 32 + sum(block[156:])
    assert field == b"%06o\0 " % expected


def test_independent_reader_agrees_on_every_field() -> None:
    long_dir = "usr/share/" + "d" * 90 + "/"
    raw = _archive(
        [
            (TarHeader("srv/", DIRECTORY, 0o755, uid=1000, gid=1000, mtime=1700000000), b""),
            (TarHeader("srv/app", REGULAR, 0o4755, uid=7, gid=8, size=3, mtime=1), b"abc"),
            (TarHeader("bin/sh", SYMLINK, 0o777, linkname="busybox"), b""),
            (TarHeader(long_dir + "file.txt", REGULAR, 0o600, size=1), b"x"),
        ]
    )
    members = _read(raw)
    assert [m.name for m in members] == [
        "srv",
        "srv/app",
        "bin/sh",
        long_dir + "file.txt",
    ]
    d, f, s, long = members
    assert d.isdir() and d.mode == 0o755 and (d.uid, d.gid) == (1000, 1000)
    assert d.mtime == 1700000000
    assert f.isfile() and f.mode == 0o4755 and f.size == 3 and (f.uid, f.gid) == (7, 8)
    assert s.issym() and s.linkname == "busybox"
    assert long.size == 1
    assert all(m.uname == "" and m.gname == "" for m in members)
    # Nothing needed PAX: the long name fit USTAR's prefix field.
    assert b"PaxHeader" not in raw


@pytest.mark.parametrize(
    ("header", "records"),
    [
        (TarHeader("a/" + "n" * 120, REGULAR, 0o644), {"path"}),  # no '/' split fits
        (TarHeader("caf\u00e9/men\u00fc.txt", REGULAR, 0o644), {"path"}),  # not ASCII
        (TarHeader("l", SYMLINK, 0o777, linkname="t" * 150), {"linkpath"}),
        (TarHeader("big-ids", REGULAR, 0o644, uid=2**31, gid=2**31 + 1), {"uid", "gid"}),
    ],
)
def test_pax_only_where_needed(header: TarHeader, records: set[str]) -> None:
    raw = _archive([(header, b"")])
    (member,) = _read(raw)
    assert set(member.pax_headers) == records
    assert member.name == header.name
    assert member.linkname == header.linkname
    assert (member.uid, member.gid) == (header.uid, header.gid)


def test_big_size_uses_pax_size_record() -> None:
    header = TarHeader("huge", REGULAR, 0o644, size=9 * 2**30)
    raw = encode_header(header)
    assert b" size=9663676416\n" in raw
    # Ends with the USTAR block whose size field is zero: readers take the PAX record.
    assert raw[-512 + 124 : -512 + 136] == b"00000000000\0"


def test_same_header_same_bytes() -> None:
    h = TarHeader("x/" + "\u00e9" * 200, REGULAR, 0o644, uid=2**33, size=10)
    assert encode_header(h) == encode_header(h)
