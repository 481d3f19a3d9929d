"""The SBOMs of one built image: `sbom_documents(result, formats)` gives each format's bytes,
canonical JSON (sorted keys, no insignificant whitespace), so the same image always gives the
same bytes. For an index, call it once per platform's BuildResult: each document's subject is
that platform's manifest."""

from __future__ import annotations

from collections.abc import Iterable

from engine.attest.contents import image_contents
from engine.attest.cyclonedx import cyclonedx_document
from engine.attest.spdx import spdx_document
from engine.builder.result import BuildResult
from engine.cancel import CancelToken
from engine.oci.canonical import canonical_json

# format -> (file suffix, OCI artifactType / layer media type)
FORMATS: dict[str, tuple[str, str]] = {
    "spdx": (".spdx.json", "application/spdx+json"),
    "cyclonedx": (".cdx.json", "application/vnd.cyclonedx+json"),
}


def sbom_documents(
    result: BuildResult, formats: Iterable[str], cancel: CancelToken | None = None
) -> dict[str, bytes]:
    """format -> the document's bytes, for each of `formats` ("spdx", "cyclonedx")."""
    wanted = list(dict.fromkeys(formats))
    if not wanted:
        return {}
    contents = image_contents(result, cancel)
    out: dict[str, bytes] = {}
    for name in wanted:
        if name == "spdx":
            out[name] = canonical_json(spdx_document(contents)) + b"\n"
        elif name == "cyclonedx":
            out[name] = canonical_json(cyclonedx_document(contents)) + b"\n"
    return out
