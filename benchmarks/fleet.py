"""The fleet cache (docs/fleet-cache.md) measured against a real docker-registry on loopback.

    .venv/bin/python -m benchmarks.fleet            # full sizes (about a minute)
    .venv/bin/python -m benchmarks.fleet --quick    # small sizes, one round: a smoke test

Two "runners" are two cache directories sharing nothing but the registry:

1. runner A builds a 20-layer spec with `--cache-to`; runner B then builds it cold (no remote
   cache) and with `--cache-to` from A's entries: the ratio of the two, and the blob uploads B
   made (the registry's access log counts requests carrying blob bytes; target: none). The
   spec is an app-sized image: 20 file layers of 4 MiB each (80 MiB, ~30 MiB at gzip level
   1), each a file of benchmarks/workloads.py's mixed data (text, machine code, tables and
   incompressible runs, compressing like real system files). Each layer costs a cold build
   ~20 ms of CPU at level 1, far above a request's cost, so the ratio measures the layers and
   not the start-up;
2. eight runners build eight specs at once, each of eight layers, four of them shared by all:
   every build must succeed, and the registry must hold each layer once (one tag per key, one
   blob per layer);
3. the per-request costs the scale estimate in docs/fleet-cache.md starts from: a HEAD of an
   entry, a GET of an entry's manifest, on a kept-alive connection.

Timings are wall-clock medians of `--repeat` rounds, each a fresh `vinci` process (start-up
included), with the CPU seconds of those processes beside them: on a machine shared with other
work the wall clock measures the neighbours too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.measure import run
from benchmarks.registry import LocalRegistry
from benchmarks.workloads import write_mixed_file

MIB = 1 << 20
SHARED = [101, 102, 103, 104]  # the seeds of the layers all eight runners have in common


def vinci() -> list[str]:
    script = Path(sys.executable).with_name("vinci")
    return [str(script)] if script.exists() else [sys.executable, "-m", "engine.cli"]


def env() -> dict[str, str]:
    out = dict(os.environ)
    for name in ("PYTHONDONTWRITEBYTECODE", "SOURCE_DATE_EPOCH", "VINCI_CACHE_DIR"):
        out.pop(name, None)
    for name in ("VINCI_CACHE_FROM", "VINCI_CACHE_TO", "VINCI_CACHE_REQUIRED"):
        out.pop(name, None)
    out["VINCI_CONFIG"] = os.devnull  # no settings file: each runner says what it uses
    return out


def layered_spec(root: Path, layers: int, size: int, seeds: list[int]) -> Path:
    """A spec of `layers` file layers of `size` mixed bytes each, made from `seeds`."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["spec-version: v1", "layers:"]
    for seed in seeds[:layers]:
        name = f"part{seed:03d}.bin"
        if not (root / name).exists():
            write_mixed_file(root / name, size, seed)
        lines.append(f"  - file: {{path: /data/{name}, source: ./{name}}}")
    (root / "vinci.yaml").write_text("\n".join(lines) + "\n")
    return root / "vinci.yaml"


