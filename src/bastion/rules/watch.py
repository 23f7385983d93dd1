"""A file watcher for hot reload: polls the modification times of a rules directory and calls
:meth:`RulesDetector.reload` when anything changed. Polling is portable and cheap (a few dozen ``stat`` calls
every couple of seconds); the server runs :meth:`RulesWatcher.start` in a daemon thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from bastion.rules.runtime import RulesDetector

log = logging.getLogger("bastion.rules")


def snapshot(directory: Path) -> dict[str, tuple[float, int]]:
    out: dict[str, tuple[float, int]] = {}
    for p in directory.rglob("*"):
        if p.is_file() and p.suffix in (".yaml", ".yml", ".txt"):
            st = p.stat()
            out[str(p)] = (st.st_mtime, st.st_size)
    return out


class RulesWatcher:
    """``RulesWatcher(detector).start()``; ``poll_once()`` does one check (tests, or a caller's own loop)."""

    def __init__(self, detector: RulesDetector, interval_s: float = 2.0,
                 on_reload: Callable[[bool, str], None] | None = None) -> None:
        self.detector = detector
        self.interval_s = interval_s
        self.on_reload = on_reload
        self._seen = snapshot(detector.directory)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> tuple[bool, str] | None:
        """Reload when a file changed; returns reload's result, or None when nothing changed."""
        now = snapshot(self.detector.directory)
        if now == self._seen:
            return None
        self._seen = now
        result = self.detector.reload()
        if self.on_reload is not None:
            self.on_reload(*result)
        return result

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll_once()
            except Exception:  # the watcher must outlive a bad file system moment
                log.exception("rules watcher poll failed")

    def start(self) -> RulesWatcher:
        self._thread = threading.Thread(target=self._run, name="rules-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
