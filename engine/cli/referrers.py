"""`vinci referrers REF`: the OCI 1.1 artifacts (SBOMs, provenance, signatures) that refer to
the image REF names, from the registry's referrers API or, where it has none, the tag-schema
fallback (`sha256-<hex>`). One line each: artifactType, digest, size, annotations; `--json`
gives them as a list."""

from __future__ import annotations

import argparse
import json

from engine.cli.registryargs import add_registry_arguments, apply_registry_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", metavar="REF", help="image reference, by tag or digest")
    p.add_argument("--json", action="store_true", help="print the referrers as JSON")
    add_registry_arguments(p)


def run(args: argparse.Namespace) -> int:
    from engine.oci.digest import Digest
    from engine.oci.reference import parse_reference
    from engine.registry.client import RegistryClient
    from engine.registry.referrers import list_referrers

    ref = parse_reference(args.ref)
    with RegistryClient(ref.registry, apply_registry_options(args)) as client:
        if ref.digest is not None:
            subject = Digest.parse(str(ref.digest))
        else:
            subject = client.get_manifest(ref.repository, ref.reference).digest
        found, where = list_referrers(client, ref.repository, subject)
    if args.json:
        data = {
            "subject": str(subject),
            "source": "api" if where == "api" else f"tag {where}",
            "referrers": [r.to_json() for r in found],
        }
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    for r in found:
        notes = " ".join(f"{k}={v}" for k, v in r.annotations)
        print(f"{r.artifact_type}\t{r.digest}\t{r.size}\t{notes}".rstrip())
    return 0
