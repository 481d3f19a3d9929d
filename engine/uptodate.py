"""The up-to-date check: `vinci build` answers a rebuild that would change nothing without
parsing the spec, planning a layer or loading the engine, the way make and ninja answer a
no-op build.

After a build that wrote an OCI layout or archive, a stamp in the cache records everything the
result depended on:

- the options that choose the bytes (spec, output, codec and level, timestamp, lock mode),
  the Python version and module search path, and the home directory (`~` in a source path);
- the bytes of the spec and of the vinci.lock the build used;
- the code that made the bytes: every loaded module of the engine, isal, zstandard and
  pyyaml, by stat;
- every host directory the planner listed (all its names, excluded ones too), every source
  file and link it looked at (by stat key, engine/statkey.py), and every source path it
  resolved through links;
- what the output holds (index.json and oci-layout bytes and the exact set of blobs with
  their sizes, or the archive's stat key) and the cache blobs and layer records behind it.

The next `vinci build` with the same options checks all of that with stats, directory
listings and two small reads, before anything else is imported (engine/main.py). When every
item holds, it prints the recorded digest and touches the layer records, as a cache hit
would (so `vinci cache gc` sees them used). When anything differs, or the stamp is missing or
unreadable, the full build runs exactly as it would without this check; it never repairs or
half-trusts a stamp. It may still take the layers whose own inputs all hold (Reuse), and which
those are is worked out while the engine loads (engine/preflight.py).

No stamp is written when the build could not trust every stat it took (a source modified
within two seconds of the build's start: see engine/statkey.py), nor for a spec with a local
`import` layer (its image files are not tracked here), a push, or a run with test-only faults
(VINCI_TESTING=1).

Imports nothing but `os`, `sys`, `marshal`, `array` and `binascii` at module level (and
engine.buildopts, engine.statkey and engine.preflight, which import no more).
"""

from __future__ import annotations

import binascii
import marshal
import os
import sys
from array import array

from engine.buildopts import (
    CACHE_LAYOUT,
    beside_spec,
    cache_base,
    default_output_path,
    epoch_from_env,
    locate_spec,
    parse_build,
    split_output,
)
from engine.preflight import LayerVerdicts, layer_holds
from engine.statkey import StatKey, is_racy, stat_key

TYPE_CHECKING = False  # not typing's: importing typing costs more than this whole check
if TYPE_CHECKING:
    from typing import Any

    from engine.build import BuildResult
    from engine.cache.store import BlobStore
    from engine.output import OutputTarget
    from engine.spec.model import Spec

STAMP_FORMAT = 1
STAMP_DIR = "stamps"
# Packages whose code decides an image's bytes; their loaded modules are part of a stamp.
CODE_PACKAGES = frozenset({"engine", "deflate", "isal", "zstandard", "yaml", "_yaml"})

BuildKey = tuple[object, ...]


class LayerFootprint:
    """What planning one layer looked at on the host (engine/plan.py fills it in)."""

    __slots__ = ("keys", "links", "listings", "paths", "too_big")

    def __init__(self) -> None:
        self.listings: list[tuple[str, list[str]]] = []  # directory -> every name in it, sorted
        self.links: list[tuple[str, str]] = []  # source path as the spec resolves it -> realpath
        self.paths: list[str] = []  # every file and link stat'ed ...
        # ... and its stat key (statkey.py), four int64s each: packed as the stamp keeps them,
        # so that a layer taken from the last stamp (Reuse) is never unpacked and packed again.
        self.keys = array("q")
        self.too_big = False  # a key that no int64 holds (an inode number may not)

    def saw(self, path: str, key: StatKey) -> None:
        self.paths.append(path)
        try:
            self.keys.extend(key)
        except OverflowError:
            self.too_big = True  # keys no longer line up, but nothing is stamped now


class Footprint:
    """What a build looked at on the host, layer by layer. Layers plan on several threads,
    each into its own LayerFootprint."""

    def __init__(self) -> None:
        self.layers: dict[int, LayerFootprint] = {}

    def layer(self, index: int) -> LayerFootprint:
        return self.layers.setdefault(index, LayerFootprint())

    def trusted(self, started_ns: int) -> bool:
        """Whether every stat key can stand for its file's content from now on (none is racy,
        see statkey.py) and fits the stamp's int64s."""
        if any(layer.too_big for layer in self.layers.values()):
            return False
        # One max per layer, not a test per key: 40,000 keys took a changed-file rebuild 15 ms.
        mtimes = [max(layer.keys[1::4]) for layer in self.layers.values() if layer.keys]
        return not mtimes or not is_racy(max(mtimes), started_ns)


