"""The workbench on a multi-platform spec: it builds and shows one platform's image, `P`
switches to the next platform, and it neither writes the layout (where `vinci build` writes
the index) nor pushes one platform's image to the spec's tag."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tuikit import wait_built

from engine.oci.descriptor import Platform
from vinci_tui.app import Workbench

pytestmark = pytest.mark.anyio

SPEC = """\
spec-version: v1
image: localhost/vinci/two:1
platforms: [linux/amd64, linux/arm64]
layers:
  - file: {path: /etc/motd, contents: hi}
  - file:
      path: /etc/arch
      source: {linux/amd64: ./amd64.txt, linux/arm64: ./arm64.txt}
"""


async def test_platform_key_switches_the_image_shown(
    project: Path, app_factory: Callable[..., Workbench]
) -> None:
    (project / "vinci.yaml").write_text(SPEC)
    (project / "amd64.txt").write_text("amd64\n")
    (project / "arm64.txt").write_text("arm64\n")
    app = app_factory()
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_built(pilot, app)
        assert app.result is not None
        assert app.result.spec.platform == Platform("linux", "amd64")
        first = app.result.manifest.digest
        await pilot.press("P")
        await wait_built(pilot, app, generation=2)
        assert app.result.spec.platform == Platform("linux", "arm64")
        assert app.result.manifest.digest != first
        # The motd layer is the same for both platforms: the arm64 build found it.
        assert app.result.layers[0].cache_hit
        await pilot.press("p")
        await pilot.pause()
        assert not app.tasks.busy("push")
    assert not (project / "vinci.oci").exists()
