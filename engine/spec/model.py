"""The validated spec as immutable values. Every node keeps its YAML position."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import Position
from engine.oci.descriptor import Platform
from engine.oci.reference import ImageReference


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


@dataclass(frozen=True)
class SymlinkSpec:
    label: str
    pos: Position
    path: str
    target: str
    uid: int
    gid: int


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


@dataclass(frozen=True)
class ImportOCISpec:
    label: str
    pos: Position
    ref: ImageReference
    inherit_config: bool


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

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def tag(self) -> str:
        """The tag an OCI layout output names the image by."""
        if self.image is not None and self.image.tag:
            return self.image.tag
        return "latest"


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
