"""vinci against the tools users would pick instead, on workloads generated here.

    .venv/bin/python -m benchmarks.run                  # full run (about 10 minutes)
    .venv/bin/python -m benchmarks.run --update-docs    # ... and write its table and chart
                                                        #     into docs/performance.md, README.md
    .venv/bin/python -m benchmarks.run --quick          # small sizes, one round: a smoke test

Every comparison runs vinci and its baseline alternately, `--repeat` rounds (3 by default), and
reports medians and the ratio of the two measured in the same run; CPU time and peak RSS come
from the kernel (os.wait4 of each run). docs/performance.md says what each figure means.
Workloads are generated deterministically (benchmarks/workloads.py) under --work, once, and
reused by later runs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks import chart
from benchmarks.measure import BenchError, Run, Series, alternate, run
from benchmarks.registry import LocalRegistry
from benchmarks.workloads import ensure, write_mixed_file, write_tree

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20
TAR = "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner"


@dataclass
class Row:
    """One line of the results table."""

    bench: str
    vinci: str
    baseline: str
    ratio: str
    target: str
    met: bool | None  # None: informative only, or not measurable
    note: str = ""


@dataclass
class Sizes:
    file: int
    rss_small: int
    rss_large: int
    jobs_file: int
    tree_files: int
    tree_bytes: int
    tree_parts: int
    layers: int
    layer_files: int
    layer_bytes: int


FULL = Sizes(
    file=1 << 30,
    rss_small=1 << 30,
    rss_large=4 << 30,
    jobs_file=512 * MIB,
    tree_files=10_000,
    tree_bytes=500_000_000,
    tree_parts=10,
    layers=20,
    layer_files=40,
    layer_bytes=6_000_000,
)
QUICK = Sizes(
    file=24 * MIB,
    rss_small=8 * MIB,
    rss_large=32 * MIB,
    jobs_file=12 * MIB,
    tree_files=400,
    tree_bytes=8_000_000,
    tree_parts=4,
    layers=20,
    layer_files=3,
    layer_bytes=100_000,
)


@dataclass
class Bench:
    """What a run needs: where things go, how to call vinci, and the results so far."""

    work: Path
    sizes: Sizes
    repeat: int
    quick: bool
    rows: list[Row] = field(default_factory=list)
    panels: dict[str, list[chart.Group]] = field(default_factory=dict)
    raw: dict[str, object] = field(default_factory=dict)

    @property
    def vinci(self) -> list[str]:
        script = Path(sys.executable).with_name("vinci")
        return [str(script)] if script.exists() else [sys.executable, "-m", "engine.cli"]

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        # The sandbox this repo grew up in sets PYTHONDONTWRITEBYTECODE: vinci would then
        # recompile every module it imports on every run, which no installed vinci does.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.pop("SOURCE_DATE_EPOCH", None)
        env.pop("VINCI_CACHE_DIR", None)
        return env

    def vinci_run(self, *args: str | os.PathLike[str]) -> Run:
        return run([*self.vinci, *map(str, args)], env=self.env)

    def shell(self, script: str) -> Run:
        return run(["set -euo pipefail;", script], shell=True)

    def log(self, text: str) -> None:
        print(f"  {text}", file=sys.stderr, flush=True)

    def rounds(self, at_least: int) -> int:
        """Rounds for a series that needs more than `repeat` (no-op timings); one in --quick."""
        return 1 if self.quick else max(at_least, self.repeat)

    def target(self, quick_ok: bool, ok: bool) -> bool | None:
        """Targets are judged on the full sizes only; --quick just exercises the code."""
        if self.quick and not quick_ok:
            return None
        return ok


def mib_s(nbytes: int, seconds: float) -> float:
    return nbytes / MIB / seconds


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def spec_file(path: Path, body: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "vinci.yaml").write_text("spec-version: v1\n" + textwrap.dedent(body))
    return path / "vinci.yaml"


def fresh(*paths: Path) -> None:
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def digest_of(r: Run) -> str:
    return r.stdout.strip().splitlines()[-1]


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


# -- workloads ------------------------------------------------------------------------------------


def mixed_file(b: Bench, name: str, size: int, seed: int) -> Path:
    """A directory holding one file `data.bin` of `size` mixed bytes, and its spec."""

    def make(path: Path) -> None:
        path.mkdir(parents=True)
        write_mixed_file(path / "data.bin", size, seed)

    root = ensure(b.work, name, {"size": size, "seed": seed}, make)
    spec_file(root, "image: bench/file\nlayers:\n  - file: {path: /data.bin, source: ./data.bin}\n")
    return root


def tree(b: Bench) -> Path:
    s = b.sizes
    params = {"files": s.tree_files, "bytes": s.tree_bytes, "parts": s.tree_parts, "seed": 3}

    def make(path: Path) -> None:
        write_tree(path / "src", s.tree_files, s.tree_bytes, s.tree_parts, 3)

    root = ensure(b.work, "tree", params, make)
    layers = "".join(
        f"  - directory: {{path: /srv/p{p:02d}, source: ./src/p{p:02d}}}\n"
        for p in range(s.tree_parts)
    )
    spec_file(root, f"image: bench/tree\nlayers:\n{layers}")
    return root


def many_layers(b: Bench) -> Path:
    s = b.sizes
    params = {"layers": s.layers, "files": s.layer_files, "bytes": s.layer_bytes, "seed": 5}

    def make(path: Path) -> None:
        for i in range(s.layers):
            write_tree(path / "src" / f"l{i:02d}", s.layer_files, s.layer_bytes, 1, 100 + i)

    root = ensure(b.work, "layers", params, make)
    layers = "".join(
        f"  - directory: {{path: /opt/l{i:02d}, source: ./src/l{i:02d}}}\n" for i in range(s.layers)
    )
    spec_file(root, f"image: bench/layers\nlayers:\n{layers}")
    return root


def age(root: Path) -> None:
    """Old mtimes, as a checkout's are after a while: sources modified in the last two
    seconds are 'racily clean' and rightly re-hashed on every build (the stat memo)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.utime(os.path.join(dirpath, name), (1_600_000_000, 1_600_000_000))


