"""A tar header's numeric fields, read as every reader here reads them: the one tar reader
(read.py) and the codec's cutter (engine/codec/cut.py), which only needs each header's data
size. Kept apart from the reader so the cutter does not import it."""

from __future__ import annotations

from engine.errors import LayerReadError


def number(field: bytes, at: int) -> int:
    """An octal field (NUL/space terminated), or GNU base-256 when the high bit is set."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return -value if field[0] & 0x40 else value
    digits = field.replace(b"\0", b" ").strip()
    if not digits:
        return 0
    try:
        return int(digits, 8)
    except ValueError:
        raise LayerReadError(f"invalid number {field!r} in the tar header at offset {at}") from None


def check_sum(block: bytes, at: int) -> None:
    stored = number(block[148:156], at)
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    if stored == unsigned:
        return
    # Some old writers summed signed bytes; tarfile accepts either, and so do we.
    signed = unsigned - 256 * sum(1 for b in block[:148] + block[156:] if b > 127)
    if stored != signed:
        raise LayerReadError(f"not a tar stream: bad header checksum at offset {at}")


def header_data_size(block: bytes) -> int | None:
    """The size of the data that follows the 512-byte header `block` (0 for an all-zero block,
    the end of an archive), or None if `block` is not a valid header. What the codec's cutter
    reads of a tar stream as it passes (engine/codec/cut.py); the PAX size of a file over
    8 GiB is not looked at (its header says 0)."""
    if not any(block):
        return 0
    try:
        check_sum(block, 0)
        return max(0, number(block[124:136], 0))
    except LayerReadError:
        return None
