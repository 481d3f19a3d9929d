"""The command palette (ctrl+p): every workbench action as "area: action", as data.

Each entry names an action of the app, so the palette, the key bindings and the tests all go
through the same `action_*` methods.
"""

from __future__ import annotations

PANES = ("spec", "layers", "details", "contents", "cache", "log", "editor", "changes")  # 1..8

COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("build: build now", "Cancel any running build and build the spec", "build"),
    ("spec: open…", "Open another spec file (or a directory holding vinci.yaml)", "open_spec"),
    (
        "spec: edit in $EDITOR",
        "Open $VISUAL or $EDITOR at the focused node, problem or line; rebuild on return",
        "open_editor",
    ),
    ("build: cancel", "Cancel the running build", "cancel_build"),
    ("watch: toggle", "Rebuild on every change to the spec or its sources", "toggle_watch"),
    ("digest: copy layer digest", "Copy the selected layer's digest (OSC 52)", "copy_digest"),
    ("digest: copy manifest digest", "Copy the image's manifest digest (OSC 52)", "copy_manifest"),
    ("contents: sort by name or size", "Toggle the file order in Contents", "contents_sort"),
    (
        "contents: the layer's files",
        "The selected layer, marked added/modified/removed against the layers below",
        "contents_view('layer')",
    ),
    (
        "contents: merged image",
        "Every layer applied, whiteouts honoured, each file's layer and host file",
        "contents_view('merged')",
    ),
    (
        "contents: largest files",
        "The largest files of the merged image",
        "contents_view('largest')",
    ),
    (
        "contents: wasted bytes",
        "Every copy a later layer shadows or removes, naming that layer; the efficiency",
        "contents_view('wasted')",
    ),
    ("log: only matching lines", "Toggle highlight / only-matching lines", "log_only_matching"),
    ("cache: refresh", "List the cache again", "cache_refresh"),
    (
        "cache: verify",
        "Re-hash every blob in the cache; offers to remove the corrupt ones",
        "cache_verify",
    ),
    (
        "cache: garbage-collect…",
        "Remove what recent builds do not use: asks for keep-days and a size budget, shows "
        "what would go, then asks",
        "cache_collect",
    ),
)


def palette_commands(can_push: object) -> list[tuple[str, str, str]]:
    """(title, help, action) for the palette; pushing only when the spec names an image."""
    commands = list(COMMANDS)
    if can_push:
        commands.append(("push: push image", "Push the built image to the spec's image", "push"))
    commands.extend(
        (f"view: {name}", f"Show and focus the {name} pane", f"focus_pane('{name}')")
        for name in PANES
    )
    return commands