def content_bytes(root: Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(root) for f in files)


# -- benchmarks -----------------------------------------------------------------------------------


def cold_vs_pipeline(
    b: Bench, root: Path, cache: Path, out: Path, pipeline: str
) -> tuple[Series, Series]:
    """A cold `vinci build` of `root` (fresh cache and output each round) alternated with a
    shell pipeline over the same data."""
    series = alternate(
        {
            "vinci": lambda: b.vinci_run(
                "build", root, "-q", "--cache-dir", cache, "-o", f"oci:{out}"
            ),
            "pipeline": lambda: b.shell(pipeline),
        },
        b.repeat,
        before=lambda name: fresh(cache, out) if name == "vinci" else None,
    )
    return series["vinci"], series["pipeline"]


def bench_file(b: Bench) -> None:
    """Cold build of one large file layer against tar | pigz -6 | sha256sum."""
    root = mixed_file(b, "file", b.sizes.file, 1)
    cache, out = b.work / "c-file", b.work / "o-file"
    pipeline = f"{TAR} -C {root} -cf - data.bin | pigz -6 -n | sha256sum"
    b.log(f"1 file layer of {b.sizes.file // MIB} MiB: vinci cold vs {pipeline}")
    v, p = cold_vs_pipeline(b, root, cache, out, pipeline)
    size = b.sizes.file
    ratio = p.median / v.median
    pigz_size = int(b.shell(f"{TAR} -C {root} -cf - data.bin | pigz -6 -n | wc -c").stdout)
    layer = max((out / "blobs" / "sha256").iterdir(), key=lambda f: f.stat().st_size)
    vsize = layer.stat().st_size
    b.rows.append(
        Row(
            f"cold build, one {size // MIB} MiB file layer",
            f"{mib_s(size, v.median):.0f} MiB/s",
            f"{mib_s(size, p.median):.0f} MiB/s (tar | pigz -6 | sha256sum)",
            f"{ratio:.2f}x",
            "≥ 3x",
            b.target(False, ratio >= 3),
            f"cpu {v.cpu:.1f} s vs {p.cpu:.1f} s",
        )
    )
    b.rows.append(
        Row(
            "  compressed size",
            f"{vsize / size:.3f} of input",
            f"{pigz_size / size:.3f} (pigz -6)",
            f"{vsize / pigz_size:.2f}x",
            "≤ 1.2x",
            b.target(False, vsize / pigz_size <= 1.2),
        )
    )
    b.rows.append(
        Row(
            f"  peak RSS, {size // MIB} MiB layer",
            f"{v.max_rss_mb:.0f} MB",
            "",
            "",
            "< 150 MB",
            b.target(True, v.max_rss_mb < 150),
        )
    )
    b.panels.setdefault("throughput", []).append(
        chart.Group(
            f"cold build, {size // MIB} MiB file",
            (
                chart.Bar("vinci", "vinci build", mib_s(size, v.median)),
                chart.Bar("baseline", "tar | pigz -6 | sha256sum", mib_s(size, p.median)),
            ),
        )
    )
    pair = {"vinci": v, "pipeline": p}
    b.raw["file"] = {k: [asdict(r) | {"stdout": ""} for r in x.runs] for k, x in pair.items()}
    b.raw["file_rss_mb"] = v.max_rss_mb


