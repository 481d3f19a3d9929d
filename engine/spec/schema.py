"""The JSON Schema of spec v1 and the Markdown key reference, both generated from fields.py.

The schema is for editors (completion, hover docs, squiggles) and is written to
docs/spec-v1.schema.json; the loader stays the authority. The schema accepts every spec the
loader accepts and rejects what it can express: unknown keys, wrong types, modes, ports,
relative or `..` image paths, tag-pinned imports. It cannot see the file system (missing
sources) nor compare values across keys (duplicate paths in a layer).
"""

from __future__ import annotations

from typing import Any

from engine.spec import fields as F

SCHEMA_ID = "https://vinci.dev/schema/spec-v1.json"

# The loader reads any scalar but null as a string, in the text as written (`user: 1000`).
_STRING_SCALAR: dict[str, Any] = {"type": ["string", "number", "boolean"]}
_DOTDOT = r"(^|/)\.\.(/|$)"
_PLATFORM = "^[^/]+/[^/]+(/[^/]+)?$"
_ABSPATH: dict[str, Any] = {"type": "string", "pattern": "^/", "not": {"pattern": _DOTDOT}}


def _type_schema(t: str) -> dict[str, Any]:
    """The schema of one value type of fields.TYPES."""
    if t == "string":
        return dict(_STRING_SCALAR)
    if t == "int":
        return {"type": "integer", "minimum": 0, "maximum": F.MAX_ID}
    if t == "mode":
        # An integer is what an editor's YAML parser makes of `mode: 0644` (YAML 1.1: octal
        # 420; YAML 1.2: decimal 644); the loader reads the digits as written, so the most the
        # schema can say about an integer is its upper bound.
        return {
            "anyOf": [
                {"type": "string", "pattern": F.MODE_PATTERN},
                {"type": "integer", "minimum": 0, "maximum": 7777},
            ],
        }
    if t == "bool":
        return {"type": "boolean"}
    if t == "abspath":
        return dict(_ABSPATH)
    if t == "hostpath":
        return {"type": "string", "minLength": 1}
    if t in ("string-list", "command"):
        return {"type": "array", "items": dict(_STRING_SCALAR)}
    if t == "sbom-list":
        return {"type": "array", "uniqueItems": True, "items": {"enum": list(F.SBOM_FORMATS)}}
    if t == "glob-list":
        return {
            "type": "array",
            "items": {
                "anyOf": [
                    {
                        "type": "string",
                        "minLength": 1,
                        "pattern": "^[^/]",
                        "not": {"pattern": _DOTDOT},
                    },
                    {"type": ["number", "boolean"]},
                ]
            },
        }
    if t == "abspath-list":
        return {"type": "array", "items": dict(_ABSPATH)}
    if t == "string-map":
        return {"type": "object", "additionalProperties": dict(_STRING_SCALAR)}
    if t == "env-map":
        return {
            "type": "object",
            "propertyNames": {"pattern": F.ENV_NAME_PATTERN},
            "additionalProperties": dict(_STRING_SCALAR),
        }
    if t == "port-list":
        return {
            "type": "array",
            "uniqueItems": True,
            "items": {
                "anyOf": [
                    {"type": "integer", "minimum": 1, "maximum": 65535},
                    {"type": "string", "pattern": F.PORT_PATTERN},
                ]
            },
        }
    if t == "platform":
        return {"type": "string", "pattern": _PLATFORM}
    if t == "platform-list":
        return {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "pattern": _PLATFORM},
        }
    if t == "platform-hostpath":
        return {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {
                    "type": "object",
                    "minProperties": 1,
                    "propertyNames": {"pattern": _PLATFORM},
                    "additionalProperties": {"type": "string", "minLength": 1},
                },
            ]
        }
    if t == "reference":
        return {"type": "string", "minLength": 1, "not": {"pattern": "@"}}
    if t == "pinned-reference":
        return {"type": "string", "pattern": F.DIGEST_PATTERN}
    if t == "layer-list":
        return {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/layer"}}
    if t == "config":
        return {"$ref": "#/$defs/config"}
    if t == "accounts":
        return {"$ref": "#/$defs/accounts"}
    if t == "group-list":
        return {"type": "array", "items": {"$ref": "#/$defs/group"}}
    if t == "user-list":
        return {"type": "array", "items": {"$ref": "#/$defs/user"}}
    raise ValueError(f"no schema for field type {t!r}")


def _object(fields: tuple[F.Field, ...], exactly_one: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            f.name: {**_type_schema(f.type), "description": _describe(f, exactly_one)}
            for f in fields
        },
        "required": [f.name for f in fields if f.required],
    }
    dependent = {f.name: [f.requires] for f in fields if f.requires}
    if dependent:
        out["dependentRequired"] = dependent
    if exactly_one:
        out["oneOf"] = [{"required": [name]} for name in exactly_one]
    return out


