"""An image's contents as a CycloneDX 1.6 JSON BOM.

`metadata.component` is the image (type container, its manifest digest); `components` lists
one `file` component per file (SHA-256, with the `vinci:` properties: size, mode, layer, spec
node and position, host source), one `library` per installed Debian package (purl, version),
and one `container` per imported base, on which the image `dependsOn`. The serial number is a
UUID derived from the manifest digest: the same image gives the same bytes.
"""

from __future__ import annotations

import uuid
from typing import Any

from engine.attest.common import file_properties, image_purl, iso_time, tool_version
from engine.attest.contents import ImageContents

IMAGE_REF = "image"


def cyclonedx_document(contents: ImageContents) -> dict[str, Any]:
    image: dict[str, Any] = {
        "type": "container",
        "bom-ref": IMAGE_REF,
        "name": contents.name or contents.spec_file,
        "version": contents.manifest,
        "hashes": [_sha256(contents.manifest)],
        "purl": image_purl(contents),
        "properties": _properties(
            [
                ("vinci:platform", contents.platform),
                ("vinci:config", contents.config),
                ("vinci:spec", contents.spec_file),
            ]
            + [(f"vinci:layer:{i}", d) for i, d in enumerate(contents.layers)]
        ),
    }
    components: list[dict[str, Any]] = []
    for f in contents.files:
        components.append(
            {
                "type": "file",
                "bom-ref": f"file:{f.path}",
                "name": f.path,
                "hashes": [_sha256(f.sha256)],
                "properties": _properties(file_properties(f)),
            }
        )
    for p in contents.packages:
        components.append(
            {
                "type": "library",
                "bom-ref": p.purl,
                "name": p.name,
                "version": p.version,
                "purl": p.purl,
            }
        )
    bases = []
    for i, b in enumerate(contents.bases):
        ref = f"base-{i}"
        bases.append(ref)
        components.append(
            {
                "type": "container",
                "bom-ref": ref,
                "name": b.reference,
                "version": b.digest,
                "hashes": [_sha256(b.digest)],
                "properties": _properties(
                    [("vinci:spec-node", b.origin), ("vinci:spec-position", b.position)]
                ),
            }
        )
    serial = uuid.uuid5(uuid.NAMESPACE_URL, f"vinci:sbom:{contents.manifest}")
    doc: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{serial}",
        "version": 1,
        "metadata": {
            "timestamp": iso_time(contents.created),
            "tools": {
                "components": [{"type": "application", "name": "vinci", "version": tool_version()}]
            },
            "component": image,
        },
        "components": components,
        "dependencies": [{"ref": IMAGE_REF, "dependsOn": bases}],
    }
    return doc


def _sha256(digest: str) -> dict[str, str]:
    return {"alg": "SHA-256", "content": digest.removeprefix("sha256:")}


def _properties(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in pairs if value]