def bench_codecs(b: Bench) -> None:
    """The one large file of bench_file, cold, with each fast codec and thread count, all
    alternated with tar | pigz -6 | sha256sum in one series: the portable default at its
    default 2 threads (this machine's cores) and at 4, and the opt-in gzip-isal."""
    root = mixed_file(b, "file", b.sizes.file, 1)
    size = b.sizes.file
    cache, out = b.work / "c-codec", b.work / "o-codec"
    pipeline = f"{TAR} -C {root} -cf - data.bin | pigz -6 -n | sha256sum"
    builds = {
        "gzip --jobs 2": ("--compression", "gzip", "--jobs", "2"),
        "gzip --jobs 4": ("--compression", "gzip", "--jobs", "4"),
        "gzip-isal": ("--compression", "gzip-isal"),
    }
    b.log(f"1 file layer of {size // MIB} MiB: {', '.join(builds)} vs {pipeline}")
    layer_size: dict[str, int] = {}

    def build(name: str) -> Run:
        r = b.vinci_run(
            "build", root, "-q", "--cache-dir", cache, "-o", f"oci:{out}", *builds[name]
        )
        layer = max((out / "blobs" / "sha256").iterdir(), key=lambda f: f.stat().st_size)
        layer_size[name] = layer.stat().st_size
        return r

    steps: dict[str, Callable[[], Run]] = {n: (lambda n=n: build(n)) for n in builds}
    steps["pipeline"] = lambda: b.shell(pipeline)
    series = alternate(steps, b.repeat, before=lambda _: fresh(cache, out))
    p = series["pipeline"]
    pigz_size = int(b.shell(f"{TAR} -C {root} -cf - data.bin | pigz -6 -n | wc -c").stdout)
    for name, target in (("gzip --jobs 2", 3.0), ("gzip-isal", 4.5)):
        v = series[name]
        ratio = p.median / v.median
        b.rows.append(
            Row(
                f"cold build, {size // MIB} MiB file, {name}",
                f"{mib_s(size, v.median):.0f} MiB/s",
                f"{mib_s(size, p.median):.0f} MiB/s (tar | pigz -6 | sha256sum)",
                f"{ratio:.2f}x",
                f"≥ {target:g}x",
                b.target(False, ratio >= target),
                f"size {layer_size[name] / pigz_size:.3f}x pigz -6; cpu {v.cpu:.1f} s",
            )
        )
    j2, j4 = series["gzip --jobs 2"], series["gzip --jobs 4"]
    b.rows.append(
        Row(
            "  gzip, 4 threads vs 2",
            f"{mib_s(size, j4.median):.0f} MiB/s",
            f"{mib_s(size, j2.median):.0f} MiB/s (2 threads)",
            f"{j2.median / j4.median:.2f}x",
            "≥ 0.97x (no slower)",
            b.target(False, j2.median / j4.median >= 0.97),
            f"cpu {j4.cpu:.1f} s vs {j2.cpu:.1f} s",
        )
    )
    b.raw["codecs"] = {k: [asdict(r) | {"stdout": ""} for r in x.runs] for k, x in series.items()}
    b.raw["codecs_sizes"] = layer_size | {"pigz -6": pigz_size}


def bench_rss(b: Bench) -> None:
    """Peak RSS does not grow with the layer: small vs large file layer, one run each."""
    small = mixed_file(
        b, "file" if b.sizes.rss_small == b.sizes.file else "rss-s", b.sizes.rss_small, 1
    )
    large = mixed_file(b, "rss-l", b.sizes.rss_large, 2)
    peaks = {}
    for name, root in (("small", small), ("large", large)):
        cache, out = b.work / f"c-rss-{name}", b.work / f"o-rss-{name}"
        fresh(cache, out)
        r = b.vinci_run("build", root, "-q", "--cache-dir", cache, "-o", f"oci:{out}")
        peaks[name] = r.max_rss_kb / 1024
        b.log(f"peak RSS {name}: {peaks[name]:.0f} MB in {fmt_s(r.seconds)}")
        fresh(cache, out)
    growth = peaks["large"] / peaks["small"] - 1
    b.rows.append(
        Row(
            f"  peak RSS, {b.sizes.rss_large // MIB} MiB layer",
            f"{peaks['large']:.0f} MB",
            f"{peaks['small']:.0f} MB ({b.sizes.rss_small // MIB} MiB layer)",
            f"{growth * 100:+.1f}%",
            "within 10%",
            b.target(True, abs(growth) <= 0.10),
        )
    )


