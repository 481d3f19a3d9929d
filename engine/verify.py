"""`vinci verify`: build a spec several times under different host conditions and prove that
every digest matches; where one does not, name the condition and explain the difference.

Each build is a real `vinci build` subprocess with its own fresh cache (so nothing is shared
but the inputs), its own output layout, and one perturbation of what docs/reproducibility.md
says must never change a digest:

    baseline    the spec where it is, from the caller's working directory
    checkout    inputs copied to another directory (created in reverse order), run from there
    umask       inputs copied under umask 077 (files 0600, dirs 0700), built under umask 077
    mtimes      inputs copied with every mtime and atime set to another random time
    tz-locale   TZ=Pacific/Chatham, LANG/LC_ALL=tr_TR.UTF-8 (the dotless-i locale)
    hash-seed   another PYTHONHASHSEED: set and dict iteration orders change
    serial      --jobs 1 and one compression thread
    parallel    --jobs 8 and four compression threads
    read-chunk  the tar writer reads sources 65,521 bytes at a time, not 1 MiB
    copied      built once, its layer records dropped, built again: every layer is rebuilt
                with the members of its last blob to copy (engine/codec/gzip.py)
    user        another, unprivileged user (only when run as root, with setpriv)

Inputs are the spec file and every host path it names (spec.sources), copied below their
common ancestor so relative paths still resolve. SOURCE_DATE_EPOCH, the codec and the
registry options are fixed for all builds; vinci.lock is not used (a lock would hide a codec
that is not deterministic, which is exactly what this must find).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import VinciError
from engine.spec.model import Spec

NOBODY = 65534
READ_CHUNK = 65521  # a prime: no write the compressor sees lines up with a cut
# What the builds inherit is cleaned of everything a perturbation sets, so each is explicit.
_CONTROLLED = (
    "TZ",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_COLLATE",
    "PYTHONHASHSEED",
    "SOURCE_DATE_EPOCH",
    "VINCI_CACHE_DIR",
    "VINCI_READ_CHUNK",
    "VINCI_CODEC_THREADS",
    # Each build must make its layers: a shared remote cache would answer instead.
    "VINCI_CONFIG",
    "VINCI_CACHE_FROM",
    "VINCI_CACHE_TO",
    "VINCI_CACHE_REQUIRED",
)
BASE_ENV = {"TZ": "UTC", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0"}


@dataclass(frozen=True)
class Perturbation:
    name: str
    description: str
    env: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()
    copy: str = ""  # "" (the inputs in place) | checkout | umask | mtimes | user
    umask: int | None = None
    user: int | None = None
    again: bool = False  # build once first, drop the layer records, and build again


PERTURBATIONS: tuple[Perturbation, ...] = (
    Perturbation("baseline", "the spec in place, from the current directory"),
    Perturbation(
        "checkout",
        "inputs copied to another directory in reverse creation order; run from there",
        copy="checkout",
    ),
    Perturbation(
        "umask",
        "inputs copied under umask 077 (0600 files, 0700 dirs); built under umask 077",
        copy="umask",
        umask=0o077,
    ),
    Perturbation("mtimes", "every input's mtime and atime set to random times", copy="mtimes"),
    Perturbation(
        "tz-locale",
        "TZ=Pacific/Chatham, LANG=LC_ALL=tr_TR.UTF-8",
        env=(("TZ", "Pacific/Chatham"), ("LANG", "tr_TR.UTF-8"), ("LC_ALL", "tr_TR.UTF-8")),
    ),
    Perturbation("hash-seed", "PYTHONHASHSEED=4242", env=(("PYTHONHASHSEED", "4242"),)),
    Perturbation(
        "serial",
        "--jobs 1, one compression thread",
        env=(("VINCI_CODEC_THREADS", "1"),),
        args=("--jobs", "1"),
    ),
    Perturbation(
        "parallel",
        "--jobs 8, four compression threads",
        env=(("VINCI_CODEC_THREADS", "4"),),
        args=("--jobs", "8"),
    ),
    Perturbation(
        "read-chunk",
        f"sources read {READ_CHUNK} bytes at a time (default 1 MiB)",
        env=(("VINCI_READ_CHUNK", str(READ_CHUNK)),),
    ),
    Perturbation(
        "copied",
        "built twice in one cache, layer records dropped in between: members copied",
        again=True,
    ),
    Perturbation(
        "user", f"built by another user (uid {NOBODY}) from a copy", copy="user", user=NOBODY
    ),
)
NAMES = tuple(p.name for p in PERTURBATIONS)


@dataclass(frozen=True)
class LayerDigests:
    digest: str
    diff_id: str
    key: str = ""  # the layer's cache key, for the fleet cache's entry

    def to_json(self) -> dict[str, str]:
        return {"digest": self.digest, "diff_id": self.diff_id}


@dataclass(frozen=True)
class FleetCheck:
    """The baseline's layers against the fleet cache's entries for the same keys
    (docs/fleet-cache.md): a key names its bytes, so an entry made on another machine with
    other bytes is a build that is not reproducible there or here."""

    repositories: tuple[str, ...]
    layers: int = 0
    present: int = 0
    differing: tuple[str, ...] = ()
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "repositories": list(self.repositories),
            "layers": self.layers,
            "present": self.present,
            "differing": list(self.differing),
            "error": self.error or None,
        }


@dataclass(frozen=True)
class BuildOutcome:
    """One build: `status` is match | mismatch | failed | skipped (baseline: baseline)."""

    perturbation: Perturbation
    status: str
    manifest: str = ""
    config: str = ""
    layers: tuple[LayerDigests, ...] = ()
    seconds: float = 0.0
    error: str = ""
    output: str = ""  # the OCI layout it wrote
    diff: Any = None  # engine.compare.ImageDiff against the baseline, for a mismatch
    # A multi-platform spec's build: (platform, manifest) of each image; `manifest` is the
    # index's, `layers` every platform's.
    platforms: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.perturbation.name,
            "description": self.perturbation.description,
            "status": self.status,
            "manifest": self.manifest or None,
            "config": self.config or None,
            **({"platforms": dict(self.platforms)} if self.platforms else {}),
            "layers": [x.to_json() for x in self.layers],
            "seconds": round(self.seconds, 3),
            "error": self.error or None,
            "explanation": self.diff.headline() if self.diff is not None else [],
            "diff": self.diff.to_json() if self.diff is not None else None,
        }


@dataclass(frozen=True)
class VerifyReport:
    spec: str
    codec: str
    builds: tuple[BuildOutcome, ...]
    workdir: str = field(default="")
    fleet: FleetCheck | None = None

    @property
    def ok(self) -> bool:
        same = self.fleet is None or not self.fleet.differing
        return same and all(b.status in ("baseline", "match", "skipped") for b in self.builds)

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "codec": self.codec,
            "reproducible": self.ok,
            "builds": [b.to_json() for b in self.builds],
            "fleet": self.fleet.to_json() if self.fleet is not None else None,
        }


def select(only: Sequence[str] = (), skip: Sequence[str] = ()) -> list[Perturbation]:
    """The perturbations to run, baseline always first."""
    for name in (*only, *skip):
        if name not in NAMES:
            raise VinciError(f"unknown perturbation {name!r} (known: {', '.join(NAMES)})")
    chosen = [
        p
        for p in PERTURBATIONS
        if p.name == "baseline" or ((not only or p.name in only) and p.name not in skip)
    ]
    return chosen


# -- copying the inputs ------------------------------------------------------------------------


def _inputs_root(spec: Spec) -> Path:
    paths = [str(spec.path.parent), *(str(p) for p in spec.sources)]
    return Path(os.path.commonpath(paths))


def _copy_tree(src: Path, dest: Path, mask: int | None, top: bool = True) -> None:
    """Copy `src` (a file, a directory, a symlink inside a tree) to `dest`, children in
    reverse name order, so directory order differs from a plain copy's. A source the spec
    names is followed if it is a link (as the planner does); a link inside a directory source
    stays a link (the planner stores it as one)."""
    if not top and os.path.islink(src):
        os.symlink(os.readlink(src), dest)
        return
    if stat.S_ISDIR(os.stat(src).st_mode):
        dest.mkdir(exist_ok=True)
        for name in sorted(os.listdir(src), reverse=True):
            _copy_tree(src / name, dest / name, mask, top=False)
        if mask is not None:
            os.chmod(dest, stat.S_IMODE(os.stat(src).st_mode) & mask)
        return
    if not stat.S_ISREG(os.stat(src).st_mode):
        return  # sockets and FIFOs: a build skips them anyway
    shutil.copyfile(src, dest)
    mode = stat.S_IMODE(os.stat(src).st_mode)
    os.chmod(dest, mode & mask if mask is not None else mode)


def copy_inputs(spec: Spec, dest: Path, mask: int | None = None) -> Path:
    """Copy the spec and every input to `dest`, keeping their relative layout. Returns the
    copied spec's path."""
    root = _inputs_root(spec)
    for path in sorted({spec.path, *spec.sources}, key=str, reverse=True):
        if not os.path.lexists(path):
            continue
        target = dest / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_tree(path, target, mask)
    if mask is not None:  # the directories above the inputs, as the checkout made them
        for d in [dest, *dest.rglob("*")]:
            if d.is_dir() and not d.is_symlink():
                os.chmod(d, stat.S_IMODE(os.stat(d).st_mode) & mask)
    return dest / spec.path.relative_to(root)


