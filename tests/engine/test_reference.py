"""Image references are read the way docker reads them, and refused with a reason."""

from __future__ import annotations

import pytest

from engine.oci.digest import Digest
from engine.oci.reference import ImageReference, parse_reference

HEX = "0123456789abcdef" * 4
DIGEST = f"sha256:{HEX}"


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", "", None),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
        ("team/app", "docker.io", "team/app", "", None),
        ("docker.io/busybox", "docker.io", "library/busybox", "", None),
        # Docker Hub's old host name is the same registry, with the same library/ rule.
        ("index.docker.io/busybox", "docker.io", "library/busybox", "", None),
        ("index.docker.io/team/app:v2", "docker.io", "team/app", "v2", None),
        ("localhost/app", "localhost", "app", "", None),
        ("localhost:5000/app:dev", "localhost:5000", "app", "dev", None),
        # A single name with a port-like suffix is a repository and a tag, as in docker.
        ("localhost:5000", "docker.io", "library/localhost", "5000", None),
        ("127.0.0.1:5000/a/b/c", "127.0.0.1:5000", "a/b/c", "", None),
        ("[::1]:5000/app", "[::1]:5000", "app", "", None),
        (
            "registry.gitlab.com/thriqon/vinci/simplest",
            "registry.gitlab.com",
            "thriqon/vinci/simplest",
            "",
            None,
        ),
        ("ghcr.io/o/app@" + DIGEST, "ghcr.io", "o/app", "", DIGEST),
        ("ghcr.io/o/app:1.0@" + DIGEST, "ghcr.io", "o/app", "1.0", DIGEST),
        ("busybox@" + DIGEST, "docker.io", "library/busybox", "", DIGEST),
        # An uppercase first part can only be a host: repositories are lowercase.
        ("MyRegistry/app", "MyRegistry", "app", "", None),
        ("a.b/x__y/z-y.w--v:Tag_1.0-rc", "a.b", "x__y/z-y.w--v", "Tag_1.0-rc", None),
    ],
)
def test_parses(text: str, registry: str, repository: str, tag: str, digest: str | None) -> None:
    ref = parse_reference(text)
    assert ref == ImageReference(
        registry, repository, tag, Digest.parse(digest) if digest else None
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "'' is not an image reference"),
        (" busybox", "' busybox' is not an image reference"),
        ("busybox@sha256:abc", "'sha256:abc' is not a digest (sha256: and 64 lowercase hex"),
        ("busybox@md5:" + "0" * 32, "is not a digest"),
        ("busybox@" + DIGEST.upper(), "is not a digest"),
        ("Busybox", "repository part 'Busybox' must be lowercase"),
        ("team/App", "repository part 'App' must be lowercase"),
        ("team//app", "repository part '' must be lowercase"),
        ("team/app-", "repository part 'app-' must be lowercase"),
        ("team/a-_b", "repository part 'a-_b' must be lowercase"),
        ("busybox:", "'' is not a valid tag"),
        ("busybox:.x", "'.x' is not a valid tag"),
        ("busybox:" + "t" * 129, "is not a valid tag"),
        ("bad_host.com/app", "'bad_host.com' is not a registry host"),
        ("example.com/", "repository part ''"),
        ("example.com/" + "a" * 250, "longer than 255 characters"),
    ],
)
def test_refuses_with_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_reference(text)
    assert reason in str(info.value)


def test_name_of_exactly_255_characters_is_accepted() -> None:
    repository = "a" * (255 - len("example.com/"))
    assert parse_reference(f"example.com/{repository}").repository == repository


@pytest.mark.parametrize(
    ("text", "shown", "reference"),
    [
        ("busybox", "docker.io/library/busybox", "latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "1.36"),
        ("ghcr.io/o/app@" + DIGEST, "ghcr.io/o/app@" + DIGEST, DIGEST),
        ("ghcr.io/o/app:1@" + DIGEST, "ghcr.io/o/app:1@" + DIGEST, DIGEST),
    ],
)
def test_str_and_manifest_reference(text: str, shown: str, reference: str) -> None:
    ref = parse_reference(text)
    assert str(ref) == shown
    assert ref.reference == reference
    # What str() prints parses back to the same reference.
    assert parse_reference(str(ref)) == ref


def test_with_digest_and_with_tag() -> None:
    ref = parse_reference("ghcr.io/o/app:1.0")
    pinned = ref.with_digest(Digest(HEX))
    assert str(pinned) == f"ghcr.io/o/app@{DIGEST}"
    assert str(pinned.with_tag("2")) == "ghcr.io/o/app:2"
    assert pinned.name == "ghcr.io/o/app"
