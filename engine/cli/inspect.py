"""`vinci inspect IMAGE [--layer N] [--layers] [--cat PATH] [--json]`: the workbench's Details
and Contents panes, headless, and what a person running the image asks first: its entrypoint,
environment, user, ports and history.

`--layers` says what each layer does to the ones below (files added, modified, removed; bytes
later layers hide, naming the layer that hides them), the image's efficiency (as dive's) and
its largest files (engine.analysis).

`--cat PATH` reads the file a container would see (every layer applied, whiteouts honoured,
symlinks inside the image followed), or with `--layer N` the file as that layer holds it. On a
terminal it shows text (at most --limit bytes) and refuses binary data; anywhere else (a pipe,
a file) it writes the file's bytes as they are, all of them unless --limit says otherwise.

A spec is built first (through the cache, so an unchanged spec costs only planning) and its
layers' files come from their plans, with the spec node behind each one; an OCI layout (or an
OCI or docker archive) is read as an `import` layer would read it, each layer's tar streamed
from its blob.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from engine.analysis import ImageAnalysis, analyze_layers, origin_text
from engine.builder.plan import LayerPlan
from engine.cli.args import add_build_args, build_options
from engine.errors import UsageError, VinciError
from engine.humanize import human_bytes
from engine.inspection import (
    BlobSource,
    FileEntry,
    ImageBlobs,
    ImageInfo,
    LayerInfo,
    build_tree,
    copy_file_data,
    entry_columns,
    image_file,
    image_from_result,
    image_info,
    layer_entries,
    matching_paths,
    plan_for,
    read_layer_file,
    require_layer,
    tree_rows,
)
from engine.oci.descriptor import Platform
from engine.spec.locate import find_spec
from engine.tar.read import DEFAULT_TEXT_LIMIT, looks_binary

# --cat --layer N off a terminal: one layer's file is read into memory, so it is capped.
MAX_LAYER_CAT = 64 << 20


def add_arguments(p: argparse.ArgumentParser, *, image_only: bool = False) -> None:
    """inspect's arguments; `image_only`: just those that name and open the image (what
    `vinci export` shares)."""
    p.add_argument(
        "target",
        nargs="?",
        metavar="IMAGE",
        help="a spec file (or its directory), an OCI image layout directory, an OCI or "
        "docker archive, or a registry reference (default: ./vinci.yaml)",
    )
    p.add_argument(
        "--platform",
        default=None,
        metavar="OS/ARCH",
        help="the image to show from a multi-platform spec, layout, archive or index "
        "(default: a spec's first platform, else linux/amd64)",
    )
    if not image_only:
        p.add_argument("--layer", type=int, metavar="N", help="list the files of image layer N")
        p.add_argument(
            "--layers",
            action="store_true",
            help="per layer the files added, modified and removed, the bytes later layers "
            "hide (and which layer hides them), the efficiency and the largest files",
        )
        p.add_argument("--json", action="store_true", help="print JSON")
        p.add_argument(
            "--sort",
            choices=("name", "size"),
            default="name",
            help="name: the tree, in path order (default); size: every file in one list, "
            "biggest first",
        )
        p.add_argument(
            "--filter", metavar="TEXT", help="only paths containing TEXT (and their dirs)"
        )
        p.add_argument(
            "--cat",
            metavar="PATH",
            help="print the file at PATH as a container sees it (symlinks followed), or as layer "
            "N holds it with --layer",
        )
        p.add_argument(
            "--limit",
            type=int,
            default=None,
            metavar="BYTES",
            help=f"at most this much of --cat (default on a terminal {DEFAULT_TEXT_LIMIT}, "
            "elsewhere all of it)",
        )
    add_build_args(p)
    from engine.cli.registryargs import add_registry_arguments

    add_registry_arguments(p)


def load_target(
    args: argparse.Namespace, stack: contextlib.ExitStack
) -> tuple[ImageInfo, BlobSource, dict[int, LayerPlan | None]]:
    """The image, where its blobs are, and the plan of each image layer vinci built."""
    from engine.builder.run import build_platform
    from engine.cache.store import BlobStore
    from engine.cli.registryargs import apply_registry_options
    from engine.sources.image import open_image, parse_target
    from engine.spec.load import load_spec

    apply_registry_options(args)
    options = build_options(args)
    try:
        platform = Platform.parse(args.platform) if args.platform else None
    except ValueError as e:
        raise UsageError(f"--platform: {e}") from None
    if args.target and parse_target(args.target).kind != "spec":
        opened = open_image(args.target, platform=platform, store=BlobStore(options.cache_dir))
        blobs = ImageBlobs(opened)
        stack.callback(blobs.close)
        return image_info(opened), blobs, {}

    spec = load_spec(find_spec(args.target))
    # The image `vinci build` makes, vinci.lock included; a multi-platform spec's for
    # --platform.
    result = build_platform(spec, options, platform or spec.platform)
    image = image_from_result(result)
    if spec.is_index:
        image = replace(image, platforms=tuple(str(p) for p in spec.platforms))
    plans = {layer.position: plan_for(result, layer) for layer in image.layers}
    return image, BlobStore(options.cache_dir), plans


def run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        return _run(args, stack)


def _run(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    image, blobs, plans = load_target(args, stack)
    if args.limit is not None and args.limit < 0:
        raise UsageError("--limit must be at least 0")
    if args.cat and args.layer is None:
        return cat_merged(blobs, image, args.cat, args.limit)
    if args.layers:
        if args.layer is not None:
            raise UsageError("--layers shows every layer: leave out --layer")
        spec_dir = os.path.dirname(os.path.abspath(find_spec(args.target)))
        base = spec_dir if any(plans.values()) else None
        analysis = analyze_layers(
            (info, layer_entries(blobs, info, plans.get(info.position), base=base))
            for info in image.layers
        )
        if args.json:
            print(json.dumps(analysis.to_json(), indent=2, sort_keys=True))
        else:
            print_analysis(analysis)
        return 0
    if args.layer is None:
        if args.json:
            print(json.dumps(image.to_json(), indent=2, sort_keys=True))
        else:
            print_image(image)
        return 0
    layer = require_layer(image, args.layer)
    if args.cat:
        return cat(blobs, layer, args.cat, args.limit)
    entries = layer_entries(blobs, layer, plans.get(layer.position))
    if args.sort == "size":
        ordered = by_size(entries, args.filter)
    else:
        ordered = ordered_entries(entries, args.sort, args.filter)
    if args.json:
        data: dict[str, Any] = {
            "image": {
                "source": image.source,
                "manifest": str(image.manifest.digest) if image.manifest is not None else None,
            },
            "layer": layer.to_json(),
            "entries": [e.to_json() for e in ordered],
        }
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print_layer(layer)
        print()
        print_entries(ordered)
    return 0


def print_analysis(analysis: ImageAnalysis, largest: int = 10) -> None:
    labels = analysis.labels()
    table = [("#", "node", "added", "modified", "removed", "files", "hidden later", "hides below")]
    for r in analysis.layers:
        hidden = "-"
        if r.shadowed:
            by = sorted({labels[s.by] for s in r.shadowed})
            hidden = f"{human_bytes(r.shadowed_bytes)} by {', '.join(by)}"
        table.append(
            (
                str(r.info.position),
                shown(labels[r.info.position]),
                str(r.added),
                str(r.modified),
                str(r.removed),
                human_bytes(r.file_bytes),
                hidden,
                human_bytes(r.removes_bytes) if r.removes_bytes else "-",
            )
        )
    print_table(table)
    print()
    print(
        f"efficiency {analysis.efficiency:.1%}: {human_bytes(analysis.wasted_bytes)} wasted "
        f"(shadowed or removed) of {human_bytes(analysis.total_bytes)} in all layers"
    )
    if analysis.shadowed:
        print()
        print("hidden bytes, largest first")
        for s in analysis.shadowed[:largest]:
            print(
                f"  {human_bytes(s.size):>9}  {shown(s.path)}  {shown(labels[s.layer])}, "
                f"{s.how} by {shown(labels[s.by])}"
            )
    files = analysis.largest(largest)
    if files:
        print()
        print("largest files")
        for e in files:
            print(f"  {human_bytes(e.size):>9}  {shown(e.path)}  {shown(origin_text(e))}")


def by_size(entries: list[FileEntry], needle: str | None) -> list[FileEntry]:
    """Every entry but directories in one list, biggest first (then by path)."""
    picked = [e for e in entries if e.type != "dir" and (not needle or needle in e.path)]
    return sorted(picked, key=lambda e: (-e.size, e.path))


def ordered_entries(entries: list[FileEntry], by: str, needle: str | None) -> list[FileEntry]:
    """Entries in the order the workbench's fully expanded tree shows them."""
    root = build_tree(entries)
    only = matching_paths(root, needle) if needle else None
    return [row.node.entry for row in tree_rows(root, by, only=only) if row.node.entry is not None]