def build(spec: Path, cache: Path, *extra: str) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (the process's own, user + system) and the digest."""
    out = cache.with_name(cache.name + ".oci")
    r = run([*vinci(), "build", spec, "--cache-dir", cache, "-o", f"oci:{out}", *extra], env=env())
    return r.seconds, r.cpu, r.stdout.strip().splitlines()[-1]


def fresh(*paths: Path) -> None:
    for p in paths:
        shutil.rmtree(p, ignore_errors=True)
        shutil.rmtree(p.with_name(p.name + ".oci"), ignore_errors=True)


def two_runners(
    work: Path, reg: LocalRegistry, size: int, rounds: int, level: int | None
) -> dict[str, object]:
    codec = ("--compression-level", str(level)) if level is not None else ()
    spec = layered_spec(work / "twenty", 20, size, list(range(1, 21)))
    cold: list[float] = []
    warm: list[float] = []
    cold_cpu: list[float] = []
    warm_cpu: list[float] = []
    uploads_b: list[int] = []
    digests = set()
    for r in range(rounds):
        repo = f"{reg.host}/fleet/two-{level or 0}-{r}"
        a, b_cold, b = work / "runner-a", work / "runner-b-cold", work / "runner-b"
        fresh(a, b_cold, b)
        _, _, da = build(spec, a, "--cache-to", repo, *codec)
        seconds, cpu, dc = build(spec, b_cold, *codec)
        cold.append(seconds)
        cold_cpu.append(cpu)
        before = reg.blob_uploads()
        seconds, cpu, db = build(spec, b, "--cache-to", repo, *codec)
        warm.append(seconds)
        warm_cpu.append(cpu)
        uploads_b.append(reg.blob_uploads() - before)
        digests |= {da, dc, db}
    ratio = statistics.median(cold) / statistics.median(warm)
    return {
        "compression_level": level,
        "layers": 20,
        "layer_bytes": size,
        "cold_s": statistics.median(cold),
        "remote_s": statistics.median(warm),
        "ratio": ratio,
        # On a machine shared with other work, CPU seconds are the steadier figure.
        "cold_cpu_s": statistics.median(cold_cpu),
        "remote_cpu_s": statistics.median(warm_cpu),
        "cpu_ratio": statistics.median(cold_cpu) / statistics.median(warm_cpu),
        "rounds": [[c, w] for c, w in zip(cold, warm, strict=True)],
        "uploads_by_b": max(uploads_b),
        "one_digest": len(digests) == 1,
        "target_met": ratio >= 5 and max(uploads_b) == 0 and len(digests) == 1,
    }


def eight_runners(work: Path, reg: LocalRegistry, size: int) -> dict[str, object]:
    """Eight specs of eight layers, the first four shared, built at once."""
    repo = f"{reg.host}/fleet/eight"
    specs = [
        layered_spec(work / f"eight-{n}", 8, size, [*SHARED, *(200 + 10 * n + k for k in range(4))])
        for n in range(8)
    ]
    caches = [work / f"eight-cache-{n}" for n in range(8)]
    fresh(*caches)
    before = reg.blob_uploads()
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [
                *vinci(),
                "build",
                str(s),
                "--cache-dir",
                str(c),
                "-o",
                f"oci:{c}.oci",
                "--cache-to",
                repo,
            ],
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s, c in zip(specs, caches, strict=True)
    ]
    codes = [p.wait() for p in procs]
    seconds = time.monotonic() - started
    said = [p.stderr.read() for p in procs if p.stderr is not None]
    warnings = sum(text.count("warning") for text in said)
    for text in said:
        if text.strip():
            print(text.strip(), file=sys.stderr)
    for p in procs:
        for stream in (p.stdout, p.stderr):
            if stream is not None:
                stream.close()
    tags = httpx.get(f"http://{reg.host}/v2/fleet/eight/tags/list").json()["tags"]
    layers = 4 + 8 * 4
    # One blob per entry, each entry's own: the registry holds each layer once.
    stored = set()
    for tag in tags:
        entry = httpx.get(
            f"http://{reg.host}/v2/fleet/eight/manifests/{tag}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        ).json()
        stored |= {layer["digest"] for layer in entry["layers"]}
        present = httpx.head(
            f"http://{reg.host}/v2/fleet/eight/blobs/{entry['layers'][0]['digest']}"
        )
        if present.status_code != 200:
            stored.discard(entry["layers"][0]["digest"])
    return {
        "runners": 8,
        "distinct_layers": layers,
        "all_succeeded": codes == [0] * 8,
        "warnings": warnings,
        "tags": len(tags),
        "layer_blobs_stored": len(stored),
        "blob_uploads": reg.blob_uploads() - before,
        "seconds": seconds,
        "target_met": codes == [0] * 8 and len(tags) == layers and len(stored) == layers,
    }


def request_costs(reg: LocalRegistry, rounds: int) -> dict[str, float]:
    """Per-request costs of the cache's traffic, from the client vinci uses (one kept-alive
    connection, the same checks)."""
    from engine.registry.client import RegistryClient

    with RegistryClient(reg.host) as client:
        tag = httpx.get(f"http://{reg.host}/v2/fleet/eight/tags/list").json()["tags"][0]
        client.head_manifest("fleet/eight", tag)
        heads, gets, misses = [], [], []
        for _ in range(rounds):
            t = time.perf_counter()
            client.head_manifest("fleet/eight", tag)
            heads.append(time.perf_counter() - t)
            t = time.perf_counter()
            client.head_manifest("fleet/eight", "vc-" + "0" * 64)
            misses.append(time.perf_counter() - t)
            t = time.perf_counter()
            client.get_manifest("fleet/eight", tag)
            gets.append(time.perf_counter() - t)
    return {
        "head_hit_ms": statistics.median(heads) * 1000,
        "head_miss_ms": statistics.median(misses) * 1000,
        "get_manifest_ms": statistics.median(gets) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fleet")
    p.add_argument("--quick", action="store_true", help="small sizes, one round")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--work", type=Path, default=Path("/tmp/vinci-bench-fleet"))
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument(
        "--compression-level",
        type=int,
        action="append",
        help="gzip levels to run the two-runner case at (repeatable; default: the codec's)",
    )
    args = p.parse_args(argv)
    size = 256 << 10 if args.quick else 4 * MIB
    rounds = 1 if args.quick else args.repeat
    args.work.mkdir(parents=True, exist_ok=True)
    reg = LocalRegistry(args.work / "registry").start()
    try:
        levels = args.compression_level or [None]
        twos = [two_runners(args.work, reg, size, rounds, level) for level in levels]
        eight = eight_runners(args.work, reg, size // 2)
        costs = request_costs(reg, 20 if args.quick else 200)
    finally:
        reg.stop()
    figures = {"two_runners": twos, "eight_runners": eight, "requests": costs}
    print("| benchmark | figure | target |")
    print("|---|---|---|")
    for two in twos:
        level = two["compression_level"]
        print(
            f"| runner B, 20 layers of {size >> 10} KiB A built, gzip level "
            f"{'default' if level is None else level} | {two['cold_s']:.2f} s cold, "
            f"{two['remote_s']:.2f} s from the registry ({two['ratio']:.1f}x); CPU "
            f"{two['cold_cpu_s']:.2f} s cold, {two['remote_cpu_s']:.2f} s from the registry "
            f"({two['cpu_ratio']:.1f}x); "
            f"{two['uploads_by_b']} blob uploads | >= 5x, none: "
            f"{'met' if two['target_met'] else 'MISSED'} |"
        )
    print(
        f"| 8 runners at once, 8 layers each, 4 shared | all succeeded: {eight['all_succeeded']}, "
        f"{eight['tags']} entries and {eight['layer_blobs_stored']} layer blobs for "
        f"{eight['distinct_layers']} layers, {eight['blob_uploads']} uploads, "
        f"{eight['seconds']:.2f} s | each layer once: "
        f"{'met' if eight['target_met'] else 'MISSED'} |"
    )
    print(
        f"| one request, kept-alive loopback | HEAD hit {costs['head_hit_ms']:.2f} ms, HEAD miss "
        f"{costs['head_miss_ms']:.2f} ms, GET entry {costs['get_manifest_ms']:.2f} ms | - |"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    ok = all(two["target_met"] for two in twos) and bool(eight["target_met"])
    return 0 if ok or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
