"""`vinci export IMAGE -o rootfs.tar`: the filesystem a container of IMAGE starts with, as one
tar archive (every layer applied, whiteouts honoured and never written).

IMAGE is whatever `vinci inspect` opens: a spec (built first, through the cache), an OCI
layout, an OCI or docker archive, or a registry reference. Each layer is streamed once, from
the top down (engine/inspection.py, export_filesystem); `-o -` (or a pipe) streams to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import BinaryIO

from engine.cli.inspect import add_arguments as add_inspect_arguments
from engine.cli.inspect import load_target
from engine.inspection import export_filesystem


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="the tar archive to write; - for stdout",
    )
    add_inspect_arguments(p, image_only=True)


def run(args: argparse.Namespace) -> int:
    from engine.output.archive import write_target

    with contextlib.ExitStack() as stack:
        image, blobs, _plans = load_target(args, stack)
        counted: list[int] = []

        def body(out: BinaryIO) -> None:
            counted.append(export_filesystem(blobs, image.layers, out))

        write_target(Path(args.output), body)
    if args.output != "-":
        print(
            f"{args.output}: {counted[0]} entries from {len(image.layers)} layers", file=sys.stderr
        )
    return 0