def shown(text: str) -> str:
    """`text` safe to print on a terminal: what an image holds is not ours, and a file name
    with an escape sequence must not recolour, retitle or rewrite the user's terminal.
    Control and other unprintable characters become \\xNN or \\uNNNN, the bytes of a name
    that is not UTF-8 become \\xNN, and a backslash is doubled, so the escaped form is never
    ambiguous."""
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")  # a byte kept by surrogate escape
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")
    return "".join(out)


def print_image(image: ImageInfo) -> None:
    rows = [
        ("source", shown(image.source)),
        ("image", f"{shown(image.reference) or '(unnamed)'} ({image.platform})"),
        (
            "manifest",
            f"{image.manifest.digest}  {image.manifest.size} B"
            if image.manifest is not None
            else "(none: a docker-archive)",
        ),
        ("config", f"{image.config.digest}  {image.config.size} B"),
    ]
    if len(image.platforms) > 1:
        rows.insert(2, ("index", f"{', '.join(image.platforms)} (--platform picks one)"))
    if image.codec:
        rows.append(("codec", image.codec))
    for name, value in rows:
        print(f"{name:<9} {value}")
    print()
    runtime = runtime_rows(image.runtime)
    if runtime:
        width = max(len(name) for name, _ in runtime)
        for name, value in runtime:
            print(f"{name:<{width}}  {shown(value)}")
        print()
    table = [("#", "digest", "size", "comp", "node", "summary")]
    for layer in image.layers:
        table.append(
            (
                str(layer.position),
                f"sha256:{layer.descriptor.digest.short}",
                human_bytes(layer.descriptor.size),
                layer.compression,
                layer.label or "-",
                shown(layer.summary),
            )
        )
    print_table(table)
    if any(h.get("empty_layer") for h in image.history):
        # Entries without a layer (ENV, CMD, … of the Dockerfiles behind a base) are history
        # the layer table cannot show.
        print()
        print("history")
        for h in image.history:
            mark = "  (no layer)" if h.get("empty_layer") else ""
            print(f"  {shown(str(h.get('created_by') or h.get('comment') or '-'))}{mark}")


