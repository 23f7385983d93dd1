"""Progress on stderr for the commands that run longer than a few seconds; stdout stays for the command's output.

On a terminal, a rich bar (count, rate, elapsed time, ETA). Elsewhere (a log, a pipe, ``scripts/demo.sh | tee``,
a test), where rich would draw nothing until the end, plain lines: one when the step starts, one every
``every_s`` seconds of wall-clock time while it runs (a heartbeat thread keeps them coming for work that reports
no counts, such as a model fit), and one when it ends.

    with progress("simulate", total=48, unit="hours") as p:
        for h in range(48):
            ...
            p.advance()
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

console = Console(stderr=True)


def stage(text: str, con: Console | None = None) -> None:
    """One status line on stderr (rich markup allowed): where a multi-step command is."""
    (con or console).print(text, highlight=False, soft_wrap=True)


def log(line: str, con: Console | None = None) -> None:
    """A plain log line on stderr (no markup): what a command reports while it works, off its stdout."""
    (con or console).print(line, highlight=False, soft_wrap=True, markup=False)


def count_lines(path: Any) -> int | None:
    """Lines of a file (the total of a progress bar over a JSON Lines file); None for stdin or a URL."""
    if isinstance(path, str) and (path == "-" or "://" in path):
        return None
    if str(path) == "-":
        return None
    n = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            n += chunk.count(b"\n")
    return n


def _duration(s: float) -> str:
    s = max(0.0, s)
    return f"{int(s // 60)}m{int(s % 60):02d}s" if s >= 60 else f"{s:.1f}s"


class RateColumn(ProgressColumn):
    """Units per second over rich's recent-speed window."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {self.unit}/s" if speed else f"- {self.unit}/s", style="progress.data.speed")


class Tracker:
    """What a step reports: :meth:`advance` by a count, :meth:`update` to an absolute count, :meth:`note` to
    change the text after the label."""

    def __init__(self, label: str, total: int | None, unit: str, completed: int, con: Console, every_s: float,
                 bar: Progress | None) -> None:
        self.label, self.total, self.unit, self.con, self.every_s = label, total, unit, con, every_s
        self.start_count = self.completed = completed
        self.detail = ""
        self._bar = bar
        self._task = bar.add_task(label, total=total, completed=completed, detail="") if bar is not None else None
        self._t0 = self._last = time.perf_counter()
        self._lock = threading.Lock()

    # -- reporting ---------------------------------------------------------------------------------------
    def advance(self, n: int = 1) -> None:
        self.update(self.completed + n)

    def update(self, completed: int, total: int | None = None) -> None:
        self.completed = completed
        if total is not None:
            self.total = total
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=completed, total=self.total)
        else:
            self._maybe_line()

    def note(self, detail: str) -> None:
        self.detail = detail
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, detail=detail)
        else:
            self._maybe_line()

    # -- plain lines ---------------------------------------------------------------------------------------
    def _maybe_line(self, force: bool = False) -> None:
        now = time.perf_counter()
        with self._lock:
            if not force and now - self._last < self.every_s:
                return
            self._last = now
        self.con.print(self.line(now), highlight=False, soft_wrap=True, markup=False)

    def line(self, now: float | None = None) -> str:
        return f"{self.label}: {self.body(now)}"

    def body(self, now: float | None = None, final: bool = False) -> str:
        now = time.perf_counter() if now is None else now
        el = now - self._t0
        parts: list[str] = []
        done = self.completed
        if self.total:
            parts.append(f"{done:,} / {self.total:,} ({100 * done / self.total:.1f}%) {self.unit}".rstrip())
        elif done:
            parts.append(f"{done:,} {self.unit}".rstrip())
        rate = (done - self.start_count) / el if el > 0 else 0.0
        if rate > 0 and self.unit:
            parts.append(f"{rate:,.0f} {self.unit}/s")
        parts.append(f"{_duration(el)} elapsed")
        if self.total and rate > 0 and not final:
            parts.append(f"ETA {_duration(max(self.total - done, 0) / rate)}")
        return ", ".join(parts) + (f" ({self.detail})" if self.detail else "")

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(self.every_s):
            if time.perf_counter() - self._last >= self.every_s * 0.999:
                self._maybe_line(force=True)


@contextlib.contextmanager
def progress(label: str, total: int | None = None, unit: str = "", *, completed: int = 0, every_s: float = 10.0,
             enabled: bool = True, con: Console | None = None) -> Iterator[Tracker]:
    """A :class:`Tracker` for one step of a long command (see the module docstring). ``enabled=False`` yields a
    tracker that prints nothing."""
    con = con or console
    if not enabled:
        quiet = Console(quiet=True)
        yield Tracker(label, total, unit, completed, quiet, every_s, None)
        return
    if con.is_terminal:
        cols: list[Any] = [SpinnerColumn(), TextColumn("[bold]{task.description}")]
        if total is not None:
            cols += [BarColumn(), MofNCompleteColumn()]
        elif unit:
            cols += [TextColumn("{task.completed:,} " + unit)]
        if unit:
            cols.append(RateColumn(unit))
        cols.append(TimeElapsedColumn())
        if total is not None:
            cols += [TextColumn("ETA"), TimeRemainingColumn()]
        cols.append(TextColumn("{task.fields[detail]}"))
        with Progress(*cols, console=con) as bar:
            yield Tracker(label, total, unit, completed, con, every_s, bar)
        return
    tr = Tracker(label, total, unit, completed, con, every_s, None)
    con.print(f"{label}: started" + (f" ({total:,} {unit})".replace(" )", ")") if total else ""), highlight=False,
              soft_wrap=True, markup=False)
    stop = threading.Event()
    beat = threading.Thread(target=tr._heartbeat, args=(stop,), daemon=True, name=f"progress-{label}")
    if every_s >= 1.0:  # a heartbeat for work that reports no counts (tests pass 0: a line on every update)
        beat.start()
    ok = False
    try:
        yield tr
        ok = True
    finally:
        stop.set()
        if beat.is_alive():
            beat.join()
        if ok:
            con.print(f"{label}: done, {tr.body(final=True)}", highlight=False, soft_wrap=True, markup=False)


def track(iterable: Any, label: str, total: int | None = None, unit: str = "", **kw: Any) -> Iterator[Any]:
    """Iterate ``iterable`` with a :func:`progress` step advancing once per item."""
    if total is None:
        with contextlib.suppress(TypeError):
            total = len(iterable)
    with progress(label, total, unit, **kw) as p:
        for item in iterable:
            yield item
            p.advance()