def touch_randomly(root: Path, seed: int) -> None:
    rng = random.Random(seed)
    for path in [root, *root.rglob("*")]:
        when = rng.randrange(100_000_000, 2_000_000_000)
        with contextlib.suppress(NotImplementedError, OSError):
            os.utime(path, (when + 7, when), follow_symlinks=False)


def _share(root: Path) -> None:
    """Make `root` readable by another user: r for files (an added x would rightly change
    the image), r-x for directories."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = os.stat(path).st_mode
        os.chmod(path, mode | (0o055 if path.is_dir() else 0o044))


def _unreachable(path: Path) -> Path | None:
    """The first ancestor of `path` another user cannot search, if any."""
    for parent in path.resolve().parents:
        if not os.stat(parent).st_mode & 0o001:
            return parent
    return None


# -- running the builds ------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildSettings:
    """What every build shares: the codec, the epoch, registry options, test-suite env."""

    created: int | None  # None: no time given (the image's time is 0, and not said)
    compression: str
    compression_level: int | None
    extra_args: tuple[str, ...] = ()
    timeout: float = 600.0


def _command(spec_arg: str, out: Path, settings: BuildSettings, p: Perturbation) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "engine.cli",
        "build",
        spec_arg,
        "--output",
        f"oci:{out}",
        "--json",
        "--quiet",
        "--no-lock",
        *(["--source-date-epoch", str(settings.created)] if settings.created is not None else []),
        "--compression",
        settings.compression,
        *settings.extra_args,
        *p.args,
    ]
    if settings.compression_level is not None:
        cmd += ["--compression-level", str(settings.compression_level)]
    if p.user is not None:
        cmd = ["setpriv", f"--reuid={p.user}", f"--regid={p.user}", "--clear-groups", *cmd]
    if p.umask is not None:
        # Set in the child by the shell, not with preexec_fn, which is unsafe with threads.
        cmd = ["/bin/sh", "-c", f'umask {p.umask:03o} && exec "$@"', "sh", *cmd]
    return cmd


def _env(cache: Path, p: Perturbation) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CONTROLLED}
    env.update(BASE_ENV)
    env.update(dict(p.env))
    env["VINCI_CACHE_DIR"] = str(cache)
    # No settings file (engine/config.py): with the VINCI_CACHE_* variables cleared above, no
    # remote cache answers for a build, whatever the user's file says.
    env["VINCI_CONFIG"] = os.devnull
    # The builds must import this very engine, wherever it is installed or checked out.
    engine_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(x for x in (engine_root, env.get("PYTHONPATH")) if x)
    if p.user is not None:
        env["HOME"] = "/nonexistent"
    return env


def _skip_reason(p: Perturbation, work: Path) -> str:
    if p.user is not None:
        if os.geteuid() != 0:
            return "needs root, to build as another user"
        if shutil.which("setpriv") is None:
            return "needs setpriv (util-linux)"
        blocked = _unreachable(work)
        if blocked is not None:
            return f"uid {p.user} cannot reach {blocked}; set TMPDIR to a shared directory"
    return ""


def run_one(
    spec: Spec, spec_arg: str, p: Perturbation, work: Path, settings: BuildSettings
) -> BuildOutcome:
    reason = _skip_reason(p, work)
    if reason:
        return BuildOutcome(p, "skipped", error=reason)
    here = work / p.name
    here.mkdir(mode=0o755)
    cache, out = here / "cache", here / "out.oci"
    cwd = Path.cwd()
    arg = spec_arg
    if p.copy:
        inputs = here / ("other checkout ü" if p.copy == "checkout" else "inputs")
        # The modes a umask-077 checkout has, set explicitly: the umask is per process and
        # the other builds' copies are being made on other threads.
        copied = copy_inputs(spec, inputs, 0o700 if p.copy == "umask" else None)
        if p.copy == "mtimes":
            touch_randomly(inputs, seed=len(str(inputs)))
        # Run from inside the copy, naming the spec relative to it: another working directory.
        cwd, arg = copied.parent, copied.name
        if p.user is not None:
            _share(here)
            for d in (cache, out):
                d.mkdir()
                os.chown(d, p.user, p.user)
    if p.again:
        # The first build leaves blobs, member tables and slots; without the records that
        # make its layers cache hits, the second rebuilds each layer copying members.
        first = subprocess.run(
            _command(arg, here / "first.oci", settings, p),
            cwd=cwd,
            env=_env(cache, p),
            capture_output=True,
            text=True,
            timeout=settings.timeout,
            check=False,
        )
        if first.returncode != 0:
            return BuildOutcome(p, "failed", error=f"first build: exit status {first.returncode}")
        from engine.cache.store import BlobStore

        shutil.rmtree(BlobStore(cache).layer_dir)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            _command(arg, out, settings, p),
            cwd=cwd,
            env=_env(cache, p),
            capture_output=True,
            text=True,
            timeout=settings.timeout,
        )
    except subprocess.TimeoutExpired:
        return BuildOutcome(p, "failed", error=f"timed out after {settings.timeout:.0f}s")
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        lines = [x for x in proc.stderr.strip().splitlines() if x.strip()]
        error = lines[-1] if lines else f"exit status {proc.returncode}"
        return BuildOutcome(p, "failed", seconds=seconds, error=error)
    try:
        data = json.loads(proc.stdout)
        images = data["platforms"] if "index_digest" in data else [data]
        layers = tuple(
            LayerDigests(x["digest"], x["diff_id"], str(x.get("cache_key") or ""))
            for image in images
            for x in image["layers"]
        )
        return BuildOutcome(
            p,
            "built",
            manifest=str(data["manifest_digest"]),
            config=",".join(str(image["config_digest"]) for image in images),
            layers=layers,
            seconds=seconds,
            output=str(out),
            platforms=tuple(
                (str(image["platform"]), str(image["manifest_digest"]))
                for image in images
                if "index_digest" in data
            ),
        )
    except (ValueError, KeyError, TypeError) as e:
        return BuildOutcome(p, "failed", seconds=seconds, error=f"unreadable build output: {e}")


def explain(baseline: BuildOutcome, other: BuildOutcome, codec: str) -> Any:
    """Why `other`'s image differs from the baseline's: a diff of the two output layouts.
    Both were compressed with `codec`, so a recompressed layer names it on both sides (the
    diff then says: same codec, other bytes). Of an index, the first platform whose image
    differs."""
    import dataclasses

    from engine.compare import diff_images
    from engine.oci.descriptor import Platform
    from engine.sources.image import open_image

    platform = None
    mine = dict(other.platforms)
    for name, manifest in baseline.platforms:
        if mine.get(name) != manifest:
            platform = Platform.parse(name)
            break
    with (
        open_image(f"oci:{baseline.output}", platform=platform) as a,
        open_image(f"oci:{other.output}", platform=platform) as b,
    ):
        for image in (a, b):
            image.layers = tuple(dataclasses.replace(x, codec=codec) for x in image.layers)
        return diff_images(a, b)


def verify(
    spec: Spec,
    spec_arg: str,
    settings: BuildSettings,
    perturbations: Sequence[Perturbation],
    *,
    parallel: int = 2,
    keep: Path | None = None,
    progress: Callable[[BuildOutcome], None] | None = None,
    fleet: Sequence[str] = (),
) -> VerifyReport:
    """Run the builds (baseline first, then the rest `parallel` at a time) and compare; with
    `fleet` (fleet cache repositories), the baseline's layers with their entries there too."""
    from engine.codec import get_codec

    codec = get_codec(settings.compression, settings.compression_level).identity
    work = Path(tempfile.mkdtemp(prefix="vinci-verify-", dir=keep))
    os.chmod(work, 0o755)  # the `user` build must reach its own directory
    try:
        first, rest = perturbations[0], perturbations[1:]
        baseline = run_one(spec, spec_arg, first, work, settings)
        if baseline.status == "failed":
            raise VinciError(f"the baseline build failed: {baseline.error}")
        baseline = BuildOutcome(**{**baseline.__dict__, "status": "baseline"})
        if progress is not None:
            progress(baseline)

        def one(p: Perturbation) -> BuildOutcome:
            outcome = run_one(spec, spec_arg, p, work, settings)
            if outcome.status == "built":
                if outcome.manifest == baseline.manifest:
                    outcome = BuildOutcome(**{**outcome.__dict__, "status": "match"})
                else:
                    outcome = BuildOutcome(
                        **{
                            **outcome.__dict__,
                            "status": "mismatch",
                            "diff": explain(baseline, outcome, codec),
                        }
                    )
            if progress is not None:
                progress(outcome)
            return outcome

        with ThreadPoolExecutor(max(1, parallel), thread_name_prefix="vinci-verify") as pool:
            checked = pool.submit(fleet_check, baseline, tuple(fleet)) if fleet else None
            outcomes = list(pool.map(one, rest))
        return VerifyReport(
            spec.display_path,
            codec,
            (baseline, *outcomes),
            str(work) if keep else "",
            checked.result() if checked is not None else None,
        )
    finally:
        if keep is None:
            _remove(work)


