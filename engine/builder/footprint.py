"""What a build looked at on the host, layer by layer: every directory it listed, every file
and link it stat'ed (with its stat key), every path it resolved through a link. The planner
fills it in; the command line's up-to-date check (engine/cli/uptodate.py) keeps it in a stamp
and later asks whether all of it still holds.

The other way round, a caller that has checked a layer's footprint of an earlier build and
found every item of it unchanged hands the build a HeldLayer: the layer is then taken from
the cache record that build made, without being walked, listed, stat'ed or hashed, and its
footprint is the one it was held by."""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from engine.cache.statkey import StatKey, is_racy


class LayerFootprint:
    """What planning one layer looked at on the host."""

    __slots__ = ("keys", "links", "listings", "paths", "too_big")

    def __init__(self) -> None:
        self.listings: list[tuple[str, list[str]]] = []  # directory -> every name in it, sorted
        self.links: list[tuple[str, str]] = []  # source path as the spec resolves it -> realpath
        self.paths: list[str] = []  # every file and link stat'ed ...
        # ... and its stat key, four int64s each, packed: 10,000 keys stay one small buffer.
        self.keys = array("q")
        self.too_big = False  # a key that no int64 holds (an inode number may not)

    def saw(self, path: str, key: StatKey) -> None:
        self.paths.append(path)
        try:
            self.keys.extend(key)
        except OverflowError:
            self.too_big = True  # keys no longer line up, but then nothing is stamped


@dataclass(frozen=True)
class HeldLayer:
    """A layer whose host inputs the caller found exactly as an earlier build's footprint
    recorded them (every link resolving alike, every listing alike, every stat key alike,
    none of them racy then): the build takes it from cache record `record`, which that build
    made, as a cache hit. The other fields are that footprint, which becomes this build's
    for the layer. Only a plain layer (directory, file, symlink, combined) is held; if the
    record is gone from the cache, the layer is planned as usual."""

    index: int
    record: str  # the layer record's cache key
    links: tuple[tuple[str, str], ...]
    listings: tuple[tuple[str, tuple[str, ...]], ...]
    paths: tuple[str, ...]
    keys: bytes  # the stat keys, packed as LayerFootprint.keys

    def footprint(self) -> LayerFootprint:
        """The footprint the layer was held by, as planning would have filled it in."""
        seen = LayerFootprint()
        seen.links = list(self.links)
        seen.listings = [(d, list(names)) for d, names in self.listings]
        seen.paths = list(self.paths)
        seen.keys.frombytes(self.keys)
        return seen


@dataclass(frozen=True)
class HeldLayers:
    """The layers of one build that are held (HeldLayer), by layer index. A value of the
    moment it was checked: it is handed to one build (engine/builder/run.py build_spec),
    never kept in the options a build is described by."""

    layers: tuple[HeldLayer, ...] = ()

    def get(self, index: int) -> HeldLayer | None:
        for held in self.layers:
            if held.index == index:
                return held
        return None


class Footprint:
    """What a build looked at on the host. Layers plan on several threads, each into its own
    LayerFootprint."""

    def __init__(self) -> None:
        self.layers: dict[int, LayerFootprint] = {}

    def layer(self, index: int) -> LayerFootprint:
        return self.layers.setdefault(index, LayerFootprint())

    def hold(self, held: HeldLayer) -> None:
        """Layer `held.index` was taken as held: what it was held by is what it looked at."""
        self.layers[held.index] = held.footprint()

    def trusted(self, started_ns: int) -> bool:
        """Whether every stat key can stand for its file's content from now on (none is racy,
        see engine/cache/statkey.py) and fits in an int64."""
        if any(layer.too_big for layer in self.layers.values()):
            return False
        # One max per layer, not a test per key: 40,000 keys took a changed-file rebuild 15 ms.
        mtimes = [max(layer.keys[1::4]) for layer in self.layers.values() if layer.keys]
        return not mtimes or not is_racy(max(mtimes), started_ns)
