"""Valid specs load into the expected model: every layer kind, every config key, the shorthand
forms, modes written every way YAML allows, and the rules between keys."""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import run_vinci
from support.verify import require_tool, umoci_unpack

from engine.errors import Position, SpecError
from engine.oci.descriptor import Platform
from engine.oci.digest import Digest
from engine.oci.reference import parse_reference
from engine.spec import fields as F
from engine.spec.load import load_spec, load_spec_text
from engine.spec.model import (
    CombinedSpec,
    ConfigSpec,
    DirectorySpec,
    FileSpec,
    ImportOCISpec,
    ImportSpec,
    Spec,
    SymlinkSpec,
)

REPO = Path(__file__).resolve().parents[2]
HEX = "0123456789abcdef" * 4
DIGEST = f"sha256:{HEX}"


@dataclass(frozen=True)
class Valid:
    text: str  # may hold {dir}: the sources directory, absolute
    subdir: str = "."  # where the spec file goes, below the sources directory


# Every valid spec of this module by name; test_schema checks the JSON Schema accepts each one,
# and test_every_valid_spec_loads that the loader does.
VALID: dict[str, Valid] = {}


def valid(name: str, text: str, subdir: str = ".") -> str:
    VALID[name] = Valid(textwrap.dedent(text).lstrip("\n"), subdir)
    return name


def make_sources(d: Path) -> Path:
    """The host files the valid specs refer to."""
    (d / "bin").mkdir(parents=True)
    (d / "bin" / "app").write_text("#!/bin/sh\n")
    (d / "site").mkdir()
    (d / "site" / "index.html").write_text("<h1>hi</h1>\n")
    (d / "base.oci").mkdir()
    (d / "base.tar").write_bytes(b"")
    for sub in ("a", "b", "sub"):
        (d / sub).mkdir()
    os.symlink(d / "bin" / "app", d / "app-link")
    return d


def load_valid(sources: Path, name: str) -> Spec:
    v = VALID[name]
    return load_spec(write_spec(sources / v.subdir, v.text.replace("{dir}", str(sources))))


