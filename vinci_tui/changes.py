"""The Changes view's rows: the comparison's lines (engine.compare.render_lines), each with
the spec line that caused it, so Enter can go there in the Edit pane.

Pure: no widgets. A config key's change points at that key (or the name in its map), a layer's
at its layer node, a file's at the spec node that put it there (the item of a combined layer),
a text diff's lines at their file's node. What no spec line causes (the build's timestamp, a
layer that is gone) points nowhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from engine.builder.result import BuildResult
from engine.compare import FieldChange, FileChange, LayerChange, RenderedLine
from engine.errors import Position
from engine.inspection import image_from_result
from engine.spec.model import CombinedSpec, LayerSpec, Spec
from vinci_tui.specview import key_positions

# The image config's keys (OCI/Docker spelling) and the spec's (kebab-case) that set them.
CONFIG_KEYS = {
    "Entrypoint": "entrypoint",
    "Cmd": "cmd",
    "Env": "env",
    "WorkingDir": "working-dir",
    "User": "user",
    "Labels": "labels",
    "ExposedPorts": "exposed-ports",
    "Volumes": "volumes",
    "StopSignal": "stop-signal",
}
PLATFORM_KEYS = {"architecture", "os", "variant", "os.version", "os.features"}
_FIELD = re.compile(r'^config\.(\w+)(?:\.(\w+)|\["(.*)"\])?')


@dataclass(frozen=True)
class ChangeRow:
    text: str
    kind: str  # the rendered line's kind: heading, field, layer, file, diff, summary or ""
    mark: str  # "+", "-", "~", "=" or "" (for the colour)
    pos: Position | None  # the spec line that caused it


class SpecLinks:
    """Where in the spec each field, layer and file of one build's image comes from."""

    def __init__(self, spec: Spec, result: BuildResult) -> None:
        self.spec = spec
        self.keys = key_positions(spec.path, spec.display_path)
        image = image_from_result(result)
        self.node_of = {info.position: info.node for info in image.layers}
        self.origin: dict[tuple[int, str], str] = {}
        for layer in result.layers:
            if layer.plan is not None:
                for e in layer.plan.entries:
                    self.origin[(layer.index, "/" + e.path)] = e.origin

    def field(self, change: FieldChange) -> Position | None:
        if change.document == "manifest":
            if change.field.startswith("annotations"):
                name = change.field.removeprefix("annotations").strip('.[]"')
                return self.keys.get(f"annotations.{name}") or self.keys.get("annotations")
            return None
        match = _FIELD.match(change.field)
        if match is None:
            top = change.field.split(".", 1)[0]
            return self.keys.get("platform") if top in PLATFORM_KEYS else None
        key, sub = match.group(1), match.group(2) or match.group(3)
        spec_key = CONFIG_KEYS.get(key)
        if spec_key is None:
            return None
        if sub is not None and f"config.{spec_key}.{sub}" in self.keys:
            return self.keys[f"config.{spec_key}.{sub}"]
        if spec_key == "user" and "config.user" not in self.keys and self.spec.accounts:
            return self.spec.accounts.pos  # run-as sets the user
        return self.keys.get(f"config.{spec_key}") or self.keys.get("config")

    def _node(self, layer: LayerChange) -> int | None:
        if layer.b is None:
            return None  # gone from the spec
        return self.node_of.get(layer.b.position)

    def _node_pos(self, index: int | None) -> LayerSpec | None:
        if index is not None and 0 <= index < len(self.spec.layers):
            return self.spec.layers[index]
        return None

    def layer(self, layer: LayerChange) -> Position | None:
        index = self._node(layer)
        node = self._node_pos(index)
        if node is not None:
            return node.pos
        if index is not None and self.spec.accounts is not None:
            return self.spec.accounts.pos  # the accounts layer, above the spec's layers
        return self.keys.get("layers") if layer.b is None else None

    def file(self, layer: LayerChange, change: FileChange) -> Position | None:
        index = self._node(layer)
        node = self._node_pos(index)
        if node is None or index is None:
            return self.layer(layer)
        label = self.origin.get((index, change.path))
        if label and isinstance(node, CombinedSpec):
            for part in node.parts:
                if part.label == label:
                    return part.pos
        return node.pos


def change_rows(lines: Sequence[RenderedLine], links: SpecLinks | None) -> list[ChangeRow]:
    rows = []
    for line in lines:
        pos = None
        if links is not None:
            if line.file is not None and line.layer is not None:
                pos = links.file(line.layer, line.file)
            elif line.layer is not None:
                pos = links.layer(line.layer)
            elif line.field is not None:
                pos = links.field(line.field)
        text = line.text
        mark = text.strip()[:1] if line.kind in ("field", "layer", "file", "diff") else ""
        if line.kind == "diff":
            mark = text.strip()[:1] if text.strip()[:1] in "+-" else ""
        rows.append(ChangeRow(text, line.kind, mark if mark in "+-~=" else "", pos))
    return rows


def inline_paths(result: BuildResult) -> frozenset[str]:
    """The image paths of the build's inline `contents` files: those get a text diff."""
    return frozenset(
        "/" + e.path
        for layer in result.layers
        if layer.plan is not None
        for e in layer.plan.entries
        if e.inline is not None and e.type == "file"
    )
