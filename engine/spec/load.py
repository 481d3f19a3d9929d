"""Loads a spec file: YAML nodes (with their positions) become a validated, frozen Spec.

Every problem is collected, not just the first, and reported as `file:line:col: message`, the
message naming the key path (`layers[1].file.mode: ...`) and the position pointing at the
offending value, or at the key itself when the key is what is wrong. Values are read from
pyyaml's composed node tree rather than from constructed Python objects, because only the nodes
know where they stand in the file, and because modes must be read from the text as written.

Which keys exist, which are required and what type each value has all come from
engine.spec.fields; this module only knows how to read each *type* and the few rules that tie
keys together (a file needs exactly one of contents/source, paths in one layer are unique).
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from engine.errors import Position, SpecError, SpecProblem
from engine.oci.descriptor import Platform
from engine.oci.reference import ImageReference, parse_reference
from engine.spec import fields as F
from engine.spec.globs import glob_match
from engine.spec.hostpath import host_path_problem
from engine.spec.model import (
    AccountsSpec,
    CombinablePart,
    CombinedSpec,
    ConfigSpec,
    DirectorySpec,
    FileSpec,
    GroupSpec,
    ImportOCISpec,
    ImportSpec,
    LayerSpec,
    PlatformSource,
    Spec,
    SymlinkSpec,
    TarSpec,
    UserSpec,
)

MAX_ID = F.MAX_ID
_MODE = re.compile(F.MODE_PATTERN)
_PORT = re.compile(F.PORT_PATTERN)
_ENV_NAME = re.compile(F.ENV_NAME_PATTERN)
_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"

# What a host path must be, per (layer kind, key): the type table says "hostpath", the kind
# says whether a file, a directory or an image (layout directory or archive file) is meant.
_HOST_WANT = {
    ("file", "source"): "file",
    ("directory", "source"): "dir",
    ("import", "path"): "image",
    ("tar", "source"): "tar",
}

Node = yaml.Node
Values = dict[str, tuple[Node, Node]]  # key -> (key node, value node)


# A spec is a page of YAML; one larger than this is not a spec (inline file contents belong
# in source files).
MAX_SPEC_BYTES = 16 << 20
# How many values a spec's aliases may add once expanded. Real specs add a few hundred; a few
# kilobytes of nested aliases (a "billion laughs") would add millions, and every one would be
# read and checked.
MAX_ALIAS_EXPANSION = 100_000


def load_spec(path: str | os.PathLike[str], *, check_sources: bool = True) -> Spec:
    """Load and validate the spec at `path`; raise SpecError listing every problem."""
    display = os.fspath(path)
    absolute = Path(os.path.abspath(display))

    def fail(message: str) -> SpecError:
        return SpecError([SpecProblem(Position(display, 1, 1), message)])

    try:
        # O_NONBLOCK: a FIFO given as the spec must not block the open; it is refused below.
        fd = os.open(absolute, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise fail(f"cannot read spec: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise fail("cannot read spec: it is not a regular file")
        os.set_blocking(fd, True)
        try:
            raw = f.read(MAX_SPEC_BYTES + 1)
        except OSError as e:
            raise fail(f"cannot read spec: {e.strerror}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise fail(f"cannot read spec: it is larger than {MAX_SPEC_BYTES >> 20} MiB")
    return load_spec_text(raw, absolute, display, check_sources=check_sources)


def load_spec_text(raw: bytes, absolute: Path, display: str, *, check_sources: bool = True) -> Spec:
    """Validate spec text as if read from `absolute` (shown as `display` in messages).

    With check_sources=False host paths are resolved but not looked at (for editors and
    watchers that must parse a spec whose sources are being written).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        column = len(raw[: e.start].rsplit(b"\n", 1)[-1].decode("utf-8", "replace")) + 1
        raise SpecError(
            [SpecProblem(Position(display, line, column), "spec is not valid UTF-8")]
        ) from None
    docs = _compose(text, display)
    for doc in docs:
        if doc is not None:
            _check_expansion(doc, display)
    reader = _Reader(display, absolute.parent, check_sources)
    present = [d for d in docs if d is not None]
    if not present:
        raise SpecError([SpecProblem(Position(display, 1, 1), "spec is empty")])
    if len(present) > 1:
        reader.problem(present[1], "a spec file holds one YAML document; found more")
    spec = reader.spec(present[0], absolute)
    if reader.problems or spec is None:
        raise SpecError(reader.problems)
    return replace(spec, raw=raw)