def build_key(
    spec_path: str,
    output: str | None,
    compression: str,
    level: int | None,
    created: int,
    locking: str,
) -> BuildKey | None:
    """Everything a build's options say about its bytes and where they go; None if the output
    is malformed (the full build reports it)."""
    spec_abs = os.path.abspath(spec_path)
    if output is None:
        kind, path = "oci", default_output_path(spec_abs)
    else:
        parsed = split_output(output)
        if parsed is None:
            return None
        kind, path = parsed
    codec_lib = ""
    if compression == "gzip-zlib":
        import zlib  # the system zlib's version is part of gzip-zlib's bytes

        codec_lib = zlib.ZLIB_RUNTIME_VERSION
    return (
        STAMP_FORMAT,
        sys.hexversion,
        # Where modules come from: the stamp's code list names files by path, so another
        # checkout or environment (another isal, say) must not find this stamp.
        tuple(sys.path),
        os.path.expanduser("~"),
        spec_abs,
        kind,
        os.path.abspath(path),
        compression,
        level,
        codec_lib,
        created,
        locking,
    )


def lock_mode(no_lock: bool, locked: bool) -> str:
    return "ignore" if no_lock else "require" if locked else "use"


def _stamp_name(key: BuildKey) -> str:
    return f"{binascii.crc32(repr(key).encode()):08x}"


def _stamp_path(cache_dir: str | None, key: BuildKey) -> str:
    return os.path.join(cache_base(cache_dir), CACHE_LAYOUT, STAMP_DIR, _stamp_name(key))


# -- the check (before anything else is imported) ------------------------------------------


class Answer:
    """An up-to-date build: what it would have printed. A plain class, not a frozen
    dataclass: importing dataclasses would cost more than the check."""

    __slots__ = ("digest", "layers", "output", "spec")

    def __init__(self, digest: str, layers: int, output: str, spec: str) -> None:
        self.digest = digest
        self.layers = layers
        self.output = output
        self.spec = spec


def check(argv: list[str]) -> Answer | None:
    """The answer to `vinci ARGV` if it is a build whose stamp still holds in every item.

    When it cannot answer but the stamp's code is this code, the full build that follows can
    still take the unchanged layers from the stamp (Reuse): which ones those are is worked
    out from here on, in a child process, while the engine loads (engine/preflight.py)."""
    if os.environ.get("VINCI_TESTING") == "1":
        return None
    args = parse_build(argv)
    # --replan plans every layer; --push needs the registry (parse_build gives None).
    if args is None or args.replan or (args.no_lock and args.locked):
        return None
    spec = locate_spec(args.spec)
    epoch = args.source_date_epoch
    created = epoch if epoch is not None else epoch_from_env()
    if spec is None or created is None or created < 0:
        return None
    mode = lock_mode(args.no_lock, args.locked)
    key = build_key(spec, args.output, args.compression, args.compression_level, created, mode)
    if key is None:
        return None
    try:
        with open(_stamp_path(args.cache_dir, key), "rb") as f:
            # loads(read()), not load(f): load reads a file in small pieces, ten times slower.
            stamp = marshal.loads(f.read())
        if stamp["key"] != key or not _code_holds(stamp):
            return None
        layers = stamp["layers"]
        texts = _texts_hold(stamp)
        # With a lock the build matches layers by their tar bytes and asks for no verdict
        # (engine/build.py): no child to work them out.
        fork = mode == "ignore" or not os.path.lexists(beside_spec(spec, ".lock"))
        # --json is always answered by the full build (it reports every layer), but that
        # build can still take the unchanged layers, and the spec if its bytes are the same.
        if args.json or not texts or not _output_holds(stamp):
            _lend(key, stamp, texts, {}, fork)
            return None
        for i, layer in enumerate(layers):
            if layer is not None and not layer_holds(layer):
                held = {j: True for j in range(i) if layers[j] is not None}
                _lend(key, stamp, texts, held | {i: False}, fork)
                return None
        for record in stamp["touch"]:
            os.utime(record)  # a cache hit, as far as gc can tell
    except (OSError, EOFError, ValueError, TypeError, KeyError, IndexError):
        return None
    return Answer(stamp["digest"], len(stamp["layers"]), stamp["target"], spec)


