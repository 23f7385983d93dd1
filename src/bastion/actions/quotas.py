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

from typing import Any

HOUR_MS = 3_600_000


class Quotas:
    def __init__(self, per_hour: dict[str, int]) -> None:
        self.per_hour = dict(per_hour)
        self._hour: dict[str, int] = {}
        self._used: dict[str, int] = {}
        self.tripped: dict[str, int] = {}

    def allow(self, action: str, ts: int, key: str | None = None) -> bool:
        """May one more ``action`` at event time ``ts`` be enforced? (``key`` names the effect - event id and
        subject - for quotas shared by several processes; this in-process one counts calls.)"""
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


# KEYS[1]: the action's set for one hour; ARGV: the effect's key, the limit, the set's lifetime (s).
# An effect already admitted is admitted again (a batch a worker redoes after a failure counts once).
_ADMIT = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""


class SharedQuotas(Quotas):
    """The same hourly quotas for N stream workers together, in Redis: each action's hour of event time is
    one set of the effects it admitted (``PREFIXquota:ACTION:HOUR``, members ``event id + subject``); one Lua
    script checks and adds atomically, so the limit holds across workers, and an effect redone after a failed
    batch is admitted again without counting twice. Only actions with a quota cost a round trip.
    ``tripped`` counts this process's refusals."""

    ttl_s = 2 * 86_400

    def __init__(self, client: Any, prefix: str, per_hour: dict[str, int]) -> None:
        super().__init__(per_hour)
        self.r = client
        self.prefix = prefix
        self._admit = client.register_script(_ADMIT)
        self._n = 0

    def allow(self, action: str, ts: int, key: str | None = None) -> bool:
        limit = self.per_hour.get(action)
        if limit is None:
            return True
        if key is None:   # an effect without a name: unique, never deduplicated
            self._n += 1
            key = f"{id(self)}:{self._n}"
        ok = self._admit(keys=[f"{self.prefix}quota:{action}:{ts // HOUR_MS}"], args=[key, limit, self.ttl_s])
        if not ok:
            self.tripped[action] = self.tripped.get(action, 0) + 1
        return bool(ok)

    def used(self, action: str, ts: int) -> int:
        """How many ``action`` effects all workers enforced in the hour of ``ts``."""
        return int(self.r.scard(f"{self.prefix}quota:{action}:{ts // HOUR_MS}"))
