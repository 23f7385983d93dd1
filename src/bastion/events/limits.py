"""Bounds on what one decoded event may carry: the event stream is attacker-controlled input.

Every decoder (:func:`~bastion.events.codec.decode_event`, :func:`~bastion.events.codec.convert_event`, and so
the file, stream, Jetstream and HTTP sources) checks a decoded event against :class:`Limits` and refuses it
with :class:`~bastion.events.codec.BadEvent` (a reason fit for a dead letter) when

* ``ts`` (or a profile's ``created_at``) lies before ``min_ts_ms`` or more than ``max_future_ms`` after the
  wall clock (``clock``), or outside the range a ``datetime`` can hold - so one event from 9999 cannot breach
  every review deadline or expire every label, and an overflowing one cannot crash the engine half-way;
* a string (post or message text, a profile field, a report or status reason, a context field, anything in an
  unknown type's fields or in ``raw``) is longer than ``max_text`` characters - such events are rejected, not
  truncated, so what the rules saw is what the platform sent;
* a list (mentions, urls, hashtags, media) holds more than ``max_items`` entries;
* ``raw`` or an unknown type's fields nest deeper than ``max_depth`` (JSON nested past the decoder's recursion
  limit is refused as "nested too deeply" before any of this).

The defaults keep replays of historical data working (anything since 2000-01-01) and refuse the future beyond
one day of clock skew. The events package stays innermost: :mod:`bastion.settings` values reach it through
:func:`configure`, called by :func:`bastion.app.build_runtime`, or a ``Limits`` passed to a decoder.

>>> lim = Limits(clock=lambda: 1_795_132_800.0)  # 2026-11-20T00:00:00Z
>>> lim.ts_problem(1_795_132_800_000 + 2 * 86_400_000, "ts")
'ts 1795305600000 (2026-11-22T00:00:00.000Z) is more than 86400 s after the clock (2026-11-20T00:00:00.000Z)'
>>> lim.ts_problem(0, "ts")
'ts 0 (1970-01-01T00:00:00.000Z) is before the accepted window (2000-01-01T00:00:00.000Z)'
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# What a datetime can hold, in epoch milliseconds (0001-01-01 .. 9999-12-31T23:59:59.999Z)
DATETIME_MIN_MS = -62_135_596_800_000
DATETIME_MAX_MS = 253_402_300_799_999
DEFAULT_MIN_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z


def _iso(ms: int) -> str:
    ms = min(max(ms, DATETIME_MIN_MS), DATETIME_MAX_MS)
    dt = datetime.min.replace(tzinfo=UTC) + timedelta(milliseconds=ms - DATETIME_MIN_MS)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Limits:
    min_ts_ms: int = DEFAULT_MIN_TS_MS
    max_future_ms: int = 86_400_000
    max_text: int = 65_536
    max_items: int = 1_000
    max_depth: int = 64
    clock: Callable[[], float] = field(default=time.time, compare=False)
    lo_ms: int = field(init=False, compare=False)   # min_ts_ms, but never before what a datetime holds
    hi_ms: int = field(init=False, compare=False)   # the latest a datetime holds, less the allowed future

    def __post_init__(self) -> None:
        object.__setattr__(self, "lo_ms", max(self.min_ts_ms, DATETIME_MIN_MS))
        object.__setattr__(self, "hi_ms", DATETIME_MAX_MS - self.max_future_ms)

    def ts_ok(self, ts: int) -> bool:
        """The hot path: is ``ts`` inside the window (one clock read)."""
        return self.lo_ms <= ts <= DATETIME_MAX_MS and ts <= self.clock() * 1000.0 + self.max_future_ms

    def ts_problem(self, ts: int, name: str) -> str | None:
        """Why ``ts`` (epoch ms) is refused, or None when it is inside the window."""
        lo = self.lo_ms
        if ts < lo:
            return f"{name} {ts} ({_iso(ts)}) is before the accepted window ({_iso(lo)})"
        now = int(self.clock() * 1000)
        hi = min(now + self.max_future_ms, DATETIME_MAX_MS)
        if ts > hi:
            if ts > DATETIME_MAX_MS:
                return f"{name} {ts} is past the largest representable time ({_iso(DATETIME_MAX_MS)})"
            return (f"{name} {ts} ({_iso(ts)}) is more than {self.max_future_ms // 1000} s after the clock "
                    f"({_iso(now)})")
        return None


_current = Limits()


def configure(limits: Limits) -> None:
    """Install the process-wide limits that decoders use when none is passed (``build_runtime`` calls this)."""
    global _current
    _current = limits


def current() -> Limits:
    return _current
