"""Watch mode: which paths a spec depends on, and a watchfiles loop over them.

Editors save by writing a new file and renaming it over the old one, which ends a watch on the
old file's inode; so the watcher watches directories (the spec's own, each file source's,
and each directory source, recursively) and keeps only changes to paths the spec reads. The
output layout the workbench writes next to the spec, and the cache, are never triggers: a
directory source that contains them would otherwise rebuild forever.

watchfiles groups a burst of changes (`step` ms of quiet, at most `debounce` ms); the app
then cancels any running build and starts a new one, so rapid saves end in one build of the
last state.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.spec.globs import glob_match
from engine.spec.model import CombinedSpec, DirectorySpec, Spec

DEBOUNCE_MS = 800
STEP_MS = 100


@dataclass(frozen=True)
class WatchTargets:
    files: frozenset[Path]  # the spec and every file it reads
    trees: frozenset[Path]  # directory sources: anything below them counts
    ignore: frozenset[Path]  # never triggers (the output layout)
    # Per directory source, the exclude patterns of each layer part that reads it: a path
    # every one of them excludes is read by no layer, so changing it rebuilds nothing.
    excludes: tuple[tuple[Path, tuple[tuple[str, ...], ...]], ...] = ()

    @property
    def recursive(self) -> bool:
        # Only directory sources need recursion; without them the spec's directory (which may
        # be a large tree) is watched one level deep.
        return bool(self.trees)

    @property
    def roots(self) -> tuple[Path, ...]:
        """The fewest existing directories that cover every target, for the watcher."""
        wanted = {f.parent for f in self.files} | set(self.trees)
        existing = sorted(p for p in wanted if p.is_dir())
        if not self.recursive:
            return tuple(existing)
        roots: list[Path] = []
        for p in existing:
            if not any(p.is_relative_to(r) for r in roots):
                roots.append(p)
        return tuple(roots)

    def relevant(self, path: Path) -> bool:
        if any(path == i or path.is_relative_to(i) for i in self.ignore):
            return False
        if path in self.files:
            return True
        under = [t for t in self.trees if path == t or path.is_relative_to(t)]
        return any(not self._excluded(t, path) for t in under)

    def _excluded(self, tree: Path, path: Path) -> bool:
        """Every layer part reading `tree` excludes `path` (or a directory above it)."""
        parts = next((e for root, e in self.excludes if root == tree), ())
        if not parts or path == tree:
            return False
        steps = path.relative_to(tree).parts
        ancestors = ["/".join(steps[: i + 1]) for i in range(len(steps))]
        return all(
            patterns and any(glob_match(patterns, a) for a in ancestors) for patterns in parts
        )


def watch_targets(
    spec_path: Path, spec: Spec | None, cache_root: Path | None = None
) -> WatchTargets:
    """What to watch for `spec_path`; `spec` is its last good parse (None: just the file).
    `cache_root` (the store's versioned root, where every build writes) is never a trigger
    either: a directory layer never takes it in (engine/builder/pool.py own_files), so a cache
    inside a source would only rebuild the same image forever."""
    spec_path = Path(os.path.abspath(spec_path))
    files = {spec_path}
    trees: set[Path] = set()
    excludes: dict[Path, list[tuple[str, ...]]] = {}
    for node in spec.layers if spec is not None else ():
        for part in node.parts if isinstance(node, CombinedSpec) else (node,):
            if isinstance(part, DirectorySpec) and part.source is not None:
                excludes.setdefault(Path(os.path.abspath(part.source)), []).append(part.exclude)
    for source in spec.sources if spec is not None else ():
        if source.is_dir():
            trees.add(source)
        else:
            # Also a source that does not exist yet: creating it must trigger a rebuild.
            files.add(source)
    ignore = {spec_path.with_suffix(".oci")}
    if cache_root is not None:
        ignore.add(Path(os.path.abspath(cache_root)))
    return WatchTargets(
        frozenset(files),
        frozenset(trees),
        frozenset(ignore),
        tuple(sorted((root, tuple(parts)) for root, parts in excludes.items())),
    )


async def watch(
    targets: WatchTargets,
    on_change: Callable[[tuple[Path, ...]], None],
    debounce_ms: int = DEBOUNCE_MS,
    step_ms: int = STEP_MS,
) -> None:
    """Call `on_change` with the changed paths after each burst, until cancelled."""
    from watchfiles import awatch

    roots = targets.roots
    if not roots:
        return

    def keep(_change: object, path: str) -> bool:
        return targets.relevant(Path(path))

    async for changes in awatch(
        *roots,
        watch_filter=keep,
        debounce=debounce_ms,
        step=step_ms,
        recursive=targets.recursive,
    ):
        on_change(tuple(sorted({Path(p) for _, p in changes})))
