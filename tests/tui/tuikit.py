"""Helpers for the workbench tests: the project they build, the app factory, waiting for
observable states (never sleeping), and a builder that can be caught mid-build.

Every test runs in its own directory with SOURCE_DATE_EPOCH unset and no user key file, so
digests, paths and pixels are the same on every run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

import engine
from engine import BuildOptions, CancelToken
from engine.builder.result import BuildResult
from engine.events import Event, EventSink, LayerStarted
from engine.spec.model import Spec
from vinci_tui.app import Workbench
from vinci_tui.clock import FrozenClock
from vinci_tui.runner import THREAD_PREFIX

SPEC = """\
spec-version: v1
image: registry.example/vinci/workbench:v1
config:
  entrypoint: [/app/run.sh]
  env:
    GREETING: hello
layers:
  - file:
      path: /app/run.sh
      source: ./run.sh
      mode: 0755
  - directory:
      path: /srv/site
      source: ./site
  - combined:
      - symlink: {path: /srv/current, target: /srv/site}
      - file: {path: /etc/motd, contents: "welcome to the workbench\\n"}
"""

RUN_SH = "#!/bin/sh\necho hello from the workbench\n"
SITE = {
    "index.html": "<h1>hello</h1>\n" * 40,
    "about.html": "<p>about</p>\n",
    "assets/app.js": "console.log('hi');\n" * 200,
    "assets/style.css": "body { color: black; }\n" * 10,
}


def make_app(project: Path, options: BuildOptions | None = None, **kwargs: Any) -> Workbench:
    """The workbench on `project`, deterministic: one job, frozen clock, no watch, no blink."""
    options = options or BuildOptions(jobs=1, cache_dir=Path("cache"))
    settings: dict[str, Any] = {
        "watch": False,
        "clock": FrozenClock(),
        "cursor_blink": False,
        "keymap_path": project / "keys.toml",
    }
    settings.update(kwargs)
    app = Workbench(Path("vinci.yaml"), options, **settings)
    # Tab underlines animate; Pilot waits for every animation after each key press.
    app.animation_level = "none"
    return app


async def wait_for(
    pilot: Pilot[Any], condition: Callable[[], bool], timeout: float = 15.0, what: str = ""
) -> None:
    """Let the app run until `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.02)


def build_done(app: Workbench, generation: int = 1) -> Callable[[], bool]:
    """True once build `generation` has finished and its result is on screen."""

    def done() -> bool:
        return (
            app.runner.generation >= generation
            and not app.building
            and app.model.status in ("built", "failed", "cancelled")
            and (app.result is not None or app.model.status != "built")
        )

    return done


async def wait_built(pilot: Pilot[Any], app: Workbench, generation: int = 1) -> None:
    await wait_for(pilot, build_done(app, generation), what=f"build {generation}")
    await pilot.pause()


def vinci_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


class GatedBuild:
    """engine.build, except that the build stops at a layer's start until it is cancelled or
    opened.

    It lets a test catch a build in the middle without racing it: the engine runs as usual,
    only its event sink waits.
    """

    def __init__(self, gate_layer: int = 1) -> None:
        self.gate_layer = gate_layer
        self.reached = threading.Event()
        self.opened = threading.Event()

    def __call__(
        self,
        spec: Spec,
        options: BuildOptions | None = None,
        *,
        sink: EventSink = lambda _e: None,
        cancel: CancelToken | None = None,
    ) -> BuildResult:
        def gated(event: Event) -> None:
            sink(event)
            if isinstance(event, LayerStarted) and event.index == self.gate_layer:
                self.reached.set()
                while not self.opened.is_set() and not (cancel is not None and cancel.cancelled):
                    time.sleep(0.005)

        return engine.build(spec, options, sink=gated, cancel=cancel)