def _compose(text: str, display: str) -> list[Node | None]:
    """The YAML documents of `text` as node trees; YAML errors become one positioned line."""

    def fail(line: int, column: int, message: str) -> SpecError:
        # pyyaml messages can span lines; ours must not.
        one_line = " ".join(message.split())
        return SpecError([SpecProblem(Position(display, line, column), one_line)])

    try:
        return list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as e:
        mark, cm = e.problem_mark or e.context_mark, e.context_mark
        problem = e.problem or e.context or "cannot parse"
        context = e.context if e.problem else None
        if cm is not None and (
            context == "while scanning a simple key" or "end of stream" in problem
        ):
            # A key without its ':' or an unclosed quote is noticed lines later, or at the end
            # of the file; where the key or the quote starts is what to fix.
            mark = cm
            if context == "while scanning a quoted scalar":
                problem, context = "this quoted string is never closed", None
        elif "'\\t'" in problem:
            problem = "a tab; YAML indents with spaces only, so write spaces here"
        elif problem.startswith(("expected <block end>", "expected '<document start>'")):
            # pyyaml's token names mean nothing to a user; the cause is the indentation.
            problem = "this line is indented differently from the lines around it"
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"invalid YAML: {problem}"
        if context and cm is not None:
            if mark is cm:
                message += f" ({context})"
            else:
                # "while parsing a block mapping" alone does not say which one.
                message += f" ({context} at {cm.line + 1}:{cm.column + 1})"
        raise fail(line, column, message) from None
    except yaml.reader.ReaderError as e:
        # Raised for characters YAML forbids (control characters, lone surrogates); it has a
        # character offset instead of a mark.
        before = text[: e.position]
        line = before.count("\n") + 1
        column = e.position - (before.rfind("\n") + 1) + 1
        code = ord(e.character) if isinstance(e.character, str) else e.character
        escape = f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
        raise fail(
            line,
            column,
            f"invalid YAML: character U+{code:04X} is not allowed; write it as an escape "
            f"({escape}) inside a double-quoted string",
        ) from None
    except yaml.YAMLError as e:
        raise fail(1, 1, f"invalid YAML: {e}") from None
    except RecursionError:
        # pyyaml's composer recurses once per nesting level.
        raise fail(1, 1, "invalid YAML: nested too deeply") from None


def _check_expansion(root: Node, display: str) -> None:
    """Refuse a document whose aliases add more than MAX_ALIAS_EXPANSION values to it, or
    refer to a node that contains them, before anything reads it.

    An alias is the node it names, shared: the size of each node (itself and everything below
    it, aliases expanded) is found once, children before parents, without recursion."""
    sizes: dict[int, int] = {}
    finished: list[Node] = []
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            finished.append(node)
            continue
        if key in sizes:
            continue
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise _problem(display, child, "a YAML alias here refers to a node containing it")
            if id(child) not in sizes:
                stack.append((child, False))
    limit = len(sizes) + MAX_ALIAS_EXPANSION
    if sizes[id(root)] > limit:
        # Point at the smallest node that is already too large: where the nesting is.
        worst = next(n for n in finished if sizes[id(n)] > limit)
        raise _problem(
            display,
            worst,
            f"YAML aliases (*name) expand this to {sizes[id(worst)]:,} values; at most "
            f"{MAX_ALIAS_EXPANSION:,} may come from aliases (write the spec out instead)",
        )


def _problem(display: str, node: Node, message: str) -> SpecError:
    mark = node.start_mark
    return SpecError([SpecProblem(Position(display, mark.line + 1, mark.column + 1), message)])


