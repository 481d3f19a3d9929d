"""Image references (registry/repository[:tag][@digest]) parsed the way docker reads them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import InvalidValue
from engine.oci.digest import Digest, is_digest

DEFAULT_REGISTRY = "docker.io"
# docker's limit on registry/repository, so a name we accept is one a registry accepts.
MAX_NAME_LENGTH = 255
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DOMAIN = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?))*"
    r"(?::[0-9]+)?$|^\[[0-9A-Fa-f:]+\](?::[0-9]+)?$"
)


@dataclass(frozen=True)
class ImageReference:
    registry: str
    repository: str
    tag: str = ""
    digest: Digest | None = None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What goes after /manifests/ in a registry URL: the digest if pinned, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or "latest"

    def with_digest(self, digest: Digest) -> ImageReference:
        return ImageReference(self.registry, self.repository, "", digest)

    def with_tag(self, tag: str) -> ImageReference:
        return ImageReference(self.registry, self.repository, tag, None)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out


def parse_reference(text: str) -> ImageReference:
    """Parse `text`; raise InvalidValue (a ValueError) with a reason a user can act on."""
    if not text or text != text.strip():
        raise InvalidValue(f"{text!r} is not an image reference")
    rest, at, digest_text = text.partition("@")
    digest = None
    if at:
        if not is_digest(digest_text):
            raise InvalidValue(
                f"{text!r}: {digest_text!r} is not a digest (sha256: and 64 lowercase hex digits)"
            )
        digest = Digest.parse(digest_text)
    parts = rest.split("/")
    registry = DEFAULT_REGISTRY
    if len(parts) > 1 and _is_host(parts[0]):
        registry = parts.pop(0)
        if not _DOMAIN.match(registry):
            raise InvalidValue(f"{text!r}: {registry!r} is not a registry host")
        if registry == "index.docker.io":
            # Docker Hub's old name; normalized before the library/ rule below applies to it.
            registry = DEFAULT_REGISTRY
    last = parts[-1]
    tag = ""
    if ":" in last:
        last, _, tag = last.partition(":")
        parts[-1] = last
        if not _TAG.match(tag):
            raise InvalidValue(f"{text!r}: {tag!r} is not a valid tag")
    for component in parts:
        if not _COMPONENT.match(component):
            raise InvalidValue(
                f"{text!r}: repository part {component!r} must be lowercase letters, digits and "
                "separators (. _ -)"
            )
    if registry == DEFAULT_REGISTRY and len(parts) == 1:
        parts.insert(0, "library")
    repository = "/".join(parts)
    if len(registry) + 1 + len(repository) > MAX_NAME_LENGTH:
        raise InvalidValue(f"{text!r}: the name is longer than {MAX_NAME_LENGTH} characters")
    return ImageReference(registry, repository, tag, digest)


def parse_repository(text: str) -> ImageReference:
    """A registry repository (`registry/name`, as `vinci ls` and the fleet cache take one): a
    reference with neither tag nor digest. InvalidValue for anything else."""
    ref = parse_reference(text)
    if ref.tag or ref.digest is not None:
        raise InvalidValue(f"{text}: name a repository, without a tag or digest")
    return ref


def _is_host(first: str) -> bool:
    """Whether the first '/'-separated part names a registry, by docker's rule: it has a '.' or
    ':', is localhost, or has an uppercase letter (which a repository cannot)."""
    return "." in first or ":" in first or first == "localhost" or first != first.lower()
