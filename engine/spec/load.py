"""Loads a spec file: YAML nodes (with their positions) become a validated, frozen Spec.

Every problem is collected, not just the first, and reported as `file:line:col: message`.
Values are read from pyyaml's composed node tree rather than from constructed Python objects,
because only the nodes know where they stand in the file.
"""

from __future__ import annotations

import difflib
import os
import posixpath
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from engine.descriptor import Platform
from engine.errors import Position, SpecError, SpecProblem
from engine.reference import ImageReference, parse_reference
from engine.spec import fields as F
from engine.spec.model import (
    CombinablePart,
    CombinedSpec,
    ConfigSpec,
    DirectorySpec,
    FileSpec,
    ImportOCISpec,
    ImportSpec,
    LayerSpec,
    Spec,
    SymlinkSpec,
)

MAX_ID = 2**32 - 1
_MODE = re.compile(r"^(?:0o)?([0-7]{1,5})$")
_PORT = re.compile(r"^([0-9]{1,5})(?:/(tcp|udp|sctp))?$")
_ENV_NAME = re.compile(r"^[^=\0]+$")
_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"

Node = yaml.Node


class _Missing:
    pass


MISSING: Any = _Missing()


def load_spec(path: str | os.PathLike[str], *, check_sources: bool = True) -> Spec:
    """Load and validate the spec at `path`; raise SpecError listing every problem."""
    display = os.fspath(path)
    absolute = Path(os.path.abspath(display))
    try:
        with open(absolute, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SpecError(
            [SpecProblem(Position(display, 1, 1), f"cannot read spec: {e.strerror}")]
        ) from None
    return load_spec_text(raw, absolute, display, check_sources=check_sources)


def load_spec_text(raw: bytes, absolute: Path, display: str, *, check_sources: bool = True) -> Spec:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise SpecError(
            [SpecProblem(Position(display, line, 1), "spec is not valid UTF-8")]
        ) from None
    try:
        docs = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = e.problem or e.context or "invalid YAML"
        raise SpecError(
            [SpecProblem(Position(display, line, col), f"invalid YAML: {problem}")]
        ) from None
    except yaml.YAMLError as e:
        raise SpecError([SpecProblem(Position(display, 1, 1), f"invalid YAML: {e}")]) from None
    reader = _Reader(display, absolute.parent, check_sources)
    docs = [d for d in docs if d is not None]
    if not docs:
        raise SpecError([SpecProblem(Position(display, 1, 1), "spec is empty")])
    if len(docs) > 1:
        reader.problem(docs[1], "a spec file holds one YAML document; found more")
    spec = reader.spec(docs[0], absolute)
    if reader.problems or spec is None:
        raise SpecError(reader.problems)
    return spec


def _normalize_image_path(value: str) -> str | None:
    """Normalize an absolute in-image path; None if it is not acceptable."""
    if not value.startswith("/") or "\0" in value:
        return None
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/" + "/".join(parts)


class _Reader:
    """Walks the node tree, collecting problems and building model values."""

    def __init__(self, display: str, base_dir: Path, check_sources: bool) -> None:
        self.display = display
        self.base_dir = base_dir
        self.check_sources = check_sources
        self.problems: list[SpecProblem] = []
        self.sources: list[Path] = []
        self._ctor = yaml.SafeLoader("")

    # -- reporting -------------------------------------------------------------------------

    def pos(self, node: Node) -> Position:
        mark = node.start_mark
        return Position(self.display, mark.line + 1, mark.column + 1)

    def problem(self, node: Node, message: str) -> None:
        self.problems.append(SpecProblem(self.pos(node), message))

    # -- generic shapes --------------------------------------------------------------------

    def mapping(
        self, node: Node, where: str, allowed: Iterable[F.Field]
    ) -> dict[str, tuple[Node, Node]] | None:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{where}: expected a mapping, found {_kind(node)}")
            return None
        allowed_names = [f.name for f in allowed]
        out: dict[str, tuple[Node, Node]] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                self.problem(knode, f"{where}: keys must be plain strings")
                continue
            key = knode.value
            if key in out:
                self.problem(knode, f"{where}: duplicate key {key!r}")
                continue
            if key not in allowed_names:
                self.problem(knode, f"{where}: unknown key {key!r}{_suggest(key, allowed_names)}")
                continue
            out[key] = (knode, vnode)
        for f in allowed:
            if f.required and f.name not in out:
                self.problem(node, f"{where}: missing required key {f.name!r}")
        return out

    def string(self, node: Node, where: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
            self.problem(node, f"{where}: expected a string, found {_kind(node)}")
            return None
        # The text as written: `version: 1.10` stays "1.10", not the float 1.1.
        return str(node.value)

    def integer(self, node: Node, where: str, low: int, high: int) -> int | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _INT:
            self.problem(node, f"{where}: expected a whole number, found {_kind(node)}")
            return None
        value = self._ctor.construct_object(node)
        if not isinstance(value, int) or not low <= value <= high:
            self.problem(node, f"{where}: {node.value} is out of range ({low}..{high})")
            return None
        return value

    def boolean(self, node: Node, where: str) -> bool | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _BOOL:
            self.problem(node, f"{where}: expected true or false, found {_kind(node)}")
            return None
        return bool(self._ctor.construct_object(node))

    def mode(self, node: Node, where: str) -> int | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
            self.problem(node, f"{where}: expected an octal mode like 0644, found {_kind(node)}")
            return None
        # Modes are read as octal from the text as written, with or without a leading 0:
        # `mode: 644` meaning decimal 644 would be a silent trap.
        m = _MODE.match(str(node.value).strip())
        if not m or int(m.group(1), 8) > 0o7777:
            self.problem(
                node,
                f"{where}: {node.value} is not a valid mode (octal digits 0-7, at most 07777)",
            )
            return None
        return int(m.group(1), 8)

    def string_list(self, node: Node, where: str) -> tuple[str, ...] | None:
        if not isinstance(node, yaml.SequenceNode):
            hint = (
                " (exec form, e.g. [/bin/app, --flag])" if isinstance(node, yaml.ScalarNode) else ""
            )
            self.problem(node, f"{where}: expected a list of strings{hint}, found {_kind(node)}")
            return None
        out = []
        ok = True
        for i, item in enumerate(node.value):
            value = self.string(item, f"{where}[{i}]")
            if value is None:
                ok = False
            else:
                out.append(value)
        return tuple(out) if ok else None

    def string_map(self, node: Node, where: str) -> tuple[tuple[str, str], ...] | None:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{where}: expected a mapping of strings, found {_kind(node)}")
            return None
        out: list[tuple[str, str]] = []
        seen: set[str] = set()
        for knode, vnode in node.value:
            key = self.string(knode, f"{where} key")
            value = self.string(vnode, f"{where}.{key}")
            if key is None or value is None:
                continue
            if key in seen:
                self.problem(knode, f"{where}: duplicate key {key!r}")
                continue
            seen.add(key)
            out.append((key, value))
        return tuple(out)

    def image_path(self, node: Node, where: str) -> str | None:
        value = self.string(node, where)
        if value is None:
            return None
        normalized = _normalize_image_path(value)
        if normalized is None:
            reason = (
                "must not contain '..'"
                if value.startswith("/")
                else "must be absolute (start with /)"
            )
            self.problem(node, f"{where}: image path {value!r} {reason}")
        return normalized

    def host_path(self, node: Node, where: str, want: str) -> Path | None:
        """A host path relative to the spec's directory; `want` is 'file', 'dir' or 'any'."""
        value = self.string(node, where)
        if value is None:
            return None
        if not value:
            self.problem(node, f"{where}: path is empty")
            return None
        path = Path(os.path.normpath(self.base_dir / os.path.expanduser(value)))
        self.sources.append(path)
        if not self.check_sources:
            return path
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self.problem(node, f"{where}: {value} does not exist (relative to {self.base_dir})")
            return None
        except OSError as e:
            self.problem(node, f"{where}: cannot access {value}: {e.strerror}")
            return None
        import stat as statmod

        if want == "file" and not statmod.S_ISREG(st.st_mode):
            self.problem(node, f"{where}: {value} is not a regular file")
            return None
        if want == "dir" and not statmod.S_ISDIR(st.st_mode):
            self.problem(node, f"{where}: {value} is not a directory")
            return None
        mode = os.R_OK | (os.X_OK if statmod.S_ISDIR(st.st_mode) else 0)
        if not os.access(path, mode):
            self.problem(node, f"{where}: {value} is not readable")
            return None
        return path

    # -- the spec --------------------------------------------------------------------------

    def spec(self, root: Node, absolute: Path) -> Spec | None:
        m = self.mapping(root, "spec", F.TOP)
        if m is None:
            return None
        if "spec-version" in m:
            _knode, vnode = m["spec-version"]
            version = self.string(vnode, "spec-version")
            if version is not None and version != "v1":
                self.problem(vnode, f"spec-version: {version!r} is not supported (only 'v1')")
        image = None
        if "image" in m:
            image = self.reference(m["image"][1], "image", allow_digest=False)
        platform = Platform()
        if "platform" in m:
            vnode = m["platform"][1]
            text = self.string(vnode, "platform")
            if text is not None:
                try:
                    platform = Platform.parse(text)
                except ValueError as e:
                    self.problem(vnode, f"platform: {e}")
        annotations: tuple[tuple[str, str], ...] = ()
        if "annotations" in m:
            annotations = self.string_map(m["annotations"][1], "annotations") or ()
        config = ConfigSpec()
        if "config" in m:
            config = self.config(m["config"][1]) or config
        layers: tuple[LayerSpec, ...] = ()
        if "layers" in m:
            layers = self.layers(m["layers"][1])
        return Spec(
            path=absolute,
            display_path=self.display,
            image=image,
            platform=platform,
            annotations=annotations,
            config=config,
            layers=layers,
            sources=tuple(dict.fromkeys(self.sources)),
        )

    def reference(self, node: Node, where: str, *, allow_digest: bool) -> ImageReference | None:
        text = self.string(node, where)
        if text is None:
            return None
        try:
            ref = parse_reference(text)
        except ValueError as e:
            self.problem(node, f"{where}: {e}")
            return None
        if ref.digest is not None and not allow_digest:
            self.problem(node, f"{where}: {text!r} names a digest; give a repository and tag")
            return None
        return ref

    def config(self, node: Node) -> ConfigSpec | None:
        m = self.mapping(node, "config", F.CONFIG)
        if m is None:
            return None
        values: dict[str, Any] = {}
        for key, (_, vnode) in m.items():
            where = f"config.{key}"
            attr = key.replace("-", "_")
            if key in ("entrypoint", "cmd"):
                values[attr] = self.string_list(vnode, where)
            elif key in ("env", "labels"):
                pairs = self.string_map(vnode, where)
                if pairs is not None and key == "env":
                    for k, _ in pairs:
                        if not _ENV_NAME.match(k):
                            self.problem(vnode, f"{where}: {k!r} is not a variable name")
                values[attr] = pairs or ()
            elif key == "working-dir":
                values[attr] = self.image_path(vnode, where) or ""
            elif key in ("user", "stop-signal"):
                values[attr] = self.string(vnode, where) or ""
            elif key == "volumes":
                items = []
                if isinstance(vnode, yaml.SequenceNode):
                    for i, item in enumerate(vnode.value):
                        p = self.image_path(item, f"{where}[{i}]")
                        if p:
                            items.append(p)
                else:
                    self.problem(vnode, f"{where}: expected a list of paths, found {_kind(vnode)}")
                values[attr] = tuple(items)
            elif key == "exposed-ports":
                values[attr] = self.ports(vnode, where)
        return ConfigSpec(**values)

    def ports(self, node: Node, where: str) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{where}: expected a list of ports, found {_kind(node)}")
            return ()
        out = []
        for i, item in enumerate(node.value):
            text = self.string(item, f"{where}[{i}]")
            if text is None:
                continue
            m = _PORT.match(text)
            if not m or not 1 <= int(m.group(1)) <= 65535:
                self.problem(
                    item, f"{where}[{i}]: {text!r} is not a port (1-65535, optionally /tcp|/udp)"
                )
                continue
            out.append(f"{int(m.group(1))}/{m.group(2) or 'tcp'}")
        return tuple(out)

    # -- layers ----------------------------------------------------------------------------

    def layers(self, node: Node) -> tuple[LayerSpec, ...]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"layers: expected a list of layers, found {_kind(node)}")
            return ()
        out = []
        for i, item in enumerate(node.value):
            layer = self.layer(item, f"layers[{i}]", F.LAYER_KINDS)
            if layer is not None:
                out.append(layer)
        return tuple(out)

    def layer(self, node: Node, where: str, kinds: Iterable[str]) -> Any:
        kinds = list(kinds)
        if not isinstance(node, yaml.MappingNode) or len(node.value) != 1:
            found = (
                ", ".join(str(k.value) for k, _ in node.value)
                if isinstance(node, yaml.MappingNode)
                else _kind(node)
            )
            self.problem(
                node,
                f"{where}: expected exactly one of {', '.join(kinds)}; found {found or 'nothing'}",
            )
            return None
        knode, vnode = node.value[0]
        kind = str(knode.value)
        if kind not in kinds:
            if kind in F.LAYER_KINDS:
                self.problem(
                    knode, f"{where}: {kind!r} cannot be used here (only {', '.join(kinds)})"
                )
            else:
                self.problem(knode, f"{where}: unknown layer kind {kind!r}{_suggest(kind, kinds)}")
            return None
        label = f"{where}.{kind}"
        pos = self.pos(knode)
        fields, shorthand, _ = F.LAYER_KINDS[kind]
        if kind == "combined":
            return self.combined(vnode, label, pos)
        if shorthand and isinstance(vnode, yaml.ScalarNode):
            values: dict[str, tuple[Node, Node]] = {shorthand: (knode, vnode)}
            for f in fields:
                if f.required and f.name != shorthand:
                    self.problem(vnode, f"{label}: missing required key {f.name!r}")
        else:
            m = self.mapping(vnode, label, fields)
            if m is None:
                return None
            values = m
        n = len(self.problems)
        result = getattr(self, "layer_" + kind.replace("-", "_"))(values, label, pos, vnode)
        return result if len(self.problems) == n else None

    def owner(self, values: dict[str, tuple[Node, Node]], label: str) -> tuple[int, int]:
        ids = []
        for key in ("uid", "gid"):
            if key in values:
                ids.append(self.integer(values[key][1], f"{label}.{key}", 0, MAX_ID) or 0)
            else:
                ids.append(0)
        return ids[0], ids[1]

    def opt_mode(self, values: dict[str, tuple[Node, Node]], key: str, label: str) -> int | None:
        if key not in values:
            return None
        return self.mode(values[key][1], f"{label}.{key}")

    def layer_file(
        self, values: dict[str, tuple[Node, Node]], label: str, pos: Position, node: Node
    ) -> FileSpec | None:
        path = self.image_path(values["path"][1], f"{label}.path") if "path" in values else None
        if path == "/":
            self.problem(values["path"][1], f"{label}.path: a file cannot be at /")
        mode = self.opt_mode(values, "mode", label)
        uid, gid = self.owner(values, label)
        contents = source = None
        if "contents" in values and "source" in values:
            self.problem(
                values["source"][0], f"{label}: give either 'contents' or 'source', not both"
            )
        elif "contents" in values:
            text = self.string(values["contents"][1], f"{label}.contents")
            contents = text.encode("utf-8") if text is not None else None
        elif "source" in values:
            source = self.host_path(values["source"][1], f"{label}.source", "file")
        else:
            self.problem(node, f"{label}: needs 'contents' or 'source'")
        if path is None:
            return None
        return FileSpec(label, pos, path, mode, uid, gid, contents, source)

    def layer_directory(
        self, values: dict[str, tuple[Node, Node]], label: str, pos: Position, node: Node
    ) -> DirectorySpec | None:
        path = self.image_path(values["path"][1], f"{label}.path") if "path" in values else None
        source = None
        if "source" in values:
            source = self.host_path(values["source"][1], f"{label}.source", "dir")
        globs: dict[str, tuple[str, ...]] = {}
        for key in ("include", "exclude"):
            globs[key] = ()
            if key in values:
                if source is None and "source" not in values:
                    self.problem(values[key][0], f"{label}.{key}: only applies with a 'source'")
                items = self.string_list(values[key][1], f"{label}.{key}") or ()
                for i, pattern in enumerate(items):
                    if not pattern or pattern.startswith("/") or ".." in pattern.split("/"):
                        self.problem(
                            values[key][1].value[i],
                            f"{label}.{key}[{i}]: {pattern!r} must be a relative glob without '..'",
                        )
                globs[key] = items
        mode = self.opt_mode(values, "mode", label)
        file_mode = self.opt_mode(values, "file-mode", label)
        dir_mode = self.opt_mode(values, "dir-mode", label)
        uid, gid = self.owner(values, label)
        if path is None:
            return None
        return DirectorySpec(
            label,
            pos,
            path,
            source,
            globs["include"],
            globs["exclude"],
            0o755 if mode is None else mode,
            file_mode,
            0o755 if dir_mode is None else dir_mode,
            uid,
            gid,
        )

    def layer_symlink(
        self, values: dict[str, tuple[Node, Node]], label: str, pos: Position, node: Node
    ) -> SymlinkSpec | None:
        path = self.image_path(values["path"][1], f"{label}.path") if "path" in values else None
        target = None
        if "target" in values:
            target = self.string(values["target"][1], f"{label}.target")
            if target is not None and (not target or "\0" in target):
                self.problem(values["target"][1], f"{label}.target: must be a non-empty path")
        uid, gid = self.owner(values, label)
        if path is None or target is None:
            return None
        if path == "/":
            self.problem(values["path"][1], f"{label}.path: a symlink cannot be at /")
        return SymlinkSpec(label, pos, path, target, uid, gid)

    def layer_import(
        self, values: dict[str, tuple[Node, Node]], label: str, pos: Position, node: Node
    ) -> ImportSpec | None:
        written = self.string(values["path"][1], f"{label}.path") if "path" in values else None
        path = self.host_path(values["path"][1], f"{label}.path", "any") if written else None
        tag = self.string(values["tag"][1], f"{label}.tag") or "" if "tag" in values else ""
        inherit = False
        if "inherit-config" in values:
            inherit = bool(self.boolean(values["inherit-config"][1], f"{label}.inherit-config"))
        if path is None or written is None:
            return None
        return ImportSpec(label, pos, path, written, tag, inherit)

    def layer_import_oci(
        self, values: dict[str, tuple[Node, Node]], label: str, pos: Position, node: Node
    ) -> ImportOCISpec | None:
        ref = None
        if "ref" in values:
            vnode = values["ref"][1]
            ref = self.reference(vnode, f"{label}.ref", allow_digest=True)
            if ref is not None and ref.digest is None:
                self.problem(
                    vnode,
                    f"{label}.ref: {vnode.value} is not pinned by digest; run "
                    f"`vinci resolve {vnode.value}` and write the repository@sha256:… it prints",
                )
                ref = None
        inherit = False
        if "inherit-config" in values:
            inherit = bool(self.boolean(values["inherit-config"][1], f"{label}.inherit-config"))
        if ref is None:
            return None
        return ImportOCISpec(label, pos, ref, inherit)

    def combined(self, node: Node, label: str, pos: Position) -> CombinedSpec | None:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{label}: expected a list of file/directory/symlink items")
            return None
        if not node.value:
            self.problem(node, f"{label}: is empty")
            return None
        parts: list[CombinablePart] = []
        seen: dict[str, CombinablePart] = {}
        n = len(self.problems)
        for i, item in enumerate(node.value):
            part = self.layer(item, f"{label}[{i}]", F.COMBINABLE)
            if part is None:
                continue
            if part.path in seen:
                first = seen[part.path]
                self.problem(
                    item.value[0][1],
                    f"{part.label}.path: {part.path} is already in this layer "
                    f"(from {first.label} at {first.pos})",
                )
            seen[part.path] = part
            parts.append(part)
        if len(self.problems) != n:
            return None
        return CombinedSpec(label, pos, tuple(parts))


def _kind(node: Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "nothing"
    if node.tag == _STR:
        return f"the string {node.value!r}"
    return f"{node.value}"


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def image_path_join(base: str, rel: str) -> str:
    """Join an absolute image directory and a relative path, POSIX style."""
    return posixpath.join(base, rel) if rel else base
