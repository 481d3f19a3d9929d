"""The supply-chain options `vinci build` and `vinci push` share: `--sbom`, `--provenance`,
`--sbom-out` (docs/supply-chain.md), and writing what they ask for beside the output."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.builder.options import BuildOptions
    from engine.builder.result import Built
    from engine.cache.store import BlobStore
    from engine.cancel import CancelToken
    from engine.oci.reference import ImageReference
    from engine.registry.referrers import Referrer
    from engine.spec.model import Spec

CHOICES = {"spdx": ("spdx",), "cyclonedx": ("cyclonedx",), "both": ("spdx", "cyclonedx")}
PROVENANCE_SUFFIX = ".provenance.json"


def add_attest_args(p: argparse.ArgumentParser, *, writes: bool = True) -> None:
    """`--sbom`, `--provenance`, `--attach`, and with `writes` (build) `--sbom-out`."""
    p.add_argument(
        "--attach",
        action="store_true",
        help="push the image's SBOMs and provenance as OCI 1.1 referrers of it (formats: "
        "--sbom, else the spec's `sbom:`, else both; provenance too unless only --sbom is "
        "given)",
    )
    p.add_argument(
        "--sbom",
        choices=(*CHOICES, "none"),
        help="SBOM formats to make (default: the spec's `sbom:` key, else none)",
    )
    p.add_argument(
        "--provenance",
        action="store_true",
        help="make SLSA v1 provenance (an in-toto statement) for the image",
    )
    if writes:
        p.add_argument(
            "--sbom-out",
            metavar="DIR",
            help="directory for the SBOM and provenance files (default: beside the output, "
            "named after it: vinci.oci.spdx.json, vinci.oci.cdx.json, "
            "vinci.oci.provenance.json)",
        )


def sbom_formats(args: argparse.Namespace, spec_default: tuple[str, ...]) -> tuple[str, ...]:
    """The formats asked for: `--sbom`, else the spec's `sbom:` key."""
    if args.sbom is None:
        return spec_default
    return CHOICES.get(args.sbom, ())


def wanted(args: argparse.Namespace) -> bool:
    """Whether the command line asks for anything to attest (the spec key is only known
    once the spec is read)."""
    return bool(args.sbom not in (None, "none") or args.provenance)


@dataclass(frozen=True)
class Document:
    """One SBOM or provenance document of a build, and what it describes (`about`): one image
    (an index's SBOMs are per platform, `platform` naming it, as "linux-arm64"), or the whole
    build (its provenance; `platform` "")."""

    kind: str  # "spdx", "cyclonedx", "provenance"
    platform: str
    data: bytes
    about: Built


def attestations(
    result: Built,
    formats: tuple[str, ...],
    provenance: bool,
    options: BuildOptions | None = None,
    cancel: CancelToken | None = None,
    whole: Spec | None = None,
) -> list[Document]:
    """The documents asked for: each image's SBOMs (an index's per platform) and one
    provenance statement for the whole build."""
    if not formats and not provenance:
        # Most builds ask for nothing: the SBOM modules (and importlib.metadata under them)
        # would cost ~20 ms after the image is written, time no core works for.
        return []
    from engine.attest.sbom import sbom_documents
    from engine.builder.result import images_of

    docs = []
    for image in images_of(result):
        # For a file name: "linux-arm64".
        platform = str(image.spec.platform).replace("/", "-") if result is not image else ""
        for kind, data in sbom_documents(image, formats, cancel).items():
            docs.append(Document(kind, platform, data, image))
    if provenance:
        from engine.attest.provenance import provenance_statement
        from engine.oci.canonical import canonical_json

        statement = provenance_statement(result, options, whole)
        docs.append(Document("provenance", "", canonical_json(statement) + b"\n", result))
    return docs


def write_attestations(
    docs: list[Document], output: Path, out_dir: str | None, to_stdout: bool, spec: Path
) -> list[Path]:
    """Write each document beside `output` (or into `out_dir`), named after it (after the
    spec file when the output is a stream) and its platform, atomically; the paths."""
    if not docs:
        return []
    from engine.attest.sbom import FORMATS
    from engine.cache.atomic import write_atomic

    directory = Path(out_dir) if out_dir else Path(os.path.abspath(output)).parent
    stem = spec.stem if to_stdout else Path(os.path.abspath(output)).name
    written = []
    for doc in docs:
        suffix = FORMATS[doc.kind][0] if doc.kind in FORMATS else PROVENANCE_SUFFIX
        infix = f".{doc.platform}" if doc.platform else ""
        path = directory / f"{stem}{infix}{suffix}"
        write_atomic(path, doc.data, sync_name=False)
        written.append(path)
    return written


def attach_pushed(
    args: argparse.Namespace,
    result: Built,
    target: ImageReference,
    store: BlobStore,
    options: BuildOptions | None,
    cancel: CancelToken | None,
    whole: Spec | None = None,
) -> list[tuple[Referrer, str]]:
    """`--attach`: push the documents as referrers of the image just pushed to `target`."""
    import sys

    from engine.attest.attach import attach
    from engine.cli.registryargs import apply_registry_options

    formats = sbom_formats(args, result.spec.sbom) or ("spdx", "cyclonedx")
    provenance = args.provenance or args.sbom is None
    docs = attestations(result, formats, provenance, options, cancel, whole)
    registry = apply_registry_options(args)
    # Each image's SBOMs refer to that image's manifest; the provenance to what was built.
    by_subject: dict[int, tuple[Built, dict[str, bytes]]] = {}
    for doc in docs:
        by_subject.setdefault(id(doc.about), (doc.about, {}))[1][doc.kind] = doc.data
    attached = []
    for about, mine in by_subject.values():
        attached += attach(about, mine, target, store, registry, cancel)
    if not (getattr(args, "quiet", False) or getattr(args, "json", False)):
        for entry, how in attached:
            where = "the referrers API" if how == "api" else f"tag {how}"
            print(f"attached {entry.artifact_type} {entry.digest} ({where})", file=sys.stderr)
    return attached
