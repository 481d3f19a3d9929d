"""Cache-key records: what a layer node produced, so an unchanged node is never rebuilt."""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from engine.cache.atomic import write_atomic
from engine.cache.store import BlobStore
from engine.oci.canonical import canonical_json
from engine.oci.descriptor import Descriptor
from engine.oci.digest import Digest

# The `codec` of an imported layer's record: its blobs are the image's own, as they came
# (engine/cache/imported.py), not made by one of our codecs.
IMPORT_CODEC = "import"


@dataclass(frozen=True)
class LayerRecord:
    """The result of one layer node: one descriptor per image layer, with its diff_id."""

    key: str
    descriptors: tuple[Descriptor, ...]
    diff_ids: tuple[Digest, ...]
    codec: str
    uncompressed_sizes: tuple[int, ...]
    summary: str = ""
    extra: tuple[tuple[str, str], ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "codec": self.codec,
            "summary": self.summary,
            "extra": dict(self.extra),
            "layers": [
                {**d.to_json(), "diffId": str(i), "uncompressedSize": u}
                for d, i, u in zip(
                    self.descriptors, self.diff_ids, self.uncompressed_sizes, strict=True
                )
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LayerRecord:
        layers = data["layers"]
        return cls(
            key=str(data["key"]),
            descriptors=tuple(Descriptor.from_json(x) for x in layers),
            diff_ids=tuple(Digest.parse(x["diffId"]) for x in layers),
            codec=str(data["codec"]),
            uncompressed_sizes=tuple(int(x.get("uncompressedSize", 0)) for x in layers),
            summary=str(data.get("summary", "")),
            extra=tuple(sorted((data.get("extra") or {}).items())),
        )


class RecordIndex:
    def __init__(self, store: BlobStore) -> None:
        self._store = store

    def _path(self, key: str) -> Any:
        return self._store.layer_dir / f"{key}.json"

    def get(self, key: str) -> LayerRecord | None:
        """The record for `key` if every blob it names is present; touches it as used."""
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                record = LayerRecord.from_json(json.load(f))
        except (FileNotFoundError, ValueError, KeyError):
            return None
        if not all(self._store.has_blob(d.digest, d.size) for d in record.descriptors):
            return None
        now = time.time()
        with contextlib.suppress(OSError):
            os.utime(path, (now, now))
        return record

    def put(self, record: LayerRecord) -> None:
        data = canonical_json(record.to_json())
        # Its name may be lost in a crash: a record is only a shortcut (engine/cache/atomic.py).
        write_atomic(self._path(record.key), data, replace=True, sync_name=False)

    def all(self) -> list[tuple[LayerRecord, float]]:
        out = []
        for path in sorted(self._store.layer_dir.glob("*.json")):
            try:
                with open(path, "rb") as f:
                    out.append((LayerRecord.from_json(json.load(f)), path.stat().st_mtime))
            except (OSError, ValueError, KeyError):
                continue
        return out

    def remove(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))
