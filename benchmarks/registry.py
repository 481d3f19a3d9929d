"""A throwaway local registry (Debian's docker-registry, distribution 2.8.2) for the push and
pull benchmarks: 127.0.0.1 only, a port the kernel picks, its own storage, stopped by PID.

The access log is on: it is how the benchmark counts the blob uploads of a push (a PUT or PATCH
under /blobs/uploads/ carries blob bytes), independently of what the client says it did.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType

_LISTENING = re.compile(rb"listening on 127\.0\.0\.1:(\d+)")
_UPLOAD = re.compile(rb'"(PUT|PATCH) /v2/[^ ]*/blobs/uploads/')


class LocalRegistry:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "registry.log"

    def start(self) -> LocalRegistry:
        shutil.rmtree(self.workdir, ignore_errors=True)
        (self.workdir / "storage").mkdir(parents=True)
        config = self.workdir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.workdir / 'storage'}\n"
            "  delete:\n    enabled: true\n"
            "http:\n  addr: 127.0.0.1:0\n  secret: benchmark-only-secret\n"
        )
        log = open(self.log, "wb")  # noqa: SIM115 - the registry writes it until stop()
        self._proc = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            found = _LISTENING.search(self.log.read_bytes())
            if found:
                self.port = int(found.group(1))
                break
            if self._proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log.read_text()[-1000:]}")
            time.sleep(0.01)
        else:
            self.stop()
            raise RuntimeError("docker-registry did not report its port")
        with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=5):
            pass
        return self

    def blob_uploads(self) -> int:
        """Requests so far that carried blob bytes (monolithic PUT or chunked PATCH)."""
        return len(_UPLOAD.findall(self.log.read_bytes()))

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
