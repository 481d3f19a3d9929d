"""What a build looked at on the host, layer by layer: every directory it listed, every file
and link it stat'ed (with its stat key), every path it resolved through a link. The planner
fills it in; the command line's up-to-date check (engine/cli/uptodate.py) keeps it in a stamp
and later asks whether all of it still holds."""

from __future__ import annotations

from array import array

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


class Footprint:
    """What a build looked at on the host. Layers plan on several threads, each into its own
    LayerFootprint."""

    def __init__(self) -> None:
        self.layers: dict[int, LayerFootprint] = {}

    def layer(self, index: int) -> LayerFootprint:
        return self.layers.setdefault(index, LayerFootprint())

    def trusted(self, started_ns: int) -> bool:
        """Whether every stat key can stand for its file's content from now on (none is racy,
        see engine/cache/statkey.py) and fits in an int64."""
        if any(layer.too_big for layer in self.layers.values()):
            return False
        # One max per layer, not a test per key: 40,000 keys took a changed-file rebuild 15 ms.
        mtimes = [max(layer.keys[1::4]) for layer in self.layers.values() if layer.keys]
        return not mtimes or not is_racy(max(mtimes), started_ns)
