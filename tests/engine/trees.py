"""A generated source tree and spec that exercise every local layer kind and the tar edge
cases (long names, non-ASCII names, symlinks, executable bits, empty files, nested dirs)."""

from __future__ import annotations

import os
import random
from pathlib import Path

SPEC = """\
spec-version: v1
image: example.com/vinci/tree:1
config:
  entrypoint: [/bin/tool, --serve]
  env: {LANG: C.UTF-8, APP_HOME: /srv/app}
  working-dir: /srv/app
  labels: {org.example.kind: test}
  exposed-ports: [8080, 53/udp]
layers:
  - directory:
      path: /srv/app
      source: ./app
      exclude: ["**/*.tmp", "cache"]
  - combined:
      - file: {path: /bin/tool, source: ./tool}
      - file: {path: /etc/motd, mode: 0600, uid: 1000, gid: 1000, contents: "hi\\n"}
      - symlink: {path: /bin/t, target: tool}
  - file: {path: /data/big.bin, source: ./big.bin}
"""

LONG = "deeply/" * 20 + "nested-file-with-a-rather-long-name.txt"


def make_tree(root: Path, order_seed: int = 0, big_size: int = 3 * 2**20 + 17) -> Path:
    """Write the tree under `root`, creating files in an order set by `order_seed` (the bytes
    are the same for every seed). Returns the spec path."""
    files: dict[str, bytes] = {
        "app/index.html": b"<h1>hello</h1>\n",
        "app/static/app.js": b"console.log('x')\n" * 300,
        "app/static/empty.css": b"",
        "app/caf\u00e9/men\u00fc.txt": "cr\u00e8me br\u00fbl\u00e9e\n".encode(),
        f"app/{LONG}": b"long\n",
        "app/scratch.tmp": b"excluded\n",
        "app/cache/excluded.bin": b"excluded\n",
        "app/bin/run.sh": b"#!/bin/sh\necho run\n",
        "tool": b"\x7fELF fake tool\n" * 1000,
    }
    rng = random.Random(order_seed)
    names = sorted(files)
    if order_seed:
        rng.shuffle(names)
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[name])
    os.chmod(root / "app/bin/run.sh", 0o755)
    os.chmod(root / "tool", 0o755)
    (root / "app/static/current").symlink_to("app.js")
    # Compressible but not trivial, and the same for every seed.
    data = random.Random(42)
    with open(root / "big.bin", "wb") as f:
        written = 0
        while written < big_size:
            chunk = (data.randbytes(4096) + b"A" * 12288)[: big_size - written]
            f.write(chunk)
            written += len(chunk)
    (root / "vinci.yaml").write_text(SPEC)
    return root / "vinci.yaml"
