"""The up-to-date check: `vinci build` answers a rebuild that would change nothing without
parsing the spec or planning a layer, the way make and ninja answer a no-op build.

After a build that wrote an OCI layout or archive, a Stamp in the cache records everything the
result depended on:

- the options that choose the bytes (spec, output, codec and level, timestamp, lock mode),
  the Python version and module search path, and the home directory (`~` in a source path);
- the bytes of the spec and of the vinci.lock the build used;
- the code that made the bytes: every loaded module of the engine and of the libraries that
  parse specs and compress layers, by stat;
- every host directory the planner listed (all its names, excluded ones too), every source
  file and link it looked at (by stat key, engine/cache/statkey.py), and every source path it
  resolved through links (engine/builder/footprint.py);
- what the output holds (index.json and oci-layout bytes and the exact set of blobs with
  their sizes, or the archive's stat key) and the cache blobs and layer records behind it;
- the SBOMs and provenance written beside it (a spec's `sbom:` key), by stat key.

The next `vinci build` with the same options checks all of that with stats, directory
listings and small reads. When every item holds, it prints the recorded digest and touches
the layer records, as a cache hit would (so `vinci cache gc` sees them used). When the code,
the spec and the lock hold but some layers' host inputs do not (or the output differs), the
layers whose inputs all hold (`_layer_holds`, the very check an answer makes) are handed to
the one build path as HeldLayers (engine/builder/footprint.py): each is taken from the cache
record the stamp names, as a cache hit, without being walked, listed, stat'ed or hashed,
and only the others are planned. Their footprint goes from the old stamp into the new one,
so the next unchanged rebuild is answered again. A held layer whose record is gone from the
cache is planned; SBOMs, provenance and --push plan every layer (they read the plans or
write no stamp). When anything else differs, or the stamp is missing or unreadable, the
build runs exactly as it would without this check (the cache's stat memo still spares it
re-reading unchanged sources); a stamp is never repaired or half-trusted.

No stamp is written when the build could not trust every stat it took (a source modified
within two seconds of the build's start: see engine/cache/statkey.py), a push, or a run with
test-only faults (VINCI_TESTING=1). A local `import` counts as its archive file, or its
layout's index.json and oci-layout (engine/builder/pool.py); a `tar` layer as its archive.
Only the command line uses this module; nothing in the engine imports it.
"""

from __future__ import annotations

import binascii
import marshal
import os
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.builder.options import BuildOptions
from engine.cache.statkey import StatKey, stat_key
from engine.cache.store import LAYOUT_VERSION, cache_base
from engine.output import OutputTarget, parse_output
from engine.spec.locate import beside_spec

if TYPE_CHECKING:
    from engine.builder.footprint import Footprint, HeldLayers, LayerFootprint
    from engine.builder.result import BuildResult
    from engine.cache.store import BlobStore

STAMP_FORMAT = 3
STAMP_DIR = "stamps"
# Packages whose code decides an image's bytes; their loaded modules are part of a stamp.
CODE_PACKAGES = frozenset({"engine", "isal", "zstandard", "deflate", "yaml", "_yaml"})

BuildKey = tuple[object, ...]
# A layer's inputs as the stamp keeps them: cache record, links, listings, paths, packed keys.
LayerInputs = tuple[str, list[tuple[str, str]], list[tuple[str, list[str]]], list[str], bytes]


@dataclass(frozen=True)
class Answer:
    """An up-to-date build: what it would have printed."""

    digest: str
    layers: int
    output: str
    spec: str


@dataclass(frozen=True)
class Stamp:
    """What one build's image depended on (see the module's text). Kept with marshal, as
    plain tuples, lists, dicts, strings and numbers: no pickle, nothing executable. All of
    it holds when `inputs_hold`, `output_holds` and `_layer_holds` for every layer do."""

    key: BuildKey
    digest: str
    target: str
    texts: list[tuple[str, bytes | None]]  # spec and lock: path -> bytes (None: absent)
    code: list[tuple[str, StatKey]]
    output: tuple[Any, ...]  # ("oci", layout, index, marker, {hex: size}) | ("archive", path, key)
    blobs: list[tuple[str, int]]  # cache blob path -> size
    layers: list[LayerInputs | None]  # None: an import layer, never planned
    touch: list[str]  # the layer records a hit touches
    # Files written beside the image (SBOMs, provenance: `sbom:` in the spec), by stat key.
    beside: list[tuple[str, StatKey]]

    def to_bytes(self) -> bytes:
        return marshal.dumps(tuple(getattr(self, f) for f in _FIELDS))

    @classmethod
    def from_bytes(cls, data: bytes) -> Stamp:
        values = marshal.loads(data)
        if not isinstance(values, tuple) or len(values) != len(_FIELDS):
            raise ValueError("not a stamp of this format")
        return cls(*values)

    def inputs_hold(self) -> bool:
        """Whether what every layer shares is as recorded: the code, the spec and the lock
        (the key, the options, is compared before)."""
        return _code_holds(self.code) and all(_read(path) == data for path, data in self.texts)

    def output_holds(self) -> bool:
        """Whether the output, the cache blobs behind it and the files beside it are as
        recorded."""
        return _output_holds(self.output, self.blobs) and all(
            stat_key(os.stat(path)) == key for path, key in self.beside
        )