def fleet_check(baseline: BuildOutcome, repositories: tuple[str, ...]) -> FleetCheck:
    """Each baseline layer's entry in the first of `repositories` holding its key, compared
    by layer digest and diff_id. A registry that cannot be read is an error line, no verdict."""
    from engine.builder.remote import ANNOTATION, cache_options, cache_tag
    from engine.errors import NotInRegistry
    from engine.oci.reference import parse_reference
    from engine.registry.client import RegistryClient

    keyed = [(i, x) for i, x in enumerate(baseline.layers) if x.key]
    present = 0
    differing: list[str] = []
    clients: dict[str, RegistryClient] = {}
    try:
        for i, local in keyed:
            for repo in repositories:
                ref = parse_reference(repo)
                client = clients.get(ref.registry)
                if client is None:
                    client = clients[ref.registry] = RegistryClient(ref.registry, cache_options())
                try:
                    entry = client.get_manifest(ref.repository, cache_tag(local.key))
                except NotInRegistry:
                    continue
                doc = json.loads(entry.data)
                digest = str(doc["layers"][0]["digest"])
                diff_id = str((doc.get("annotations") or {}).get(f"{ANNOTATION}diff-id", ""))
                present += 1
                if (digest, diff_id) != (local.digest, local.diff_id):
                    differing.append(
                        f"layer {i}: {repo} holds {digest[:19]} (diff_id {diff_id[:19]}) for its "
                        f"key; this machine makes {local.digest[:19]} (diff_id "
                        f"{local.diff_id[:19]})"
                    )
                break
    except (VinciError, OSError, ValueError, KeyError, IndexError, TypeError) as e:
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        return FleetCheck(repositories, len(keyed), present, tuple(differing), text)
    finally:
        for client in clients.values():
            client.close()
    return FleetCheck(repositories, len(keyed), present, tuple(differing))


