"""What the SBOM writers share: times from the build's own timestamp, the tool's version, the
image's package URL and the `vinci:` properties of a file."""

from __future__ import annotations

import time
import urllib.parse
from importlib.metadata import PackageNotFoundError, version

from engine.attest.contents import ImageContents, ImageFile


def iso_time(epoch: int) -> str:
    """The build's timestamp (the spec's created / SOURCE_DATE_EPOCH), never the clock."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def tool_version() -> str:
    try:
        return version("vinci")
    except PackageNotFoundError:
        return "0"


def image_purl(contents: ImageContents) -> str:
    """pkg:oci/<name>@<digest>?repository_url=<registry/repository> (purl spec, type oci)."""
    last = (contents.name or contents.spec_file).rsplit("/", 1)[-1].lower()
    purl = f"pkg:oci/{urllib.parse.quote(last)}@{urllib.parse.quote(contents.manifest)}"
    if contents.name:
        purl += "?repository_url=" + urllib.parse.quote(contents.name, safe="/")
    return purl


def file_properties(f: ImageFile) -> list[tuple[str, str]]:
    """A file's facts that neither format has a field for, as (name, value); empty ones are
    left out by the writers."""
    return [
        ("vinci:size", str(f.size)),
        ("vinci:mode", f"{f.mode:04o}"),
        ("vinci:layer", f.layer),
        ("vinci:spec-node", f.origin),
        ("vinci:spec-position", f.position),
        ("vinci:source", f.source),
    ]
