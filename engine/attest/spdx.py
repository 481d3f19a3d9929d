"""An image's contents as an SPDX 3.0.1 JSON-LD document (Core and Software profiles).

The image is a `software_Package` (purpose container) verified by its manifest digest; it
`contains` one `software_File` per file (sha256) and one `software_Package` per installed
Debian package, and is a `descendantOf` each imported base (verified by its digest). What
SPDX 3 has no property for (a file's size, mode, layer, spec node and host path) is carried
in the Extension profile's CdxPropertiesExtension, named `vinci:…` as in the CycloneDX
document. Every id derives from the manifest digest: the same image gives the same bytes.
"""

from __future__ import annotations

from typing import Any

from engine.attest.common import file_properties, image_purl, iso_time, tool_version
from engine.attest.contents import ImageContents

CONTEXT = "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"
CREATION = "_:creationinfo"


def spdx_document(contents: ImageContents) -> dict[str, Any]:
    hexdigest = contents.manifest.removeprefix("sha256:")
    prefix = f"urn:vinci:sha256:{hexdigest}#"
    agent = prefix + "vinci"
    tool = prefix + "tool"
    image = prefix + "image"
    graph: list[dict[str, Any]] = [
        {
            "type": "CreationInfo",
            "@id": CREATION,
            "specVersion": "3.0.1",
            "created": iso_time(contents.created),
            "createdBy": [agent],
            "createdUsing": [tool],
        },
        {"type": "SoftwareAgent", "spdxId": agent, "creationInfo": CREATION, "name": "vinci"},
        {
            "type": "Tool",
            "spdxId": tool,
            "creationInfo": CREATION,
            "name": f"vinci {tool_version()}",
        },
        {
            "type": "software_Package",
            "spdxId": image,
            "creationInfo": CREATION,
            "name": contents.name or contents.spec_file,
            "software_packageVersion": contents.manifest,
            "software_packageUrl": image_purl(contents),
            "software_primaryPurpose": "container",
            "verifiedUsing": [_hash(hexdigest)],
            "extension": [
                _properties(
                    [
                        ("vinci:platform", contents.platform),
                        ("vinci:config", contents.config),
                        ("vinci:spec", contents.spec_file),
                    ]
                    + [(f"vinci:layer:{i}", d) for i, d in enumerate(contents.layers)]
                )
            ],
        },
    ]
    contained: list[str] = []
    for i, f in enumerate(contents.files):
        ident = f"{prefix}file-{i}"
        contained.append(ident)
        graph.append(
            {
                "type": "software_File",
                "spdxId": ident,
                "creationInfo": CREATION,
                "name": f.path,
                "verifiedUsing": [_hash(f.sha256)],
                "extension": [_properties(file_properties(f))],
            }
        )
    for i, p in enumerate(contents.packages):
        ident = f"{prefix}deb-{i}"
        contained.append(ident)
        graph.append(
            {
                "type": "software_Package",
                "spdxId": ident,
                "creationInfo": CREATION,
                "name": p.name,
                "software_packageVersion": p.version,
                "software_packageUrl": p.purl,
            }
        )
    bases: list[str] = []
    for i, b in enumerate(contents.bases):
        ident = f"{prefix}base-{i}"
        bases.append(ident)
        graph.append(
            {
                "type": "software_Package",
                "spdxId": ident,
                "creationInfo": CREATION,
                "name": b.reference,
                "software_packageVersion": b.digest,
                "software_primaryPurpose": "container",
                "verifiedUsing": [_hash(b.digest.removeprefix("sha256:"))],
                "extension": [
                    _properties(
                        [("vinci:spec-node", b.origin), ("vinci:spec-position", b.position)]
                    )
                ],
            }
        )
    relationships = []
    if contained:
        relationships.append(("contains", contained))
    if bases:
        relationships.append(("descendantOf", bases))
    for kind, targets in relationships:
        graph.append(
            {
                "type": "Relationship",
                "spdxId": f"{prefix}{kind}",
                "creationInfo": CREATION,
                "from": image,
                "relationshipType": kind,
                "to": targets,
            }
        )
    elements = [node["spdxId"] for node in graph if "spdxId" in node]
    graph.append(
        {
            "type": "SpdxDocument",
            "spdxId": prefix + "document",
            "creationInfo": CREATION,
            "name": f"SBOM of {contents.name or contents.spec_file}@{contents.manifest}",
            "profileConformance": ["core", "software", "extension"],
            "rootElement": [image],
            "element": elements,
        }
    )
    return {"@context": CONTEXT, "@graph": graph}


def _hash(hexdigest: str) -> dict[str, str]:
    return {"type": "Hash", "algorithm": "sha256", "hashValue": hexdigest}


def _properties(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "type": "extension_CdxPropertiesExtension",
        "extension_cdxProperty": [
            {
                "type": "extension_CdxPropertyEntry",
                "extension_cdxPropName": name,
                "extension_cdxPropValue": value,
            }
            for name, value in pairs
            if value
        ],
    }
