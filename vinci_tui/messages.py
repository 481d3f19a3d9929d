"""Textual messages: engine events and worker results, posted from threads to the app.

`post_message` is thread-safe and never blocks the poster, unlike `call_from_thread`, which
would stall a layer job until the UI caught up. Each build has a generation number; messages
carry it so that events of a build that was cancelled and replaced are recognised as stale.

Progress is rate-limited at the source (engine.events.ProgressThrottle) and coalesced here:
a queued progress message is dropped when the next one in the queue is newer progress for
the same layer of the same build (`can_replace`), so a flood never backs up the queue.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from textual.message import Message

from engine import SpecError
from engine.builder.result import BuildResult
from engine.events import Event, LayerProgress
from engine.spec.model import Spec
from vinci_tui.changes import ChangeRow

Post = Callable[[Message], object]


class EngineEvent(Message):
    """An engine event from build `generation`."""

    def __init__(self, generation: int, event: Event) -> None:
        super().__init__()
        self.generation = generation
        self.event = event

    def can_replace(self, message: Message) -> bool:
        # Textual asks the message it just dequeued whether the next one in the queue
        # supersedes it; newer progress of the same layer and phase does.
        if not isinstance(self.event, LayerProgress) or not isinstance(message, EngineEvent):
            return False
        other = message.event
        return (
            isinstance(other, LayerProgress)
            and message.generation == self.generation
            and other.index == self.event.index
            and other.phase == self.event.phase
        )


class EventBridge:
    """An engine event sink that posts every event to the app. Called from worker threads."""

    def __init__(self, post: Post, generation: int) -> None:
        self._post = post
        self._generation = generation

    def __call__(self, event: Event) -> None:
        # RuntimeError: the app's loop is gone (it is shutting down, cancelling the build).
        with contextlib.suppress(RuntimeError):
            self._post(EngineEvent(self._generation, event))


class SpecLoaded(Message):
    def __init__(self, generation: int, spec: Spec) -> None:
        super().__init__()
        self.generation = generation
        self.spec = spec


class SpecBroken(Message):
    """The spec no longer loads (or plans); the last good build stays on screen."""

    def __init__(self, generation: int, error: SpecError) -> None:
        super().__init__()
        self.generation = generation
        self.error = error


class BuildCompleted(Message):
    def __init__(self, generation: int, result: BuildResult) -> None:
        super().__init__()
        self.generation = generation
        self.result = result


class BuildEnded(Message):
    """The build thread of `generation` has finished, whatever happened."""

    def __init__(self, generation: int) -> None:
        super().__init__()
        self.generation = generation


class LogLine(Message):
    """A log line that is not an engine event (the watcher, outputs, the cache)."""

    def __init__(self, level: str, text: str) -> None:
        super().__init__()
        self.level = level
        self.text = text


class SourcesChanged(Message):
    """Files the spec depends on changed (from the watcher)."""

    def __init__(self, paths: tuple[Path, ...]) -> None:
        super().__init__()
        self.paths = paths


class TaskFinished(Message):
    """A background task (listing a layer, reading a file, the cache) has a result.

    `result` is the task's return value, or the exception it raised.
    """

    def __init__(self, group: str, ticket: int, result: object) -> None:
        super().__init__()
        self.group = group
        self.ticket = ticket
        self.result = result


class ChangesFound(Message):
    """Why build `generation`'s image differs from the previous build of the spec: `since`
    names that build, `text` is the comparison as `vinci diff` renders it, `rows` the same
    lines, each with the spec line that caused it."""

    def __init__(
        self,
        generation: int,
        since: str,
        text: str,
        identical: bool,
        rows: tuple[ChangeRow, ...] = (),
    ) -> None:
        super().__init__()
        self.generation = generation
        self.since = since
        self.text = text
        self.identical = identical
        self.rows = rows