def bench_jobs(b: Bench) -> None:
    """Two independent large layers: --jobs 2 against --jobs 1."""
    one = mixed_file(b, "jobs-a", b.sizes.jobs_file, 11)
    two = mixed_file(b, "jobs-b", b.sizes.jobs_file, 12)
    root = b.work / "jobs"
    root.mkdir(exist_ok=True)
    for name, src in (("a.bin", one), ("b.bin", two)):
        link = root / name
        if not link.exists():
            os.link(src / "data.bin", link)
    spec_file(
        root,
        "image: bench/jobs\nlayers:\n"
        "  - file: {path: /a.bin, source: ./a.bin}\n"
        "  - file: {path: /b.bin, source: ./b.bin}\n",
    )
    cache, out = b.work / "c-jobs", b.work / "o-jobs"
    b.log(f"2 layers of {b.sizes.jobs_file // MIB} MiB: --jobs 2 vs --jobs 1")
    series = alternate(
        {
            f"--jobs {j}": (
                lambda j=j: b.vinci_run(
                    "build", root, "-q", "--jobs", str(j), "--cache-dir", cache, "-o", f"oci:{out}"
                )
            )
            for j in (2, 1)
        },
        b.repeat,
        before=lambda _: fresh(cache, out),
    )
    j2, j1 = series["--jobs 2"], series["--jobs 1"]
    size = 2 * b.sizes.jobs_file
    ratio = j1.median / j2.median
    ceiling = parallel_ceiling(b)
    b.rows.append(
        Row(
            f"two {b.sizes.jobs_file // MIB} MiB layers, --jobs 2 vs --jobs 1",
            f"{mib_s(size, j2.median):.0f} MiB/s",
            f"{mib_s(size, j1.median):.0f} MiB/s (--jobs 1)",
            f"{ratio:.2f}x",
            "≥ 1.7x",
            b.target(False, ratio >= 1.7),
            f"cores busy: {j2.cpu / j2.median:.2f} vs {j1.cpu / j1.median:.2f}; "
            f"two independent CPU-bound processes here: {ceiling:.2f}x one",
        )
    )
    b.raw["jobs"] = {k: [asdict(r) | {"stdout": ""} for r in s.runs] for k, s in series.items()}


SPIN = """
import hashlib
data = bytes(range(256)) * (1 << 18)
for _ in range(12):
    hashlib.sha256(data).digest()
"""


def parallel_ceiling(b: Bench) -> float:
    """How much faster two independent CPU-bound processes finish than one does twice: the
    most any parallelism can gain on this machine right now (SMT siblings and neighbours on
    the host make it less than the core count)."""
    one = [sys.executable, "-c", SPIN]
    series = alternate(
        {
            "one": lambda: run(one),
            "two": lambda: run([f"{one[0]} -c '{SPIN}' & {one[0]} -c '{SPIN}'; wait"], shell=True),
        },
        b.rounds(3),
    )
    return 2 * series["one"].median / series["two"].median


AUDIT = """
import sys
src = sys.argv.pop(1)
opened = []
def hook(event, args):
    if event == "open" and isinstance(args[0], str) and args[0].startswith(src):
        opened.append(args[0])
sys.addaudithook(hook)
from engine.cli.main import main  # what the `vinci` command runs
code = main(sys.argv[1:])
# What an answered build must not pay for: the workbench, the registry client, the spec parser,
# and the builder's value classes (the event types, the spec model, the plan).
HEAVY = {"textual", "httpx", "vinci_tui", "yaml"}
BUILDER = {"engine.events", "engine.spec.model", "engine.builder.plan", "engine.builder.result"}
heavy = sorted({m.split(".")[0] for m in sys.modules} & HEAVY | set(sys.modules) & BUILDER)
print("OPENED", len(opened), "HEAVY", ",".join(heavy) or "-")
sys.exit(code)
"""