def _children(node: Node) -> list[Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _normalize_image_path(value: str) -> str | None:
    """Normalize an absolute in-image path; None if it is not acceptable."""
    if not value.startswith("/") or "\0" in value:
        return None
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/" + "/".join(parts)


class _Reader:
    """Walks the node tree, collecting problems and building model values.

    Readers return None for a value they could not read, after recording why; callers decide
    validity by whether problems were added, so one bad value never hides another.
    """

    def __init__(self, display: str, base_dir: Path, check_sources: bool) -> None:
        self.display = display
        self.base_dir = base_dir
        self.check_sources = check_sources
        self.problems: list[SpecProblem] = []
        self.sources: list[Path] = []
        self._ctor = yaml.SafeLoader("")
        self.misplaced_config: list[str] = []  # config keys written at the top level
        # Checked once the spec's platforms are known: (value node, key path, platforms it
        # names, the node's own `platforms`, whether a per-platform `source`).
        self.platform_uses: list[tuple[Node, str, tuple[Platform, ...], tuple[Platform, ...]]] = []
        self.platform_sources: list[
            tuple[Node, str, tuple[Platform, ...], tuple[Platform, ...]]
        ] = []

    # -- reporting -------------------------------------------------------------------------

    def pos(self, node: Node) -> Position:
        mark = node.start_mark
        return Position(self.display, mark.line + 1, mark.column + 1)

    def problem(self, node: Node, message: str) -> None:
        # One problem, one line: a value shown in a message must not break the line.
        message = message.replace("\r", "\\r").replace("\n", "\\n")
        self.problems.append(SpecProblem(self.pos(node), message))

    # -- generic shapes --------------------------------------------------------------------

    def mapping(
        self,
        node: Node,
        where: str,
        allowed: Sequence[F.Field],
        *,
        excused: set[str] | None = None,
    ) -> Values | None:
        """The keys of a mapping node, checked against `allowed`.

        `excused` names keys whose absence is already explained (a key at the wrong level); a
        misspelt key's guess is added to it. Neither is reported missing a second time.
        """
        if not isinstance(node, yaml.MappingNode):
            self.problem(
                node,
                f"{where}: expected a mapping, found {_kind(node)}"
                + ("" if where == "spec" else _keys_hint(allowed)),
            )
            return None
        names = [f.name for f in allowed]
        out: Values = {}
        # A misspelt required key is reported once, as unknown with its suggestion, not again
        # as missing.
        excused = set() if excused is None else excused
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                self.problem(knode, f"{where}: keys must be plain strings, found {_kind(knode)}")
                continue
            key = str(knode.value)
            if knode.tag == _MERGE:
                self.problem(knode, f"{where}: merge keys (<<) are not supported; write keys out")
                continue
            if key in out:
                first = self.pos(out[key][0])
                self.problem(knode, f"{where}: duplicate key {key!r} (first at {first})")
                continue
            if where == "spec" and key in _CONFIG_KEYS:
                # `config:` with its keys written at column 0, below it.
                self.misplaced_config.append(key)
                self.problem(
                    knode,
                    f"spec: {key!r} is a config key; indent it under config: (two spaces: "
                    f"`  {key}: …`)",
                )
                continue
            if key not in names:
                guess = _guess(key, allowed)
                excused.add(guess)
                hint = f"; did you mean {guess!r}?" if guess else ""
                self.problem(knode, f"{where}: unknown key {key!r}{hint}")
                continue
            out[key] = (knode, vnode)
        for f in allowed:
            if f.required and f.name not in out and f.name not in excused:
                self.problem(node, f"{where}: missing required key {f.name!r}")
        for f in allowed:
            if f.requires and f.name in out and f.requires not in out:
                self.problem(out[f.name][0], f"{where}.{f.name}: only applies with {f.requires!r}")
        return out

    def read(
        self, values: Values, fields: Sequence[F.Field], label: str, kind: str = "", short: str = ""
    ) -> dict[str, Any]:
        """Read every present key by its declared type; `short` is a shorthand's field, whose
        key path is the label itself (`import: ./x` is layers[0].import, not .import.path)."""
        out: dict[str, Any] = {}
        for f in fields:
            if f.name not in values:
                continue
            where = label if f.name == short else f"{label}.{f.name}" if label else f.name
            value = self.value(f.type, values[f.name][1], where, _HOST_WANT.get((kind, f.name)))
            if value is not None:
                out[f.name] = value
        return out

    def value(self, ftype: str, node: Node, where: str, want: str | None = None) -> Any:
        if ftype == "string":
            return self.string(node, where)
        if ftype == "int":
            return self.integer(node, where, 0, MAX_ID)
        if ftype == "mode":
            return self.mode(node, where)
        if ftype == "bool":
            return self.boolean(node, where)
        if ftype == "abspath":
            return self.image_path(node, where)
        if ftype == "hostpath":
            return self.host_path(node, where, want or "any")
        if ftype == "string-list":
            return self.string_list(node, where)
        if ftype == "command":
            return self.string_list(node, where, exec_form=True)
        if ftype == "glob-list":
            return self.globs(node, where)
        if ftype == "sbom-list":
            return self.sbom_formats(node, where)
        if ftype == "abspath-list":
            return self.image_paths(node, where)
        if ftype == "string-map":
            return self.string_map(node, where)
        if ftype == "env-map":
            return self.string_map(node, where, key_pattern=_ENV_NAME, key_what="variable name")
        if ftype == "port-list":
            return self.ports(node, where)
        if ftype == "platform":
            return self.platform(node, where)
        if ftype == "platform-list":
            return self.platform_list(node, where)
        if ftype == "platform-hostpath":
            return self.platform_host_path(node, where, want or "any")
        if ftype == "reference":
            return self.reference(node, where, pinned=False)
        if ftype == "pinned-reference":
            return self.reference(node, where, pinned=True)
        if ftype == "config":
            return self.config(node)
        if ftype == "accounts":
            return self.accounts(node)
        if ftype in ("group-list", "user-list"):
            return self.account_list(ftype, node, where)
        if ftype == "layer-list":
            return self.layers(node)
        raise AssertionError(f"fields.py names a type the loader does not read: {ftype}")

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
        # Read as octal from the text as written: YAML 1.1 would read 0644 as octal but 644 as
        # decimal, and YAML 1.2 both as decimal; the text means the same to every reader.
        text = str(node.value)
        if not _MODE.match(text):
            self.problem(
                node,
                f"{where}: {_show(node)} is not a valid mode (octal digits 0-7, at most 07777)",
            )
            return None
        return int(text.removeprefix("0o"), 8)

    def string_list(
        self, node: Node, where: str, *, exec_form: bool = False
    ) -> tuple[str, ...] | None:
        if not isinstance(node, yaml.SequenceNode):
            hint = ""
            if isinstance(node, yaml.ScalarNode) and node.tag != _NULL:
                # A command line is not split for the user: which words go together is theirs
                # to say. Anything else is one item.
                hint = (
                    " (exec form, e.g. [/bin/app, --flag])"
                    if exec_form
                    else f" (write [{_show(node)}])"
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

    def sbom_formats(self, node: Node, where: str) -> tuple[str, ...] | None:
        names = self.string_list(node, where)
        if names is None:
            return None
        ok = True
        for i, name in enumerate(names):
            if name not in F.SBOM_FORMATS:
                self.problem(
                    node.value[i],
                    f"{where}[{i}]: {name!r} is not an SBOM format ({', '.join(F.SBOM_FORMATS)})",
                )
                ok = False
        return tuple(dict.fromkeys(names)) if ok else None

    def globs(self, node: Node, where: str) -> tuple[str, ...] | None:
        items = self.string_list(node, where)
        if items is None:
            return None
        ok = True
        for i, pattern in enumerate(items):
            reason = _glob_problem(pattern)
            if reason:
                self.problem(node.value[i], f"{where}[{i}]: {pattern!r} {reason}")
                ok = False
        return items if ok else None

    def string_map(
        self,
        node: Node,
        where: str,
        *,
        key_pattern: re.Pattern[str] | None = None,
        key_what: str = "",
    ) -> tuple[tuple[str, str], ...] | None:
        if not isinstance(node, yaml.MappingNode):
            self.problem(
                node,
                f"{where}: expected a mapping of strings, found {_kind(node)}"
                + _mapping_hint(node, where),
            )
            return None
        out: list[tuple[str, str]] = []
        seen: dict[str, Node] = {}
        ok = True
        for knode, vnode in node.value:
            key = self.string(knode, f"{where} key")
            if key is None:
                ok = False
                continue
            if key in seen:
                self.problem(
                    knode, f"{where}: duplicate key {key!r} (first at {self.pos(seen[key])})"
                )
                ok = False
                continue
            seen[key] = knode
            if key_pattern is not None and not key_pattern.match(key):
                self.problem(knode, f"{where}: {key!r} is not a valid {key_what}")
                ok = False
            value = self.string(vnode, f"{where}.{key}")
            if value is None:
                ok = False
                continue
            out.append((key, value))
        return tuple(out) if ok else None

    def image_path(self, node: Node, where: str) -> str | None:
        value = self.string(node, where)
        if value is None:
            return None
        normalized = _normalize_image_path(value)
        if normalized is None:
            if not value.startswith("/"):
                reason = "must be absolute (start with /)"
            elif "\0" in value:
                reason = "must not contain a NUL character"
            else:
                reason = "must not contain '..'"
            self.problem(node, f"{where}: image path {value!r} {reason}")
        return normalized

    def image_paths(self, node: Node, where: str) -> tuple[str, ...] | None:
        if not isinstance(node, yaml.SequenceNode):
            hint = f" (write [{_show(node)}])" if isinstance(node, yaml.ScalarNode) else ""
            self.problem(node, f"{where}: expected a list of paths{hint}, found {_kind(node)}")
            return None
        out = []
        ok = True
        for i, item in enumerate(node.value):
            path = self.image_path(item, f"{where}[{i}]")
            if path is None:
                ok = False
            else:
                out.append(path)
        return tuple(out) if ok else None

    def ports(self, node: Node, where: str) -> tuple[str, ...] | None:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{where}: expected a list of ports, found {_kind(node)}")
            return None
        out: dict[str, Node] = {}
        ok = True
        for i, item in enumerate(node.value):
            text = self.string(item, f"{where}[{i}]")
            if text is None:
                ok = False
                continue
            m = _PORT.match(text)
            if not m:
                self.problem(
                    item,
                    f"{where}[{i}]: {text!r} is not a port (1-65535, optionally /tcp, /udp or "
                    "/sctp)",
                )
                ok = False
                continue
            port = f"{m.group(1)}/{m.group(2) or 'tcp'}"
            if port in out:
                self.problem(
                    item, f"{where}[{i}]: {port} is already listed (at {self.pos(out[port])})"
                )
                ok = False
                continue
            out[port] = item
        return tuple(out) if ok else None

    def platform(self, node: Node, where: str) -> Platform | None:
        text = self.string(node, where)
        if text is None:
            return None
        try:
            return Platform.parse(text)
        except ValueError as e:
            self.problem(node, f"{where}: {e}")
            return None

    def platform_list(self, node: Node, where: str) -> tuple[Platform, ...] | None:
        """A non-empty list of distinct platforms."""
        if not isinstance(node, yaml.SequenceNode):
            self.problem(
                node, f"{where}: expected a list of platforms (os/arch), found {_kind(node)}"
            )
            return None
        if not node.value:
            self.problem(node, f"{where}: the list is empty; name at least one platform")
            return None
        out: list[Platform] = []
        for i, item in enumerate(node.value):
            platform = self.platform(item, f"{where}[{i}]")
            if platform is None:
                continue
            if platform in out:
                self.problem(item, f"{where}[{i}]: {platform} is listed twice")
                continue
            out.append(platform)
        return tuple(out) if len(out) == len(node.value) else None

    def platform_host_path(
        self, node: Node, where: str, want: str
    ) -> Path | tuple[PlatformSource, ...] | None:
        """A host path, or a map of platform to host path (`source: {linux/amd64: ./a}`)."""
        if not isinstance(node, yaml.MappingNode):
            return self.host_path(node, where, want)
        out: list[PlatformSource] = []
        ok = True
        for k, v in node.value:
            platform = self.platform(k, f"{where} (a platform)")
            if platform is None:
                ok = False
                continue
            if any(s.platform == platform for s in out):
                self.problem(k, f"{where}: {platform} is given twice")
                ok = False
                continue
            path = self.host_path(v, f"{where}.{platform}", want)
            if path is None:
                ok = False
                continue
            out.append(PlatformSource(platform, path, str(v.value)))
        if not node.value:
            self.problem(node, f"{where}: expected a host path or a map of platform to path")
            return None
        return tuple(out) if ok else None

    def layer_platforms(
        self, v: dict[str, Any], values: Values, label: str
    ) -> tuple[Platform, ...]:
        """The node's own `platforms` (checked against the spec's once those are known), and
        a per-platform `source` noted for the same check."""
        platforms: tuple[Platform, ...] = v.get("platforms", ())
        if platforms:
            node = values["platforms"][1]
            self.platform_uses.append((node, f"{label}.platforms", platforms, ()))
        source = v.get("source")
        if isinstance(source, tuple):
            keys = tuple(s.platform for s in source)
            self.platform_sources.append((values["source"][1], f"{label}.source", keys, platforms))
        return platforms

    @staticmethod
    def split_source(v: dict[str, Any]) -> tuple[Any, tuple[PlatformSource, ...]]:
        """`source` as the node's own field (the first platform's path for a map) and the map."""
        source = v.get("source")
        if isinstance(source, tuple):
            return source[0].path, source
        return source, ()

    def check_platforms(self, spec_platforms: tuple[Platform, ...], index: bool) -> None:
        """Every platform a node names is one of the spec's (of a multi-platform spec), and
        every per-platform source has a path for each platform its node is built for."""
        names = ", ".join(str(p) for p in spec_platforms)
        if index:
            for node, where, named, _ in self.platform_uses:
                for platform in named:
                    if not any(platform.matches(p) for p in spec_platforms):
                        self.problem(
                            node,
                            f"{where}: {platform} is not one of the spec's platforms ({names})",
                        )
        for node, where, keys, limited in self.platform_sources:
            for platform in spec_platforms:
                if limited and not any(p.matches(platform) for p in limited):
                    continue
                if not any(k.matches(platform) for k in keys):
                    self.problem(
                        node,
                        f"{where}: no path for {platform}; add one, or limit the layer to the "
                        "platforms it has paths for (`platforms: [...]`)",
                    )

    def reference(self, node: Node, where: str, *, pinned: bool) -> ImageReference | None:
        text = self.string(node, where)
        if text is None:
            return None
        try:
            ref = parse_reference(text)
        except ValueError as e:
            self.problem(node, f"{where}: {e}")
            return None
        if ref.digest is not None and not pinned:
            self.problem(node, f"{where}: {text!r} names a digest; give a repository and tag")
            return None
        if ref.digest is None and pinned:
            # Reproducibility: a tag can move, a digest cannot. Say how to get the digest.
            self.problem(
                node,
                f"{where}: {text!r} is not pinned by digest; run `vinci resolve {text}` and "
                "write the repository@sha256:… it prints",
            )
            return None
        return ref

    def host_path(self, node: Node, where: str, want: str) -> Path | None:
        """A host path relative to the spec's directory; `want` is 'file', 'dir' or 'image'."""
        value = self.string(node, where)
        if value is None:
            return None
        if not value or "\0" in value:
            self.problem(node, f"{where}: {value!r} is not a path")
            return None
        path = Path(os.path.normpath(self.base_dir / os.path.expanduser(value)))
        # Watchers want every path, also those that do not exist yet.
        self.sources.append(path)
        if not self.check_sources:
            return path
        resolved = "" if os.path.isabs(os.path.expanduser(value)) else f" (resolved to {path})"
        problem = host_path_problem(path, value, want, resolved)
        if problem is not None:
            self.problem(node, f"{where}: {problem}")
            return None
        return path

    # -- the spec --------------------------------------------------------------------------

    def spec(self, root: Node, absolute: Path) -> Spec | None:
        m = self.mapping(root, "spec", F.TOP)
        if m is None:
            return None
        v = self.read(m, F.TOP, "")
        version = v.get("spec-version")
        if version is not None and version != "v1":
            self.problem(
                m["spec-version"][1], f"spec-version: {version!r} is not supported (only 'v1')"
            )
        platforms: tuple[Platform, ...] = v.get("platforms", ())
        if "platforms" in m and "platform" in m:
            self.problem(
                m["platforms"][0],
                "platforms: give `platform` (one) or `platforms` (several), not both",
            )
        platform = platforms[0] if platforms else v.get("platform", Platform())
        self.check_platforms(platforms or (platform,), bool(platforms))
        spec = Spec(
            path=absolute,
            display_path=self.display,
            image=v.get("image"),
            platform=platform,
            annotations=v.get("annotations", ()),
            sbom=v.get("sbom", ()),
            config=v.get("config", ConfigSpec()),
            layers=v.get("layers", ()),
            sources=tuple(dict.fromkeys(self.sources)),
            accounts=self.checked_accounts(v.get("accounts"), m),
            platforms=platforms,
        )
        if self.problems:
            return spec
        # A one-platform spec is its platform's: nodes limited to others are left out now.
        return spec if platforms else spec.for_platform(platform)

    def config(self, node: Node) -> ConfigSpec | None:
        if self.misplaced_config and isinstance(node, yaml.ScalarNode) and node.tag == _NULL:
            return None  # its keys were written below it at column 0: already reported
        m = self.mapping(node, "config", F.CONFIG)
        if m is None:
            return None
        v = self.read(m, F.CONFIG, "config")
        return ConfigSpec(**{key.replace("-", "_"): value for key, value in v.items()})

    # -- accounts --------------------------------------------------------------------------

    def accounts(self, node: Node) -> AccountsSpec | None:
        m = self.mapping(node, "accounts", F.ACCOUNTS)
        if m is None:
            return None
        v = self.read(m, F.ACCOUNTS, "accounts")
        users: tuple[UserSpec, ...] = v.get("users", ())
        user = ""
        run_as = v.get("run-as")
        if run_as is not None:
            named = next((u for u in users if u.name == run_as), None)
            if named is not None:
                user = f"{named.uid}:{named.gid}"
            elif run_as.isdigit() and int(run_as) <= MAX_ID:
                user = run_as
            else:
                names = ", ".join(repr(u.name) for u in users) or "none"
                self.problem(
                    m["run-as"][1],
                    f"accounts.run-as: {run_as!r} is not one of accounts.users ({names}) nor a uid",
                )
        return AccountsSpec(self.pos(node), v.get("groups", ()), users, user)

    def account_list(self, ftype: str, node: Node, where: str) -> tuple[Any, ...] | None:
        """`groups` or `users`: a list of mappings; names and ids unique within the list."""
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{where}: expected a list, found {_kind(node)}")
            return None
        fields = F.GROUP if ftype == "group-list" else F.USER
        name_key, id_key = ("groupname", "gid") if ftype == "group-list" else ("username", "uid")
        out: list[Any] = []
        seen: dict[tuple[str, object], str] = {}
        for i, item in enumerate(node.value):
            label = f"{where}[{i}]"
            m = self.mapping(item, label, fields)
            if m is None:
                continue
            v = self.read(m, fields, label)
            name = v.get(name_key)
            if name is None or id_key not in v:
                continue
            if not name or any(c in name for c in ":,\n\t ") or name.startswith(("-", "+")):
                self.problem(m[name_key][1], f"{label}.{name_key}: {name!r} is not a valid name")
                continue
            clash = False
            for key in ((name_key, name), (id_key, v[id_key])):
                if key in seen:
                    self.problem(
                        m[key[0]][1],
                        f"{label}.{key[0]}: {key[1]!r} is already taken by {seen[key]}",
                    )
                    clash = True
                seen.setdefault(key, label)
            if clash:
                continue
            pos = self.pos(item)
            if ftype == "group-list":
                out.append(GroupSpec(label, pos, name, v["gid"], v.get("members", ())))
            else:
                out.append(
                    UserSpec(
                        label,
                        pos,
                        name,
                        v["uid"],
                        v.get("gid", v["uid"]),
                        v.get("shell", "/bin/sh"),
                        v.get("homedir", f"/home/{name}"),
                    )
                )
        return tuple(out)

    def checked_accounts(self, accounts: AccountsSpec | None, top: Values) -> AccountsSpec | None:
        """`run-as` and `config.user` both say who runs the image: only one may."""
        if accounts is None or not accounts.user:
            return accounts
        config = top.get("config")
        if config is not None and isinstance(config[1], yaml.MappingNode):
            for k, _ in config[1].value:
                if isinstance(k, yaml.ScalarNode) and k.value == "user":
                    self.problem(
                        k,
                        "config.user: accounts.run-as already says who runs the image; keep "
                        "one of the two",
                    )
        return accounts

    # -- layers ----------------------------------------------------------------------------

    def layers(self, node: Node) -> tuple[LayerSpec, ...] | None:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"layers: expected a list of layers, found {_kind(node)}")
            return None
        if not node.value:
            self.problem(
                node,
                "layers: the list is empty; an image needs at least one layer (e.g. "
                "`- file: {path: /etc/motd, contents: hi}`)",
            )
            return None
        out = []
        for i, item in enumerate(node.value):
            layer = self.layer(item, f"layers[{i}]", F.LAYER_KINDS)
            if layer is not None:
                out.append(layer)
        return tuple(out)

    def layer(self, node: Node, where: str, kinds: Iterable[str]) -> Any:
        kinds = list(kinds)
        choices = ", ".join(kinds)
        if not isinstance(node, yaml.MappingNode) or not node.value:
            found = "an empty mapping" if isinstance(node, yaml.MappingNode) else _kind(node)
            self.problem(node, f"{where}: expected one of {choices}; found {found}")
            return None
        keyed = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
        kind_keys = [(k, v) for k, v in keyed if k.value in F.LAYER_KINDS]
        misplaced: set[str] = set()
        if len(node.value) > 1:
            if len(kind_keys) > 1:
                names = " and ".join(repr(k.value) for k, _ in kind_keys)
                self.problem(
                    kind_keys[1][0],
                    f"{where}: a layer has exactly one kind, found {names} "
                    "(start each layer with its own '- ')",
                )
                return None
            if not kind_keys:
                found = ", ".join(repr(str(k.value)) for k, _ in node.value)
                self.problem(node, f"{where}: expected one of {choices}; found {found}")
                return None
            # One kind plus other keys: almost always a key indented one level too little.
            kind = str(kind_keys[0][0].value)
            field_names = [f.name for f in F.LAYER_KINDS[kind][0]]
            for k, _ in node.value:
                if k is kind_keys[0][0]:
                    continue
                name = str(k.value)
                if name in field_names:
                    misplaced.add(name)
                    self.problem(
                        k,
                        f"{where}: {name!r} belongs inside {kind!r}; indent it two spaces "
                        f"deeper than {kind}:",
                    )
                else:
                    self.problem(
                        k,
                        f"{where}: unknown key {name!r} next to {kind!r} (a layer has exactly "
                        "one key, its kind)",
                    )
        knode, vnode = kind_keys[0] if kind_keys else node.value[0]
        if not isinstance(knode, yaml.ScalarNode):
            self.problem(knode, f"{where}: a layer kind is a plain string, found {_kind(knode)}")
            return None
        kind = str(knode.value)
        if kind not in kinds:
            if kind in F.LAYER_KINDS:
                self.problem(knode, f"{where}: {kind!r} cannot be used here (only {choices})")
            else:
                options = [F.Field(k, "", False, "", "") for k in kinds]
                self.problem(
                    knode, f"{where}: unknown layer kind {kind!r}{_suggest(kind, options)}"
                )
            return None
        label = f"{where}.{kind}"
        pos = self.pos(knode)
        fields, shorthand, _ = F.LAYER_KINDS[kind]
        n = len(self.problems)
        if kind == "combined":
            result: Any = self.combined(vnode, label, pos)
            return result if len(self.problems) == n else None
        short = ""
        if shorthand and isinstance(vnode, yaml.ScalarNode) and vnode.tag == _NULL:
            example = next(f.example for f in fields if f.name == shorthand)
            self.problem(
                vnode, f"{label}: needs a {shorthand} (e.g. {example}) or a mapping, found nothing"
            )
            return None
        if shorthand and isinstance(vnode, yaml.ScalarNode):
            values: Values = {shorthand: (knode, vnode)}
            short = shorthand
            for f in fields:
                if f.required and f.name != shorthand:
                    self.problem(vnode, f"{label}: missing required key {f.name!r}")
        else:
            if misplaced and isinstance(vnode, yaml.ScalarNode) and vnode.tag == _NULL:
                # `file:` with its keys below it at the same indent: already reported.
                return None
            m = self.mapping(vnode, label, fields, excused=misplaced)
            if m is None:
                return None
            values = m
        v = self.read(values, fields, label, kind, short)
        group = F.EXACTLY_ONE.get(kind, ())
        if group:
            given = [name for name in group if name in values]
            listed = " or ".join(repr(g) for g in group)
            if not given:
                if not set(group) & misplaced:
                    self.problem(vnode, f"{label}: needs {listed}")
            elif len(given) > 1:
                self.problem(values[given[1]][0], f"{label}: give either {listed}, not both")
        result = getattr(self, "layer_" + kind.replace("-", "_"))(v, values, label, pos)
        return result if len(self.problems) == n else None

    def layer_file(self, v: dict[str, Any], values: Values, label: str, pos: Position) -> Any:
        if v.get("path") == "/":
            self.problem(values["path"][1], f"{label}.path: a file cannot be at /")
        contents = v.get("contents")
        source, by_platform = self.split_source(v)
        return FileSpec(
            label,
            pos,
            v.get("path", ""),
            v.get("mode"),
            v.get("uid", 0),
            v.get("gid", 0),
            contents.encode("utf-8") if contents is not None else None,
            source,
            self.layer_platforms(v, values, label),
            by_platform,
        )

    def layer_directory(self, v: dict[str, Any], values: Values, label: str, pos: Position) -> Any:
        source, by_platform = self.split_source(v)
        return DirectorySpec(
            label,
            pos,
            v.get("path", ""),
            source,
            v.get("include", ()),
            v.get("exclude", ()),
            v.get("mode", 0o755),
            v.get("file-mode"),
            v.get("dir-mode", 0o755),
            v.get("uid", 0),
            v.get("gid", 0),
            self.layer_platforms(v, values, label),
            by_platform,
        )

    def layer_symlink(self, v: dict[str, Any], values: Values, label: str, pos: Position) -> Any:
        if v.get("path") == "/":
            self.problem(values["path"][1], f"{label}.path: a symlink cannot be at /")
        target = v.get("target")
        if target is not None and (not target or "\0" in target):
            self.problem(values["target"][1], f"{label}.target: must be a non-empty path")
        return SymlinkSpec(
            label,
            pos,
            v.get("path", ""),
            target or "",
            v.get("uid", 0),
            v.get("gid", 0),
            self.layer_platforms(v, values, label),
        )

    def layer_import(self, v: dict[str, Any], values: Values, label: str, pos: Position) -> Any:
        written = str(values["path"][1].value) if "path" in values else ""
        return ImportSpec(
            label,
            pos,
            v.get("path", Path()),
            written,
            v.get("tag", ""),
            v.get("inherit-config", False),
            self.layer_platforms(v, values, label),
        )

    def layer_import_oci(self, v: dict[str, Any], values: Values, label: str, pos: Position) -> Any:
        # An unreadable ref has been reported; the placeholder is discarded with the layer.
        ref = v.get("ref") or ImageReference("", "")
        return ImportOCISpec(
            label, pos, ref, v.get("inherit-config", False), self.layer_platforms(v, values, label)
        )

    def layer_tar(self, v: dict[str, Any], values: Values, label: str, pos: Position) -> Any:
        source, by_platform = self.split_source(v)
        written = by_platform[0].written if by_platform else ""
        if not by_platform and "source" in values:
            written = str(values["source"][1].value)
        return TarSpec(
            label,
            pos,
            source if source is not None else Path(),
            written,
            v.get("path", "/"),
            v.get("include", ()),
            v.get("exclude", ()),
            v.get("whiteouts", False),
            self.layer_platforms(v, values, label),
            by_platform,
        )

    def combined(self, node: Node, label: str, pos: Position) -> CombinedSpec | None:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(
                node,
                f"{label}: expected a list of {', '.join(F.COMBINABLE)} items, found {_kind(node)}",
            )
            return None
        if not node.value:
            self.problem(node, f"{label}: needs at least one item")
            return None
        parts: list[tuple[CombinablePart, Node]] = []
        for i, item in enumerate(node.value):
            part = self.layer(item, f"{label}[{i}]", F.COMBINABLE)
            if part is not None:
                parts.append((part, _path_node(item) or item))
        self.check_layer_paths(parts)
        return CombinedSpec(label, pos, tuple(p for p, _ in parts))

    def check_layer_paths(self, parts: list[tuple[CombinablePart, Node]]) -> None:
        """One layer cannot hold a path twice, nor anything below a file or symlink: the tar
        would be ambiguous, or would write through a link."""
        seen: dict[str, CombinablePart] = {}
        for part, path_node in parts:
            if part.path in seen:
                first = seen[part.path]
                if _disjoint(first.platforms, part.platforms):
                    continue  # one path per platform: each platform's layer holds it once
                self.problem(
                    path_node,
                    f"{part.label}.path: {part.path} is already in this layer "
                    f"(from {first.label} at {first.pos})",
                )
                continue
            seen[part.path] = part
        for part, path_node in parts:
            parent = posixpath.dirname(part.path)
            while parent != "/":
                above = seen.get(parent)
                if isinstance(above, FileSpec | SymlinkSpec):
                    what = "a file" if isinstance(above, FileSpec) else "a symlink"
                    self.problem(
                        path_node,
                        f"{part.label}.path: {part.path} is below {parent}, which is {what} "
                        f"in this layer (from {above.label} at {above.pos})",
                    )
                    break
                parent = posixpath.dirname(parent)


_CONFIG_KEYS = frozenset(f.name for f in F.CONFIG)


def _disjoint(a: tuple[Platform, ...], b: tuple[Platform, ...]) -> bool:
    """Whether two nodes' `platforms` share no platform (an empty one means every platform)."""
    return bool(a and b) and not any(x.matches(y) for x in a for y in b)


def _keys_hint(allowed: Sequence[F.Field]) -> str:
    """What a mapping of these keys looks like, both ways YAML writes one."""
    required = [f for f in allowed if f.required] or list(allowed[:1])
    if not required:
        return ""
    first = required[0]
    return (
        f"; write its keys indented below it (`{first.name}: {first.example}` on the next "
        f"line, two spaces in) or in braces (`{{{first.name}: {first.example}, …}}`)"
    )


def _mapping_hint(node: Node, where: str) -> str:
    """For a map written as a list (`env: [A=b]`, `- A=b`): the same, written as a map."""
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        return ""
    first = node.value[0]
    if isinstance(first, yaml.ScalarNode) and "=" in str(first.value):
        name, _, value = str(first.value).partition("=")
        return f"; write `{name}: {value}` under {where.split('.')[-1]}:, not `- {first.value}`"
    return ""


def _path_node(item: Node) -> Node | None:
    """The value node of `path` inside a one-key layer item, to point messages at it."""
    if isinstance(item, yaml.MappingNode) and item.value:
        body = item.value[0][1]
        if isinstance(body, yaml.MappingNode):
            for k, v in body.value:
                if isinstance(k, yaml.ScalarNode) and k.value == "path":
                    found: Node = v
                    return found
    return None


def _glob_problem(pattern: str) -> str:
    """Why a glob cannot be used, or '' if it can."""
    if not pattern:
        return "is empty"
    if pattern.startswith("/"):
        return "must be relative to the source (no leading /)"
    if ".." in pattern.split("/"):
        return "must not contain '..' (globs only match inside the source)"
    if "[" in pattern:
        # Only a character class can fail to compile.
        try:
            glob_match([pattern], "")
        except re.error as e:
            return f"is not a valid glob: {e.msg}"
    return ""


def _kind(node: Node) -> str:
    """How a node reads to a user, for 'expected X, found Y'."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "nothing"
    if node.tag == _STR:
        return f"the string {node.value!r}"
    if node.tag in (_INT, _FLOAT):
        return f"the number {node.value}"
    if node.tag == _BOOL:
        return f"the boolean {node.value}"
    return repr(str(node.value))


def _show(node: Node) -> str:
    """A scalar as the user wrote it: bare if it was bare, quoted if it was quoted."""
    if isinstance(node, yaml.ScalarNode) and node.style is None and node.value.isprintable():
        return str(node.value)
    return repr(str(node.value))


def _guess(word: str, fields: Iterable[F.Field]) -> str:
    """The field a misspelt key (or a name borrowed from another tool) most likely means."""
    fields = list(fields)
    lowered = word.lower().replace("_", "-")
    for f in fields:
        if lowered == f.name or lowered in f.aliases:
            return f.name
    import difflib  # only for a spec with a misspelt key

    # A misspelt alias counts too: `enviroment` is `environment` misspelt, which means `env`.
    names = {f.name: f.name for f in fields}
    names.update({alias: f.name for f in fields for alias in f.aliases if len(alias) > 3})
    close = difflib.get_close_matches(lowered, list(names), n=1, cutoff=0.6)
    return names[close[0]] if close else ""


def _suggest(word: str, fields: Iterable[F.Field]) -> str:
    guess = _guess(word, fields)
    return f"; did you mean {guess!r}?" if guess else ""
