"""Debian's package database, /var/lib/dpkg/status, read as it streams out of a layer: a
StatusParser takes the file's bytes chunk by chunk (the tar reader's `tee`) and keeps only the
installed packages' names, versions and architectures, never the whole file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class DebPackage:
    name: str
    version: str
    architecture: str
    source: str = ""  # the source package, when it differs from the binary one

    @property
    def purl(self) -> str:
        """The package URL (purl spec, type deb) the SBOMs name it by."""
        purl = f"pkg:deb/debian/{self.name}@{_pct(self.version)}"
        if self.architecture:
            purl += f"?arch={self.architecture}"
        return purl


def _pct(text: str) -> str:
    # purl: a version's ':' (an epoch) and '+' are percent-encoded.
    return text.replace("%", "%25").replace(":", "%3A").replace("+", "%2B")


WANTED = {b"package", b"version", b"architecture", b"status", b"source"}


class StatusParser:
    """Feed it the status file's bytes in any chunks; `packages()` gives the installed ones,
    sorted, each once."""

    def __init__(self) -> None:
        self._rest = b""
        self._fields: dict[bytes, bytes] = {}
        self._found: set[DebPackage] = set()

    def __call__(self, chunk: bytes) -> None:
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            self._line(line)

    def _line(self, line: bytes) -> None:
        if not line.strip():
            self._end()
            return
        if line[:1] in (b" ", b"\t"):
            return  # a continuation line: descriptions, conffiles
        key, sep, value = line.partition(b":")
        if sep and key.lower() in WANTED:
            self._fields[key.lower()] = value.strip()

    def _end(self) -> None:
        f, self._fields = self._fields, {}
        name = f.get(b"package", b"").decode("utf-8", "replace")
        status = f.get(b"status", b"").split()
        if not name or (status and status[-1] != b"installed"):
            return
        source = f.get(b"source", b"").split(b" ")[0].decode("utf-8", "replace")
        self._found.add(
            DebPackage(
                name,
                f.get(b"version", b"").decode("utf-8", "replace"),
                f.get(b"architecture", b"").decode("utf-8", "replace"),
                source if source != name else "",
            )
        )

    def packages(self) -> tuple[DebPackage, ...]:
        if self._rest:
            self._line(self._rest)
            self._rest = b""
        self._end()
        return tuple(sorted(self._found))
