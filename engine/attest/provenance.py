"""SLSA v1 provenance for a built image, as an in-toto Statement v1, and the rebuild that
checks one (`vinci verify --provenance`).

The statement's subject is the image manifest. Its build definition holds everything the
image is a function of: the spec's bytes and its vinci.lock (externalParameters), the codec
and timestamp (internalParameters), and every input with its digest (resolvedDependencies):
each host path the spec names, relative to the spec's directory (a file by its sha256, a
directory by a digest over the entries vinci took from it), and each imported base by its
manifest digest. Nothing in it depends on the host or the clock.

A rebuild writes the spec and lock into a temporary directory, copies each input it names
from the spec directory given (checking the file digests first), builds with the same codec
and timestamp into a fresh cache, and compares the manifest digest with the subject's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from engine.attest.common import tool_version
from engine.builder.lock import lock_path
from engine.builder.options import BuildOptions
from engine.builder.result import BuildResult, Built, images_of
from engine.cancel import CancelToken
from engine.errors import AttestationError, UsageError
from engine.oci.canonical import canonical_json
from engine.spec.model import CombinedSpec, DirectorySpec, FileSpec, ImportSpec, Spec, TarSpec

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://vinci.dev/build/spec-v1"
BUILDER_ID = "https://vinci.dev/builder"
MEDIA_TYPE = "application/vnd.in-toto+json"


def provenance_statement(
    result: Built, options: BuildOptions | None = None, whole: Spec | None = None
) -> dict[str, Any]:
    """The statement for a build: one image, or an index (its subject; every platform's
    inputs). `options` are the ones it was built with: what of them shapes the bytes (level,
    platforms, labels, annotations) is recorded so that the rebuild makes the same image.
    `whole` is the spec as written when `--platform` built only some of its platforms: the
    inputs of the others are recorded too, as loading the spec to rebuild needs them."""
    spec = result.spec
    images = images_of(result)
    codec = images[0].codec
    lock = lock_path(spec)
    lock_text = lock.read_text("utf-8") if lock.is_file() else None
    name = str(spec.image.name) if spec.image is not None else spec.path.name
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": name,
                "digest": {"sha256": result.manifest.digest.hex},
                "annotations": {"mediaType": result.manifest.media_type},
            }
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "spec": {"path": spec.path.name, "content": spec.raw.decode("utf-8")},
                    "lock": lock_text,
                },
                "internalParameters": {
                    "codec": codec.identity,
                    "codecName": codec.name,
                    "level": codec.level,
                    "created": result.created,
                    # Given (--source-date-epoch, SOURCE_DATE_EPOCH): only then does the
                    # manifest say when it was made; the rebuild must do the same.
                    "createdGiven": options.stamped() if options else True,
                    "platforms": list(options.platforms) if options else [],
                    "labels": [list(kv) for kv in options.labels] if options else [],
                    "annotations": [list(kv) for kv in options.annotations] if options else [],
                },
                "resolvedDependencies": _all_dependencies(images, whole),
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": {"vinci": tool_version()}},
                "metadata": {"invocationId": f"vinci:{result.manifest.digest}"},
            },
        },
    }


def _relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def _host_inputs(spec: Spec) -> list[tuple[str, Path]]:
    """(label, host path) of every input the spec names, in spec order."""
    out: list[tuple[str, Path]] = []
    for node in spec.layers:
        parts = node.parts if isinstance(node, CombinedSpec) else (node,)
        for part in parts:
            source: Path | None = None
            if isinstance(part, FileSpec | DirectorySpec | TarSpec):
                source = part.source
            elif isinstance(part, ImportSpec):
                source = part.path
            if source is not None:
                out.append((part.label, source))
    return out


def _all_dependencies(images: tuple[BuildResult, ...], whole: Spec | None) -> list[dict[str, Any]]:
    """Every platform's inputs, each once (an input shared by platforms is one entry)."""
    deps: list[dict[str, Any]] = []
    for image in images:
        for dep in _dependencies(image.spec, image):
            if dep not in deps:
                deps.append(dep)
    if whole is not None:
        for platform in whole.platforms:
            for dep in _file_dependencies(whole.for_platform(platform)):
                if dep not in deps:
                    deps.append(dep)
    return deps


def _dependencies(spec: Spec, result: BuildResult) -> list[dict[str, Any]]:
    deps = _file_dependencies(spec)
    from engine.attest.contents import base_images

    for base in base_images(result):
        deps.append(
            {
                "name": base.origin,
                "uri": f"oci:{base.reference}",
                "digest": {"sha256": base.digest.removeprefix("sha256:")},
            }
        )
    return deps


def _file_dependencies(spec: Spec) -> list[dict[str, Any]]:
    deps: list[dict[str, Any]] = []
    seen: set[str] = set()
    for label, path in _host_inputs(spec):
        rel = _relative(path, spec.base_dir)
        if rel in seen:
            continue
        seen.add(rel)
        deps.append(
            {
                "name": label,
                "uri": f"file:{rel}",
                "digest": {"sha256": path_digest(path)},
                "annotations": {"kind": "directory" if path.is_dir() else "file"},
            }
        )
    return deps


