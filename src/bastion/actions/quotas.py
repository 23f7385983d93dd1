"""Safety valves declared in configuration, not in rules: per-action hourly quotas and a circuit breaker.

When an action's quota for the current hour (event time) is exhausted, further effects of that action are
demoted to shadow (recorded, never enforced) and counted, so a runaway rule cannot suspend half the platform.

>>> q = Quotas({"account.suspend": 2})
>>> [q.allow("account.suspend", t) for t in (0, 1, 2)], q.allow("label.add", 3)
([True, True, False], True)
>>> q.allow("account.suspend", 3_600_000)
True
"""

from __future__ import annotations

HOUR_MS = 3_600_000


class Quotas:
    def __init__(self, per_hour: dict[str, int]) -> None:
        self.per_hour = dict(per_hour)
        self._hour: dict[str, int] = {}
        self._used: dict[str, int] = {}
        self.tripped: dict[str, int] = {}

    def allow(self, action: str, ts: int) -> bool:
        limit = self.per_hour.get(action)
        if limit is None:
            return True
        hour = ts // HOUR_MS
        if self._hour.get(action) != hour:
            self._hour[action] = hour
            self._used[action] = 0
        if self._used[action] >= limit:
            self.tripped[action] = self.tripped.get(action, 0) + 1
            return False
        self._used[action] += 1
        return True

    def snapshot(self) -> dict[str, dict[str, int]]:
        """The current windows (for checkpoints): quotas used in each action's current hour."""
        return {"hour": dict(self._hour), "used": dict(self._used), "tripped": dict(self.tripped)}

    def load(self, snap: dict[str, dict[str, int]]) -> None:
        self._hour, self._used = dict(snap["hour"]), dict(snap["used"])
        self.tripped = dict(snap["tripped"])
