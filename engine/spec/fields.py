"""The v1 spec's keys, declared once.

The loader takes its allowed keys, required keys and value types from these tables; the JSON
Schema (engine.spec.schema) and the key reference in docs/spec.md are generated from them, so
the three cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

# Value types a field may have. 'mode' is an octal permission string or number (0644),
# 'abspath' an absolute in-image path, 'hostpath' a path on the build host, relative to the
# spec file's directory.
TYPES = (
    "string",
    "int",
    "mode",
    "bool",
    "abspath",
    "hostpath",
    "string-list",
    "abspath-list",
    "string-map",
    "port-list",
    "platform",
    "reference",
    "layer-list",
    "part-list",
    "config",
)


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool
    doc: str
    example: str
    default: str = ""


TOP = (
    Field("spec-version", "string", True, "Spec format version. Only `v1` exists.", "v1"),
    Field(
        "image",
        "reference",
        False,
        "Name of the image (registry/repository[:tag]). Used as the push target and as the "
        "tag in the OCI layout. Never a digest.",
        "registry.example.com/team/app:1.0",
    ),
    Field(
        "platform",
        "platform",
        False,
        "Platform recorded in the config, and chosen from imported indexes.",
        "linux/arm64/v8",
        "linux/amd64",
    ),
    Field(
        "annotations",
        "string-map",
        False,
        "Annotations on the image manifest.",
        "{org.opencontainers.image.source: https://example.com/app}",
    ),
    Field("config", "config", False, "Runtime configuration of the image (see below).", "…"),
    Field("layers", "layer-list", True, "The layers, bottom first (see below).", "…"),
)

CONFIG = (
    Field("entrypoint", "string-list", False, "Entrypoint, exec form.", "[/app, --serve]"),
    Field("cmd", "string-list", False, "Default arguments, exec form.", "[--port, '8080']"),
    Field(
        "env",
        "string-map",
        False,
        "Environment variables, in the order written.",
        "{PATH: /usr/bin:/bin, LANG: C.UTF-8}",
    ),
    Field("working-dir", "abspath", False, "Working directory of the process.", "/srv"),
    Field("user", "string", False, "User (and group) the process runs as.", "'1000:1000'"),
    Field("labels", "string-map", False, "Image labels.", "{maintainer: team@example.com}"),
    Field(
        "exposed-ports",
        "port-list",
        False,
        "Ports the image listens on; a bare number means tcp.",
        "[8080, 53/udp]",
    ),
    Field("volumes", "abspath-list", False, "Paths meant to be mounted as volumes.", "[/data]"),
    Field("stop-signal", "string", False, "Signal that stops the container.", "SIGTERM"),
)

OWNER = (
    Field("uid", "int", False, "Owner user id.", "1000", "0"),
    Field("gid", "int", False, "Owner group id.", "1000", "0"),
)

FILE = (
    Field("path", "abspath", True, "Absolute path of the file in the image.", "/etc/app.conf"),
    Field(
        "mode",
        "mode",
        False,
        "Permission bits, octal. Without it a `source` keeps only its execute bit (0755 or "
        "0644); `contents` gives 0644.",
        "0444",
    ),
    Field(
        "contents",
        "string",
        False,
        "The file's contents, UTF-8. Exactly one of `contents` and `source`.",
        "'Hello, World!\\n'",
    ),
    Field(
        "source",
        "hostpath",
        False,
        "Host file to copy (symlinks to it are followed). Exactly one of `contents` and `source`.",
        "./build/app",
    ),
    *OWNER,
)

DIRECTORY = (
    Field("path", "abspath", True, "Absolute path of the directory in the image.", "/srv/www"),
    Field(
        "source",
        "hostpath",
        False,
        "Host directory whose tree is copied under `path`. Symlinks are kept as symlinks, never "
        "followed. Without it, only the (empty) directory is created.",
        "./site",
    ),
    Field(
        "include",
        "string-list",
        False,
        "Globs (relative to `source`; `*` within a name, `**` across directories) that select "
        "files. Default: everything.",
        "['**/*.html', 'static/**']",
    ),
    Field(
        "exclude",
        "string-list",
        False,
        "Globs of files and directories to leave out; they win over `include`.",
        "['**/.git', '**/*.tmp']",
    ),
    Field(
        "mode",
        "mode",
        False,
        "Permission bits of the directory at `path` itself.",
        "0755",
        "0755",
    ),
    Field(
        "file-mode",
        "mode",
        False,
        "Permission bits for every copied file. Default: 0755 if the host file is executable, "
        "else 0644.",
        "0644",
    ),
    Field(
        "dir-mode",
        "mode",
        False,
        "Permission bits for every copied subdirectory.",
        "0755",
        "0755",
    ),
    *OWNER,
)

SYMLINK = (
    Field("path", "abspath", True, "Absolute path of the link in the image.", "/bin/sh"),
    Field("target", "string", True, "What the link points to, stored as written.", "busybox"),
    *OWNER,
)

IMPORT = (
    Field(
        "path",
        "hostpath",
        True,
        "An OCI image layout directory, an OCI archive (.tar) or a docker-archive (.tar).",
        "./base.oci",
    ),
    Field(
        "tag",
        "string",
        False,
        "Which image of a layout or archive holding several (its ref name or repo tag).",
        "latest",
    ),
    Field(
        "inherit-config",
        "bool",
        False,
        "Start from the imported image's config (entrypoint, env, …); `config` keys override.",
        "true",
        "false",
    ),
)

IMPORT_OCI = (
    Field(
        "ref",
        "reference",
        True,
        "Registry image pinned by digest (repository@sha256:…). `vinci resolve` prints it.",
        "docker.io/library/busybox@sha256:…",
    ),
    Field(
        "inherit-config",
        "bool",
        False,
        "Start from the imported image's config; `config` keys override.",
        "true",
        "false",
    ),
)

# Layer kinds: name -> (fields, the field a scalar shorthand stands for, may go in `combined`).
LAYER_KINDS: dict[str, tuple[tuple[Field, ...], str, bool]] = {
    "file": (FILE, "", True),
    "directory": (DIRECTORY, "", True),
    "symlink": (SYMLINK, "", True),
    "combined": ((), "", False),
    "import": (IMPORT, "path", False),
    "import-oci": (IMPORT_OCI, "ref", False),
}
COMBINABLE = tuple(k for k, (_, _, c) in LAYER_KINDS.items() if c)

LAYER_DOCS = {
    "file": "One file, from inline `contents` or a host `source`.",
    "directory": "A directory, optionally with a host tree copied into it.",
    "symlink": "A symbolic link.",
    "combined": "A list of `file`, `directory` and `symlink` items flattened into ONE layer.",
    "import": "The layers of a local image, byte for byte. Shorthand: `import: ./base.oci`.",
    "import-oci": (
        "The layers of a registry image pinned by digest. Shorthand: `import-oci: repo@sha256:…`."
    ),
}
