"""The validated spec as immutable values. Every node keeps its YAML position."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.errors import Position
from engine.oci.descriptor import Platform
from engine.oci.reference import ImageReference


@dataclass(frozen=True)
class PlatformSource:
    """One entry of a `source` given per platform: the host path a platform's image takes."""

    platform: Platform
    path: Path  # absolute host path
    written: str  # as the spec wrote it


@dataclass(frozen=True)
class FileSpec:
    label: str  # e.g. "layers[1].file" or "layers[0].combined[2].file"
    pos: Position
    path: str  # absolute in-image path, normalized
    mode: int | None
    uid: int
    gid: int
    contents: bytes | None
    source: Path | None  # absolute host path
    # A multi-platform spec's node before Spec.for_platform: the platforms it is limited to
    # (none: all) and its source per platform (none: `source` for every platform).
    platforms: tuple[Platform, ...] = ()
    by_platform: tuple[PlatformSource, ...] = ()


@dataclass(frozen=True)
class DirectorySpec:
    label: str
    pos: Position
    path: str
    source: Path | None
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    mode: int
    file_mode: int | None
    dir_mode: int
    uid: int
    gid: int
    platforms: tuple[Platform, ...] = ()
    by_platform: tuple[PlatformSource, ...] = ()


@dataclass(frozen=True)
class SymlinkSpec:
    label: str
    pos: Position
    path: str
    target: str
    uid: int
    gid: int
    platforms: tuple[Platform, ...] = ()


CombinablePart = FileSpec | DirectorySpec | SymlinkSpec


@dataclass(frozen=True)
class CombinedSpec:
    label: str
    pos: Position
    parts: tuple[CombinablePart, ...]


@dataclass(frozen=True)
class ImportSpec:
    label: str
    pos: Position
    path: Path
    written: str  # the path as the spec wrote it: history must not name host directories
    tag: str
    inherit_config: bool
    platforms: tuple[Platform, ...] = ()


@dataclass(frozen=True)
class ImportOCISpec:
    label: str
    pos: Position
    ref: ImageReference
    inherit_config: bool
    platforms: tuple[Platform, ...] = ()


@dataclass(frozen=True)
class TarSpec:
    label: str
    pos: Position
    source: Path  # absolute host path
    written: str  # the source as the spec wrote it: history must not name host directories
    path: str  # the image directory the entries go under, normalized ("/" by default)
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    whiteouts: bool
    platforms: tuple[Platform, ...] = ()
    by_platform: tuple[PlatformSource, ...] = ()


LayerSpec = (
    FileSpec | DirectorySpec | SymlinkSpec | CombinedSpec | ImportSpec | ImportOCISpec | TarSpec
)


@dataclass(frozen=True)
class ConfigSpec:
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str = ""
    user: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    stop_signal: str = ""


@dataclass(frozen=True)
class GroupSpec:
    label: str  # "accounts.groups[0]"
    pos: Position
    name: str
    gid: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class UserSpec:
    label: str  # "accounts.users[0]"
    pos: Position
    name: str
    uid: int
    gid: int
    shell: str
    homedir: str


@dataclass(frozen=True)
class AccountsSpec:
    pos: Position
    groups: tuple[GroupSpec, ...]
    users: tuple[UserSpec, ...]
    # What `run-as` makes the config's user: "uid:gid" of a `users` entry, or a uid as written.
    user: str


@dataclass(frozen=True)
class Spec:
    path: Path  # the spec file, absolute
    display_path: str  # as the user named it, for messages
    image: ImageReference | None
    platform: Platform
    annotations: tuple[tuple[str, str], ...]
    config: ConfigSpec
    layers: tuple[LayerSpec, ...]
    sources: tuple[Path, ...] = field(default=())  # every host path it reads, for watchers
    accounts: AccountsSpec | None = None  # made into one layer above `layers`
    sbom: tuple[str, ...] = ()  # SBOM formats `vinci build` writes by default
    # The file's bytes as loaded: what the up-to-date check (engine/cli/uptodate.py) compares.
    raw: bytes = field(default=b"", repr=False, compare=False)
    # `platforms:`: the images of an OCI image index, one per platform (`platform` is the
    # first). Empty for a one-platform spec, whose layers are already those of `platform`.
    platforms: tuple[Platform, ...] = ()

    @property
    def is_index(self) -> bool:
        """Whether the spec builds an image index (it names `platforms`)."""
        return bool(self.platforms)

    def for_platform(self, platform: Platform) -> Spec:
        """The one-platform spec of `platform`: the layers and items limited to other
        platforms left out, each per-platform `source` resolved to this platform's."""
        layers = tuple(n for n in (_resolve(node, platform) for node in self.layers) if n)
        return replace(self, platform=platform, platforms=(), layers=layers)

    def select(self, wanted: tuple[Platform, ...]) -> tuple[Platform, ...]:
        """The spec's platforms that `wanted` names (all of them for none), in the spec's
        order; ValueError naming one that is not the spec's."""
        mine = self.platforms or (self.platform,)
        if not wanted:
            return mine
        for w in wanted:
            if not any(w.matches(p) for p in mine):
                names = ", ".join(str(p) for p in mine)
                raise ValueError(f"{w} is not one of the spec's platforms ({names})")
        return tuple(p for p in mine if any(w.matches(p) for w in wanted))

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def tag(self) -> str:
        """The tag an OCI layout output names the image by."""
        if self.image is not None and self.image.tag:
            return self.image.tag
        return "latest"


def _applies(platforms: tuple[Platform, ...], platform: Platform) -> bool:
    return not platforms or any(p.matches(platform) for p in platforms)


def _resolve(node: LayerSpec, platform: Platform) -> LayerSpec | None:
    """`node` as built for `platform`, None if it is left out there."""
    if isinstance(node, CombinedSpec):
        parts = tuple(p for p in (_resolve_part(part, platform) for part in node.parts) if p)
        if not parts:
            return None
        return node if parts == node.parts else replace(node, parts=parts)
    if isinstance(node, FileSpec | DirectorySpec | SymlinkSpec):
        return _resolve_part(node, platform)
    if not _applies(node.platforms, platform):
        return None
    if isinstance(node, TarSpec) and node.by_platform:
        chosen = next(s for s in node.by_platform if s.platform.matches(platform))
        return replace(
            node, source=chosen.path, written=chosen.written, platforms=(), by_platform=()
        )
    return replace(node, platforms=()) if node.platforms else node


def _resolve_part(node: CombinablePart, platform: Platform) -> CombinablePart | None:
    if not _applies(node.platforms, platform):
        return None
    if not isinstance(node, SymlinkSpec) and node.by_platform:
        chosen = next(s for s in node.by_platform if s.platform.matches(platform))
        return replace(node, source=chosen.path, platforms=(), by_platform=())
    return replace(node, platforms=()) if node.platforms else node


def layer_summary(layer: LayerSpec) -> str:
    """A short human description of a layer node, used in history and UIs."""
    if isinstance(layer, FileSpec):
        return f"file {layer.path}"
    if isinstance(layer, DirectorySpec):
        return f"directory {layer.path}"
    if isinstance(layer, SymlinkSpec):
        return f"symlink {layer.path} -> {layer.target}"
    if isinstance(layer, CombinedSpec):
        return f"combined ({len(layer.parts)} items)"
    if isinstance(layer, ImportSpec):
        return f"import {layer.written}"
    if isinstance(layer, TarSpec):
        return f"tar {layer.written}" + (f" at {layer.path}" if layer.path != "/" else "")
    return f"import-oci {layer.ref}"
