"""The JSON Schema of spec v1 and the Markdown key reference, both generated from fields.py."""

from __future__ import annotations

from typing import Any

from engine.spec import fields as F

_MODE = {
    "anyOf": [
        {"type": "string", "pattern": "^(0o)?[0-7]{1,5}$"},
        {"type": "integer", "minimum": 0},
    ],
    "description": "Octal permission bits, e.g. 0644",
}
_STRING_SCALAR = {"type": ["string", "number", "boolean"]}


def _type_schema(t: str) -> dict[str, Any]:
    if t == "string":
        return dict(_STRING_SCALAR)
    if t == "int":
        return {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
    if t == "mode":
        return dict(_MODE)
    if t == "bool":
        return {"type": "boolean"}
    if t == "abspath":
        return {"type": "string", "pattern": "^/"}
    if t == "hostpath":
        return {"type": "string", "minLength": 1}
    if t == "string-list":
        return {"type": "array", "items": dict(_STRING_SCALAR)}
    if t == "abspath-list":
        return {"type": "array", "items": {"type": "string", "pattern": "^/"}}
    if t == "string-map":
        return {"type": "object", "additionalProperties": dict(_STRING_SCALAR)}
    if t == "port-list":
        return {
            "type": "array",
            "items": {
                "anyOf": [
                    {"type": "integer", "minimum": 1, "maximum": 65535},
                    {"type": "string", "pattern": "^[0-9]{1,5}(/(tcp|udp|sctp))?$"},
                ]
            },
        }
    if t == "platform":
        return {"type": "string", "pattern": "^[^/]+/[^/]+(/[^/]+)?$"}
    if t == "reference":
        return {"type": "string", "minLength": 1}
    if t == "layer-list":
        return {"type": "array", "items": {"$ref": "#/$defs/layer"}}
    if t == "config":
        return {"$ref": "#/$defs/config"}
    raise ValueError(t)


def _object(fields: tuple[F.Field, ...]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {f.name: {**_type_schema(f.type), "description": f.doc} for f in fields},
        "required": [f.name for f in fields if f.required],
    }


def _layer_variant(kind: str, combinable_only: bool = False) -> dict[str, Any]:
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
            body = {"anyOf": [body, {"type": "string", "minLength": 1}]}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [kind],
        "properties": {kind: {**body, "description": F.LAYER_DOCS[kind]}},
    }


def json_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {"config": _object(F.CONFIG)}
    for kind, (fields, _, _) in F.LAYER_KINDS.items():
        if kind != "combined":
            defs[kind] = _object(fields)
    defs["layer"] = {"oneOf": [_layer_variant(k) for k in F.LAYER_KINDS]}
    defs["part"] = {"oneOf": [_layer_variant(k) for k in F.COMBINABLE]}
    top = _object(F.TOP)
    top["properties"]["spec-version"] = {"const": "v1", "description": F.TOP[0].doc}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://vinci.dev/schema/spec-v1.json",
        "title": "vinci spec v1",
        **top,
        "$defs": defs,
    }


def _table(fields: tuple[F.Field, ...]) -> str:
    rows = ["| key | required | type | default | example | meaning |", "|---|---|---|---|---|---|"]
    for f in fields:
        rows.append(
            f"| `{f.name}` | {'Required' if f.required else 'Optional'} | {f.type} | "
            f"{f'`{f.default}`' if f.default else '—'} | `{f.example}` | {f.doc} |"
        )
    return "\n".join(rows) + "\n"


def markdown_reference() -> str:
    out = ["### Top level\n\n", _table(F.TOP), "\n### `config`\n\n", _table(F.CONFIG)]
    for kind, (fields, _shorthand, combinable) in F.LAYER_KINDS.items():
        out.append(f"\n### Layer kind `{kind}`\n\n{F.LAYER_DOCS[kind]}")
        if combinable:
            out.append(" May appear inside `combined`.")
        out.append("\n\n")
        if fields:
            out.append(_table(fields))
    return "".join(out)
