"""Canonical JSON: the one serialization used for every config, manifest, index and key.

Sorted keys, no insignificant whitespace, UTF-8, no NaN. The same value always gives the same
bytes, whatever the Python version or dict insertion order.
"""

from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
