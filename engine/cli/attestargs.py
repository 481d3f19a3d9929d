"""The supply-chain options `vinci build` and `vinci push` share: `--sbom`, `--provenance`,
`--sbom-out` (docs/supply-chain.md), and writing what they ask for beside the output."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.builder.result import BuildResult
    from engine.cache.store import BlobStore
    from engine.cancel import CancelToken
    from engine.oci.reference import ImageReference
    from engine.registry.referrers import Referrer

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


def attestations(
    result: BuildResult,
    formats: tuple[str, ...],
    provenance: bool,
    cancel: CancelToken | None = None,
) -> dict[str, bytes]:
    """kind ("spdx", "cyclonedx", "provenance") -> the document's bytes."""
    from engine.attest.sbom import sbom_documents

    docs = sbom_documents(result, formats, cancel)
    if provenance:
        from engine.attest.provenance import provenance_statement
        from engine.oci.canonical import canonical_json

        docs["provenance"] = canonical_json(provenance_statement(result)) + b"\n"
    return docs


def write_attestations(
    docs: dict[str, bytes], output: Path, out_dir: str | None, to_stdout: bool, spec: Path
) -> list[Path]:
    """Write each document beside `output` (or into `out_dir`), named after it (after the
    spec file when the output is a stream), atomically; the paths."""
    from engine.attest.sbom import FORMATS
    from engine.cache.atomic import write_atomic

    if not docs:
        return []
    directory = Path(out_dir) if out_dir else Path(os.path.abspath(output)).parent
    stem = spec.stem if to_stdout else Path(os.path.abspath(output)).name
    written = []
    for kind, data in docs.items():
        suffix = FORMATS[kind][0] if kind in FORMATS else PROVENANCE_SUFFIX
        path = directory / f"{stem}{suffix}"
        write_atomic(path, data, sync_name=False)
        written.append(path)
    return written


def attach_pushed(
    args: argparse.Namespace,
    result: BuildResult,
    target: ImageReference,
    store: BlobStore,
    cancel: CancelToken | None,
) -> list[tuple[Referrer, str]]:
    """`--attach`: push the documents as referrers of the image just pushed to `target`."""
    import sys

    from engine.attest.attach import attach
    from engine.cli.registryargs import apply_registry_options

    formats = sbom_formats(args, result.spec.sbom) or ("spdx", "cyclonedx")
    provenance = args.provenance or args.sbom is None
    docs = attestations(result, formats, provenance, cancel)
    attached = attach(result, docs, target, store, apply_registry_options(args), cancel)
    if not (getattr(args, "quiet", False) or getattr(args, "json", False)):
        for entry, how in attached:
            where = "the referrers API" if how == "api" else f"tag {how}"
            print(f"attached {entry.artifact_type} {entry.digest} ({where})", file=sys.stderr)
    return attached