def _describe(f: F.Field, exactly_one: tuple[str, ...] = ()) -> str:
    """A field's doc with the rules that live in the table rather than in its text."""
    text = f.doc
    if f.name in exactly_one:
        text += " Exactly one of " + " and ".join(f"`{n}`" for n in exactly_one) + "."
    if f.requires:
        text += f" Only with `{f.requires}`."
    return text


def _layer_doc(kind: str) -> str:
    fields, shorthand, combinable = F.LAYER_KINDS[kind]
    text = F.LAYER_DOCS[kind]
    if shorthand:
        example = next(f.example for f in fields if f.name == shorthand)
        text += f" Shorthand: `{kind}: {example}` means `{kind}: {{{shorthand}: {example}}}`."
    if combinable:
        text += " May appear inside `combined`."
    return text


def _layer_variant(kind: str) -> dict[str, Any]:
    _fields, shorthand, _ = F.LAYER_KINDS[kind]
    if kind == "combined":
        body: dict[str, Any] = {
            "type": "array",
            "minItems": 1,
            "items": {"$ref": "#/$defs/part"},
        }
    else:
        body = {"$ref": f"#/$defs/{kind}"}
        if shorthand:
            field = next(f for f in _fields if f.name == shorthand)
            body = {"anyOf": [body, _type_schema(field.type)]}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [kind],
        "properties": {kind: {**body, "description": _layer_doc(kind)}},
    }


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a v1 spec."""
    defs: dict[str, Any] = {
        "config": _object(F.CONFIG),
        "accounts": _object(F.ACCOUNTS),
        "group": _object(F.GROUP),
        "user": _object(F.USER),
    }
    for kind, (fields, _, _) in F.LAYER_KINDS.items():
        if kind != "combined":
            defs[kind] = _object(fields, F.EXACTLY_ONE.get(kind, ()))
    defs["layer"] = {"oneOf": [_layer_variant(k) for k in F.LAYER_KINDS]}
    defs["part"] = {"oneOf": [_layer_variant(k) for k in F.COMBINABLE]}
    top = _object(F.TOP)
    top["properties"]["spec-version"] = {"const": "v1", "description": F.TOP[0].doc}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "vinci spec v1",
        **top,
        "$defs": defs,
    }


def _cell(text: str) -> str:
    # A '|' inside a cell would end it.
    return text.replace("|", "\\|")


def _table(fields: tuple[F.Field, ...], exactly_one: tuple[str, ...] = ()) -> str:
    rows = [
        "| Key | Required | Type | Default | Example | Meaning |",
        "|---|---|---|---|---|---|",
    ]
    for f in fields:
        rows.append(
            "| "
            + " | ".join(
                _cell(c)
                for c in (
                    f"`{f.name}`",
                    "Required" if f.required else "Optional",
                    F.TYPES[f.type],
                    f"`{f.default}`" if f.default else "—",
                    f"`{f.example}`",
                    _describe(f, exactly_one),
                )
            )
            + " |"
        )
    return "\n".join(rows) + "\n"


def markdown_reference() -> str:
    """Every key of spec v1 as Markdown tables, for docs/spec.md."""
    out = ["### Top level\n\n", _table(F.TOP), "\n### `config`\n\n", _table(F.CONFIG)]
    out += ["\n### `accounts`\n\n", _table(F.ACCOUNTS)]
    out += ["\n### `accounts.groups[]`\n\n", _table(F.GROUP)]
    out += ["\n### `accounts.users[]`\n\n", _table(F.USER)]
    for kind, (fields, _shorthand, _combinable) in F.LAYER_KINDS.items():
        out.append(f"\n### Layer kind `{kind}`\n\n{_layer_doc(kind)}\n")
        if fields:
            out.append("\n" + _table(fields, F.EXACTLY_ONE.get(kind, ())))
    return "".join(out)
