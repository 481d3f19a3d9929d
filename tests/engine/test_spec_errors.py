"""The malformed-spec corpus: every broken spec gives its one positioned line and exit code 2.

Each case runs through the real command line (`python -m engine.cli validate`, a few through
`build` too) in a subprocess, in a directory holding the spec as vinci.yaml next to a few
sources (a file, a directory, a dangling symlink, a FIFO, an empty "image" directory). stderr
must be exactly the expected line: `vinci.yaml:LINE:COL: key.path: message`, nothing else and
never a traceback. A spec with many problems must report all of them, in file order.
"""

# The expected lines are kept whole, as the user sees them, rather than split to fit 100 columns.
# ruff: noqa: E501

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import Run, run_vinci
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import SpecError
from engine.spec import fields as F
from engine.spec.load import load_spec_text


@dataclass(frozen=True)
class Case:
    id: str
    written: str  # an indented block starting with a newline is dedented; else used as is
    expected: str  # the one line on stderr; {dir} stands for the spec's directory

    @property
    def text(self) -> str:
        if self.written.startswith("\n"):
            return textwrap.dedent(self.written).lstrip("\n")
        return self.written


CASES = [
    # -- YAML that does not parse, or is not one mapping
    Case(
        "yaml-missing-colon",
        """
        spec-version: v1
        layers
          - file: {path: /a, contents: x}
        """,
        "vinci.yaml:2:1: invalid YAML: could not find expected ':' (while scanning a simple key)",
    ),
    Case(
        "yaml-unclosed-quote",
        """
        spec-version: v1
        layers:
          - file: {path: /a, contents: "x}
        """,
        "vinci.yaml:3:32: invalid YAML: this quoted string is never closed",
    ),
    Case(
        "yaml-tab-indent",
        "spec-version: v1\nlayers:\n\t- file: {path: /a, contents: x}\n",
        "vinci.yaml:3:1: invalid YAML: a tab; YAML indents with spaces only, so write spaces here",
    ),
    Case(
        "yaml-mapping-in-scalar",
        """
        spec-version: v1
        image: app: 1
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:2:11: invalid YAML: mapping values are not allowed here",
    ),
    Case(
        "yaml-bad-indent",
        """
        spec-version: v1
        layers:
          - file:
              path: /a
             contents: x
        """,
        "vinci.yaml:5:6: invalid YAML: this line is indented differently from the lines around it (while parsing a block mapping at 3:5)",
    ),
    Case(
        "yaml-undefined-alias",
        """
        spec-version: v1
        layers:
          - file: *nothing
        """,
        "vinci.yaml:3:11: invalid YAML: found undefined alias 'nothing'",
    ),
    Case(
        "yaml-control-char",
        'spec-version: v1\nlayers:\n  - file: {path: /a, contents: "x\x07"}\n',
        "vinci.yaml:3:34: invalid YAML: character U+0007 is not allowed; write it as an escape (\\x07) inside a double-quoted string",
    ),
    Case(
        "yaml-two-documents",
        """
        spec-version: v1
        layers: [{file: {path: /a, contents: x}}]
        ---
        spec-version: v1
        """,
        "vinci.yaml:4:1: a spec file holds one YAML document; found more",
    ),
    Case(
        "yaml-empty",
        """
        # nothing here
        """,
        "vinci.yaml:1:1: spec is empty",
    ),
    Case(
        "yaml-top-level-list",
        """
        - file: {path: /a, contents: x}
        """,
        "vinci.yaml:1:1: spec: expected a mapping, found a list",
    ),
    # -- Unknown keys: a 'did you mean' for misspellings and names from other tools
    Case(
        "unknown-top",
        """
        spec-version: v1
        layer:
          - file: {path: /a, contents: x}
        """,
        "vinci.yaml:2:1: spec: unknown key 'layer'; did you mean 'layers'?",
    ),
    Case(
        "unknown-snake-case",
        """
        spec_version: v1
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:1:1: spec: unknown key 'spec_version'; did you mean 'spec-version'?",
    ),
    Case(
        "unknown-config-alias",
        """
        spec-version: v1
        config:
          workdir: /srv
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:3:3: config: unknown key 'workdir'; did you mean 'working-dir'?",
    ),
    Case(
        "unknown-config-misspelt-alias",
        """
        spec-version: v1
        config:
          enviroment: {A: b}
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:3:3: config: unknown key 'enviroment'; did you mean 'env'?",
    ),
    Case(
        "config-keys-at-column-0",
        """
        spec-version: v1
        config:
        entrypoint: [/a]
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:3:1: spec: 'entrypoint' is a config key; indent it under config: (two "
        "spaces: `  entrypoint: …`)",
    ),
    Case(
        "layer-kind-given-a-scalar",
        """
        spec-version: v1
        layers:
          - file: /a
        """,
        "vinci.yaml:3:11: layers[0].file: expected a mapping, found the string '/a'; write its "
        "keys indented below it (`path: /etc/app.conf` on the next line, two spaces in) or in "
        "braces (`{{path: /etc/app.conf, …}}`)",
    ),
    Case(
        "layers-empty",
        """
        spec-version: v1
        layers: []
        """,
        "vinci.yaml:2:9: layers: the list is empty; an image needs at least one layer (e.g. "
        "`- file: {{path: /etc/motd, contents: hi}}`)",
    ),
    Case(
        "directory-file-mode-without-source",
        """
        spec-version: v1
        layers:
          - directory: {path: /srv, file-mode: 0644}
        """,
        "vinci.yaml:3:29: layers[0].directory.file-mode: only applies with 'source'",
    ),
    Case(
        "unknown-config-ports",
        """
        spec-version: v1
        config:
          ports: [80]
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:3:3: config: unknown key 'ports'; did you mean 'exposed-ports'?",
    ),
    Case(
        "unknown-file-key",
        """
        spec-version: v1
        layers:
          - file: {path: /a, content: x}
        """,
        "vinci.yaml:3:22: layers[0].file: unknown key 'content'; did you mean 'contents'?",
    ),
    Case(
        "unknown-directory-key",
        """
        spec-version: v1
        layers:
          - directory: {path: /a, source: ./site, excludes: [x]}
        """,
        "vinci.yaml:3:43: layers[0].directory: unknown key 'excludes'; did you mean 'exclude'?",
    ),
    Case(
        "unknown-layer-kind",
        """
        spec-version: v1
        layers:
          - fiel: {path: /a, contents: x}
        """,
        "vinci.yaml:3:5: layers[0]: unknown layer kind 'fiel'; did you mean 'file'?",
    ),
    Case(
        "unknown-far-off",
        """
        spec-version: v1
        layers:
          - file: {path: /a, contents: x, colour: blue}
        """,
        "vinci.yaml:3:35: layers[0].file: unknown key 'colour'",
    ),
    # -- Required keys and required choices
    Case(
        "missing-spec-version",
        """
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:1:1: spec: missing required key 'spec-version'",
    ),
    Case(
        "missing-layers",
        """
        spec-version: v1
        image: example.com/app
        """,
        "vinci.yaml:1:1: spec: missing required key 'layers'",
    ),
    Case(
        "missing-file-path",
        """
        spec-version: v1
        layers:
          - file: {contents: x}
        """,
        "vinci.yaml:3:11: layers[0].file: missing required key 'path'",
    ),
    Case(
        "missing-symlink-target",
        """
        spec-version: v1
        layers:
          - symlink: {path: /bin/sh}
        """,
        "vinci.yaml:3:14: layers[0].symlink: missing required key 'target'",
    ),
    Case(
        "file-needs-contents-or-source",
        """
        spec-version: v1
        layers:
          - file: {path: /a, mode: 0644}
        """,
        "vinci.yaml:3:11: layers[0].file: needs 'contents' or 'source'",
    ),
    Case(
        "file-contents-and-source",
        """
        spec-version: v1
        layers:
          - file: {path: /a, contents: x, source: ./app.txt}
        """,
        "vinci.yaml:3:35: layers[0].file: give either 'contents' or 'source', not both",
    ),
    Case(
        "import-oci-empty",
        """
        spec-version: v1
        layers:
          - import-oci:
        """,
        "vinci.yaml:3:16: layers[0].import-oci: needs a ref (e.g. docker.io/library/busybox@sha256:…) or a mapping, found nothing",
    ),
    # -- Values of the wrong type
    Case(
        "type-entrypoint-string",
        """
        spec-version: v1
        config:
          entrypoint: /app --serve
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:3:15: config.entrypoint: expected a list of strings (exec form, e.g. [/bin/app, --flag]), found the string '/app --serve'",
    ),
    Case(
        "type-env-list",
        """
        spec-version: v1
        config:
          env: [A=b]
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:3:8: config.env: expected a mapping of strings, found a list; write `A: b` under env:, not `- A=b`",
    ),
    Case(
        "type-env-null-value",
        """
        spec-version: v1
        config:
          env:
            HOME:
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:4:10: config.env.HOME: expected a string, found nothing",
    ),
    Case(
        "type-uid-string",
        """
        spec-version: v1
        layers:
          - file: {path: /a, contents: x, uid: "1000"}
        """,
        "vinci.yaml:3:40: layers[0].file.uid: expected a whole number, found the string '1000'",
    ),
    Case(
        "type-uid-negative",
        """
        spec-version: v1
        layers:
          - file: {path: /a, contents: x, uid: -1}
        """,
        "vinci.yaml:3:40: layers[0].file.uid: -1 is out of range (0..4294967295)",
    ),
    Case(
        "type-inherit-config",
        """
        spec-version: v1
        layers:
          - import: {path: ./base, inherit-config: maybe}
        """,
        "vinci.yaml:3:44: layers[0].import.inherit-config: expected true or false, found the string 'maybe'",
    ),
    Case(
        "type-layers-mapping",
        """
        spec-version: v1
        layers:
          file: {path: /a, contents: x}
        """,
        "vinci.yaml:3:3: layers: expected a list of layers, found a mapping",
    ),
    Case(
        "type-volumes-string",
        """
        spec-version: v1
        config:
          volumes: /data
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:3:12: config.volumes: expected a list of paths (write [/data]), found the string '/data'",
    ),
    Case(
        "type-contents-list",
        """
        spec-version: v1
        layers:
          - file: {path: /a, contents: [x]}
        """,
        "vinci.yaml:3:32: layers[0].file.contents: expected a string, found a list",
    ),
    Case(
        "type-combined-mapping",
        """
        spec-version: v1
        layers:
          - combined: {file: {path: /a, contents: x}}
        """,
        "vinci.yaml:3:15: layers[0].combined: expected a list of file, directory, symlink items, found a mapping",
    ),
    Case(
        "type-layer-string",
        """
        spec-version: v1
        layers:
          - /etc/passwd
        """,
        "vinci.yaml:3:5: layers[0]: expected one of file, directory, symlink, combined, import, import-oci, tar; found the string '/etc/passwd'",
    ),
    # -- Modes: octal digits as written, at most 07777
    Case(
        "mode-0999",
        """
        spec-version: v1
        layers:
          - file: {path: /a, contents: x}
          - file:
              path: /b
              mode: 0999
              contents: x
        """,
        "vinci.yaml:6:13: layers[1].file.mode: 0999 is not a valid mode (octal digits 0-7, at most 07777)",
    ),
    Case(
        "mode-too-big",
        """
        spec-version: v1
        layers:
          - file: {path: /a, contents: x, mode: 17777}
        """,
        "vinci.yaml:3:41: layers[0].file.mode: 17777 is not a valid mode (octal digits 0-7, at most 07777)",
    ),
    Case(
        "mode-symbolic",
        """
        spec-version: v1
        layers:
          - file: {path: /a, contents: x, mode: rw-r--r--}
        """,
        "vinci.yaml:3:41: layers[0].file.mode: rw-r--r-- is not a valid mode (octal digits 0-7, at most 07777)",
    ),
    Case(
        "mode-quoted-bad",
        """
        spec-version: v1
        layers:
          - file: {path: /a, contents: x, mode: "0o8"}
        """,
        "vinci.yaml:3:41: layers[0].file.mode: '0o8' is not a valid mode (octal digits 0-7, at most 07777)",
    ),
    Case(
        "mode-empty",
        """
        spec-version: v1
        layers:
          - file: {path: /a, contents: x, mode: }
        """,
        "vinci.yaml:3:40: layers[0].file.mode: expected an octal mode like 0644, found nothing",
    ),
    Case(
        "mode-dir-mode",
        """
        spec-version: v1
        layers:
          - directory: {path: /srv, dir-mode: 0x1ed, source: .}
        """,
        "vinci.yaml:3:39: layers[0].directory.dir-mode: 0x1ed is not a valid mode (octal digits 0-7, at most 07777)",
    ),
    # -- Image paths: absolute, no '..'
    Case(
        "path-relative",
        """
        spec-version: v1
        layers:
          - file: {path: etc/motd, contents: x}
        """,
        "vinci.yaml:3:18: layers[0].file.path: image path 'etc/motd' must be absolute (start with /)",
    ),
    Case(
        "path-dotdot",
        """
        spec-version: v1
        layers:
          - file: {path: /etc/../../x, contents: x}
        """,
        "vinci.yaml:3:18: layers[0].file.path: image path '/etc/../../x' must not contain '..'",
    ),
    Case(
        "path-root-file",
        """
        spec-version: v1
        layers:
          - file: {path: /, contents: x}
        """,
        "vinci.yaml:3:18: layers[0].file.path: a file cannot be at /",
    ),
    Case(
        "path-working-dir-relative",
        """
        spec-version: v1
        config:
          working-dir: srv
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:3:16: config.working-dir: image path 'srv' must be absolute (start with /)",
    ),
    Case(
        "path-volume-dotdot",
        """
        spec-version: v1
        config:
          volumes: [/data, /x/..]
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:3:20: config.volumes[1]: image path '/x/..' must not contain '..'",
    ),
    Case(
        "path-symlink-relative",
        """
        spec-version: v1
        layers:
          - symlink: {path: bin/sh, target: busybox}
        """,
        "vinci.yaml:3:21: layers[0].symlink.path: image path 'bin/sh' must be absolute (start with /)",
    ),
    # -- Host sources: missing, or not what the key needs (unreadable as root: see below)
    Case(
        "source-missing",
        """
        spec-version: v1
        layers:
          - file: {path: /a, source: ./nope.txt}
        """,
        "vinci.yaml:3:30: layers[0].file.source: './nope.txt' does not exist (resolved to {dir}/nope.txt)",
    ),
    Case(
        "source-missing-absolute",
        """
        spec-version: v1
        layers:
          - file: {path: /a, source: /nonexistent/vinci/app}
        """,
        "vinci.yaml:3:30: layers[0].file.source: '/nonexistent/vinci/app' does not exist",
    ),
    Case(
        "source-is-directory",
        """
        spec-version: v1
        layers:
          - file: {path: /a, source: ./site}
        """,
        "vinci.yaml:3:30: layers[0].file.source: './site' is a directory, not a regular file (copy a tree with a `directory` layer)",
    ),
    Case(
        "source-dangling-symlink",
        """
        spec-version: v1
        layers:
          - file: {path: /a, source: ./dangling}
        """,
        "vinci.yaml:3:30: layers[0].file.source: './dangling' is a symlink to 'missing-target', which does not exist",
    ),
    Case(
        "source-fifo",
        """
        spec-version: v1
        layers:
          - file: {path: /a, source: ./fifo}
        """,
        "vinci.yaml:3:30: layers[0].file.source: './fifo' is a FIFO, not a regular file",
    ),
    Case(
        "source-dir-is-file",
        """
        spec-version: v1
        layers:
          - directory: {path: /srv, source: ./app.txt}
        """,
        "vinci.yaml:3:37: layers[0].directory.source: './app.txt' is a regular file, not a directory",
    ),
    Case(
        "source-import-missing",
        """
        spec-version: v1
        layers:
          - import: ./base.oci
        """,
        "vinci.yaml:3:13: layers[0].import: './base.oci' does not exist (resolved to {dir}/base.oci)",
    ),
    Case(
        "source-import-empty",
        """
        spec-version: v1
        layers:
          - import: ''
        """,
        "vinci.yaml:3:13: layers[0].import: '' is not a path",
    ),
    # -- Duplicates: one layer holds each path once; YAML keys are unique
    Case(
        "dup-combined-path",
        """
        spec-version: v1
        layers:
          - combined:
              - file: {path: /etc/motd, contents: a}
              - file: {path: /etc//motd, contents: b}
        """,
        "vinci.yaml:5:22: layers[0].combined[1].file.path: /etc/motd is already in this layer (from layers[0].combined[0].file at vinci.yaml:4:9)",
    ),
    Case(
        "dup-below-file",
        """
        spec-version: v1
        layers:
          - combined:
              - file: {path: /opt, contents: a}
              - directory: {path: /opt/app}
        """,
        "vinci.yaml:5:27: layers[0].combined[1].directory.path: /opt/app is below /opt, which is a file in this layer (from layers[0].combined[0].file at vinci.yaml:4:9)",
    ),
    Case(
        "dup-below-symlink",
        """
        spec-version: v1
        layers:
          - combined:
              - symlink: {path: /lib, target: usr/lib}
              - file: {path: /lib/x.so, contents: a}
        """,
        "vinci.yaml:5:22: layers[0].combined[1].file.path: /lib/x.so is below /lib, which is a symlink in this layer (from layers[0].combined[0].symlink at vinci.yaml:4:9)",
    ),
    Case(
        "dup-yaml-key",
        """
        spec-version: v1
        layers:
          - file:
              path: /a
              contents: x
              path: /b
        """,
        "vinci.yaml:6:7: layers[0].file: duplicate key 'path' (first at vinci.yaml:4:7)",
    ),
    Case(
        "dup-env-key",
        """
        spec-version: v1
        config:
          env:
            A: x
            A: y
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:5:5: config.env: duplicate key 'A' (first at vinci.yaml:4:5)",
    ),
    Case(
        "dup-port",
        """
        spec-version: v1
        config:
          exposed-ports: [80, 80/tcp]
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:3:23: config.exposed-ports[1]: 80/tcp is already listed (at vinci.yaml:3:19)",
    ),
    # -- Imports and references: import-oci must be pinned by digest
    Case(
        "import-oci-tag",
        """
        spec-version: v1
        layers:
          - import-oci: docker.io/library/busybox:1.36
        """,
        "vinci.yaml:3:17: layers[0].import-oci: 'docker.io/library/busybox:1.36' is not pinned by digest; run `vinci resolve docker.io/library/busybox:1.36` and write the repository@sha256:… it prints",
    ),
    Case(
        "import-oci-tag-mapping",
        """
        spec-version: v1
        layers:
          - import-oci: {ref: busybox, inherit-config: true}
        """,
        "vinci.yaml:3:23: layers[0].import-oci.ref: 'busybox' is not pinned by digest; run `vinci resolve busybox` and write the repository@sha256:… it prints",
    ),
    Case(
        "import-oci-bad-digest",
        """
        spec-version: v1
        layers:
          - import-oci: busybox@sha256:1234
        """,
        "vinci.yaml:3:17: layers[0].import-oci: 'busybox@sha256:1234': 'sha256:1234' is not a digest (sha256: and 64 lowercase hex digits)",
    ),
    Case(
        "import-in-combined",
        """
        spec-version: v1
        layers:
          - combined:
              - import: ./base
        """,
        "vinci.yaml:4:9: layers[0].combined[0]: 'import' cannot be used here (only file, directory, symlink)",
    ),
    Case(
        "image-with-digest",
        """
        spec-version: v1
        image: example.com/app@sha256:abababababababababababababababababababababababababababababababab
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:2:8: image: 'example.com/app@sha256:abababababababababababababababababababababababababababababababab' names a digest; give a repository and tag",
    ),
    Case(
        "image-uppercase",
        """
        spec-version: v1
        image: example.com/MyApp:1
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:2:8: image: 'example.com/MyApp:1': repository part 'MyApp' must be lowercase letters, digits and separators (. _ -)",
    ),
    # -- Other values
    Case(
        "spec-version-v2",
        """
        spec-version: v2
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:1:15: spec-version: 'v2' is not supported (only 'v1')",
    ),
    Case(
        "platform-bad",
        """
        spec-version: v1
        platform: amd64
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:2:11: platform: not a platform: 'amd64' (expected os/arch or os/arch/variant)",
    ),
    Case(
        "port-bad",
        """
        spec-version: v1
        config:
          exposed-ports: [8080, 70000/tcp]
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:3:25: config.exposed-ports[1]: '70000/tcp' is not a port (1-65535, optionally /tcp, /udp or /sctp)",
    ),
    Case(
        "env-name-bad",
        """
        spec-version: v1
        config:
          env: {"A=B": x}
        layers: [{file: {path: /a, contents: x}}]
        """,
        "vinci.yaml:3:9: config.env: 'A=B' is not a valid variable name",
    ),
    Case(
        "glob-dotdot",
        """
        spec-version: v1
        layers:
          - directory: {path: /srv, source: ./site, include: ['../secret/*']}
        """,
        "vinci.yaml:3:55: layers[0].directory.include[0]: '../secret/*' must not contain '..' (globs only match inside the source)",
    ),
    Case(
        "glob-absolute",
        """
        spec-version: v1
        layers:
          - directory: {path: /srv, source: ./site, exclude: [/etc]}
        """,
        "vinci.yaml:3:55: layers[0].directory.exclude[0]: '/etc' must be relative to the source (no leading /)",
    ),
    Case(
        "glob-bad-class",
        """
        spec-version: v1
        layers:
          - directory: {path: /srv, source: ./site, include: ['[z-a].txt']}
        """,
        "vinci.yaml:3:55: layers[0].directory.include[0]: '[z-a].txt' is not a valid glob: bad character range z-a",
    ),
    Case(
        "glob-without-source",
        """
        spec-version: v1
        layers:
          - directory: {path: /srv, include: ['*.html']}
        """,
        "vinci.yaml:3:29: layers[0].directory.include: only applies with 'source'",
    ),
    Case(
        "layer-two-kinds",
        """
        spec-version: v1
        layers:
          - file: {path: /a, contents: x}
            symlink: {path: /b, target: a}
        """,
        "vinci.yaml:4:5: layers[0]: a layer has exactly one kind, found 'file' and 'symlink' (start each layer with its own '- ')",
    ),
    Case(
        "layer-misindented",
        """
        spec-version: v1
        layers:
          - file:
              path: /a
              contents: x
            mode: 0644
        """,
        "vinci.yaml:6:5: layers[0]: 'mode' belongs inside 'file'; indent it two spaces deeper than file:",
    ),
    Case(
        "combined-empty",
        """
        spec-version: v1
        layers:
          - combined: []
        """,
        "vinci.yaml:3:15: layers[0].combined: needs at least one item",
    ),
    Case(
        "symlink-empty-target",
        """
        spec-version: v1
        layers:
          - symlink: {path: /x, target: ''}
        """,
        "vinci.yaml:3:33: layers[0].symlink.target: must be a non-empty path",
    ),
]


def _workdir(d: Path, text: str | bytes) -> Path:
    """A spec directory with the sources the cases refer to."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "app.txt").write_text("hello\n")
    (d / "site").mkdir()
    (d / "site" / "index.html").write_text("<h1>hi</h1>\n")
    (d / "base").mkdir()
    os.symlink("missing-target", d / "dangling")
    os.mkfifo(d / "fifo")
    spec = d / "vinci.yaml"
    if isinstance(text, bytes):
        spec.write_bytes(text)
    else:
        spec.write_text(text)
    return d


def _assert_spec_error(result: Run, expected: list[str]) -> None:
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == expected
    assert result.stderr.endswith("\n")
    assert result.stdout == ""
    assert result.returncode == 2


def test_corpus_is_large_and_distinct() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({c.text for c in CASES}) == len(CASES)
    # Every case is one problem on one line: the multi-problem spec is tested on its own.
    assert all("\n" not in c.expected for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validate_reports_the_one_line(case: Case, tmp_path: Path) -> None:
    d = _workdir(tmp_path / "spec", case.text)
    result = run_vinci("validate", "vinci.yaml", cwd=d, check=False)
    _assert_spec_error(result, [case.expected.format(dir=d)])


BUILD_IDS = [
    "yaml-unclosed-quote",
    "unknown-config-alias",
    "mode-0999",
    "path-dotdot",
    "source-dangling-symlink",
    "dup-combined-path",
    "import-oci-tag",
]


@pytest.mark.parametrize("case", [c for c in CASES if c.id in BUILD_IDS], ids=lambda c: str(c.id))
def test_build_reports_the_same_line_and_writes_nothing(case: Case, tmp_path: Path) -> None:
    d = _workdir(tmp_path / "spec", case.text)
    out = tmp_path / "out.oci"
    cache = tmp_path / "cache"
    result = run_vinci(
        "build", "vinci.yaml", "--output", f"oci:{out}", "--cache-dir", cache, cwd=d, check=False
    )
    _assert_spec_error(result, [case.expected.format(dir=d)])
    assert not out.exists()


def test_build_ids_are_in_the_corpus() -> None:
    assert set(BUILD_IDS) <= {c.id for c in CASES}


def test_duplicate_from_a_directory_tree_is_found_by_build(tmp_path: Path) -> None:
    # Which paths a directory source brings is only known when it is walked, so this one is
    # found by `build` (at plan time), still as a positioned spec error with exit code 2.
    text = textwrap.dedent(
        """\
        spec-version: v1
        layers:
          - combined:
              - directory: {path: /srv, source: ./site}
              - file: {path: /srv/index.html, contents: x}
        """
    )
    d = _workdir(tmp_path / "spec", text)
    assert run_vinci("validate", "vinci.yaml", cwd=d, check=False).returncode == 0
    result = run_vinci(
        "build",
        "vinci.yaml",
        "--output",
        f"oci:{tmp_path / 'out.oci'}",
        "--cache-dir",
        tmp_path / "cache",
        cwd=d,
        check=False,
    )
    _assert_spec_error(
        result,
        [
            "vinci.yaml:5:9: layers[0].combined[1].file: /srv/index.html is already in this "
            "layer (from layers[0].combined[0].directory at vinci.yaml:4:9)"
        ],
    )


MANY_PROBLEMS = """\
spec-version: v2
imag: example.com/app
config:
  entrypoint: /app --serve
  env: {"A=B": x, PATH: /bin}
  exposed-ports: [80, 0]
layers:
  - file: {path: etc/motd, mode: 0999, contents: hi}
  - fiel: {path: /a}
  - file:
      path: /x/../y
      source: ./nope
      uid: -5
  - directory: {path: /srv, source: ./app.txt, include: ['../up']}
  - combined:
      - file: {path: /dup, contents: a}
      - symlink: {path: /dup, target: a}
  - import-oci: busybox:latest
"""

MANY_EXPECTED = [
    "vinci.yaml:1:15: spec-version: 'v2' is not supported (only 'v1')",
    "vinci.yaml:2:1: spec: unknown key 'imag'; did you mean 'image'?",
    "vinci.yaml:4:15: config.entrypoint: expected a list of strings (exec form, e.g. "
    "[/bin/app, --flag]), found the string '/app --serve'",
    "vinci.yaml:5:9: config.env: 'A=B' is not a valid variable name",
    "vinci.yaml:6:23: config.exposed-ports[1]: '0' is not a port (1-65535, optionally /tcp, "
    "/udp or /sctp)",
    "vinci.yaml:8:18: layers[0].file.path: image path 'etc/motd' must be absolute (start with /)",
    "vinci.yaml:8:34: layers[0].file.mode: 0999 is not a valid mode (octal digits 0-7, at most "
    "07777)",
    "vinci.yaml:9:5: layers[1]: unknown layer kind 'fiel'; did you mean 'file'?",
    "vinci.yaml:11:13: layers[2].file.path: image path '/x/../y' must not contain '..'",
    "vinci.yaml:12:15: layers[2].file.source: './nope' does not exist (resolved to {dir}/nope)",
    "vinci.yaml:13:12: layers[2].file.uid: -5 is out of range (0..4294967295)",
    "vinci.yaml:14:37: layers[3].directory.source: './app.txt' is a regular file, not a directory",
    "vinci.yaml:14:58: layers[3].directory.include[0]: '../up' must not contain '..' (globs "
    "only match inside the source)",
    "vinci.yaml:17:25: layers[4].combined[1].symlink.path: /dup is already in this layer (from "
    "layers[4].combined[0].file at vinci.yaml:16:9)",
    "vinci.yaml:18:17: layers[5].import-oci: 'busybox:latest' is not pinned by digest; run "
    "`vinci resolve busybox:latest` and write the repository@sha256:… it prints",
]


@pytest.mark.parametrize("command", ["validate", "build"])
def test_every_problem_is_reported_at_once_in_file_order(command: str, tmp_path: Path) -> None:
    d = _workdir(tmp_path / "spec", MANY_PROBLEMS)
    args = ["--output", f"oci:{tmp_path / 'o'}", "--cache-dir", tmp_path / "c"]
    result = run_vinci(
        command, "vinci.yaml", *(args if command == "build" else []), cwd=d, check=False
    )
    _assert_spec_error(result, [line.format(dir=d) for line in MANY_EXPECTED])
    positions = [tuple(map(int, line.split(":")[1:3])) for line in result.stderr.splitlines()]
    assert positions == sorted(positions)


def test_spec_that_is_not_utf8(tmp_path: Path) -> None:
    d = _workdir(tmp_path / "spec", b"spec-version: v1\nimage: caf\xe9\nlayers: []\n")
    result = run_vinci("validate", "vinci.yaml", cwd=d, check=False)
    _assert_spec_error(result, ["vinci.yaml:2:11: spec is not valid UTF-8"])


def test_spec_that_does_not_exist(tmp_path: Path) -> None:
    result = run_vinci("validate", "missing.yaml", cwd=tmp_path, check=False)
    _assert_spec_error(result, ["missing.yaml:1:1: cannot read spec: No such file or directory"])


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A directory another user can enter (pytest's tmp_path is private to its owner)."""
    d = Path(tempfile.mkdtemp(prefix="vinci-unreadable-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d)


NOBODY = 65534


def test_unreadable_source(world_readable_dir: Path) -> None:
    """chmod 000 does not stop root from reading, and CI runs as root. Then the check runs
    vinci as the unprivileged user `nobody` (setpriv), for whom the mode does stop reading.
    Without setpriv, root cannot test this honestly and the test is skipped."""
    user = None
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root, where chmod 000 does not stop reading, without setpriv")
        user = NOBODY
    text = "spec-version: v1\nlayers:\n  - file: {path: /a, source: ./secret}\n"
    d = world_readable_dir
    (d / "vinci.yaml").write_text(text)
    (d / "vinci.yaml").chmod(0o644)
    secret = d / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(0)
    # The same spec with a readable source is fine: it is the mode that is refused.
    (d / "secret").chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    assert run_vinci("validate", "vinci.yaml", cwd=d, user=user, check=False).returncode == 0
    secret.chmod(0)
    result = run_vinci("validate", "vinci.yaml", cwd=d, user=user, check=False)
    _assert_spec_error(
        result,
        ["vinci.yaml:3:30: layers[0].file.source: './secret' is not readable (permission denied)"],
    )


def test_deeply_nested_yaml_is_an_error_not_a_crash(tmp_path: Path) -> None:
    # pyyaml's composer recurses once per level; running out of stack is still a spec error.
    d = _workdir(tmp_path / "spec", "spec-version: v1\nlayers: " + "[" * 5000 + "]" * 5000 + "\n")
    result = run_vinci("validate", "vinci.yaml", cwd=d, check=False)
    _assert_spec_error(result, ["vinci.yaml:1:1: invalid YAML: nested too deeply"])


# Keys the loader knows, plus one it does not, so random documents reach deep into the tree.
_NAMES = sorted(
    {f.name for f in (*F.TOP, *F.CONFIG)}
    | {f.name for fields, _, _ in F.LAYER_KINDS.values() for f in fields}
    | set(F.LAYER_KINDS)
    | {"x"}
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**33), 2**33),
    st.floats(allow_nan=False),
    st.sampled_from(["", "v1", "/a", "../x", "0644", "0999", "*", "[", "/", "~", "linux/amd64"]),
    st.sampled_from([f"busybox@sha256:{'a' * 64}", "busybox:1", "80/tcp", "a/../b", "\n"]),
    st.text(max_size=8),
)
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(_NAMES), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=_DOCUMENTS, flow=st.booleans(), versioned=st.booleans())
def test_any_document_gives_a_spec_or_one_line_problems(
    document: object, flow: bool, versioned: bool
) -> None:
    if versioned and isinstance(document, dict):
        document = {"spec-version": "v1", "layers": [], **document}
    text = yaml.safe_dump(document, default_flow_style=flow, allow_unicode=True).encode()
    try:
        load_spec_text(text, Path("/nonexistent/vinci.yaml"), "vinci.yaml")
    except SpecError as e:
        assert e.problems
        lines = text.decode().splitlines() or [""]
        for p in e.problems:
            assert "\n" not in p.message and "\r" not in p.message
            assert 1 <= p.position.line <= len(lines) + 1
            assert p.position.column >= 1
