"""Spec v1: `model` (the validated spec's values), `load` (parsing and validation, with pyyaml),
`fields` (the single table the loader, the schema and the docs are made from), `schema` (the
JSON Schema), `locate` (finding a spec file and the files beside it) and `globs`.

Nothing is imported here: the up-to-date check locates a spec and reads its bytes, and must not
pay for the model or the parser to do so. Import what you need from its module.
"""