def bench_tree(b: Bench) -> None:
    """A 10,000-file tree in directory layers: cold build, no-op rebuild, one changed file."""
    root = tree(b)
    src = root / "src"
    age(src)
    size = content_bytes(src)
    cache, out = b.work / "c-tree", b.work / "o-tree"
    pipeline = f"{TAR} -C {src} -cf - . | pigz -6 -n | sha256sum"
    b.log(f"tree of {b.sizes.tree_files} files, {size / 1e6:.0f} MB: cold")
    v, p = cold_vs_pipeline(b, root, cache, out, pipeline)
    b.rows.append(
        Row(
            f"cold build, {b.sizes.tree_files:,} files / {size / 1e6:.0f} MB in "
            f"{b.sizes.tree_parts} layers",
            f"{mib_s(size, v.median):.0f} MiB/s",
            f"{mib_s(size, p.median):.0f} MiB/s (tar | pigz -6 | sha256sum)",
            f"{p.median / v.median:.2f}x",
            "",
            None,
        )
    )
    b.panels.setdefault("throughput", []).append(
        chart.Group(
            f"cold build, {b.sizes.tree_files:,}-file tree",
            (
                chart.Bar("vinci", "vinci build", mib_s(size, v.median)),
                chart.Bar("baseline", "tar | pigz -6 | sha256sum", mib_s(size, p.median)),
            ),
        )
    )

    # No-op: the cache is warm from the last cold round.
    b.vinci_run("build", root, "-q", "--cache-dir", cache, "-o", f"oci:{out}")
    noop = Series("noop")
    for _ in range(b.rounds(2 * b.repeat)):
        noop.runs.append(b.vinci_run("build", root, "-q", "--cache-dir", cache, "-o", f"oci:{out}"))
    # The same with the up-to-date check bypassed: every layer walked and planned again.
    replan = Series("replan")
    for _ in range(b.rounds(b.repeat)):
        replan.runs.append(
            b.vinci_run("build", root, "-q", "--replan", "--cache-dir", cache, "-o", f"oci:{out}")
        )
    # Twice: `python -c` has another module search path than the `vinci` script, so another
    # stamp (engine/cli/uptodate.py); the first run writes it, the second is the one counted.
    for _ in range(2):
        audit = run(
            [
                sys.executable,
                "-c",
                AUDIT,
                str(src),
                "build",
                str(root),
                "-q",
                "--cache-dir",
                str(cache),
                "-o",
                f"oci:{out}",
            ],
            env=b.env,
            cwd=REPO,
        )
    opened = int(audit.stdout.split("OPENED")[1].split()[0])
    heavy = audit.stdout.split("HEAVY")[1].split()[0]
    b.rows.append(
        Row(
            f"no-op rebuild, {b.sizes.tree_files:,}-file spec (whole process)",
            fmt_s(noop.median),
            f"{fmt_s(p.median)} (tar | pigz: no cache)",
            f"{p.median / noop.median:.0f}x",
            "< 0.3 s",
            b.target(False, noop.median < 0.3),
            f"cpu {noop.cpu * 1000:.0f} ms; min {fmt_s(min(noop.all_seconds))}",
        )
    )
    b.rows.append(
        Row(
            "  the same, --replan (every layer planned)",
            fmt_s(replan.median),
            "",
            "",
            "",
            None,
            f"cpu {replan.cpu * 1000:.0f} ms",
        )
    )
    b.rows.append(
        Row(
            "  source files opened / heavy modules imported",
            f"{opened} / {heavy}",
            "",
            "",
            "0 / none",
            b.target(True, opened == 0 and heavy == "-"),
        )
    )

    # One changed file: a different content each round, so every round is a real change.
    victim = next(p for p in sorted((src / "p03").rglob("*.txt")))
    original = victim.read_bytes()
    changed = Series("changed")
    layer_seconds = []
    reused: list[float] = []  # of the changed layer's bytes: members copied, not compressed
    rebuilt_only_one = True
    try:
        for i in range(b.rounds(3)):
            victim.write_bytes(original + f"\nchange {i} {time.time_ns()}\n".encode())
            os.utime(victim, (1_600_000_000 + i + 1, 1_600_000_000 + i + 1))
            r = b.vinci_run("build", root, "--json", "--cache-dir", cache, "-o", f"oci:{out}")
            changed.runs.append(r)
            result = json.loads(r.stdout)
            hits = [layer["cache_hit"] for layer in result["layers"]]
            rebuilt_only_one &= hits.count(False) == 1 and not hits[3]
            layer = result["layers"][3]
            layer_seconds.append(layer["seconds"])
            reused.append(layer["reused_bytes"] / layer["uncompressed_size"])
    finally:
        victim.write_bytes(original)
        age(src)
        b.vinci_run("build", root, "-q", "--cache-dir", cache, "-o", f"oci:{out}")
    own = statistics.median(layer_seconds)
    bound = 2 * noop.median + own
    b.rows.append(
        Row(
            "one changed file: rebuild (only its layer)",
            fmt_s(changed.median),
            f"bound {fmt_s(bound)} = 2 x no-op + layer's own {fmt_s(own)}",
            f"{changed.median / bound:.2f} of bound",
            "≤ 0.25 s, 1 layer rebuilt",
            b.target(False, changed.median <= 0.25 and rebuilt_only_one),
            ("only its layer rebuilt" if rebuilt_only_one else "OTHER LAYERS REBUILT")
            + f"; {statistics.median(reused):.0%} of it copied, not compressed"
            + f"; bound with the --replan no-op {fmt_s(2 * replan.median + own)}",
        )
    )
    b.panels.setdefault("rebuild", []).extend(
        [
            chart.Group(
                f"no-op rebuild, {b.sizes.tree_files:,}-file spec",
                (
                    chart.Bar("vinci", "vinci build (cached)", noop.median),
                    chart.Bar("baseline", "tar | pigz (no cache)", p.median),
                ),
            ),
            chart.Group(
                "one file changed",
                (
                    chart.Bar("vinci", "vinci build", changed.median),
                    chart.Bar("baseline", "tar | pigz (no cache)", p.median),
                ),
            ),
        ]
    )
    b.raw["tree"] = {
        "cold": {k: [r.seconds for r in x.runs] for k, x in (("vinci", v), ("pipeline", p))},
        "noop": noop.all_seconds,
        "replan": replan.all_seconds,
        "changed": changed.all_seconds,
        "changed_layer_seconds": layer_seconds,
        "changed_layer_reused": reused,
    }


