"""The JSON Schema for editors and the key reference in docs/spec.md are generated from
engine/spec/fields.py and agree with the loader.

- docs/spec-v1.schema.json is exactly what `json_schema()` generates (it cannot drift);
- the schema accepts every example and every valid spec of test_spec_load;
- the schema rejects the malformed specs of test_spec_errors it can express, and each case it
  cannot express is listed here with the reason;
- every object's property names and required keys equal the ones of fields.py;
- the text between the markers in docs/spec.md is `markdown_reference()`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import REPO, run_vinci
from test_spec_errors import CASES
from test_spec_load import VALID, load_valid, make_sources

from engine.spec import fields as F
from engine.spec.load import load_spec
from engine.spec.schema import SCHEMA_ID, _type_schema, json_schema, markdown_reference

SCHEMA_FILE = REPO / "docs" / "spec-v1.schema.json"
SPEC_DOC = REPO / "docs" / "spec.md"
BEGIN = "<!-- BEGIN GENERATED KEYS -->"
END = "<!-- END GENERATED KEYS -->"
REGENERATE = "regenerate with: .venv/bin/vinci schema > docs/spec-v1.schema.json"
EXAMPLES = sorted(REPO.glob("examples/*/vinci.yaml"))


class _EditorLoader(yaml.SafeLoader):
    """YAML as an editor's language server sees it: YAML 1.2 has no timestamps, so
    `2024-01-01` stays a string (pyyaml's 1.1 resolver would make it a date)."""


_EditorLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse(text: str) -> Any:
    return yaml.load(text, Loader=_EditorLoader)  # a SafeLoader: constructs no objects


def serialized() -> str:
    """The schema file's text: what `vinci schema` prints."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def test_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text() == serialized(), REGENERATE


def test_vinci_schema_prints_the_committed_file() -> None:
    assert run_vinci("schema").stdout == SCHEMA_FILE.read_text()


def test_schema_is_draft_2020_12_with_an_id() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    jsonschema.Draft202012Validator.check_schema(schema)


# -- valid specs ---------------------------------------------------------------------------


def test_there_are_examples() -> None:
    names = {p.parent.name for p in EXAMPLES}
    assert {"hello", "webapp"} <= names


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_every_example_is_valid_for_loader_and_schema(
    spec: Path, validator: jsonschema.protocols.Validator
) -> None:
    load_spec(spec)
    validator.validate(parse(spec.read_text()))


@pytest.mark.parametrize("name", sorted(VALID))
def test_every_valid_test_spec_is_valid_for_the_schema(
    name: str, validator: jsonschema.protocols.Validator, tmp_path: Path
) -> None:
    sources = make_sources(tmp_path / "proj")
    load_valid(sources, name)  # the loader accepts it here, with its sources in place
    text = VALID[name].text.replace("{dir}", str(sources))
    validator.validate(parse(text))


# -- malformed specs -----------------------------------------------------------------------

# Cases of the malformed corpus the schema cannot reject, and why. Every other case whose text
# is YAML must be rejected by the schema; a new case must be put in one list or the other.
SCHEMA_CANNOT = {
    # The schema sees values, not the file system.
    "source-missing": "file system",
    "source-missing-absolute": "file system",
    "source-is-directory": "file system",
    "source-dangling-symlink": "file system",
    "source-fifo": "file system",
    "source-dir-is-file": "file system",
    "source-import-missing": "file system",
    # Comparing values across keys is beyond JSON Schema.
    "dup-combined-path": "values of different items",
    "dup-below-file": "values of different items",
    "dup-below-symlink": "values of different items",
    "dup-port": "80 and 80/tcp are different JSON values",
    # YAML parsers keep the last of duplicate keys; the schema never sees the first.
    "dup-yaml-key": "YAML parser merges duplicate keys",
    "dup-env-key": "YAML parser merges duplicate keys",
    # Semantics a pattern does not capture.
    "path-root-file": "'/' is a valid path, just not for a file",
    "symlink-empty-target": "target is a free-form string",
    "image-uppercase": "the full reference grammar is left to the loader",
    "glob-bad-class": "regex semantics of a character class",
    # YAML 1.1 reads 0x1ed as the integer 493, and an integer mode is only bounded.
    "mode-dir-mode": "a hex integer is an integer",
}


def _parsed(text: str) -> tuple[bool, Any]:
    try:
        return True, parse(text)
    except yaml.YAMLError:
        return False, None


def test_every_case_is_classified() -> None:
    ids = {c.id for c in CASES}
    assert set(SCHEMA_CANNOT) <= ids
    not_yaml = {c.id for c in CASES if not _parsed(c.text)[0]}
    # Only the YAML syntax cases fail to parse.
    assert not_yaml == {i for i in ids if i.startswith("yaml-")} - {
        "yaml-empty",
        "yaml-top-level-list",
    }


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.id not in SCHEMA_CANNOT and _parsed(c.text)[0]],
    ids=lambda c: str(c.id),
)
def test_schema_rejects_malformed_spec(
    case: Any, validator: jsonschema.protocols.Validator
) -> None:
    _, document = _parsed(case.text)
    assert list(validator.iter_errors(document)), f"the schema accepts {case.id}"


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.id in SCHEMA_CANNOT], ids=lambda c: str(c.id)
)
def test_what_the_schema_cannot_reject_is_listed_truthfully(
    case: Any, validator: jsonschema.protocols.Validator
) -> None:
    # If the schema learns to reject one of these, move it out of SCHEMA_CANNOT.
    _, document = _parsed(case.text)
    assert not list(validator.iter_errors(document))


@pytest.mark.parametrize(
    ("document", "why"),
    [
        (
            {
                "spec-version": "v1",
                "layers": [{"file": {"path": "/a", "contents": "x", "mode": 8000}}],
            },
            "integer mode above 7777",
        ),
        (
            {"spec-version": "v1", "layers": [{"directory": {"path": "/a", "exclude": ["x"]}}]},
            "exclude needs source",
        ),
        (
            {"spec-version": "v1", "layers": [{"file": {"path": "/a"}}]},
            "file needs contents or source",
        ),
        ({"spec-version": "v1", "layers": [{"import": ""}]}, "empty shorthand path"),
        ({"spec-version": "v1", "layers": [{"import-oci": "busybox:1"}]}, "tag shorthand"),
        ({"spec-version": "v1", "layers": [{"combined": [{"combined": []}]}]}, "nested combined"),
        (
            {"spec-version": "v1", "layers": [], "config": {"exposed-ports": [80, 80]}},
            "same port twice",
        ),
        ({"spec-version": "v1", "layers": [], "config": {"env": {"": "x"}}}, "empty variable name"),
        (
            {"spec-version": "v1", "layers": [], "platform": "linux/amd64/v1/x"},
            "four-part platform",
        ),
    ],
)
def test_schema_rejects_more(
    document: dict[str, Any], why: str, validator: jsonschema.protocols.Validator
) -> None:
    assert list(validator.iter_errors(document)), why


# -- the schema is the table ---------------------------------------------------------------


def _object_defs(schema: dict[str, Any]) -> dict[str, tuple[tuple[F.Field, ...], dict[str, Any]]]:
    defs = schema["$defs"]
    out = {
        "top": (F.TOP, schema),
        "config": (F.CONFIG, defs["config"]),
        "accounts": (F.ACCOUNTS, defs["accounts"]),
        "group": (F.GROUP, defs["group"]),
        "user": (F.USER, defs["user"]),
    }
    for kind, (fields, _, _) in F.LAYER_KINDS.items():
        if kind != "combined":
            out[kind] = (fields, defs[kind])
    return out


def test_property_names_and_required_keys_equal_the_table() -> None:
    # The generated dict keeps the table's order (what editors offer first); the file is
    # sorted, and equals it by test_committed_schema_is_the_generated_one.
    schema = json_schema()
    for name, (fields, obj) in _object_defs(schema).items():
        assert list(obj["properties"]) == [f.name for f in fields], name
        assert obj["required"] == [f.name for f in fields if f.required], name
        assert obj["additionalProperties"] is False, name
        for f in fields:
            assert obj["properties"][f.name]["description"].startswith(f.doc), (name, f.name)
    # One object per layer kind, keyed by the kind; combined parts are the combinable kinds.
    layer = [next(iter(v["properties"])) for v in schema["$defs"]["layer"]["oneOf"]]
    part = [next(iter(v["properties"])) for v in schema["$defs"]["part"]["oneOf"]]
    assert layer == list(F.LAYER_KINDS)
    assert part == list(F.COMBINABLE)
    # Every object of the schema is one of those above: nothing hand-written besides.
    objects = {k for k, v in schema["$defs"].items() if v.get("type") == "object"}
    assert objects == set(F.LAYER_KINDS) - {"combined"} | {"config", "accounts", "group", "user"}


def test_every_type_is_handled_by_schema_and_loader() -> None:
    used = {f.type for f in (*F.TOP, *F.CONFIG, *F.ACCOUNTS, *F.GROUP, *F.USER)} | {
        f.type for fields, _, _ in F.LAYER_KINDS.values() for f in fields
    }
    assert used <= set(F.TYPES)
    from engine.spec.load import _Reader

    node = yaml.compose("~")
    for t in F.TYPES:
        assert _type_schema(t)
        reader = _Reader("x.yaml", Path("/"), check_sources=False)
        # A null value is wrong for every type: the loader says so rather than failing.
        assert reader.value(t, node, "k") is None
        assert len(reader.problems) == 1, t


# -- the Markdown reference ----------------------------------------------------------------


def test_spec_md_holds_the_generated_reference() -> None:
    text = SPEC_DOC.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    between = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert between.strip("\n") == markdown_reference().strip("\n"), (
        "regenerate: .venv/bin/vinci schema --markdown, between the markers of docs/spec.md"
    )


def test_reference_documents_every_key_with_required_default_and_example() -> None:
    sections = markdown_reference().split("\n### ")
    kinds = list(F.LAYER_KINDS)
    assert [s.splitlines()[0] for s in sections] == [
        "### Top level",
        "`config`",
        "`accounts`",
        "`accounts.groups[]`",
        "`accounts.users[]`",
        *(f"Layer kind `{k}`" for k in kinds),
    ]
    tables = [
        F.TOP,
        F.CONFIG,
        F.ACCOUNTS,
        F.GROUP,
        F.USER,
        *(F.LAYER_KINDS[k][0] for k in kinds),
    ]
    for section, fields in zip(sections, tables, strict=True):
        rows = [line for line in section.splitlines() if line.startswith("| `")]
        assert len(rows) == len(fields)
        for row, f in zip(rows, fields, strict=True):
            cells = [c.strip() for c in row.replace("\\|", "\0").strip("|").split("|")]
            name, required, _type, default, example, meaning = (c.replace("\0", "|") for c in cells)
            assert name == f"`{f.name}`"
            assert required == ("Required" if f.required else "Optional")
            assert default == (f"`{f.default}`" if f.default else "—")
            assert example == f"`{f.example}`"
            assert meaning.startswith(f.doc)