def write_spec(d: Path, text: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    spec = d / "vinci.yaml"
    spec.write_text(textwrap.dedent(text).lstrip("\n"))
    return spec


def load(d: Path, text: str) -> Spec:
    return load_spec(write_spec(d, text))


def problems(d: Path, text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load(d, text)
    return [f"{p.position.line}:{p.position.column}: {p.message}" for p in info.value.problems]


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    return make_sources(tmp_path / "proj")


def pos(spec: Path, line: int, column: int) -> Position:
    return Position(str(spec), line, column)


def test_hello_example_loads_unchanged() -> None:
    spec = load_spec(REPO / "examples" / "hello" / "vinci.yaml")
    assert spec.image == parse_reference("registry.gitlab.com/thriqon/vinci/simplest")
    assert spec.config == ConfigSpec(entrypoint=("/cat", "/message"))
    assert spec.platform == Platform("linux", "amd64")
    cat, message = spec.layers
    assert isinstance(cat, FileSpec) and isinstance(message, FileSpec)
    assert (cat.path, cat.mode, cat.contents) == ("/cat", None, None)
    assert cat.source == REPO / "examples" / "hello" / "busybox"
    assert (message.path, message.mode, message.contents) == (
        "/message",
        0o444,
        b"Hello, World!\n",
    )
    assert message.label == "layers[1].file"
    assert message.pos.line == 11 and message.pos.column == 5
    assert spec.sources == (REPO / "examples" / "hello" / "busybox",)


EVERY_TOP_LEVEL_AND_CONFIG_KEY = valid(
    "every-top-level-and-config-key",
    """
    spec-version: v1
    image: registry.example.com/team/app:1.0
    platform: linux/arm64/v8
    annotations:
      org.opencontainers.image.source: https://example.com/app
      version: 1.10
    config:
      entrypoint: [/app, --serve]
      cmd: [--port, 8080]
      env:
        PATH: /usr/bin:/bin
        LANG: C.UTF-8
        EMPTY: ''
      working-dir: /srv/./www/
      user: 1000:1000
      labels: {maintainer: team@example.com, count: 3}
      exposed-ports: [8080, 53/udp, '9000/sctp', 443/tcp]
      volumes: [/data, /var//cache/]
      stop-signal: SIGTERM
    layers: [{symlink: {path: /a, target: b}}]
    """,
)


def test_every_top_level_and_config_key(sources: Path) -> None:
    spec = load_valid(sources, EVERY_TOP_LEVEL_AND_CONFIG_KEY)
    assert spec.image == parse_reference("registry.example.com/team/app:1.0")
    assert spec.tag == "1.0"
    assert spec.platform == Platform("linux", "arm64", "v8")
    # Scalars are kept as written: 1.10 is not the float 1.1.
    assert spec.annotations == (
        ("org.opencontainers.image.source", "https://example.com/app"),
        ("version", "1.10"),
    )
    assert spec.config == ConfigSpec(
        entrypoint=("/app", "--serve"),
        cmd=("--port", "8080"),
        env=(("PATH", "/usr/bin:/bin"), ("LANG", "C.UTF-8"), ("EMPTY", "")),
        working_dir="/srv/www",
        user="1000:1000",
        labels=(("maintainer", "team@example.com"), ("count", "3")),
        exposed_ports=("8080/tcp", "53/udp", "9000/sctp", "443/tcp"),
        volumes=("/data", "/var/cache"),
        stop_signal="SIGTERM",
    )
    assert len(spec.layers) == 1


def test_config_keys_cover_the_table() -> None:
    # ConfigSpec has one attribute per config key of fields.py, and no others.
    names = {f.name.replace("-", "_") for f in F.CONFIG}
    assert names == set(ConfigSpec.__dataclass_fields__)


MINIMAL = valid("minimal", "spec-version: v1\nlayers: [{symlink: {path: /a, target: b}}]\n")


def test_defaults(sources: Path) -> None:
    spec = load_valid(sources, MINIMAL)
    assert spec.image is None and spec.tag == "latest"
    assert spec.platform == Platform("linux", "amd64")
    assert spec.annotations == ()
    assert spec.config == ConfigSpec()


EVERY_LAYER_KIND = valid(
    "every-layer-kind",
    f"""
        spec-version: v1
        layers:
          - file: {{path: /etc/motd, mode: 0600, contents: "hi\\n", uid: 1, gid: 2}}
          - file: {{path: /usr/bin/app, source: ./bin/app}}
          - directory:
              path: /srv/www/
              source: site
              include: ['**/*.html', 'static/**']
              exclude: [.git, '*.tmp']
              mode: 0750
              file-mode: 0640
              dir-mode: 0710
              uid: 33
              gid: 4294967295
          - directory: {{path: /var/empty}}
          - symlink: {{path: /bin/sh, target: busybox, uid: 5, gid: 6}}
          - combined:
              - file: {{path: /a, contents: a}}
              - directory: {{path: /d}}
              - symlink: {{path: /d/link, target: ../a}}
          - import: {{path: ./base.oci, tag: v1, inherit-config: true}}
          - import: base.tar
          - import-oci: {{ref: ghcr.io/o/base@{DIGEST}, inherit-config: true}}
          - import-oci: busybox@{DIGEST}
        """,
)


def test_every_layer_kind_with_every_key(sources: Path) -> None:
    digest = DIGEST
    spec = load_valid(sources, EVERY_LAYER_KIND)
    spec_path = spec.path
    at = pos  # shorter
    assert spec.layers == (
        FileSpec("layers[0].file", at(spec_path, 3, 5), "/etc/motd", 0o600, 1, 2, b"hi\n", None),
        FileSpec(
            "layers[1].file",
            at(spec_path, 4, 5),
            "/usr/bin/app",
            None,
            0,
            0,
            None,
            sources / "bin" / "app",
        ),
        DirectorySpec(
            "layers[2].directory",
            at(spec_path, 5, 5),
            "/srv/www",
            sources / "site",
            ("**/*.html", "static/**"),
            (".git", "*.tmp"),
            0o750,
            0o640,
            0o710,
            33,
            2**32 - 1,
        ),
        DirectorySpec(
            "layers[3].directory",
            at(spec_path, 15, 5),
            "/var/empty",
            None,
            (),
            (),
            0o755,
            None,
            0o755,
            0,
            0,
        ),
        SymlinkSpec("layers[4].symlink", at(spec_path, 16, 5), "/bin/sh", "busybox", 5, 6),
        CombinedSpec(
            "layers[5].combined",
            at(spec_path, 17, 5),
            (
                FileSpec(
                    "layers[5].combined[0].file", at(spec_path, 18, 9), "/a", None, 0, 0, b"a", None
                ),
                DirectorySpec(
                    "layers[5].combined[1].directory",
                    at(spec_path, 19, 9),
                    "/d",
                    None,
                    (),
                    (),
                    0o755,
                    None,
                    0o755,
                    0,
                    0,
                ),
                SymlinkSpec(
                    "layers[5].combined[2].symlink", at(spec_path, 20, 9), "/d/link", "../a", 0, 0
                ),
            ),
        ),
        ImportSpec(
            "layers[6].import", at(spec_path, 21, 5), sources / "base.oci", "./base.oci", "v1", True
        ),
        ImportSpec(
            "layers[7].import", at(spec_path, 22, 5), sources / "base.tar", "base.tar", "", False
        ),
        ImportOCISpec(
            "layers[8].import-oci",
            at(spec_path, 23, 5),
            parse_reference(f"ghcr.io/o/base@{digest}"),
            True,
        ),
        ImportOCISpec(
            "layers[9].import-oci",
            at(spec_path, 24, 5),
            parse_reference(f"busybox@{digest}"),
            False,
        ),
    )
    # Every host path the spec reads, once, for watchers.
    assert spec.sources == (
        sources / "bin" / "app",
        sources / "site",
        sources / "base.oci",
        sources / "base.tar",
    )


SHORTHAND_EQUALS_LONG_FORM_SHORT = valid(
    "shorthand-equals-long-form-short",
    f"""
    spec-version: v1
    layers:
      - import: ../base.oci
      - import-oci: docker.io/library/busybox@{DIGEST}
    """,
    subdir="a",
)


SHORTHAND_EQUALS_LONG_FORM_LONG = valid(
    "shorthand-equals-long-form-long",
    f"""
    spec-version: v1
    layers:
      - import: {{path: ../base.oci}}
      - import-oci: {{ref: "docker.io/library/busybox@{DIGEST}"}}
    """,
    subdir="b",
)


def test_shorthand_equals_long_form(sources: Path) -> None:
    short = load_valid(sources, SHORTHAND_EQUALS_LONG_FORM_SHORT)
    long = load_valid(sources, SHORTHAND_EQUALS_LONG_FORM_LONG)
    assert isinstance(short.layers[0], ImportSpec) and isinstance(long.layers[0], ImportSpec)
    assert short.layers[0].path == long.layers[0].path == sources / "base.oci"
    assert short.layers[0].written == "../base.oci"
    assert isinstance(short.layers[1], ImportOCISpec)
    assert isinstance(long.layers[1], ImportOCISpec)
    assert short.layers[1].ref == long.layers[1].ref
    assert short.layers[1].ref.digest == Digest(HEX)


MODES = [
    ("0444", 0o444),  # YAML 1.1 reads this as octal 292; we read the digits
    ("444", 0o444),  # YAML reads this as decimal 444; still octal to us
    ('"0644"', 0o644),
    ("'644'", 0o644),
    ("0o644", 0o644),  # a string in YAML 1.1
    ("0", 0),
    ("0000", 0),
    ("7777", 0o7777),
    ("07777", 0o7777),
    ("4755", 0o4755),
    ("1777", 0o1777),
]
for _written, _ in MODES:
    valid(
        f"mode-{_written}",
        f"""
        spec-version: v1
        layers:
          - file: {{path: /a, contents: x, mode: {_written}}}
          - directory: {{path: /d, source: ./site, mode: {_written}, file-mode: {_written},
              dir-mode: {_written}}}
        """,
    )


@pytest.mark.parametrize(("written", "mode"), MODES)
def test_modes_are_octal_however_written(sources: Path, written: str, mode: int) -> None:
    spec = load_valid(sources, f"mode-{written}")
    file, directory = spec.layers
    assert isinstance(file, FileSpec) and isinstance(directory, DirectorySpec)
    assert file.mode == mode
    assert (directory.mode, directory.file_mode, directory.dir_mode) == (mode, mode, mode)


@pytest.mark.parametrize("written", ["0999", "8", "10000", "017777", "0o0o7", "-1", "0x1ff", "6.4"])
def test_modes_that_are_not_octal(sources: Path, written: str) -> None:
    assert problems(
        sources,
        f"spec-version: v1\nlayers:\n  - file: {{path: /a, contents: x, mode: {written}}}\n",
    ) == [
        f"3:41: layers[0].file.mode: {written} is not a valid mode "
        "(octal digits 0-7, at most 07777)"
    ]


RELATIVE_SOURCES = valid(
    "relative-sources",
    """
    spec-version: v1
    layers:
      - file: {path: /app, source: ../bin/app}
      - directory: {path: /www, source: ../site}
    """,
    subdir="sub",
)


def test_relative_sources_resolve_against_the_spec_directory(
    sources: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec_path = write_spec(sources / "sub", VALID[RELATIVE_SOURCES].text)
    # Not against the working directory.
    monkeypatch.chdir(tmp_path)
    spec = load_spec(os.path.relpath(spec_path, tmp_path))
    file, directory = spec.layers
    assert isinstance(file, FileSpec) and isinstance(directory, DirectorySpec)
    assert file.source == sources / "bin" / "app"
    assert directory.source == sources / "site"
    assert spec.path == spec_path
    assert spec.display_path == os.path.relpath(spec_path, tmp_path)


ABSOLUTE_SOURCE_AND_SYMLINK_TO_FILE = valid(
    "absolute-source-and-symlink-to-file",
    """
    spec-version: v1
    layers:
      - file: {path: /a, source: "{dir}/bin/app"}
      - file: {path: /b, source: ./app-link}
    """,
)


def test_absolute_source_and_symlink_to_file(sources: Path) -> None:
    spec = load_valid(sources, ABSOLUTE_SOURCE_AND_SYMLINK_TO_FILE)
    a, b = spec.layers
    assert isinstance(a, FileSpec) and isinstance(b, FileSpec)
    assert a.source == sources / "bin" / "app"
    # The link is kept as named; the builder follows it when it reads the file.
    assert b.source == sources / "app-link"


def test_check_sources_false_resolves_without_looking(tmp_path: Path) -> None:
    text = b"spec-version: v1\nlayers:\n  - file: {path: /a, source: ./not-yet}\n"
    spec = load_spec_text(text, tmp_path / "vinci.yaml", "vinci.yaml", check_sources=False)
    (layer,) = spec.layers
    assert isinstance(layer, FileSpec) and layer.source == tmp_path / "not-yet"
    with pytest.raises(SpecError):
        load_spec_text(text, tmp_path / "vinci.yaml", "vinci.yaml")


IMAGE_PATHS_ARE_NORMALIZED = valid(
    "image-paths-are-normalized",
    """
    spec-version: v1
    layers:
      - file: {path: //etc/./app//conf, contents: x}
      - directory: {path: /}
      - symlink: {path: /usr/bin/, target: ../../x/./y}
    """,
)


def test_image_paths_are_normalized(sources: Path) -> None:
    spec = load_valid(sources, IMAGE_PATHS_ARE_NORMALIZED)
    paths = [getattr(layer, "path", None) for layer in spec.layers]
    assert paths == ["/etc/app/conf", "/", "/usr/bin"]
    # A link target is stored exactly as written.
    assert isinstance(spec.layers[2], SymlinkSpec) and spec.layers[2].target == "../../x/./y"


DOTS_IN_A_GLOB_THAT_ARE_NOT_A_PARENT_STEP = valid(
    "dots-in-a-glob-that-are-not-a-parent-step",
    """
    spec-version: v1
    layers:
      - directory:
          path: /srv
          source: ./site
          include: ['*..bak', 'a..b/**', '...', '..hidden']
          exclude: ['**/x..']
    """,
)


def test_dots_in_a_glob_that_are_not_a_parent_step(sources: Path) -> None:
    # '..' is refused as a path step only: names with two dots in them are ordinary names.
    spec = load_valid(sources, DOTS_IN_A_GLOB_THAT_ARE_NOT_A_PARENT_STEP)
    (layer,) = spec.layers
    assert isinstance(layer, DirectorySpec)
    assert layer.include == ("*..bak", "a..b/**", "...", "..hidden")
    assert layer.exclude == ("**/x..",)
    assert problems(
        sources,
        """
        spec-version: v1
        layers:
          - directory: {path: /srv, source: ./site, include: ['a/../b', '..'], exclude: ['x/..']}
        """,
    ) == [
        "3:55: layers[0].directory.include[0]: 'a/../b' must not contain '..' (globs only match "
        "inside the source)",
        "3:65: layers[0].directory.include[1]: '..' must not contain '..' (globs only match "
        "inside the source)",
        "3:82: layers[0].directory.exclude[0]: 'x/..' must not contain '..' (globs only match "
        "inside the source)",
    ]


def test_combined_with_duplicate_paths(sources: Path) -> None:
    assert problems(
        sources,
        """
        spec-version: v1
        layers:
          - file: {path: /same, contents: ok in another layer}
          - combined:
              - file: {path: /same, contents: a}
              - directory: {path: /dir}
              - symlink: {path: /same/, target: b}
              - directory: {path: /./dir}
              - file: {path: /dir/inside, contents: fine below a directory}
        """,
    ) == [
        "7:25: layers[1].combined[2].symlink.path: /same is already in this layer "
        f"(from layers[1].combined[0].file at {sources / 'vinci.yaml'}:5:9)",
        "8:27: layers[1].combined[3].directory.path: /dir is already in this layer "
        f"(from layers[1].combined[1].directory at {sources / 'vinci.yaml'}:6:9)",
    ]


SAME_PATH_IN_SEPARATE_LAYERS_IS_FINE = valid(
    "same-path-in-separate-layers-is-fine",
    """
    spec-version: v1
    layers:
      - file: {path: /etc/motd, contents: first}
      - file: {path: /etc/motd, contents: second, mode: 0600}
      - file: {path: /etc/motd/x, contents: a later layer replaces the file}
    """,
)


def test_same_path_in_separate_layers_is_fine(sources: Path) -> None:
    spec = load_valid(sources, SAME_PATH_IN_SEPARATE_LAYERS_IS_FINE)
    assert len(spec.layers) == 3


SCALARS_ARE_TEXT_AS_WRITTEN = valid(
    "scalars-are-text-as-written",
    """
    spec-version: v1
    config:
      user: 1000
      cmd: [true, 1.50, 0x1F, ~x, 2024-01-01]
    layers:
      - file: {path: /n, contents: 0444}
      - symlink: {path: /t, target: 1.0}
    """,
)


def test_scalars_are_text_as_written(sources: Path) -> None:
    spec = load_valid(sources, SCALARS_ARE_TEXT_AS_WRITTEN)
    assert spec.config.user == "1000"
    assert spec.config.cmd == ("true", "1.50", "0x1F", "~x", "2024-01-01")
    file, link = spec.layers
    assert isinstance(file, FileSpec) and file.contents == b"0444"
    assert isinstance(link, SymlinkSpec) and link.target == "1.0"


ANCHORS_AND_ALIASES_ARE_FOLLOWED = valid(
    "anchors-and-aliases-are-followed",
    """
    spec-version: v1
    config:
      entrypoint: &cmd [/app]
      cmd: *cmd
    layers:
      - file: &motd {path: /etc/motd, contents: hi}
      - combined:
          - file: *motd
    """,
)


def test_anchors_and_aliases_are_followed(sources: Path) -> None:
    spec = load_valid(sources, ANCHORS_AND_ALIASES_ARE_FOLLOWED)
    assert spec.config.entrypoint == spec.config.cmd == ("/app",)
    assert isinstance(spec.layers[1], CombinedSpec)
    first, second = spec.layers[0], spec.layers[1].parts[0]
    assert isinstance(first, FileSpec) and isinstance(second, FileSpec)
    assert (first.path, first.contents) == (second.path, second.contents)


def test_utf8_bom_and_comments(sources: Path) -> None:
    spec_path = sources / "vinci.yaml"
    spec_path.write_bytes(
        "\ufeff# a comment\nspec-version: v1  # trailing\n"
        "layers: [{symlink: {path: /a, target: b}}]\n".encode()
    )
    assert len(load_spec(spec_path).layers) == 1


def test_misspelt_required_key_is_reported_once(sources: Path) -> None:
    # 'Layers' is unknown and suggests 'layers'; 'layers' is not reported missing as well.
    assert problems(sources, "spec-version: v1\nLayers: []\n") == [
        "2:1: spec: unknown key 'Layers'; did you mean 'layers'?"
    ]
    assert problems(sources, "spec-version: v1\nlayers:\n  - symlink: {path: /x, targte: y}\n") == [
        "3:25: layers[0].symlink: unknown key 'targte'; did you mean 'target'?"
    ]


def test_misindented_keys_are_reported_where_they_stand(sources: Path) -> None:
    assert problems(
        sources,
        """
        spec-version: v1
        layers:
          - file:
            path: /a
            contents: x
        """,
    ) == [
        "4:5: layers[0]: 'path' belongs inside 'file'; indent it two spaces deeper than file:",
        "5:5: layers[0]: 'contents' belongs inside 'file'; indent it two spaces deeper than file:",
    ]


@pytest.mark.parametrize("name", sorted(VALID))
def test_every_valid_spec_loads(sources: Path, name: str) -> None:
    # The registry test_schema relies on: each entry really is a valid spec.
    load_valid(sources, name)


def test_webapp_example_builds_and_unpacks(busybox_path: Path, tmp_path: Path) -> None:
    """The webapp example uses every local layer kind and config key; what it promises about
    include/exclude, symlinks and modes is what lands in the image."""
    require_tool("umoci")
    assert (REPO / "examples" / "hello" / "busybox").is_file(), "run .ci/setup"
    layout = tmp_path / "webapp.oci"
    run_vinci(
        "build",
        REPO / "examples" / "webapp",
        "--output",
        f"oci:{layout}",
        "--cache-dir",
        tmp_path / "cache",
    )
    rootfs = umoci_unpack(layout, "latest", tmp_path / "bundle")
    site = rootfs / "srv" / "www"
    files = sorted(str(p.relative_to(site)) for p in site.rglob("*"))
    # Included: *.html at any depth, static/**; excluded: drafts/, *.map, *.tmp; README.md was
    # never included.
    assert files == [
        "about.html",
        "home.html",
        "index.html",
        "static",
        "static/app.js",
        "static/style.css",
    ]
    assert os.readlink(site / "home.html") == "index.html"  # kept as a link, not followed
    assert os.readlink(rootfs / "srv" / "current") == "www"
    assert os.readlink(rootfs / "bin" / "sh") == "busybox"
    assert (site / "index.html").stat().st_mode & 0o7777 == 0o444  # file-mode
    assert (rootfs / "bin" / "busybox").stat().st_mode & 0o7777 == 0o755  # kept execute bit
    assert (rootfs / "var" / "log" / "webapp").stat().st_mode & 0o7777 == 0o750
    assert (rootfs / "etc" / "motd").read_text() == "webapp example, assembled by vinci\n"
    assert (rootfs / "bin" / "busybox").read_bytes() == busybox_path.read_bytes()