def bench_layers(b: Bench) -> None:
    """A 20-layer spec: cold build against one tar | pigz per layer, and its no-op rebuild."""
    root = many_layers(b)
    src = root / "src"
    age(src)
    size = content_bytes(src)
    cache, out = b.work / "c-layers", b.work / "o-layers"
    layers = sorted(p.name for p in src.iterdir())
    script = "; ".join(
        f"{TAR} -C {src / name} -cf - . | pigz -6 -n | sha256sum >/dev/null" for name in layers
    )
    b.log(f"{len(layers)}-layer spec, {size / 1e6:.0f} MB: cold")
    v, p = cold_vs_pipeline(b, root, cache, out, script)
    noop = Series("noop")
    for _ in range(b.rounds(3)):
        noop.runs.append(b.vinci_run("build", root, "-q", "--cache-dir", cache, "-o", f"oci:{out}"))
    b.rows.append(
        Row(
            f"cold build, {len(layers)}-layer spec ({size / 1e6:.0f} MB)",
            fmt_s(v.median),
            f"{fmt_s(p.median)} ({len(layers)} x tar | pigz -6 | sha256sum)",
            f"{p.median / v.median:.2f}x",
            "",
            None,
            f"no-op rebuild {fmt_s(noop.median)}",
        )
    )
    b.panels.setdefault("throughput", []).append(
        chart.Group(
            f"cold build, {len(layers)}-layer spec",
            (
                chart.Bar("vinci", "vinci build", mib_s(size, v.median)),
                chart.Bar("baseline", f"{len(layers)} x tar | pigz -6", mib_s(size, p.median)),
            ),
        )
    )