_FIELDS = tuple(Stamp.__dataclass_fields__)


def default_target(spec_file: str, options: BuildOptions) -> OutputTarget:
    """Where `vinci build` writes: the --output given, else the spec's path with .oci."""
    if options.output:
        return parse_output(options.output)
    return OutputTarget("oci", Path(beside_spec(os.path.abspath(spec_file), ".oci")))


def build_key(spec_file: str, options: BuildOptions, created: int) -> BuildKey:
    """Everything a build's options say about its bytes and where they go."""
    target = default_target(spec_file, options)
    codec_lib = ""
    if options.codec == "gzip-zlib":
        import zlib  # the system zlib's version is part of gzip-zlib's bytes

        codec_lib = zlib.ZLIB_RUNTIME_VERSION
    return (
        STAMP_FORMAT,
        sys.hexversion,
        # Where modules come from: the stamp's code list names files by path, so another
        # checkout or environment (another isal, say) must not find this stamp.
        tuple(sys.path),
        os.path.expanduser("~"),
        os.path.abspath(spec_file),
        target.kind,
        os.path.abspath(target.path),
        options.codec,
        options.level,
        codec_lib,
        created,
        options.lock,
        options.image or "",
        options.tag or "",
        options.platforms,
        options.labels,
        options.annotations,
        options.stamped(),
    )


def _stamp_path(options: BuildOptions, key: BuildKey) -> str:
    name = f"{binascii.crc32(repr(key).encode()):08x}"
    return os.path.join(cache_base(options.cache_dir), LAYOUT_VERSION, STAMP_DIR, name)


def check(
    spec_file: str, options: BuildOptions, *, answer: bool = True
) -> Answer | HeldLayers | None:
    """The answer to a build of `spec_file` with `options` if its stamp holds in every item.

    Else, if the stamp is this build's (same options) and the code, the spec and the lock
    are as it recorded, the layers whose host inputs all hold (`_layer_holds`, the same
    check as for an answer), for the build to take from their records unplanned
    (engine/builder/footprint.py HeldLayers); None if there are none. `answer` False: the
    caller needs the build's result (`--json`, `--load`), so never an Answer, only held
    layers, every one if nothing changed."""
    if os.environ.get("VINCI_TESTING") == "1" or _streamed(spec_file, options):
        return None
    key = build_key(spec_file, options, options.timestamp())
    try:
        with open(_stamp_path(options, key), "rb") as f:
            stamp = Stamp.from_bytes(f.read())
        if stamp.key != key or not stamp.inputs_hold():
            return None
        held = [i for i, inputs in enumerate(stamp.layers) if inputs and _still(inputs)]
        every = len(held) == sum(1 for inputs in stamp.layers if inputs is not None)
        if answer and every and stamp.output_holds():
            for record in stamp.touch:
                os.utime(record)  # a cache hit, as far as gc can tell
            return Answer(stamp.digest, len(stamp.layers), stamp.target, spec_file)
        return _held(stamp, held)
    except (OSError, EOFError, ValueError, TypeError, KeyError, IndexError):
        return None


def _held(stamp: Stamp, indexes: list[int]) -> HeldLayers | None:
    """The stamp's layers at `indexes`, as the build takes them (touched by the build, as
    its cache hits are)."""
    if not indexes:
        return None
    from engine.builder.footprint import HeldLayer, HeldLayers

    held = []
    for i in indexes:
        inputs = stamp.layers[i]
        assert inputs is not None
        record, links, listings, paths, packed = inputs
        held.append(
            HeldLayer(
                i,
                record,
                tuple((source, real) for source, real in links),
                tuple((directory, tuple(names)) for directory, names in listings),
                tuple(paths),
                packed,
            )
        )
    return HeldLayers(tuple(held))


