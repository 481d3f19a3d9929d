"""Deterministic benchmark inputs, generated here (no downloads) from a fixed seed.

"Mixed compressible data" imitates what image layers hold, in proportions chosen so gzip -6
compresses it about as well as real system files (about 0.35-0.40 of the input size, like
libcrypto or perl; measured figures in docs/performance.md):

- 8% incompressible bytes (already-compressed media, archives),
- 40% text: lines of words drawn with Zipf frequencies from a 6,000-word vocabulary,
- 42% "machine code": byte strings from a skewed alphabet, reused with Zipf frequencies,
- 10% sparse tables: zero runs and short repeated records.

Text and code are cut from 8 MiB corpora at random offsets, so generating a GiB takes seconds
rather than minutes; deflate only sees a 32 KiB window, so for gzip the slices look as fresh as
newly generated text. Every generator is a pure function of its arguments: the same bytes on
every machine and every run (GENERATOR_VERSION names the algorithm; bump it on any change).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

GENERATOR_VERSION = 2
CORPUS = 8 << 20
MIB = 1 << 20


@dataclass(frozen=True)
class _Corpora:
    text: bytes
    code: bytes


def _corpora(seed: int) -> _Corpora:
    rng = random.Random(f"corpora-{seed}")
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    words = ["".join(rng.choices(letters, k=rng.randint(2, 9))) for _ in range(6000)]
    wcum = list(itertools.accumulate(1 / (i + 1) for i in range(len(words))))
    text = bytearray()
    while len(text) < CORPUS:
        line = rng.choices(words, cum_weights=wcum, k=rng.randint(3, 14))
        text += (" ".join(line) + "\n").encode()
    alphabet = bytes(30) + bytes(rng.sample(range(1, 256), 40)) + bytes(range(256))
    instrs = [bytes(rng.choices(alphabet, k=rng.randint(2, 12))) for _ in range(1500)]
    icum = list(itertools.accumulate(1 / (i + 1) ** 1.1 for i in range(len(instrs))))
    code = bytearray()
    while len(code) < CORPUS:
        code += b"".join(rng.choices(instrs, cum_weights=icum, k=1 << 16))
    return _Corpora(bytes(text[:CORPUS]), bytes(code[:CORPUS]))


@functools.cache
def _shared_corpora() -> _Corpora:
    """One pair of corpora for every stream (generating them takes a few seconds); streams
    differ by where they cut."""
    return _corpora(0)


class MixedStream:
    """An endless deterministic stream of mixed compressible bytes."""

    def __init__(self, seed: int) -> None:
        self._c = _shared_corpora()
        self._rng = random.Random(f"stream-{seed}")

    def segment(self) -> bytes:
        rng = self._rng
        n = rng.randint(4096, 262144)
        kind = rng.random()
        if kind < 0.08:
            return rng.randbytes(n)
        if kind < 0.48:
            o = rng.randrange(CORPUS - n)
            return self._c.text[o : o + n]
        if kind < 0.90:
            o = rng.randrange(CORPUS - n)
            return self._c.code[o : o + n]
        return bytes(n // 2) + rng.randbytes(32) * (n // 64)

    def read(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            out += self.segment()
        return bytes(out[:size])


def write_mixed_file(path: Path, size: int, seed: int) -> None:
    stream = MixedStream(seed)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        left = size
        while left:
            chunk = stream.read(min(left, 64 * MIB))
            f.write(chunk)
            left -= len(chunk)
    os.replace(tmp, path)


def write_tree(root: Path, files: int, total: int, parts: int, seed: int) -> None:
    """`files` files with log-normally distributed sizes (median ~14 KB, a few MB at most,
    like a source or /usr tree) summing to about `total` bytes, spread over `parts` top-level
    directories `p00`, `p01`... (one layer each in the benchmark's spec), nested up to four
    levels deep. Every 50th file is executable. Deterministic, modes included."""
    rng = random.Random(f"tree-{seed}")
    raw = [rng.lognormvariate(0, 1.6) for _ in range(files)]
    scale = total / sum(raw)
    stream = MixedStream(seed)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    dirs: list[list[str]] = [[f"p{p:02d}"] for p in range(parts)]
    for i, r in enumerate(raw):
        part = i % parts
        if rng.random() < 0.04:  # a new directory below an existing one of this part
            parent = rng.choice(dirs[part])
            if parent.count("/") < 4:
                dirs[part].append(f"{parent}/d{len(dirs[part]):03d}")
        where = tmp / rng.choice(dirs[part][-12:])
        where.mkdir(parents=True, exist_ok=True)
        ext = rng.choice(["so", "txt", "py", "bin", "h", "json"])
        path = where / f"f{i:05d}.{ext}"
        path.write_bytes(stream.read(int(r * scale)))
        # Modes are explicit: a umask must not change the workload.
        os.chmod(path, 0o755 if i % 50 == 0 else 0o644)
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)


def ensure(work: Path, name: str, params: dict[str, int], make: object) -> Path:
    """The workload `name` under `work`, generated once per (generator version, params)."""
    ident = hashlib.sha256(
        json.dumps({"v": GENERATOR_VERSION, "name": name, **params}, sort_keys=True).encode()
    ).hexdigest()[:12]
    path = work / f"{name}-{ident}"
    stamp = work / f".{name}-{ident}.done"
    if not stamp.exists():
        work.mkdir(parents=True, exist_ok=True)
        make(path)  # type: ignore[operator]
        stamp.write_text("ok\n")
    return path
