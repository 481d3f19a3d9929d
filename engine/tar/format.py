"""Deterministic tar headers, written by hand.

We never use tarfile.add/gettarinfo on host files, and we do not use tarfile's writer either:
its header bytes are an implementation detail of the Python version. Here every byte is ours:

- USTAR headers (magic "ustar\\0", version "00") wherever the entry fits: ASCII name of at most
  100 bytes, or splittable into a 155-byte prefix and a 100-byte name; ASCII link target of at
  most 100 bytes; ids up to 0o7777777; size below 8 GiB.
- A PAX extended header ('x') only where the entry does not fit, carrying just the records it
  needs (path, linkpath, uid, gid, size), sorted by keyword.
- uname/gname empty; devmajor/devminor zero but for devices; mtime a whole number of seconds.
- Extended attributes (a `tar` layer keeps a rootfs tarball's, file capabilities among them)
  as `SCHILY.xattr.NAME` PAX records, the spelling GNU tar, bsdtar and every unpacker read.
- No padding to a 10 KiB record after the two zero end blocks.
- A name that is not valid UTF-8 (a host file name, read as Python keeps such names, with
  surrogate escapes) is written byte for byte: in the USTAR fields where it fits, else in a
  PAX record under `hdrcharset=BINARY`, as POSIX provides. Valid UTF-8 names are unaffected.

TAR_FORMAT names this layout; it is part of every layer's cache key, so changing a byte here
means bumping it.
"""

from __future__ import annotations

from dataclasses import dataclass

TAR_FORMAT = "vinci-tar/1"
BLOCK = 512
END = b"\0" * (2 * BLOCK)

REGULAR = b"0"
HARDLINK = b"1"
SYMLINK = b"2"
CHARDEV = b"3"
BLOCKDEV = b"4"
DIRECTORY = b"5"
FIFO = b"6"
PAX = b"x"

_MAX_ID = 0o7777777
_MAX_SIZE = 0o77777777777
MAX_MTIME = _MAX_SIZE  # 2242-03-16: the last time an octal header field holds


@dataclass(frozen=True)
class TarHeader:
    """The metadata of one tar entry. `name` has no leading '/'; directories end in '/'."""

    name: str
    type: bytes
    mode: int
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: tuple[tuple[str, bytes], ...] = ()  # (name, value), written sorted by name


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) if `name` fits USTAR, else None."""
    if len(name) <= 100:
        return b"", name
    # The split must fall on a '/', with the prefix at most 155 bytes and the rest at most 100.
    for i in range(min(len(name) - 1, 155), 0, -1):
        if name[i : i + 1] == b"/" and len(name) - i - 1 <= 100 and i <= 155:
            if len(name) - i - 1 == 0:
                continue
            return name[:i], name[i + 1 :]
    return None


def _pax_record(key: str, value: bytes) -> bytes:
    payload = b" " + key.encode("utf-8", "surrogateescape") + b"=" + value + b"\n"
    length = len(payload)
    digits = len(str(length))
    while len(str(length + digits)) != digits:
        digits += 1
    return str(length + digits).encode() + payload


def _block(
    name: bytes,
    prefix: bytes,
    h: TarHeader,
    typeflag: bytes,
    size: int,
    linkname: bytes,
    uid: int,
    gid: int,
) -> bytes:
    header = bytearray(BLOCK)
    header[0:100] = name.ljust(100, b"\0")
    header[100:108] = _octal(h.mode & 0o7777, 8)
    header[108:116] = _octal(uid, 8)
    header[116:124] = _octal(gid, 8)
    header[124:136] = _octal(size, 12)
    header[136:148] = _octal(h.mtime, 12)
    header[148:156] = b" " * 8
    header[156:157] = typeflag
    header[157:257] = linkname.ljust(100, b"\0")
    header[257:263] = b"ustar\0"
    header[263:265] = b"00"
    # uname/gname stay empty: names would be the host's, never ours to leak.
    header[329:337] = _octal(h.devmajor, 8)
    header[337:345] = _octal(h.devminor, 8)
    header[345:500] = prefix.ljust(155, b"\0")
    checksum = sum(header)
    header[148:156] = b"%06o\0 " % checksum
    return bytes(header)


def encode_header(h: TarHeader) -> bytes:
    """The bytes of the header block(s) for `h`, PAX extended header first if needed."""
    if h.mtime < 0 or h.mtime > _MAX_SIZE:
        raise ValueError(f"mtime {h.mtime} out of range")
    pax: dict[str, bytes] = {}
    raw_name, binary_name = _raw(h.name)
    # A valid UTF-8 name outside ASCII goes to PAX (its USTAR bytes would be read as another
    # charset); a name that is not UTF-8 at all has no charset to lose, and fits as it is.
    split = _split_ustar(raw_name) if raw_name.isascii() or binary_name else None
    if split is None:
        pax["path"] = raw_name
        prefix, name = b"", _fallback_name(raw_name)
    else:
        prefix, name = split
    raw_link, binary_link = _raw(h.linkname)
    if len(raw_link) > 100 or not (raw_link.isascii() or binary_link):
        pax["linkpath"] = raw_link
        raw_link = _fallback_name(raw_link)
    if (binary_name and "path" in pax) or (binary_link and "linkpath" in pax):
        pax["hdrcharset"] = b"BINARY"
    uid, gid, size = h.uid, h.gid, h.size
    if uid > _MAX_ID:
        pax["uid"] = str(uid).encode()
        uid = 0
    if gid > _MAX_ID:
        pax["gid"] = str(gid).encode()
        gid = 0
    if size > _MAX_SIZE:
        pax["size"] = str(size).encode()
        size = 0
    for xattr, value in h.xattrs:
        pax["SCHILY.xattr." + xattr] = value
    main = _block(name, prefix, h, h.type, size, raw_link, uid, gid)
    if not pax:
        return main
    body = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
    pax_header = TarHeader(name="", type=PAX, mode=0o644, mtime=h.mtime)
    # A fixed, short name for the extended header: readers ignore it, and it must not depend on
    # anything but the entry.
    pax_block = _block(b"PaxHeader", b"", pax_header, PAX, len(body), b"", 0, 0)
    return pax_block + body + padding(len(body)) + main


def _raw(text: str) -> tuple[bytes, bool]:
    """The bytes of a name, and whether it is not valid UTF-8 (a host name kept with
    surrogate escapes, whose escapes stand for its original bytes)."""
    try:
        return text.encode("utf-8"), False
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape"), True


def _fallback_name(raw: bytes) -> bytes:
    """What old readers see in the 100-byte field when the real value is in a PAX record."""
    return raw.decode("utf-8", "replace").encode("ascii", "replace")[-100:]


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)
