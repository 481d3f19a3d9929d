"""The exceptions vinci raises, each with a message a user can act on.

    VinciError
    ├── UsageError            the command line asks for something that cannot be (exit 2)
    │   ├── InvalidValue      a digest, reference or platform that does not parse (a ValueError)
    │   └── CodecError        no such codec, or a level the codec lacks
    ├── SpecError             the spec is invalid; carries every problem with its file:line:col
    ├── SourceError           a source file is missing, unreadable, or changed during the build
    ├── CacheError            the cache directory is unusable or an entry is corrupt
    ├── BuildCancelled        the build was cancelled (a newer rebuild, Ctrl-C, quitting the UI)
    ├── ImageImportError      an imported image cannot be used
    │   ├── ReferenceNotByDigest   an import-oci reference is a tag, not a digest
    │   ├── CorruptImportedImage   a blob does not match its digest or its diff_id
    │   ├── NoCompatibleImage      an index holds no image for the wanted platform
    │   └── LayerReadError         a layer blob is not a readable (compressed) tar stream
    ├── LockError             vinci.lock is unreadable, or the image is not the locked one
    ├── RegistryError         a registry refused or failed a request
    │   ├── RegistryStatusError    an error status, with the distribution error codes
    │   ├── Unauthorized      credentials missing or rejected (the secret is never shown)
    │   ├── RegistryTimeout   a request ran past its overall deadline (a slow or stalled server)
    │   ├── RegistryRedirectError  a redirect loop, too many, or to a host asking for credentials
    │   ├── UnknownRegistryHost    a host name that does not resolve (not retried)
    │   ├── NotInRegistry     a manifest or blob asked for by name is not there (404)
    │   └── OversizedResponse      an answer larger than its descriptor or its kind's cap
    └── OutputError           the output cannot be written

The CLI prints `str(error)` as one line (SpecError: one line per problem) and exits with the
error's `exit_code`: 2 for usage and spec errors, 130 for a cancelled build, 1 for the rest.
Nothing of this hierarchy ever reaches the user as a traceback.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass


class VinciError(Exception):
    """Base of every error vinci reports to a user."""

    exit_code = 1


class UsageError(VinciError):
    """The command line (or a library call) asks for something that cannot be: an unknown
    codec or output kind, a spec path that names nothing, a malformed reference."""

    exit_code = 2


class InvalidValue(UsageError, ValueError):
    """A value that does not parse: a digest, an image reference, a platform. Also a
    ValueError, so parsers' callers (the spec loader) catch it as one."""


class CodecError(UsageError):
    """The codec or level asked for does not exist."""


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

    # A spec with thousands of problems is one mistake repeated; more lines only bury it.
    MAX_SHOWN = 50

    def __init__(self, problems: list[SpecProblem]) -> None:
        ordered = sorted(
            problems, key=lambda p: (p.position.file, p.position.line, p.position.column)
        )
        self.problems = ordered[: self.MAX_SHOWN]
        if len(ordered) > self.MAX_SHOWN:
            # Said where the last problem shown stands, so it still reads as file:line:col.
            last = self.problems[-1].position
            more = len(ordered) - self.MAX_SHOWN
            self.problems.append(SpecProblem(last, f"and {more} more problems"))
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
    """An imported index has no image for the spec's platform. `available`: the platforms it
    holds ("os/arch[/variant]")."""

    def __init__(self, message: str, available: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.available = available


class LayerReadError(ImageImportError):
    """A layer blob is not a readable (compressed) tar stream."""


class LockError(VinciError):
    """vinci.lock cannot be read, or (with --locked) the image is not the one it records."""


class RegistryError(VinciError):
    """A registry refused a request or could not be reached."""


class RegistryStatusError(RegistryError):
    """A registry answered with an error status; `codes` are its distribution error codes."""

    def __init__(self, message: str, status: int = 0, codes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.codes = codes


class Unauthorized(RegistryError):
    """The registry rejected the credentials, or needs some and none were found."""


class RegistryTimeout(RegistryError):
    """A registry request did not complete within its overall deadline."""


class RegistryRedirectError(RegistryError):
    """A registry's redirects loop, go on too long, or lead to a host asking for credentials."""


class UnknownRegistryHost(RegistryError):
    """A registry (or token server) host name does not resolve; retrying would not help."""


class NotInRegistry(RegistryError):
    """A manifest or blob asked for by tag or digest is not in the repository (HTTP 404)."""


class OversizedResponse(RegistryError):
    """A registry's answer runs past its descriptor's size or the cap for its kind."""


class OutputError(VinciError):
    """The requested output cannot be written."""


def describe_os_error(error: OSError) -> str:
    """An OSError as one line a person can act on: what failed, where, and for a full disk
    what to do."""
    where = f": {error.filename}" if error.filename else ""
    hint = ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = " (free some space there, or point --cache-dir or --output elsewhere)"
    return f"{error.strerror or error}{where}{hint}"


class AttestationError(VinciError):
    """An SBOM, a provenance statement or a referrer that cannot be made, read or checked:
    a tampered statement, an input whose digest differs from the one it names."""