def bench_registry(b: Bench) -> None:
    """Push to and pull (import-oci) from a local docker-registry, against skopeo."""
    if not (have("docker-registry") and have("skopeo")):
        b.rows.append(
            Row("push / pull", "", "", "", "", None, "not measurable: no docker-registry/skopeo")
        )
        return
    root = tree(b)
    age(root / "src")
    cache, out = b.work / "c-tree", b.work / "o-tree"
    b.vinci_run("build", root, "-q", "--cache-dir", cache, "-o", f"oci:{out}")
    index = json.loads((out / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((out / "blobs/sha256" / manifest_digest.split(":")[1]).read_bytes())
    blob_bytes = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    reg = LocalRegistry(b.work / "registry")
    b.log(f"push {blob_bytes / 1e6:.0f} MB image: vinci push vs skopeo copy")

    def push_vinci() -> Run:
        with reg:
            r = b.vinci_run(
                "push",
                root,
                "-q",
                "--cache-dir",
                cache,
                "--image",
                f"{reg.host}/bench/tree",
                "--insecure-registry",
                reg.host,
            )
            first = reg.blob_uploads()
            again = b.vinci_run(
                "push",
                root,
                "-q",
                "--cache-dir",
                cache,
                "--image",
                f"{reg.host}/bench/tree",
                "--insecure-registry",
                reg.host,
            )
            second_pushes.append((reg.blob_uploads() - first, again.seconds))
        return r

    def push_skopeo() -> Run:
        with reg:
            return run(
                [
                    "skopeo",
                    "copy",
                    "-q",
                    "--dest-tls-verify=false",
                    f"oci:{out}:latest",
                    f"docker://{reg.host}/bench/tree:latest",
                ]
            )

    second_pushes: list[tuple[int, float]] = []
    push = alternate({"vinci": push_vinci, "skopeo": push_skopeo}, b.repeat)
    v, s = push["vinci"], push["skopeo"]
    ratio = s.median / v.median
    b.rows.append(
        Row(
            f"push {blob_bytes / 1e6:.0f} MB ({b.sizes.tree_parts} layers) to a local registry",
            f"{mib_s(blob_bytes, v.median):.0f} MiB/s",
            f"{mib_s(blob_bytes, s.median):.0f} MiB/s (skopeo copy oci: docker://)",
            f"{ratio:.2f}x",
            "≥ 1x",
            b.target(False, ratio >= 1),
        )
    )
    uploads = max(n for n, _ in second_pushes)
    b.rows.append(
        Row(
            "  second push of the unchanged image",
            f"{uploads} blob uploads, {fmt_s(statistics.median(t for _, t in second_pushes))}",
            "",
            "",
            "no blob bytes sent",
            b.target(True, uploads == 0),
            "counted in the registry's access log",
        )
    )
    b.panels.setdefault("throughput", []).append(
        chart.Group(
            "push to a local registry",
            (
                chart.Bar("vinci", "vinci push", mib_s(blob_bytes, v.median)),
                chart.Bar("baseline", "skopeo copy", mib_s(blob_bytes, s.median)),
            ),
        )
    )

    # Pull: one registry holding the image for all rounds; every round starts cold.
    b.log("pull: vinci build of an import-oci spec vs skopeo copy docker:// oci:")
    with reg:
        run(
            [
                "skopeo",
                "copy",
                "-q",
                "--dest-tls-verify=false",
                f"oci:{out}:latest",
                f"docker://{reg.host}/bench/tree:latest",
            ]
        )
        pull_root = b.work / "pull"
        spec_file(
            pull_root,
            "image: bench/pulled\nlayers:\n"
            f"  - import-oci: {reg.host}/bench/tree@{manifest_digest}\n",
        )
        pcache, pout, sout = b.work / "c-pull", b.work / "o-pull", b.work / "o-skopeo"
        try:
            pull = alternate(
                {
                    "vinci": lambda: b.vinci_run(
                        "build",
                        pull_root,
                        "-q",
                        "--cache-dir",
                        pcache,
                        "-o",
                        f"oci:{pout}",
                        "--insecure-registry",
                        reg.host,
                    ),
                    "skopeo": lambda: run(
                        [
                            "skopeo",
                            "copy",
                            "-q",
                            "--src-tls-verify=false",
                            f"docker://{reg.host}/bench/tree@{manifest_digest}",
                            f"oci:{sout}:latest",
                        ]
                    ),
                },
                b.repeat,
                before=lambda name: fresh(pcache, pout) if name == "vinci" else fresh(sout),
            )
        except BenchError as e:
            b.rows.append(
                Row("pull (import-oci)", "", "", "", "≥ 1x", None, f"not measurable: {e}")
            )
            return
    v, s = pull["vinci"], pull["skopeo"]
    ratio = s.median / v.median
    b.rows.append(
        Row(
            f"pull {blob_bytes / 1e6:.0f} MB: import-oci (cold cache)",
            f"{mib_s(blob_bytes, v.median):.0f} MiB/s",
            f"{mib_s(blob_bytes, s.median):.0f} MiB/s (skopeo copy docker:// oci:)",
            f"{ratio:.2f}x",
            "≥ 1x",
            b.target(False, ratio >= 1),
        )
    )
    b.panels.setdefault("throughput", []).append(
        chart.Group(
            "pull from a local registry",
            (
                chart.Bar("vinci", "vinci build (import-oci)", mib_s(blob_bytes, v.median)),
                chart.Bar("baseline", "skopeo copy", mib_s(blob_bytes, s.median)),
            ),
        )
    )


def warm_up(b: Bench) -> None:
    spec = b.work / "warm-up" / "vinci.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text("spec-version: v1\nlayers:\n  - file: {path: /a, contents: a}\n")
    cache, out = spec.parent / "cache", spec.parent / "out"
    b.vinci_run("build", spec, "-q", "--cache-dir", cache, "-o", f"oci:{out}")
    shutil.rmtree(spec.parent)


def bench_hello(b: Bench) -> None:
    """The hello example, cold and warm, against buildah bud --timestamp 0 (environment.md §2)."""
    busybox = REPO / "examples/hello/busybox"
    if not busybox.exists():
        busybox = Path("/bin/busybox")
    root = b.work / "hello"
    root.mkdir(exist_ok=True)
    shutil.copyfile(busybox, root / "busybox")
    os.chmod(root / "busybox", 0o755)
    shutil.copyfile(REPO / "examples/hello/vinci.yaml", root / "vinci.yaml")
    (root / "message").write_text("Hello, World!\n")
    (root / "Containerfile").write_text(
        "FROM scratch\nCOPY busybox /cat\nCOPY --chmod=0444 message /message\n"
        'ENTRYPOINT ["/cat", "/message"]\n'
    )
    age(root)
    cache, out = b.work / "c-hello", b.work / "o-hello"
    sides: dict[str, Callable[[], Run]] = {
        "vinci": lambda: b.vinci_run("build", root, "-q", "--cache-dir", cache, "-o", f"oci:{out}")
    }
    bh = b.work / "buildah"
    buildah = [
        "buildah",
        "--root",
        str(bh / "root"),
        "--runroot",
        str(bh / "run"),
        "--storage-driver",
        "vfs",
    ]
    if have("buildah"):
        sides["buildah"] = lambda: run(
            [
                *buildah,
                "bud",
                "--timestamp",
                "0",
                "--layers",
                "--runtime",
                "runc",
                "--isolation",
                "chroot",
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
                "-f",
                str(root / "Containerfile"),
                "-t",
                "localhost/bench-hello:1",
                str(root),
            ]
        )

    def cold(name: str) -> None:
        if name == "vinci":
            fresh(cache, out)
        else:  # storage stays initialized; no image, no cached layer
            subprocess.run([*buildah, "rmi", "-a", "-f"], capture_output=True, check=False)

    b.log("hello example: cold and warm, vinci vs buildah bud")
    if "buildah" in sides:
        sides["buildah"]()  # initializes the storage, outside the timed runs
    series_cold = alternate(sides, b.repeat, before=cold)
    for fn in sides.values():
        fn()  # warm
    series_warm = alternate(sides, b.rounds(3))
    for label, series, target in (("warm", series_warm, 10), ("cold", series_cold, 3)):
        v = series["vinci"]
        bh_series = series.get("buildah")
        ratio = bh_series.median / v.median if bh_series else None
        b.rows.append(
            Row(
                f"hello example, {label} build",
                fmt_s(v.median),
                f"{fmt_s(bh_series.median)} (buildah bud --timestamp 0)"
                if bh_series
                else "no buildah",
                f"{ratio:.1f}x" if ratio else "",
                f"≥ {target}x",
                b.target(False, ratio is not None and ratio >= target),
                f"cpu {v.cpu * 1000:.0f} ms",
            )
        )
        if bh_series:
            b.panels.setdefault("rebuild", []).append(
                chart.Group(
                    f"hello example, {label}",
                    (
                        chart.Bar("vinci", "vinci build", v.median),
                        chart.Bar("baseline", "buildah bud", bh_series.median),
                    ),
                )
            )


BENCHES: dict[str, Callable[[Bench], None]] = {
    "file": bench_file,
    "codecs": bench_codecs,
    "rss": bench_rss,
    "jobs": bench_jobs,
    "tree": bench_tree,
    "layers": bench_layers,
    "registry": bench_registry,
    "hello": bench_hello,
}


# -- output ---------------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    mark = {True: "met", False: "**missed**", None: ""}
    lines = [
        "| benchmark | vinci | baseline (same run) | ratio | target | |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        note = f" ({r.note})" if r.note else ""
        cells = [r.bench, r.vinci, r.baseline, r.ratio, r.target, f"{mark[r.met]}{note}"]
        # A shell pipe in a cell would end it: Markdown wants it escaped.
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}"


def render_chart(b: Bench, stamp: str) -> str:
    panels = []
    if b.panels.get("throughput"):
        panels.append(
            chart.Panel("Throughput (higher is better)", "MiB/s", tuple(b.panels["throughput"]))
        )
    if b.panels.get("rebuild"):
        panels.append(
            chart.Panel("Time (lower is better)", "s", tuple(b.panels["rebuild"]), log=True)
        )
    return chart.render(
        panels, "vinci benchmarks: medians, baselines alternated in the same run", stamp
    )


def replace_between(text: str, name: str, body: str) -> str:
    start, end = f"<!-- benchmarks:{name}:start -->", f"<!-- benchmarks:{name}:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"markers {start} … {end} missing")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


@contextlib.contextmanager
def workdir(given: str | None, quick: bool) -> Iterator[Path]:
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        yield path
    elif quick:
        with tempfile.TemporaryDirectory(prefix="vinci-bench-quick-") as tmp:
            yield Path(tmp)
    else:
        path = Path(os.environ.get("VINCI_BENCH_DIR", "/var/tmp/vinci-bench"))
        path.mkdir(parents=True, exist_ok=True)
        yield path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, one round (smoke test)")
    p.add_argument("--repeat", type=int, help="rounds per comparison (default 3; --quick 1)")
    p.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHES)}")
    p.add_argument(
        "--work", help="workload directory (default $VINCI_BENCH_DIR or /var/tmp/vinci-bench)"
    )
    p.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    p.add_argument(
        "--update-docs",
        action="store_true",
        help="write the table and chart into docs/performance.md and README.md",
    )
    args = p.parse_args(argv)
    if args.quick and args.update_docs:
        p.error("--update-docs takes a full run's figures, not --quick's")
    only = args.only.split(",") if args.only else list(BENCHES)
    unknown = set(only) - set(BENCHES)
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    started = time.time()
    load_before = os.getloadavg()
    with workdir(args.work, args.quick) as work:
        b = Bench(
            work, QUICK if args.quick else FULL, args.repeat or (1 if args.quick else 3), args.quick
        )
        # What an installed vinci has after its first build, made outside any timed run: byte
        # code for every module a build imports. The cold runs below start from an empty vinci
        # cache, not this.
        b.vinci_run("--version")
        warm_up(b)
        for name in only:
            print(f"[{name}]", file=sys.stderr, flush=True)
            BENCHES[name](b)
    load_after = os.getloadavg()
    stamp = (
        f"{datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}; {machine()}; "
        f"{b.repeat} rounds; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
        f"{time.time() - started:.0f} s"
    )
    text = table(b.rows)
    print(text)
    print(f"\n{stamp}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"stamp": stamp, "rows": [asdict(r) for r in b.rows], "raw": b.raw}, indent=2
            )
        )
    if args.update_docs:
        svg = render_chart(b, stamp)
        (REPO / "docs/performance.svg").write_text(svg)
        body = f"{text}\n\n<sub>{stamp}</sub>"
        for doc in (REPO / "docs/performance.md", REPO / "README.md"):
            doc.write_text(replace_between(doc.read_text(), "table", body))
        print("updated docs/performance.md, README.md, docs/performance.svg", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
