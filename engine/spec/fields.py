"""The v1 spec's keys, declared once.

The loader takes its allowed keys, required keys and value types from these tables; the JSON
Schema (engine.spec.schema) and the key reference in docs/spec.md are generated from them, so
the three cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

# Value types a field may have, each with the words the key reference uses for it. Loader and
# schema both dispatch on these names; test_schema checks every one is handled.
TYPES: dict[str, str] = {
    "string": "string",
    "int": "integer",
    "mode": "octal mode",
    "bool": "boolean",
    "abspath": "absolute image path",
    "hostpath": "host path",
    "string-list": "list of strings",
    "command": "list of strings (exec form)",
    "glob-list": "list of globs",
    "abspath-list": "list of absolute image paths",
    "string-map": "map of strings",
    "env-map": "map of variables",
    "port-list": "list of ports",
    "platform": "os/arch[/variant]",
    "platform-list": "list of os/arch[/variant]",
    "platform-hostpath": "host path, or a map of platform to host path",
    "reference": "image reference",
    "pinned-reference": "image reference by digest",
    "layer-list": "list of layers",
    "config": "mapping",
    "accounts": "mapping",
    "group-list": "list of groups",
    "user-list": "list of users",
    "sbom-list": "list of SBOM formats (spdx, cyclonedx)",
}

# The SBOM formats `sbom:` and `vinci build --sbom` name (docs/supply-chain.md).
SBOM_FORMATS = ("spdx", "cyclonedx")

# Value patterns shared by the loader and the JSON Schema, so the two accept the same text.
# A mode is octal with or without a leading 0 (or 0o), at most 07777: `mode: 644` meaning
# decimal 644 would be a silent trap.
MODE_PATTERN = r"^(?:0o)?0?[0-7]{1,4}$"
MODE_MAX = 0o7777
# A port is 1-65535 without leading zeros (YAML 1.1 would read `080` as octal 64), optionally
# with a protocol; a bare number means tcp.
PORT_PATTERN = (
    r"^([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
    r"(?:/(tcp|udp|sctp))?$"
)
# Environment variable names: anything but '=' and NUL (what execve can carry).
ENV_NAME_PATTERN = r"^[^=\x00]+$"
DIGEST_PATTERN = r"@sha256:[0-9a-f]{64}$"
MAX_ID = 2**32 - 1


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool
    doc: str
    example: str
    default: str = ""
    # The key only means something next to this other key (include/exclude need a source).
    requires: str = ""
    # Names people write out of habit (Dockerfile, docker-compose); an unknown key that is one
    # of these gets "did you mean" this field even when the spelling is far off.
    aliases: tuple[str, ...] = ()


TOP = (
    Field("spec-version", "string", True, "Spec format version. Only `v1` exists.", "v1"),
    Field(
        "image",
        "reference",
        False,
        "Name of the image (registry/repository[:tag]). Used as the push target and as the "
        "tag in the OCI layout. Never a digest.",
        "registry.example.com/team/app:1.0",
        aliases=("name", "tag"),
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
        "platforms",
        "platform-list",
        False,
        "Several platforms: one image each, written and pushed as one OCI image index. "
        "Instead of `platform`; layers and items may be limited to some of them (their own "
        "`platforms`), and a `source` may name a host path per platform.",
        "[linux/amd64, linux/arm64]",
    ),
    Field(
        "annotations",
        "string-map",
        False,
        "Annotations on the image manifest.",
        "{org.opencontainers.image.source: https://example.com/app}",
    ),
    Field(
        "sbom",
        "sbom-list",
        False,
        "SBOMs `vinci build` writes beside the image by default (docs/supply-chain.md); "
        "`--sbom` overrides.",
        "[spdx, cyclonedx]",
    ),
    Field(
        "config",
        "config",
        False,
        "Runtime configuration of the image (see below).",
        "{entrypoint: [/app]}",
    ),
    Field(
        "accounts",
        "accounts",
        False,
        "Users and groups added to the base's /etc/passwd and /etc/group, as one layer on top "
        "(see below).",
        "{users: [{username: app, uid: 1000}], run-as: app}",
        aliases=("users", "groups"),
    ),
    Field(
        "layers",
        "layer-list",
        True,
        "The layers, bottom first (see below). Each item has exactly one key, its kind.",
        "[{file: {path: /app, source: ./app}}]",
    ),
)

CONFIG = (
    Field("entrypoint", "command", False, "Entrypoint, exec form.", "[/app, --serve]"),
    Field(
        "cmd",
        "command",
        False,
        "Default arguments, exec form.",
        "[--port, '8080']",
        aliases=("command", "args"),
    ),
    Field(
        "env",
        "env-map",
        False,
        "Environment variables, in the order written.",
        "{PATH: /usr/bin:/bin, LANG: C.UTF-8}",
        aliases=("environment",),
    ),
    Field(
        "working-dir",
        "abspath",
        False,
        "Working directory of the process.",
        "/srv",
        aliases=("workdir", "cwd"),
    ),
    Field("user", "string", False, "User (and group) the process runs as.", "'1000:1000'"),
    Field("labels", "string-map", False, "Image labels.", "{maintainer: team@example.com}"),
    Field(
        "exposed-ports",
        "port-list",
        False,
        "Ports the image listens on; a bare number means tcp.",
        "[8080, 53/udp]",
        aliases=("ports", "expose"),
    ),
    Field("volumes", "abspath-list", False, "Paths meant to be mounted as volumes.", "[/data]"),
    Field("stop-signal", "string", False, "Signal that stops the container.", "SIGTERM"),
)

ACCOUNTS = (
    Field(
        "groups",
        "group-list",
        False,
        "Groups to add to /etc/group.",
        "[{groupname: app, gid: 1000}]",
    ),
    Field(
        "users",
        "user-list",
        False,
        "Users to add to /etc/passwd.",
        "[{username: app, uid: 1000, gid: 1000}]",
    ),
    Field(
        "run-as",
        "string",
        False,
        "The user the image runs as: a `users` name (the config's user becomes its uid:gid) "
        "or a uid. Instead of `config.user`.",
        "app",
        aliases=("user", "run_as", "runas"),
    ),
)

GROUP = (
    Field("groupname", "string", True, "Name of the group.", "app", aliases=("name",)),
    Field("gid", "int", True, "Group id.", "1000"),
    Field(
        "members",
        "string-list",
        False,
        "User names that are members of the group besides those whose group it is.",
        "[app]",
    ),
)

USER = (
    Field("username", "string", True, "Name of the user.", "app", aliases=("name", "user")),
    Field("uid", "int", True, "User id.", "1000"),
    Field("gid", "int", False, "Primary group id. Default: the uid.", "1000"),
    Field("shell", "string", False, "Login shell.", "/bin/sh", "/bin/sh"),
    Field(
        "homedir",
        "abspath",
        False,
        "Home directory (written to /etc/passwd, not created: add a `directory` layer for "
        "it). Default: /home/USERNAME.",
        "/home/app",
        aliases=("home", "home-dir"),
    ),
)

# A layer or `combined` item limited to some of the spec's platforms.
PLATFORMS = Field(
    "platforms",
    "platform-list",
    False,
    "Only for these of the spec's platforms; elsewhere the layer (or item) is left out. "
    "Default: every platform.",
    "[linux/arm64]",
)

# A host source that may differ per platform: a path, or a map of platform to path.
SOURCE_DOC = " Or a map of platform to host path, one for each platform the node is built for."

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
        "The file's contents, UTF-8.",
        "'Hello, World!\\n'",
        aliases=("content", "text", "data"),
    ),
    Field(
        "source",
        "platform-hostpath",
        False,
        "Host file to copy (symlinks to it are followed)." + SOURCE_DOC,
        "./build/app",
        aliases=("src", "from"),
    ),
    *OWNER,
    PLATFORMS,
)

DIRECTORY = (
    Field("path", "abspath", True, "Absolute path of the directory in the image.", "/srv/www"),
    Field(
        "source",
        "platform-hostpath",
        False,
        "Host directory whose tree is copied under `path`. Symlinks are kept as symlinks, never "
        "followed. Without it, only the (empty) directory is created." + SOURCE_DOC,
        "./site",
        aliases=("src", "from"),
    ),
    Field(
        "include",
        "glob-list",
        False,
        "Globs (relative to `source`; `*` within a name, `**` across directories) that select "
        "files. Default: everything.",
        "['**/*.html', 'static/**']",
        requires="source",
    ),
    Field(
        "exclude",
        "glob-list",
        False,
        "Globs of files and directories to leave out; they win over `include`.",
        "['.git', '*.tmp']",
        requires="source",
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
        requires="source",
    ),
    Field(
        "dir-mode",
        "mode",
        False,
        "Permission bits for every copied subdirectory.",
        "0755",
        "0755",
        requires="source",
    ),
    *OWNER,
    PLATFORMS,
)

SYMLINK = (
    Field("path", "abspath", True, "Absolute path of the link in the image.", "/bin/sh"),
    Field(
        "target",
        "string",
        True,
        "What the link points to, stored as written (relative or absolute).",
        "busybox",
        aliases=("to", "link", "source"),
    ),
    *OWNER,
    PLATFORMS,
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
    PLATFORMS,
)

IMPORT_OCI = (
    Field(
        "ref",
        "pinned-reference",
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
    PLATFORMS,
)

TAR = (
    Field(
        "source",
        "platform-hostpath",
        True,
        "A tar archive on the host, plain or compressed with gzip, zstd or xz (told from its "
        "first bytes): a rootfs from mmdebstrap, debootstrap, buildroot or `docker export`."
        + SOURCE_DOC,
        "./rootfs.tar.xz",
        aliases=("src", "from", "file"),
    ),
    Field(
        "path",
        "abspath",
        False,
        "Directory of the image the archive's entries are placed under.",
        "/opt/app",
        "/",
        aliases=("prefix", "dest", "target"),
    ),
    Field(
        "include",
        "glob-list",
        False,
        "Globs (relative to the archive's root; `*` within a name, `**` across directories) "
        "that select entries. Default: everything.",
        "['usr/**', 'etc/**']",
    ),
    Field(
        "exclude",
        "glob-list",
        False,
        "Globs of entries to leave out; they win over `include`.",
        "['usr/share/doc', 'var/cache/**']",
    ),
    Field(
        "whiteouts",
        "bool",
        False,
        "Keep `.wh.` whiteout entries, which delete files of the layers below; without it an "
        "archive holding one is refused.",
        "true",
        "false",
    ),
    PLATFORMS,
)

# Layer kinds: name -> (fields, the field a scalar shorthand stands for, may go in `combined`).
LAYER_KINDS: dict[str, tuple[tuple[Field, ...], str, bool]] = {
    "file": (FILE, "", True),
    "directory": (DIRECTORY, "", True),
    "symlink": (SYMLINK, "", True),
    "combined": ((), "", False),
    "import": (IMPORT, "path", False),
    "import-oci": (IMPORT_OCI, "ref", False),
    "tar": (TAR, "source", False),
}
COMBINABLE = tuple(k for k, (_, _, c) in LAYER_KINDS.items() if c)

# Kinds that need exactly one key out of a group.
EXACTLY_ONE: dict[str, tuple[str, ...]] = {"file": ("contents", "source")}

LAYER_DOCS = {
    "file": "One file, from inline `contents` or a host `source`.",
    "directory": "A directory, optionally with a host tree copied into it.",
    "symlink": "A symbolic link.",
    "combined": "A list of `file`, `directory` and `symlink` items flattened into ONE layer.",
    "import": "The layers of a local image, byte for byte.",
    "import-oci": "The layers of a registry image pinned by digest.",
    "tar": "The entries of a tar archive (a rootfs tarball), rewritten deterministically as "
    "one layer.",
}
