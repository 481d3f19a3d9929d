"""A spec as the Spec pane's tree: each node's kind, key fields and YAML position.

Pure: it turns an engine Spec into SpecItems and knows nothing of widgets. Layer nodes carry
their positions on the model; the top-level keys and `config` keys do not, so their positions
are read here from the YAML node tree (pyyaml's marks), which costs one compose of a small file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from engine.errors import Position
from engine.spec.model import (
    CombinedSpec,
    ConfigSpec,
    DirectorySpec,
    FileSpec,
    ImportSpec,
    LayerSpec,
    Spec,
    SymlinkSpec,
    TarSpec,
)


@dataclass(frozen=True)
class SpecItem:
    key: str  # stable across re-parses: "config.entrypoint", "layers[2].combined[0].file"
    kind: str
    text: str
    pos: Position | None
    layer: int | None  # the layer node this item belongs to, if any
    children: tuple[SpecItem, ...] = ()


def key_positions(path: Path, display: str) -> dict[str, Position]:
    """Positions of the top-level keys, of config's keys ("image", "config.cmd", …), and of
    the names in config's and the spec's maps ("config.env.GREETING", "annotations.KEY")."""
    try:
        node = yaml.compose(path.read_text("utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    out: dict[str, Position] = {}
    if not isinstance(node, yaml.MappingNode):
        return out

    def pos(n: yaml.Node) -> Position:
        return Position(display, n.start_mark.line + 1, n.start_mark.column + 1)

    for knode, vnode in node.value:
        key = str(knode.value)
        out[key] = pos(knode)
        if key == "annotations" and isinstance(vnode, yaml.MappingNode):
            for ak, _av in vnode.value:
                out[f"annotations.{ak.value}"] = pos(ak)
        if key == "config" and isinstance(vnode, yaml.MappingNode):
            for ck, cv in vnode.value:
                out[f"config.{ck.value}"] = pos(ck)
                if isinstance(cv, yaml.MappingNode):
                    for mk, _mv in cv.value:
                        out[f"config.{ck.value}.{mk.value}"] = pos(mk)
    return out


def _rel(path: Path, base: Path) -> str:
    rel = os.path.relpath(path, base)
    return rel if rel.startswith("..") else f"./{rel}" if rel != "." else "."


def _owner(uid: int, gid: int) -> str:
    return f" {uid}:{gid}" if uid or gid else ""


def layer_text(node: LayerSpec, base: Path) -> str:
    """The key fields of a layer node, in one line."""
    if isinstance(node, FileSpec):
        text = node.path
        if node.source is not None:
            text += f" ← {_rel(node.source, base)}"
        elif node.contents is not None:
            text += f" ({len(node.contents)} B inline)"
        if node.mode is not None:
            text += f" {node.mode:04o}"
        return text + _owner(node.uid, node.gid)
    if isinstance(node, DirectorySpec):
        text = node.path
        if node.source is not None:
            text += f" ← {_rel(node.source, base)}"
        if node.include:
            text += f" include {','.join(node.include)}"
        if node.exclude:
            text += f" exclude {','.join(node.exclude)}"
        return text + _owner(node.uid, node.gid)
    if isinstance(node, SymlinkSpec):
        return f"{node.path} → {node.target}" + _owner(node.uid, node.gid)
    if isinstance(node, CombinedSpec):
        return f"{len(node.parts)} items"
    if isinstance(node, ImportSpec):
        return node.written + (f" ({node.tag})" if node.tag else "")
    if isinstance(node, TarSpec):
        return node.written + (f" → {node.path}" if node.path != "/" else "")
    return str(node.ref)


def layer_kind(node: LayerSpec) -> str:
    return node.label.rsplit(".", 1)[-1]


def _layer_item(node: LayerSpec, index: int, base: Path) -> SpecItem:
    children: tuple[SpecItem, ...] = ()
    if isinstance(node, CombinedSpec):
        children = tuple(_layer_item(part, index, base) for part in node.parts)
    return SpecItem(node.label, layer_kind(node), layer_text(node, base), node.pos, index, children)


def _config_items(config: ConfigSpec, where: dict[str, Position]) -> tuple[SpecItem, ...]:
    fields: list[tuple[str, str]] = []
    if config.entrypoint is not None:
        fields.append(("entrypoint", " ".join(config.entrypoint)))
    if config.cmd is not None:
        fields.append(("cmd", " ".join(config.cmd)))
    for name, value in config.env:
        fields.append(("env", f"{name}={value}"))
    if config.working_dir:
        fields.append(("working-dir", config.working_dir))
    if config.user:
        fields.append(("user", config.user))
    for name, value in config.labels:
        fields.append(("labels", f"{name}={value}"))
    if config.exposed_ports:
        fields.append(("exposed-ports", " ".join(config.exposed_ports)))
    if config.volumes:
        fields.append(("volumes", " ".join(config.volumes)))
    if config.stop_signal:
        fields.append(("stop-signal", config.stop_signal))
    seen: dict[str, int] = {}
    items = []
    for name, value in fields:
        n = seen.get(name, 0)
        seen[name] = n + 1
        key = f"config.{name}" if n == 0 else f"config.{name}#{n}"
        items.append(SpecItem(key, name, value, where.get(f"config.{name}"), None))
    return tuple(items)


def spec_items(spec: Spec) -> list[SpecItem]:
    """The tree under the spec's root: image, platform, config, annotations, layers."""
    where = key_positions(spec.path, spec.display_path)
    items: list[SpecItem] = []
    if spec.image is not None:
        items.append(SpecItem("image", "image", str(spec.image), where.get("image"), None))
    items.append(SpecItem("platform", "platform", str(spec.platform), where.get("platform"), None))
    config = _config_items(spec.config, where)
    items.append(
        SpecItem("config", "config", f"{len(config)} keys", where.get("config"), None, config)
    )
    if spec.annotations:
        notes = tuple(
            SpecItem(f"annotations.{k}", "annotation", f"{k}={v}", None, None)
            for k, v in spec.annotations
        )
        items.append(
            SpecItem(
                "annotations", "annotations", str(len(notes)), where.get("annotations"), None, notes
            )
        )
    layers = tuple(_layer_item(node, i, spec.base_dir) for i, node in enumerate(spec.layers))
    items.append(SpecItem("layers", "layers", f"{len(layers)}", where.get("layers"), None, layers))
    return items
