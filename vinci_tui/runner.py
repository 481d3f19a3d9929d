"""Worker threads: the build, and short background tasks (a layer's files, the cache).

Builds run one at a time. Starting a build cancels the running one through its CancelToken
(the engine checks it between chunks) and the new thread first waits for the old one to stop,
so two builds never compete for the CPU and the last one started is the one that finishes.

Every thread is named `vinci-…` and tracked, so quitting can cancel and join them all and a
test can check that none is left behind.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from textual.message import Message

from engine import (
    BuildCancelled,
    BuildOptions,
    CancelToken,
    Platform,
    SpecError,
    VinciError,
    images_of,
    load_spec,
    open_image,
    write,
)
from engine.builder.result import BuildResult, IndexResult
from engine.cache.store import BlobStore
from engine.compare import ImageDiff, diff_images, diff_results, render_lines
from engine.errors import describe_os_error
from engine.events import EventSink, Log
from engine.output import OutputTarget, default_output
from engine.sources.image import OpenedImage
from engine.spec.model import Spec
from vinci_tui.changes import SpecLinks, change_rows, inline_paths
from vinci_tui.messages import (
    BuildCompleted,
    BuildEnded,
    ChangesFound,
    EventBridge,
    LogLine,
    Post,
    SpecBroken,
    SpecLoaded,
    TaskFinished,
)

THREAD_PREFIX = "vinci-"


class BuildFunction(Protocol):
    """How the workbench builds: engine.build, or (in tests) a wrapper around it."""

    def __call__(
        self,
        spec: Spec,
        options: BuildOptions | None = None,
        *,
        sink: EventSink = ...,
        cancel: CancelToken | None = None,
    ) -> BuildResult | IndexResult: ...


class BuildRunner:
    """Runs builds of one spec file in worker threads, posting their progress as messages."""

    def __init__(
        self,
        options: BuildOptions,
        store: BlobStore,
        post: Post,
        build: BuildFunction,
        write_layout: bool = True,
    ) -> None:
        self.options = options
        self.store = store
        self._post = post
        self._build_image = build
        self._write_layout = write_layout
        self._previous: BuildResult | None = None
        # Of a multi-platform spec, the platform whose image is built and shown (None: the
        # spec's first); the app's platform key sets it.
        self.platform: Platform | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._token: CancelToken | None = None
        self.generation = 0

    def start(self, spec_path: Path) -> int:
        """Cancel the running build (if any) and start a new one; return its generation."""
        with self._lock:
            if self._token is not None:
                self._token.cancel()
            self.generation += 1
            generation = self.generation
            token = CancelToken()
            thread = threading.Thread(
                target=self._run,
                args=(generation, token, self._thread, spec_path),
                name=f"{THREAD_PREFIX}build-{generation}",
            )
            self._thread, self._token = thread, token
            thread.start()
        return generation

    @property
    def busy(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def cancel(self) -> None:
        with self._lock:
            if self._token is not None:
                self._token.cancel()

    def thread(self) -> threading.Thread | None:
        return self._thread

    def _run(
        self,
        generation: int,
        token: CancelToken,
        previous: threading.Thread | None,
        spec_path: Path,
    ) -> None:
        try:
            if previous is not None:
                previous.join()
            if token.cancelled:
                return
            self._build(generation, token, spec_path)
        except OSError as e:
            # A full disk, a directory that cannot be written: one line that names the path
            # and says what to do, not a repr.
            self._send(LogLine("error", f"build {generation}: {describe_os_error(e)}"))
        except Exception as e:
            # A traceback printed from a thread would scribble over the screen: log it.
            self._send(LogLine("error", f"internal error in build {generation}: {e!r}"))
        finally:
            self._send(BuildEnded(generation))

    def _build(self, generation: int, token: CancelToken, spec_path: Path) -> None:
        try:
            spec = load_spec(spec_path)
        except SpecError as e:
            self._send(SpecBroken(generation, e))
            return
        self._send(SpecLoaded(generation, spec))
        sink = EventBridge(self._post, generation)
        # The image `vinci build` makes, written where it writes it (unless told otherwise).
        target = default_output(spec.path) if self._write_layout else None
        if spec.is_index:
            # One platform's image is built and shown (the platform key switches), and the
            # layout, where `vinci build` writes the index, is left alone.
            shown = next((p for p in spec.platforms if p == self.platform), spec.platforms[0])
            sink(
                Log(
                    "info",
                    f"showing {shown} of {len(spec.platforms)} platforms (P switches); "
                    "`vinci build` writes the index",
                )
            )
            spec = spec.for_platform(shown)
            target = None
            if self._previous is not None and self._previous.spec.platform != shown:
                self._previous = None  # another platform's image: nothing to compare with
        # The first build of a session is compared with the image a previous session (or
        # `vinci build`) left in that layout: it is opened before the build, which is then
        # made into the cache only, compared, and only then written over it.
        earlier = None
        if self._previous is None and target is not None and target.path.is_dir():
            earlier = self._open_earlier(target.path)
        output = str(target) if target is not None and earlier is None else None
        options = replace(self.options, output=output)
        try:
            result = self._build_and_compare(spec, options, sink, token, earlier, target)
        except SpecError as e:
            # Found while planning (e.g. two items of a combined layer at one path).
            self._send(SpecBroken(generation, e))
            return
        except BuildCancelled:
            return  # the engine has reported it as BuildFailed
        except VinciError as e:
            # Reported as BuildFailed by the engine, unless it failed before building (a
            # lock it cannot read, an output it cannot write): say so in the log.
            self._send(LogLine("error", str(e)))
            return
        except Exception:
            return  # reported as BuildFailed("internal error: …") by the engine
        if target is not None:
            sink(Log("info", f"wrote {target.kind}:{_relative(target.path)}"))
        if earlier is None:
            self._explain(self._previous, result, token)
        self._previous = result
        self._send(BuildCompleted(generation, result))

    def _open_earlier(self, layout: Path) -> OpenedImage | None:
        try:
            return open_image(f"oci:{layout}", cache_dir=self.options.cache_dir)
        except (VinciError, OSError) as e:
            self._send(
                LogLine("info", f"no earlier image to compare with in {_relative(layout)}: {e}")
            )
            return None

    def _build_and_compare(
        self,
        spec: Spec,
        options: BuildOptions,
        sink: EventBridge,
        token: CancelToken,
        earlier: OpenedImage | None,
        target: OutputTarget | None,
    ) -> BuildResult:
        if earlier is None:
            return images_of(self._build_image(spec, options, sink=sink, cancel=token))[0]
        with earlier:
            result = images_of(self._build_image(spec, options, sink=sink, cancel=token))[0]
            where = _relative(target.path) if target is not None else "the layout"
            since = f"{where} (the last build before this session)"
            try:
                with result.image(self.store) as now:
                    diff = diff_images(earlier, now, cancel=token, text_paths=inline_paths(result))
                self._report(diff, since, earlier.ref.manifest or "", result)
            except (VinciError, OSError) as e:
                self._send(LogLine("warning", f"cannot explain the change: {e}"))
        if target is not None:
            write(result, str(target), cache_dir=self.options.cache_dir)
        return result

    def _report(self, diff: ImageDiff, since: str, before: str, result: BuildResult) -> None:
        lines = render_lines(diff, unchanged=False)
        text = "".join(line.text + "\n" for line in lines)
        try:
            links: SpecLinks | None = SpecLinks(result.spec, result)
        except (VinciError, OSError):
            links = None  # the changes are still shown, only without their spec lines
        rows = tuple(change_rows(lines, links))
        self._send(ChangesFound(self.generation, since, text, diff.identical, rows))
        after = str(result.manifest.digest)
        if diff.identical:
            return
        self._send(
            LogLine(
                "diff",
                f"changed since the last build: {_short(before)} -> {_short(after)}",
            )
        )
        for line in text.splitlines()[2:]:
            self._send(LogLine("diff", line))

    def _explain(self, before: BuildResult | None, after: BuildResult, token: CancelToken) -> None:
        """After a rebuild that changed the image, say what changed and why (vinci diff)."""
        if before is None:
            return
        try:
            diff = diff_results(
                before, after, self.store, cancel=token, text_paths=inline_paths(after)
            )
        except (VinciError, OSError) as e:
            self._send(LogLine("warning", f"cannot explain the change: {e}"))
            return
        self._report(
            diff,
            f"the previous build in this session ({before.manifest.digest.short})",
            str(before.manifest.digest),
            after,
        )

    def _send(self, message: Message) -> None:
        # RuntimeError: the app's loop has closed under a build that is being cancelled.
        with contextlib.suppress(RuntimeError):
            self._post(message)


class TaskRunner:
    """Short background jobs in named threads; starting one in a group cancels the group's
    previous one, whose result then arrives stale (with an older ticket) and is ignored."""

    def __init__(self, post: Post) -> None:
        self._post = post
        self._lock = threading.Lock()
        self._tickets: dict[str, int] = {}
        self._tokens: dict[str, CancelToken] = {}
        self._threads: list[threading.Thread] = []

    def start(self, group: str, work: Callable[[CancelToken], object]) -> int:
        with self._lock:
            old = self._tokens.get(group)
            if old is not None:
                old.cancel()
            ticket = self._tickets.get(group, 0) + 1
            self._tickets[group] = ticket
            token = CancelToken()
            self._tokens[group] = token
            thread = threading.Thread(
                target=self._run,
                args=(group, ticket, token, work),
                name=f"{THREAD_PREFIX}{group}-{ticket}",
            )
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()
        return ticket

    def cancel(self, group: str) -> None:
        with self._lock:
            token = self._tokens.get(group)
            if token is not None:
                token.cancel()

    def current(self, group: str) -> int:
        return self._tickets.get(group, 0)

    def busy(self, group: str) -> bool:
        prefix = f"{THREAD_PREFIX}{group}-"
        return any(t.is_alive() and t.name.startswith(prefix) for t in self._threads)

    def cancel_all(self) -> None:
        with self._lock:
            for token in self._tokens.values():
                token.cancel()

    def threads(self) -> list[threading.Thread]:
        return [t for t in self._threads if t.is_alive()]

    def _run(
        self, group: str, ticket: int, token: CancelToken, work: Callable[[CancelToken], object]
    ) -> None:
        try:
            result: object = work(token)
        except Exception as e:
            result = e
        with contextlib.suppress(RuntimeError):
            self._post(TaskFinished(group, ticket, result))


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def _relative(path: Path) -> str:
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("../..") else rel
