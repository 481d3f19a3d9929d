"""What a 2026 registry expects beside an image, made from what vinci knows while it builds:
SBOMs (SPDX 3.0.1, CycloneDX 1.6) from the spec and the layers, not from a scan; SLSA v1
provenance that a rebuild can check; both as OCI 1.1 referrer artifacts
(docs/supply-chain.md).

Each function works on one image's BuildResult: for a multi-platform index, call it per
platform, and each document's subject is that platform's manifest."""
