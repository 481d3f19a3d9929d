"""Heap placements: the default codec's bytes for one layer piece wherever its state lies.

    python -m benchmarks.placements [--placements 20000] [--piece-kib 1024]

A compressor whose output depends on where its state lies in memory makes a layer's digest
depend on the run: isal 1.9.1 did, once in ~400 placements, for a block without history
(docs/reproducibility.md). This compresses the same piece (a tar header and mixed content, the
first piece of a layer) again and again while moving the C heap under it, in a process whose every
allocation comes from glibc (PYTHONMALLOC=malloc): each round keeps a block 16 bytes longer
than the last and its compressors alive, so the next round's lie further on; fresh processes
of 2,000 rounds each bound the memory. It counts the distinct outputs of the default codec
(must be 1) and, as the control that shows the placements really move, of isal deflating the
same piece without history (which varies). Run on demand; the test suite has the fast version
of the property (tests/engine/test_codec.py, tests/engine/test_members.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_ROUNDS = """
import hashlib, io, json, sys
sys.path.insert(0, sys.argv[3])
from isal import isal_zlib
from engine.codec import get_codec
from engine.tar.format import REGULAR, TarHeader, encode_header
import random

rounds, kib, first = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[4])
# Runs of one byte between random stretches: what made isal's first-block slip show.
rng = random.Random(42)
body = b"".join(rng.randbytes(4096) + b"A" * 12288 for _ in range(kib // 16))
header = TarHeader(name="srv/data.bin", type=REGULAR, mode=0o644, size=len(body), mtime=0)
piece = encode_header(header) + body
codec = get_codec("gzip")
ours, control, keep = set(), set(), []
for i in range(rounds):
    # Kept: each round's allocations, the compressors among them, lie past the last round's,
    # 16 bytes further on each time (as tests/engine/test_codec.py moves isal's).
    keep.append(bytearray(16 * (first + i)))
    out = io.BytesIO()
    w = codec.open(out, 1)
    w.write(piece)
    w.close()
    ours.add(hashlib.sha256(out.getvalue()).hexdigest())
    c = isal_zlib._ParallelCompress(buffersize=len(piece) + len(piece) // 10 + 500, level=2)
    keep.append(c)
    control.add(hashlib.sha256(c.compress_and_crc(piece, memoryview(b""))[0]).hexdigest())
print(json.dumps({"gzip": sorted(ours), "isal": sorted(control)}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.placements")
    parser.add_argument("--placements", type=int, default=20_000)
    parser.add_argument("--piece-kib", type=int, default=1024)
    parser.add_argument("--per-process", type=int, default=2000, help="placements in one process")
    args = parser.parse_args(argv)
    env = {
        **os.environ,
        "PYTHONMALLOC": "malloc",
        "PYTHONPATH": f"{REPO}:{REPO / 'benchmarks'}",
    }
    share = min(args.per_process, args.placements)
    processes = -(-args.placements // share)
    started = time.monotonic()
    seen_all: dict[str, set[str]] = {"gzip": set(), "isal": set()}
    for k in range(processes):
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                _ROUNDS,
                str(share),
                str(args.piece_kib),
                str(REPO),
                str(k * share),
            ],
            env={**env, "PYTHONHASHSEED": str(k)},
            capture_output=True,
            text=True,
            check=True,
        )
        seen = json.loads(proc.stdout)
        counts = {name: len(values) for name, values in seen.items()}
        print(f"process {k}: {share} placements, distinct outputs {counts}", file=sys.stderr)
        for name, values in seen.items():
            seen_all[name].update(values)
    seconds = time.monotonic() - started
    ours = len(seen_all["gzip"])
    verdict = "deterministic" if ours == 1 else "NOT DETERMINISTIC"
    print(
        f"{share * processes} placements of a {args.piece_kib} KiB piece in "
        f"{seconds:.0f} s: gzip (default) {ours} output(s), {verdict}; "
        f"control, isal without history: {len(seen_all['isal'])} output(s)"
    )
    return 0 if ours == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
