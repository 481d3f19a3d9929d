"""`vinci build`'s arguments read without argparse (engine/buildopts.py) must mean exactly what
argparse makes of them, and anything the fast reader does not understand must go to argparse."""

from __future__ import annotations

import pytest

from engine.buildopts import BuildArgs, parse_build
from engine.cli import parser

UNDERSTOOD = [
    ["build"],
    ["build", "s.yaml"],
    ["build", "dir", "-o", "oci:x", "--cache-dir=c", "-q"],
    ["build", "--output=oci-archive:a.tar", "--quiet", "spec.yml"],
    ["build", "--json", "--replan", "--locked"],
    ["build", "--no-lock", "-j", "3", "--jobs=5"],
    ["build", "--compression", "zstd", "--compression-level", "19"],
    ["build", "--compression=none", "--source-date-epoch", "1700000000"],
    ["build", "--source-date-epoch=0", "--compression-level=+3"],
    ["build", "-o", "oci:a", "-o", "oci:b"],  # the last one wins, for both
    ["build", "--output=", "--cache-dir="],
    ["build", "--source-date-epoch=-5"],  # refused later, with a message, by both
]

LEFT_TO_ARGPARSE = [
    ["build", "--push"],
    ["build", "--image", "r/x", "--push"],
    ["build", "-t", "v1"],
    ["build", "--insecure-registry", "localhost:5000"],
    ["build", "--help"],
    ["build", "--out", "oci:x"],  # an abbreviation
    ["build", "-qo", "oci:x"],  # combined short flags
    ["build", "-o=oci:x"],
    ["build", "-j4"],
    ["build", "a", "b"],
    ["build", "-o"],
    ["build", "-o", "--json"],
    ["build", "--jobs", "0"],
    ["build", "--jobs=-1"],
    ["build", "--jobs", "two"],
    ["build", "--compression-level", "high"],
    ["build", "--json=yes"],
    ["build", "--", "spec"],
    ["validate"],
    [],
]


def _argparse(argv: list[str]) -> dict[str, object]:
    return vars(parser().parse_args(argv))


def _fast(args: BuildArgs) -> dict[str, object]:
    return {name: getattr(args, name) for name in BuildArgs.__slots__}


@pytest.mark.parametrize("argv", UNDERSTOOD, ids=" ".join)
def test_the_fast_reading_is_argparses(argv: list[str]) -> None:
    fast = parse_build(argv)
    assert fast is not None
    assert _fast(fast) == _argparse(argv)


@pytest.mark.parametrize("argv", LEFT_TO_ARGPARSE, ids=" ".join)
def test_anything_else_is_left_to_argparse(argv: list[str]) -> None:
    assert parse_build(argv) is None


def test_every_build_option_is_known_to_the_fast_reading() -> None:
    # A new `vinci build` option must be added to BuildArgs (and, if common, to parse_build).
    assert set(BuildArgs.__slots__) == set(_argparse(["build"]))
