"""The exceptions vinci raises, each with a message a user can act on.

    VinciError
    ├── SpecError             the spec is invalid; carries every problem with its file:line:col
    ├── SourceError           a source file is missing, unreadable, or changed during the build
    ├── CacheError            the cache directory is unusable or an entry is corrupt
    ├── BuildCancelled        the build was cancelled (a newer rebuild, Ctrl-C, quitting the UI)
    ├── ImageImportError      an imported image cannot be used
    │   ├── ReferenceNotByDigest   an import-oci reference is a tag, not a digest
    │   ├── CorruptImportedImage   a blob does not match its digest or its diff_id
    │   └── NoCompatibleImage      an index holds no image for the wanted platform
    ├── RegistryError         a registry refused or failed a request
    │   └── Unauthorized      credentials missing or rejected (the secret is never shown)
    ├── OutputError           the output cannot be written
    └── CodecError            no such codec, or a level the codec lacks (a usage error)

The CLI prints `str(error)` as one line (SpecError: one line per problem) and exits nonzero;
nothing of this hierarchy ever reaches the user as a traceback.
"""

from __future__ import annotations

from engine.values import dataclass


class VinciError(Exception):
    """Base of every error vinci reports to a user."""

    exit_code = 1


@dataclass(frozen=True)
class Position:
    """Where a node stands in a spec file; lines and columns count from 1."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class SpecProblem:
    """One problem found in a spec, at one position."""

    position: Position
    message: str

    def __str__(self) -> str:
        return f"{self.position}: {self.message}"


class SpecError(VinciError):
    """The spec is invalid. Holds every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = sorted(
            problems, key=lambda p: (p.position.file, p.position.line, p.position.column)
        )
        super().__init__("\n".join(str(p) for p in self.problems))


class SourceError(VinciError):
    """A source named by the spec cannot be read as it was planned."""


class CacheError(VinciError):
    """The cache cannot be used, or holds a corrupt entry."""


class BuildCancelled(VinciError):
    """The build was cancelled before it finished; nothing half-written was kept."""

    exit_code = 130


class ImageImportError(VinciError):
    """An image named by an import layer cannot be used."""


class ReferenceNotByDigest(ImageImportError):
    """An import-oci reference names a tag; reproducible builds need a digest."""


class CorruptImportedImage(ImageImportError):
    """An imported blob does not match the digest or diff_id it is listed under."""


class NoCompatibleImage(ImageImportError):
    """An imported index has no image for the spec's platform."""


class RegistryError(VinciError):
    """A registry refused a request or could not be reached."""


class Unauthorized(RegistryError):
    """The registry rejected the credentials, or needs some and none were found."""


class OutputError(VinciError):
    """The requested output cannot be written."""


class CodecError(VinciError):
    """The codec or level asked for does not exist: a usage error, like a bad option."""

    exit_code = 2