def path_digest(path: Path) -> str:
    """A file's sha256; for a directory, the sha256 of a canonical listing of its tree (names,
    types, execute bits, file digests, link targets), symlinks never followed."""
    if not path.is_dir():
        return _file_digest(path)
    listing: list[list[Any]] = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs + files):
            full = Path(root) / name
            rel = full.relative_to(path).as_posix()
            if full.is_symlink():
                listing.append([rel, "symlink", os.readlink(full)])
            elif full.is_dir():
                listing.append([rel, "dir"])
            else:
                executable = bool(full.stat().st_mode & 0o111)
                listing.append([rel, "file", executable, _file_digest(full)])
    listing.sort()
    return hashlib.sha256(canonical_json(listing)).hexdigest()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# -- checking a statement by rebuilding ---------------------------------------------------


@dataclass(frozen=True)
class ProvenanceCheck:
    expected: str  # the subject's digest
    rebuilt: str

    @property
    def ok(self) -> bool:
        return self.expected == self.rebuilt


def read_statement(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except OSError as e:
        raise UsageError(f"--provenance {path}: {e.strerror}") from None
    except ValueError as e:
        raise AttestationError(f"{path}: not a JSON in-toto statement ({e})") from None
    if not isinstance(data, dict) or data.get("_type") != STATEMENT_TYPE:
        raise AttestationError(f"{path}: not an in-toto Statement v1")
    if data.get("predicateType") != PREDICATE_TYPE:
        raise AttestationError(f"{path}: predicateType is not SLSA provenance v1")
    build = (data.get("predicate") or {}).get("buildDefinition") or {}
    if build.get("buildType") != BUILD_TYPE:
        raise AttestationError(f"{path}: buildType {build.get('buildType')!r} is not vinci's")
    return data


def rebuild(
    statement: dict[str, Any],
    spec_dir: Path,
    build: Callable[[Path, BuildOptions], Built],
    cancel: CancelToken | None = None,
) -> ProvenanceCheck:
    """Rebuild what `statement` describes from the inputs under `spec_dir`, in a temporary
    directory, with `build` (the one build path); compare the manifest digest with the
    subject's."""
    try:
        subject = statement["subject"][0]["digest"]["sha256"]
        definition = statement["predicate"]["buildDefinition"]
        params = definition["externalParameters"]
        spec_name = PurePosixPath(params["spec"]["path"]).name
        spec_text: str = params["spec"]["content"]
        lock_text: str | None = params.get("lock")
        internal = definition.get("internalParameters") or {}
        deps = definition.get("resolvedDependencies") or []
    except (KeyError, IndexError, TypeError) as e:
        raise AttestationError(f"provenance: missing field {e}") from None
    files = [d for d in deps if str(d.get("uri", "")).startswith("file:")]
    rels = [PurePosixPath(str(d["uri"])[len("file:") :]) for d in files]
    # Inputs may lie above the spec's directory ("../shared/x"): nest the spec that deep.
    depth = max((sum(1 for p in rel.parts if p == "..") for rel in rels), default=0)
    with tempfile.TemporaryDirectory(prefix="vinci-provenance-") as tmp:
        root = Path(tmp) / "src"
        here = root.joinpath(*(["spec"] * depth)) if depth else root
        here.mkdir(parents=True)
        for dep, rel in zip(files, rels, strict=True):
            _copy_input(spec_dir, here, rel, str((dep.get("digest") or {}).get("sha256", "")))
        spec_path = here / spec_name
        spec_path.write_text(spec_text, "utf-8")
        if lock_text is not None:
            (here / "vinci.lock").write_text(lock_text, "utf-8")
        level = internal.get("level")
        given = bool(internal.get("createdGiven", True))
        if not given and os.environ.get("SOURCE_DATE_EPOCH", "").strip():
            raise UsageError(
                "provenance: the image was built without a creation time; unset "
                "SOURCE_DATE_EPOCH to rebuild it"
            )
        options = BuildOptions(
            codec=str(internal.get("codecName") or "gzip"),
            level=int(level) if level is not None else None,
            created=int(internal.get("created") or 0) if given else None,
            cache_dir=Path(tmp) / "cache",
            jobs=1,
            platforms=tuple(str(p) for p in internal.get("platforms") or ()),
            labels=_pairs(internal.get("labels")),
            annotations=_pairs(internal.get("annotations")),
        )
        result = build(spec_path, options)
    return ProvenanceCheck(f"sha256:{subject}", str(result.manifest.digest))


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    """KEY=VALUE options as the statement records them: [[key, value], ...] in given order."""
    try:
        return tuple((str(k), str(v)) for k, v in value or ())
    except (TypeError, ValueError):
        raise AttestationError(
            f"provenance: labels or annotations {value!r} are not pairs"
        ) from None


def _copy_input(spec_dir: Path, here: Path, rel: PurePosixPath, digest: str) -> None:
    if rel.is_absolute():
        raise AttestationError(f"provenance: input {rel} is not relative to the spec's directory")
    source = spec_dir / rel
    target = Path(os.path.normpath(here / rel))
    if not source.exists():
        raise AttestationError(f"provenance: input {rel} not found in {spec_dir}")
    found = path_digest(source)
    if found != digest:
        raise AttestationError(
            f"provenance: input {rel} has sha256:{found[:12]}, the statement names "
            f"sha256:{digest[:12]}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)
