"""A Slack-compatible chat notifier: high-priority review cases and quota trips, posted to an incoming webhook.

The sink sees every applied action. A ``review.enqueue`` whose priority is above ``min_priority`` and the first
effect that a quota demotes to shadow in each hour (an action's quota has tripped: a runaway rule, or an
attack) become notices. Notices are gathered for ``batch_s`` seconds into one message, and at most
``max_per_minute`` messages go out a minute: a burst becomes one message that lists the first cases and counts
the rest, never a flood in the channel. Delivery uses :func:`bastion.retry.deliver` (backoff with jitter,
``Retry-After``); a message that cannot be delivered is dropped, logged and counted, and the stream never
waits for it.

The body is Slack's incoming-webhook JSON, ``{"text": ..., "blocks": [...]}`` (``text`` is the fallback
shown in notifications); Mattermost and Rocket.Chat incoming webhooks accept the same ``text``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from bastion.actions.effects import REVIEW_ENQUEUE, AppliedAction
from bastion.retry import RetryPolicy, deliver

log = logging.getLogger("bastion.notify")

MAX_LISTED = 10          # cases listed in one message; the rest are counted
MAX_PENDING = 1_000      # notices kept between messages; the rest are only counted


@dataclass(frozen=True)
class Notice:
    kind: str            # "case" | "quota"
    action: AppliedAction


def _esc(text: str) -> str:
    """Slack mrkdwn escaping (``&``, ``<``, ``>``), so event text cannot form links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _short(text: str, n: int = 200) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def slack_message(cases: list[AppliedAction], trips: list[AppliedAction], more_cases: int = 0,
                  more_trips: int = 0, quotas: dict[str, int] | None = None) -> dict[str, Any]:
    """The incoming-webhook body for these notices (``more_*``: notices counted but not listed)."""
    n_cases, n_trips = len(cases) + more_cases, len(trips) + more_trips
    parts = []
    if n_cases:
        parts.append(f"{n_cases} high-priority review case{'s' if n_cases != 1 else ''}")
    if n_trips:
        parts.append(f"{n_trips} quota trip{'s' if n_trips != 1 else ''}")
    title = "Bastion: " + ", ".join(parts)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": title[:150]}}]
    lines = []
    for a in trips[:MAX_LISTED]:
        limit = (quotas or {}).get(a.action)
        cap = f" ({limit}/hour)" if limit is not None else ""
        lines.append(f":rotating_light: quota for `{_esc(a.action)}`{cap} exhausted at {a.ts}: further "
                     f"`{_esc(a.action)}` effects this hour are shadow only (first: {_esc(a.subject.kind)} "
                     f"`{_esc(a.subject.id)}` by {_esc(a.source)})")
    for a in cases[:MAX_LISTED]:
        queue = a.queue or "review"
        lines.append(f"*{_esc(queue)}* · priority {a.priority or 0:.2f} · {_esc(a.subject.kind)} "
                     f"`{_esc(a.subject.id)}` · {_esc(a.source)}"
                     + (f"\n>{_esc(_short(a.reason))}" if a.reason else ""))
    for line in lines:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line}})
    hidden = n_cases + n_trips - len(lines)
    if hidden > 0:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"and {hidden} more (see the review queue)"}]})
    text = title + ("\n" + "\n".join(lines) if lines else "")
    return {"text": text[:3000], "blocks": blocks}


class SlackNotifier:
    """A sink posting Slack incoming-webhook messages from a background thread (see the module doc)."""

    def __init__(self, url: str, min_priority: float = 0.7, batch_s: float = 5.0, max_per_minute: int = 6,
                 policy: RetryPolicy | None = None, client: Any = None, timeout_s: float = 5.0,
                 quotas: dict[str, int] | None = None) -> None:
        import httpx

        if max_per_minute < 1:
            raise ValueError("max_per_minute must be at least 1")
        self.url = url
        self.min_priority = min_priority
        self.batch_s = batch_s
        self.max_per_minute = max_per_minute
        self.quotas = dict(quotas or {})
        self.policy = policy or RetryPolicy(max_attempts=4, max_time_s=30.0, base_s=0.5)
        self.client = client or httpx.Client(timeout=timeout_s)
        self._lock = threading.Lock()
        self._cases: list[AppliedAction] = []
        self._trips: list[AppliedAction] = []
        self._more_cases = 0
        self._more_trips = 0
        self._tripped: set[tuple[str, str]] = set()   # (action, event hour) already announced
        self._sent_at: deque[float] = deque()
        self.messages = 0          # messages delivered
        self.failed = 0            # messages given up on
        self.notices = 0           # notices taken in
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bastion-slack", daemon=True)
        self._thread.start()

    # -- the sink ---------------------------------------------------------------------------------------------
    def write_action(self, action: AppliedAction) -> None:
        if action.stage == "enforce":
            if action.action == REVIEW_ENQUEUE and (action.priority or 0.0) > self.min_priority:
                self._add("case", action)
        elif "quota" in action.evidence:
            key = (action.action, action.ts[:13])    # one notice per action per hour (the quota's window)
            with self._lock:
                if key in self._tripped:
                    return
                self._tripped.add(key)
                if len(self._tripped) > 10_000:
                    self._tripped = {key}
            self._add("quota", action)

    def _add(self, kind: str, action: AppliedAction) -> None:
        with self._lock:
            self.notices += 1
            if kind == "case":
                if len(self._cases) < MAX_PENDING:
                    self._cases.append(action)
                else:
                    self._more_cases += 1
            elif len(self._trips) < MAX_PENDING:
                self._trips.append(action)
            else:
                self._more_trips += 1

    def write_dead_letter(self, line: int | None, error: str, raw: str) -> None:
        return None

    def flush(self) -> None:
        return None

    def close(self, timeout_s: float = 30.0) -> None:
        """Post what is pending (one last message, whatever the rate) and stop."""
        self._closing.set()
        self._thread.join(timeout_s)

    # -- the sender -------------------------------------------------------------------------------------------
    def _may_send(self, now: float) -> bool:
        while self._sent_at and now - self._sent_at[0] >= 60.0:
            self._sent_at.popleft()
        return len(self._sent_at) < self.max_per_minute

    def _run(self) -> None:
        while True:
            closing = self._closing.wait(self.batch_s)
            self._send_pending(force=closing)
            if closing:
                return

    def _send_pending(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not (self._cases or self._trips or self._more_cases or self._more_trips):
                return
            if not force and not self._may_send(now):
                return  # rate limited: the notices wait and are folded into the next message
            cases, trips, more_c, more_t = self._cases, self._trips, self._more_cases, self._more_trips
            self._cases, self._trips, self._more_cases, self._more_trips = [], [], 0, 0
            self._sent_at.append(now)
        # high-priority cases first
        cases.sort(key=lambda a: -(a.priority or 0.0))
        msg_cases, msg_trips = cases[:MAX_LISTED], trips[:MAX_LISTED]
        msg = slack_message(msg_cases, msg_trips, more_c + len(cases) - len(msg_cases),
                            more_t + len(trips) - len(msg_trips), self.quotas)
        out = deliver(self.client, self.url, json.dumps(msg).encode(), {"content-type": "application/json"},
                      self.policy)
        if out.ok:
            self.messages += 1
        else:
            self.failed += 1
            log.warning("chat webhook: dropped a message of %d notice(s) after %d attempt(s): %s",
                        len(cases) + len(trips) + more_c + more_t, out.attempts, out.error)