class Lent:
    """What a check that could not answer lends the full build that follows in the same
    process (engine/cli.py): the last stamp's layers with their verdicts (which of them still
    hold, being worked out in a child process: engine/preflight.py), and the spec that build
    parsed when the spec's bytes (and the lock's) are the same, with the code that parsed it."""

    __slots__ = ("code", "key", "layers", "spec_data", "verdicts")

    def __init__(
        self,
        key: BuildKey,
        stamp: dict[str, Any],
        texts_hold: bool,
        known: dict[int, bool],
        fork: bool,
    ) -> None:
        self.key = key
        self.layers: list[Any] = stamp["layers"]
        self.verdicts = LayerVerdicts(self.layers, known, fork=fork)
        self.spec_data: object = stamp.get("spec") if texts_hold else None
        self.code: list[tuple[str, StatKey]] = stamp["code"]

    def spec(self, display: str) -> Spec | None:
        """The spec the last build parsed, if a parse of `display` now would give the same
        (engine/spec/plain.py), else None: then the caller parses it."""
        if self.spec_data is None:
            return None
        from engine.spec.plain import from_plain, still_valid

        kept = from_plain(self.spec_data)
        return still_valid(kept, display) if kept is not None else None


_LENT: list[Lent] = []  # at most one: the last check's


def _lend(
    key: BuildKey, stamp: dict[str, Any], texts_hold: bool, known: dict[int, bool], fork: bool
) -> None:
    take_lent(None)
    _LENT.append(Lent(key, stamp, texts_hold, known, fork))


def take_lent(key: BuildKey | None) -> Lent | None:
    """What the check lent a build with `key`, if anything; anything lent to another key
    (the spec found another way, say) is dropped, its child reaped."""
    lent = _LENT.pop() if _LENT else None
    if lent is not None and (key is None or lent.key != key):
        lent.verdicts.close()
        return None
    return lent


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _code_holds(stamp: dict[str, Any]) -> bool:
    """Whether the code that made the stamp's bytes is this code."""
    return all(stat_key(os.stat(path)) == key for path, key in stamp["code"])


def _texts_hold(stamp: dict[str, Any]) -> bool:
    """Whether the spec's bytes, and the lock's, are still those the stamp recorded."""
    return all(_read(path) == data for path, data in stamp["texts"])


def _output_holds(stamp: dict[str, Any]) -> bool:
    """Whether the output and the cache blobs behind it are as the stamp recorded."""
    output = stamp["output"]
    if output[0] == "archive":
        _, path, key = output
        if stat_key(os.lstat(path)) != key:
            return False
    else:
        _, layout, index, marker, blobs = output
        blob_dir = os.path.join(layout, "blobs", "sha256")
        if _read(os.path.join(layout, "index.json")) != index:
            return False
        if _read(os.path.join(layout, "oci-layout")) != marker:
            return False
        # Exactly these blobs: a full build would also remove any other file there.
        if sorted(os.listdir(blob_dir)) != sorted(blobs):
            return False
        if not all(os.lstat(os.path.join(blob_dir, h)).st_size == n for h, n in blobs.items()):
            return False
    lstat = os.lstat
    return all(lstat(path).st_size == size for path, size in stamp["blobs"])


# -- the stamp (after a full build) --------------------------------------------------------


def write_stamp(
    key: BuildKey | None,
    result: BuildResult,
    target: OutputTarget,
    store: BlobStore,
    footprint: Footprint,
    started_ns: int,
    locking: str,
    lock_bytes: bytes | None,
    kept_by: Lent | None = None,
) -> bool:
    """Record what `result` depended on, if all of it can be trusted; True if written. An
    older stamp for the same options is removed when no new one can be written. `kept_by`:
    the build took its spec from what the check lent (Lent.spec), so the code that parsed
    it, which this process never loaded, still counts."""
    from engine.cache.atomic import write_atomic
    from engine.canonical import canonical_json
    from engine.output.layout import LAYOUT_FILE, layout_index
    from engine.spec.model import ImportSpec
    from engine.spec.plain import to_plain

    if key is None:
        return False
    path = store.root / STAMP_DIR / _stamp_name(key)
    spec = result.spec
    if (
        os.environ.get("VINCI_TESTING") == "1"
        or any(isinstance(node, ImportSpec) for node in spec.layers)
        or not footprint.trusted(started_ns)
    ):
        path.unlink(missing_ok=True)
        return False
    descriptors = [result.manifest, result.config]
    descriptors += [d for r in result.layers for d in r.record.descriptors]
    blobs = {d.digest.hex: d.size for d in descriptors}
    output: tuple[Any, ...]
    where = os.path.abspath(target.path)
    if target.kind == "oci":
        index = layout_index(result.manifest, spec.tag, spec.platform)
        output = ("oci", where, index, canonical_json(LAYOUT_FILE), blobs)
    else:
        output = ("archive", where, stat_key(os.lstat(where)))
    texts: list[tuple[str, bytes | None]] = [(str(spec.path), spec.raw)]
    if locking != "ignore":  # the lock the build read (or its absence) counts too
        texts.append((beside_spec(str(spec.path), ".lock"), lock_bytes))
    records = [str(store.layer_dir / f"{r.record.key}.json") for r in result.layers]
    code = dict(kept_by.code) if kept_by is not None else {}
    code.update(_code_identity())
    stamp = {
        "key": key,
        "digest": str(result.manifest.digest),
        "target": str(target),
        "texts": texts,
        "code": sorted(code.items()),
        "spec": to_plain(spec),
        "output": output,
        "blobs": [(str(store.blob_path(d.digest)), d.size) for d in descriptors],
        "layers": [
            _layer_entry(node, r.record.key, footprint.layers.get(r.index))
            for node, r in zip(spec.layers, result.layers, strict=True)
        ],
        "touch": [r for r in records if os.path.exists(r)],
    }
    # Lost in a crash, a stamp costs one full build; torn, it fails to load and costs the same.
    write_atomic(path, marshal.dumps(stamp), durable=False)
    return True