def write_stamp(
    spec_file: str,
    options: BuildOptions,
    result: BuildResult,
    store: BlobStore,
    footprint: Footprint,
    started_ns: int,
    beside: Sequence[Path] = (),
) -> bool:
    """Record what `result` depended on, if all of it can be trusted; True if written. An
    older stamp for the same options is removed when no new one can be written. `beside`:
    files the build wrote next to the image, which a rebuild must find unchanged."""
    from engine.cache.atomic import write_atomic

    key = build_key(spec_file, options, result.created)
    path = Path(_stamp_path(options, key))
    spec = result.spec
    target = default_target(spec_file, options)
    descriptors = [result.manifest, result.config]
    descriptors += [d for r in result.layers for d in r.record.descriptors]
    output = None
    if not (
        os.environ.get("VINCI_TESTING") == "1"
        or not footprint.trusted(started_ns)
        or _streamed(spec_file, options)
    ):
        output = _written(target, result)
    if output is None:
        path.unlink(missing_ok=True)
        return False
    texts: list[tuple[str, bytes | None]] = [(str(spec.path), spec.raw)]
    if options.lock != "ignore":  # the lock the build read (or its absence) counts too
        lock_file = beside_spec(spec.path, ".lock")
        texts.append((lock_file, _read(lock_file)))
    records = [str(store.layer_dir / f"{r.record.key}.json") for r in result.layers]
    stamp = Stamp(
        key=key,
        digest=str(result.manifest.digest),
        target=str(target),
        texts=texts,
        code=_code_identity(),
        output=output,
        blobs=[(str(store.blob_path(d.digest)), d.size) for d in descriptors],
        layers=[_inputs(r.record.key, footprint.layers.get(r.index)) for r in result.layers],
        touch=[r for r in records if os.path.exists(r)],
        beside=[(str(p), stat_key(os.stat(p))) for p in beside],
    )
    # Lost in a crash, a stamp costs one full build; torn, it fails to load and costs the same.
    write_atomic(path, stamp.to_bytes(), durable=False)
    return True


def _streamed(spec_file: str, options: BuildOptions) -> bool:
    """An archive streamed to stdout, a pipe or a device: written anew by every build."""
    target = default_target(spec_file, options)
    if target.kind == "oci":
        return False
    from engine.output.archive import is_stream  # the archive writer, only for an archive

    return is_stream(str(target.path))


def _written(target: OutputTarget, result: BuildResult) -> tuple[Any, ...] | None:
    """What the output holds now that the build wrote it, as the stamp keeps it; None unless
    it holds this build's image (another build may have written it since)."""
    import json

    from engine.oci.canonical import canonical_json
    from engine.oci.mediatypes import REF_NAME_ANNOTATION
    from engine.output.layout import LAYOUT_FILE

    where = os.path.abspath(target.path)
    if target.kind != "oci":
        # Through a symlink: the file it names is what the build wrote.
        return ("archive", where, stat_key(os.stat(where)))
    data = _read(os.path.join(where, "index.json"))
    try:
        index = json.loads(data or b"")
        named = [
            m.get("digest")
            for m in index["manifests"]
            if (m.get("annotations") or {}).get(REF_NAME_ANNOTATION) == result.spec.tag
        ]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if named != [str(result.manifest.digest)]:
        return None
    blob_dir = os.path.join(where, "blobs", "sha256")
    blobs = {name: os.lstat(os.path.join(blob_dir, name)).st_size for name in os.listdir(blob_dir)}
    return ("oci", where, data, canonical_json(LAYOUT_FILE), blobs)


def _inputs(record: str, seen: LayerFootprint | None) -> LayerInputs | None:
    if seen is None:
        return None
    return (record, seen.links, seen.listings, seen.paths, seen.keys.tobytes())


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _code_holds(code: list[tuple[str, StatKey]]) -> bool:
    return all(stat_key(os.stat(path)) == key for path, key in code)


def _still(inputs: LayerInputs) -> bool:
    """`_layer_holds`, False where a path it reads is gone (a directory removed, say): that
    layer is planned, the others may still be held."""
    try:
        return _layer_holds(inputs)
    except OSError:
        return False


def _layer_holds(inputs: LayerInputs) -> bool:
    """Whether every host input the layer's plan looked at is unchanged."""
    _record, links, listings, paths, packed = inputs
    for source, real in links:
        if os.path.realpath(source) != real:
            return False
    for directory, names in listings:
        if sorted(os.listdir(directory)) != names:
            return False
    # Compared packed: 10,000 tuples of four large ints take longer to build than to stat.
    lstat = os.lstat
    now = array("q")
    try:
        for path in paths:
            st = lstat(path)
            now.extend((st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))
    except OverflowError:  # an inode number no int64 holds: never stamped, never equal
        return False
    return now.tobytes() == packed


def _output_holds(output: tuple[Any, ...], blobs: list[tuple[str, int]]) -> bool:
    """Whether the output and the cache blobs behind it are as the stamp recorded."""
    if output[0] == "archive":
        _, path, key = output
        if stat_key(os.stat(path)) != key:
            return False
    else:
        _, layout, index, marker, kept = output
        blob_dir = os.path.join(layout, "blobs", "sha256")
        if _read(os.path.join(layout, "index.json")) != index:
            return False
        if _read(os.path.join(layout, "oci-layout")) != marker:
            return False
        # Exactly these blobs: a full build would also remove any garbage there.
        if sorted(os.listdir(blob_dir)) != sorted(kept):
            return False
        if not all(os.lstat(os.path.join(blob_dir, h)).st_size == n for h, n in kept.items()):
            return False
    return all(os.lstat(path).st_size == size for path, size in blobs)


def _code_identity() -> list[tuple[str, StatKey]]:
    files = {
        module.__file__
        for name, module in list(sys.modules.items())
        if name.partition(".")[0] in CODE_PACKAGES and getattr(module, "__file__", None)
    }
    return [(f, stat_key(os.stat(f))) for f in sorted(f for f in files if f)]
