"""`vinci build --load`: the built image, streamed as a docker-archive into `podman load` or
`docker load`, as ko, Jib and apko load theirs. Nothing is written to disk on the way.

The image is named as the build's output is (`--image`, `--tag`, the spec's `image`), and
`localhost/<the spec's directory>:latest` when nothing names it: a loaded image without a
name is one nobody can run by name.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from engine.builder.options import BuildOptions
from engine.builder.result import BuildResult
from engine.builder.run import output_name, write_output
from engine.cache.store import BlobStore
from engine.errors import OutputError, UsageError
from engine.oci.reference import parse_reference
from engine.output import OutputTarget
from engine.spec.model import Spec

TOOLS = ("podman", "docker")


def load_tool(choice: str) -> str:
    """The program `--load` (`choice`: auto, podman or docker) runs, found on PATH."""
    names = TOOLS if choice == "auto" else (choice,)
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    wanted = " or ".join(names)
    raise UsageError(f"--load: {wanted} is not on PATH; install one, or write an archive with -o")


def load_image(
    choice: str, spec: Spec, result: BuildResult, store: BlobStore, options: BuildOptions
) -> str:
    """Loads the image; returns the name it was loaded under."""
    tool = load_tool(choice)
    image, tag = output_name(spec, options)
    if image is None:
        name = re.sub(r"[^a-z0-9._-]+", "-", spec.base_dir.name.lower()).strip(".-_") or "image"
        image = parse_reference(f"localhost/{name}")
    loaded = f"{image.name}:{tag}"
    # The loader's messages go to a file, not a pipe: a pipe nobody reads while the archive
    # is written could fill and stall both programs.
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [tool, "load"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err
        )
        assert proc.stdin is not None
        failed = None
        try:
            # Streamed into the pipe as it is written (engine/output/archive.py writes to a
            # descriptor as it would to stdout).
            target = OutputTarget("docker-archive", Path(f"/dev/fd/{proc.stdin.fileno()}"))
            write_output(target, result, store, tag=tag, reference=image)
        except OutputError as e:
            failed = e
        finally:
            proc.stdin.close()
            proc.wait()
        err.seek(0)
        message = _last_line(err.read())
    if proc.returncode != 0 or failed is not None:
        raise OutputError(f"{os.path.basename(tool)} load failed: {message}")
    print(f"loaded {loaded} into {os.path.basename(tool)}", file=sys.stderr)
    return loaded


def _last_line(err: bytes) -> str:
    lines = err.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "(no message)"