def _layer_entry(node: object, record: str, seen: LayerFootprint | None) -> tuple[Any, ...] | None:
    """A layer's part of the stamp: what it is, its cache record, and its inputs. None for an
    import layer, which is never planned (an image pinned by digest: nothing on the host)."""
    if seen is None:
        return None
    return (
        node_key(node),
        record,
        seen.links,
        seen.listings,
        seen.paths,
        seen.keys.tobytes(),
    )


def node_key(node: object) -> str:
    """A layer node as what it asks for, without where the spec says it (positions and labels
    move when lines are added above it; they never reach the layer's bytes)."""
    from dataclasses import fields, is_dataclass

    def strip(value: object) -> object:
        if is_dataclass(value) and not isinstance(value, type):
            kept = (f.name for f in fields(value) if f.name not in ("pos", "label"))
            return (type(value).__name__, tuple((n, strip(getattr(value, n))) for n in kept))
        if isinstance(value, tuple):
            return tuple(strip(v) for v in value)
        return value

    return repr(strip(node))


class Reuse:
    """The layers of the last build with the same options whose inputs are all unchanged: a
    full build (after the up-to-date check failed because something else changed) takes
    their cache records without planning them again (engine/build.py)."""

    def __init__(self, layers: list[tuple[Any, ...] | None], verdicts: LayerVerdicts) -> None:
        self._by_node = {
            entry[0]: (i, entry) for i, entry in enumerate(layers) if entry is not None
        }
        self._verdicts = verdicts

    def unchanged(self, node: object) -> tuple[str, LayerFootprint] | None:
        """(record key, inputs) of `node` if it was built last time and nothing it read has
        changed since."""
        found = self._by_node.get(node_key(node))
        if found is None or not self._verdicts.holds(found[0]):
            return None
        entry = found[1]
        seen = LayerFootprint()
        seen.links, seen.listings, seen.paths = entry[2], entry[3], entry[4]
        seen.keys.frombytes(entry[5])
        return str(entry[1]), seen

    def close(self) -> None:
        self._verdicts.close()


def load_reuse(key: BuildKey | None, store: BlobStore, lent: Lent | None = None) -> Reuse | None:
    """What the last build with these options can lend this one, if its code is this code:
    what the up-to-date check lent (`lent`, its verdicts worked out already) if it ran, else
    the stamp itself."""
    if lent is not None:
        return Reuse(lent.layers, lent.verdicts)
    if key is None:
        return None
    try:
        with open(store.root / STAMP_DIR / _stamp_name(key), "rb") as f:
            stamp = marshal.loads(f.read())
        if stamp["key"] != key or not _code_holds(stamp):
            return None
        # Needed at once: a child would only add the fork.
        return Reuse(stamp["layers"], LayerVerdicts(stamp["layers"], fork=False))
    except (OSError, EOFError, ValueError, TypeError, KeyError, IndexError):
        return None


def _code_identity() -> list[tuple[str, StatKey]]:
    files = {
        module.__file__
        for name, module in list(sys.modules.items())
        if name.partition(".")[0] in CODE_PACKAGES and getattr(module, "__file__", None)
    }
    return [(f, stat_key(os.stat(f))) for f in sorted(f for f in files if f)]