def _remove(path: Path) -> None:
    # As the user who ran verify, everything below is removable: the copies are ours, and the
    # other user's build can only run when we are root.
    shutil.rmtree(path, ignore_errors=True)


# -- the report as text -----------------------------------------------------------------------


def render_table(report: VerifyReport) -> str:
    from engine.compare import render

    rows = [("perturbation", "what differs from the baseline", "manifest", "result")]
    for b in report.builds:
        result = {
            "baseline": "-",
            "match": "match",
            "skipped": f"skipped: {b.error}",
            "failed": f"FAILED: {b.error}",
        }.get(b.status, "MISMATCH")
        if b.status == "mismatch" and b.diff is not None:
            count = len(b.diff.headline())
            result += f" ({count} difference{'s' if count != 1 else ''})"
        rows.append(
            (b.perturbation.name, b.perturbation.description, b.manifest[:19] or "-", result)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"vinci verify {report.spec} ({report.codec})", ""]
    for r in rows:
        lines.append(
            "  " + "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3]
        )
    lines.append("")
    ran = [b for b in report.builds if b.status not in ("baseline", "skipped")]
    bad = [b for b in ran if b.status != "match"]
    if not bad:
        lines.append(f"reproducible: all {len(ran)} perturbed builds matched the baseline")
    else:
        lines.append(
            f"NOT reproducible: {len(bad)} of {len(ran)} perturbed builds differ from the baseline"
        )
        for b in bad:
            lines.append("")
            if b.status == "failed":
                lines.append(f"{b.perturbation.name}: the build failed: {b.error}")
                continue
            lines.append(f"{b.perturbation.name} ({b.perturbation.description}) changed the image:")
            if b.diff is not None:
                text = render(b.diff, unchanged=False)
                lines.extend("  " + x for x in text.rstrip("\n").splitlines())
    fleet = report.fleet
    if fleet is not None:
        lines.append("")
        where = ", ".join(fleet.repositories)
        if fleet.error:
            lines.append(f"fleet cache {where}: not compared: {fleet.error}")
        elif fleet.differing:
            lines.append(
                f"NOT reproducible across machines: {len(fleet.differing)} of the "
                f"{fleet.present} layers the fleet cache {where} holds differ from this build"
            )
            lines.extend("  " + x for x in fleet.differing)
        else:
            lines.append(
                f"fleet cache {where}: {fleet.present} of {fleet.layers} layers present, "
                "each the same bytes as this build"
            )
    if report.workdir:
        lines.append("")
        lines.append(f"builds kept in {report.workdir}")
    return "\n".join(lines) + "\n"
