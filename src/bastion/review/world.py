"""The simulator truth as the review evaluation reads it: which subjects violate, how much exposure each has
and when it accrues (:class:`World`). No engine here, so the shared scoreboard
(:mod:`bastion.evaluation.metrics`) scores the review queue with the same definitions as ``bastion review
eval`` (:mod:`bastion.review.evaluation`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HOUR = 3_600_000


def load_truth(truth: dict[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(truth, dict):
        return truth
    return json.loads(Path(truth).read_text())


class World:
    """The simulator truth: which subjects violate, their exposure and when it accrues."""

    def __init__(self, truth: dict[str, Any]) -> None:
        meta = self.meta = truth.get("meta", {})
        self.start, self.end = int(meta.get("start", 0)), int(meta.get("end", 0))
        self.acc = truth.get("accounts", {})
        self.exposure = truth.get("exposure", {})
        self.post_ts = truth.get("post_ts", {})
        self.reports = {k: sorted(v) for k, v in (truth.get("reports") or {}).items()}
        self.bad_posts: set[str] = set()
        for k in ("abusive", "spam", "campaign", "hate"):
            self.bad_posts.update(truth.get("posts", {}).get(k, []))

    def is_bad(self, kind: str, sid: str, members: list[str] | None = None) -> bool:
        if kind == "account":
            return bool(self.acc.get(sid, {}).get("bad"))
        if kind == "post":
            return sid in self.bad_posts
        if members:
            bad = sum(1 for m in members if self.acc.get(m, {}).get("bad"))
            return bad * 2 > len(members)
        return False

    def units(self, kind: str, sid: str, members: list[str] | None = None) -> list[tuple[str, str]]:
        """The violating accounts and posts a decision on this subject actions."""
        if kind == "account":
            return [("account", sid)] if self.acc.get(sid, {}).get("bad") else []
        if kind == "post":
            return [("post", sid)] if sid in self.bad_posts else []
        return [("account", m) for m in dict.fromkeys(members or []) if self.acc.get(m, {}).get("bad")]

    def span(self, unit: tuple[str, str]) -> tuple[int, int, float]:
        """(start, end, exposure) of a violating unit."""
        kind, sid = unit
        if kind == "account":
            a0 = int(self.acc.get(sid, {}).get("start", self.start))
            a1 = int(self.acc.get(sid, {}).get("end", self.end))
        else:
            a0 = int(self.post_ts.get(sid, self.start))
            a1 = a0 + 24 * HOUR
        return a0, max(a1, a0 + 1), float(self.exposure.get(sid, 0.0))

    def prevented(self, unit: tuple[str, str], t: int) -> float:
        a0, a1, exp = self.span(unit)
        return exp * (1.0 if t <= a0 else max(0.0, (a1 - t) / (a1 - a0)))
