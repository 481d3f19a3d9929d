"""What lets a rebuild copy compressed members instead of compressing them again.

Two kinds of small files in the cache, neither ever needed for a correct build:

- a member table beside each blob whose codec makes independent members (`members/<hex>`,
  engine/codec Members): each member's uncompressed size, CRC-32 and compressed size;
- a slot per layer as a spec writes it (`slots/<id>`: its kind, source, destination and the
  codec, never its contents), naming the blob its last build made.

The next build of that layer hands the codec the slot's blob and table (`reusable`); the codec
copies a member only after decompressing it and comparing it with the new bytes
(engine/codec/gzip.py). So a table or slot that is missing, stale, torn or wrong costs the
rebuild time, never a byte of the image. `vinci cache gc` drops those whose blob is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os

from engine.cache.atomic import write_atomic
from engine.cache.store import BlobStore
from engine.codec import Members, Reusable
from engine.oci.digest import Digest


def slot_of(description: str, codec_identity: str) -> str:
    """A slot's name: `description` says which layer of a spec this is, as written."""
    return hashlib.sha256(f"{codec_identity}\0{description}".encode()).hexdigest()


def reusable(store: BlobStore, slot: str) -> Reusable | None:
    """The blob the slot's last build made, with its member table, if both are still here."""
    try:
        hex_ = (store.slot_dir / slot).read_text().strip()
        if len(hex_) != 64 or not all(c in "0123456789abcdef" for c in hex_):
            return None
        with open(store.member_dir / hex_, "rb") as f:
            members = Members.from_bytes(f.read())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    path = store.blob_dir / hex_
    if not path.is_file():
        return None
    return Reusable(os.fspath(path), members)


def remember(store: BlobStore, slot: str, digest: Digest, members: Members) -> None:
    """Keep the blob's member table and point the slot at it; a failure only costs the next
    rebuild its shortcut."""
    with contextlib.suppress(OSError):
        table = store.member_dir / digest.hex
        if not table.exists():
            write_atomic(table, members.to_bytes(), durable=False)
        write_atomic(store.slot_dir / slot, digest.hex.encode(), durable=False)


def forget_orphans(store: BlobStore, present: set[str]) -> None:
    """Drop the tables and slots of blobs that are no longer in the cache (`present`: the
    blob file names)."""
    with contextlib.suppress(FileNotFoundError):
        for table in store.member_dir.iterdir():
            if not table.name.startswith(".") and table.name not in present:
                table.unlink(missing_ok=True)
    with contextlib.suppress(FileNotFoundError):
        for slot in store.slot_dir.iterdir():
            if slot.name.startswith("."):
                continue
            with contextlib.suppress(OSError):
                if slot.read_text().strip() not in present:
                    slot.unlink(missing_ok=True)