# The runtime config's keys, in the order a person reads them, with their spec names.
_RUNTIME = (
    ("Entrypoint", "entrypoint"),
    ("Cmd", "cmd"),
    ("Env", "env"),
    ("User", "user"),
    ("WorkingDir", "working-dir"),
    ("ExposedPorts", "exposed-ports"),
    ("Volumes", "volumes"),
    ("Labels", "labels"),
    ("StopSignal", "stop-signal"),
)


def runtime_rows(runtime: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, text) lines for the runtime config; a list or map gets a line per item."""
    rows: list[tuple[str, str]] = []
    for key, name in _RUNTIME:
        value = runtime.get(key)
        if value in (None, "", [], {}):
            continue
        if key in ("Entrypoint", "Cmd"):
            rows.append((name, json.dumps(value, ensure_ascii=False)))
        elif key == "Env" and isinstance(value, list):
            rows += [(name if i == 0 else "", str(v)) for i, v in enumerate(value)]
        elif isinstance(value, dict):
            items = [f"{k}={v}" if key == "Labels" else str(k) for k, v in sorted(value.items())]
            rows += [(name if i == 0 else "", item) for i, item in enumerate(items)]
        else:
            rows.append((name, str(value)))
    return rows


def print_layer(layer: LayerInfo) -> None:
    head = f"layer {layer.position}"
    if layer.label:
        head += f"  {layer.label}"
    print(f"{head}  {shown(layer.summary)}".rstrip())
    print(f"digest    {layer.descriptor.digest}")
    print(f"diff_id   {layer.diff_id}")
    print(f"media     {layer.descriptor.media_type}  {human_bytes(layer.descriptor.size)}")
    if layer.cache_key:
        print(f"cache key {layer.cache_key} ({'hit' if layer.cache_hit else 'miss'})")


def print_entries(entries: list[FileEntry]) -> None:
    table = []
    for e in entries:
        mode, owner, size = entry_columns(e)
        path = shown(e.path)
        if e.type == "symlink":
            path += f" -> {shown(e.target)}"
        elif e.type == "hardlink":
            path += f" => {shown(e.target)}"
        table.append((mode, owner, size, path, e.origin))
    print_table(table, right={2})


def print_table(rows: Sequence[Sequence[str]], right: set[int] | None = None) -> None:
    if not rows:
        return
    right = right or set()
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)]
        print("  ".join(cells).rstrip())


def _terminal() -> bool:
    try:
        return os.isatty(sys.stdout.fileno())
    except (OSError, ValueError):
        return False


def cat_merged(blobs: BlobSource, image: ImageInfo, path: str, limit: int | None) -> int:
    """--cat without --layer: the file as a container sees it."""
    merged = image_file(blobs, image.layers, path)
    if _terminal():
        text_limit = DEFAULT_TEXT_LIMIT if limit is None else limit
        data = bytearray()
        copy_file_data(blobs, merged, data.extend, text_limit)
        truncated = merged.entry.size > len(data)
        if looks_binary(bytes(data), truncated):
            raise VinciError(
                f"{path} is a binary file ({human_bytes(merged.entry.size)}); redirect stdout "
                "to write its bytes"
            )
        sys.stdout.write(bytes(data).decode("utf-8", "replace"))
        sys.stdout.flush()
        if truncated:
            print(
                f"vinci: showed the first {len(data)} of {merged.entry.size} bytes "
                "(raise --limit for more)",
                file=sys.stderr,
            )
        return 0
    sys.stdout.flush()
    out = sys.stdout.buffer
    copy_file_data(blobs, merged, out.write, limit)
    out.flush()
    return 0


def cat(blobs: BlobSource, layer: LayerInfo, path: str, limit: int | None) -> int:
    terminal = _terminal()
    if limit is None:
        limit = DEFAULT_TEXT_LIMIT if terminal else MAX_LAYER_CAT
    content = read_layer_file(blobs, layer.descriptor, path, limit)
    if content is None:
        raise VinciError(f"{path} is not in layer {layer.position}")
    if content.entry.type != "file":
        raise VinciError(f"{path} is a {content.entry.type}, not a file")
    if not terminal:
        sys.stdout.flush()
        sys.stdout.buffer.write(content.data)
        sys.stdout.buffer.flush()
        return 0
    if content.binary:
        raise VinciError(f"{path} is a binary file ({human_bytes(content.entry.size)})")
    sys.stdout.write(content.text)
    sys.stdout.flush()
    if content.truncated:
        print(
            f"vinci: showed the first {len(content.data)} of {content.entry.size} bytes "
            "(raise --limit for more)",
            file=sys.stderr,
        )
    return 0
