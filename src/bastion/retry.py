"""The one retry policy of Bastion, built on `tenacity <https://tenacity.readthedocs.io>`_.

Every outbound retry goes through here: the webhook and Slack deliveries (:func:`deliver`, one HTTP request
retried until it is accepted) and the reconnect loops of the broker worker and the Jetstream client
(:class:`Backoff`, the delay before the next connection, with a fresh streak after progress).

The policy: exponential backoff with full jitter (a random wait between 0 and ``base_s * 2**(attempt-1)``,
at most ``max_backoff_s``), at most ``max_attempts`` attempts and ``max_time_s`` seconds (a wait that would
cross the budget is not taken), an HTTP ``Retry-After`` (seconds or an HTTP-date) honoured on 429 and 503
(capped by ``max_retry_after_s``), and 4xx answers other than 408 and 429 never retried.

>>> retry_after_s("7")
7.0
>>> retry_after_s("Sun, 06 Nov 1994 08:49:37 GMT", now=784111777.0 - 3)
3.0
>>> retry_after_s("soon") is None
True
>>> [retryable_status(c) for c in (200, 400, 404, 408, 429, 500, 503)]
[False, False, False, True, True, True, True]
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import tenacity
from tenacity import RetryCallState

log = logging.getLogger("bastion.retry")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. ``None`` for ``max_attempts``/``max_time_s`` means no such limit."""

    max_attempts: int | None = 5
    max_time_s: float | None = 60.0
    base_s: float = 0.25
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_s < 0 or self.max_backoff_s < 0 or self.max_retry_after_s < 0:
            raise ValueError("backoff times must not be negative")

    def stop(self) -> tenacity.stop.stop_base:
        parts: list[tenacity.stop.stop_base] = []
        if self.max_attempts is not None:
            parts.append(tenacity.stop_after_attempt(self.max_attempts))
        if self.max_time_s is not None:
            parts.append(tenacity.stop_before_delay(self.max_time_s))
        return tenacity.stop_any(*parts) if parts else tenacity.stop_never

    def wait(self) -> tenacity.wait.wait_base:
        return WaitRetryAfter(tenacity.wait_random_exponential(multiplier=self.base_s, max=self.max_backoff_s),
                              self.max_retry_after_s)


class RetryableStatus(Exception):
    """An HTTP answer worth another try (408, 429, 5xx), with the server's ``Retry-After`` in seconds."""

    def __init__(self, response: Any, retry_after: float | None) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.retry_after = retry_after


class WaitRetryAfter(tenacity.wait.wait_base):
    """The server's ``Retry-After`` when the last attempt carried one, else ``fallback``."""

    def __init__(self, fallback: tenacity.wait.wait_base, cap_s: float) -> None:
        self.fallback = fallback
        self.cap_s = cap_s

    def __call__(self, retry_state: RetryCallState) -> float:
        out = retry_state.outcome
        exc = out.exception() if out is not None and out.failed else None
        if isinstance(exc, RetryableStatus) and exc.retry_after is not None:
            return min(self.cap_s, exc.retry_after)
        return float(self.fallback(retry_state))


def retryable_status(code: int) -> bool:
    """408 and 429 and every 5xx; never another 4xx (the request itself is wrong: retrying cannot help)."""
    return code in (408, 429) or 500 <= code <= 599


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header in seconds from ``now``: delay-seconds or an HTTP-date; None if absent or
    unreadable (then the policy's own backoff applies)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    delta = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, delta) if math.isfinite(delta) else None


@dataclass
class Delivery:
    """The outcome of :func:`deliver`: ``response`` is the last answer (None when none came), ``ok`` when it
    was 2xx, ``attempts`` how many requests were made, ``error`` what went wrong otherwise."""

    response: Any
    attempts: int
    elapsed_s: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.response is not None and 200 <= self.response.status_code < 300


def deliver(client: Any, url: str, content: bytes, headers: Callable[[], Mapping[str, str]] | Mapping[str, str],
            policy: RetryPolicy, *, sleep: Callable[[float], Any] = time.sleep,
            on_retry: Callable[[RetryCallState], None] | None = None) -> Delivery:
    """POST ``content`` to ``url`` with ``client`` (an ``httpx.Client``) under ``policy``; never raises for
    HTTP or network errors. ``headers`` may be a function, called before each attempt (fresh signatures);
    ``sleep`` may be interruptible (``threading.Event().wait``)."""
    import httpx

    def attempt() -> Any:
        hdrs = dict(headers() if callable(headers) else headers)
        resp = client.post(url, content=content, headers=hdrs)
        if retryable_status(resp.status_code):
            ra = retry_after_s(resp.headers.get("retry-after")) if resp.status_code in (429, 503) else None
            raise RetryableStatus(resp, ra)
        return resp

    def before_sleep(rs: RetryCallState) -> None:
        out = rs.outcome
        log.debug("POST %s attempt %d failed (%s); retrying in %.2fs", url, rs.attempt_number,
                  out.exception() if out is not None else None, rs.upcoming_sleep)
        if on_retry is not None:
            on_retry(rs)

    retrying = tenacity.Retrying(
        stop=policy.stop(), wait=policy.wait(), sleep=sleep, before_sleep=before_sleep, reraise=True,
        retry=tenacity.retry_if_exception_type((httpx.TransportError, RetryableStatus)))
    t0 = time.monotonic()
    try:
        resp = retrying(attempt)
    except RetryableStatus as exc:
        return Delivery(exc.response, retrying.statistics.get("attempt_number", 1), time.monotonic() - t0,
                        f"gave up after HTTP {exc.response.status_code}")
    except httpx.HTTPError as exc:
        return Delivery(None, retrying.statistics.get("attempt_number", 1), time.monotonic() - t0,
                        f"gave up after {type(exc).__name__}: {exc}")
    attempts = retrying.statistics.get("attempt_number", 1)
    err = None if 200 <= resp.status_code < 300 else f"refused: HTTP {resp.status_code}"
    return Delivery(resp, attempts, time.monotonic() - t0, err)


class Backoff:
    """tenacity's retry decision for a loop that goes on after a failure (a reconnect loop).

    ``failed(exc)`` returns the seconds to wait before the next try, or raises: ``exc`` itself when
    ``retry_on(exc)`` is false (a permanent error), :class:`tenacity.RetryError` when the policy's attempts or
    time (counted from the streak's first failure) are spent. ``succeeded()`` ends the streak (the loop made
    progress): the next failure waits as if it were the first.

    >>> b = Backoff(RetryPolicy(max_attempts=2, max_time_s=None, base_s=1.0, max_backoff_s=1.0))
    >>> 0.0 <= b.failed(OSError("down")) <= 1.0
    True
    >>> b.failed(OSError("down again"))
    Traceback (most recent call last):
    ...
    tenacity.RetryError: RetryError[<Future ... raised OSError>]
    """

    def __init__(self, policy: RetryPolicy, retry_on: Callable[[BaseException], bool] = lambda exc: True
                 ) -> None:
        self.policy = policy
        self._retrying = tenacity.Retrying(stop=policy.stop(), wait=policy.wait(),
                                           retry=tenacity.retry_if_exception(retry_on))
        self._state = RetryCallState(self._retrying, fn=None, args=(), kwargs={})
        self.failures = 0

    def succeeded(self) -> None:
        self.failures = 0

    def first_wait(self) -> float:
        """End the streak and return the wait before a first retry, counting no failure (a loop that made
        progress and then lost its connection reconnects after a short jittered pause)."""
        self.succeeded()
        return float(self._retrying.wait(RetryCallState(self._retrying, fn=None, args=(), kwargs={})))

    def failed(self, exc: BaseException) -> float:
        if self.failures == 0:  # a new streak: tenacity's statistics (per thread) and clock start now
            self._retrying.begin()
            self._state = RetryCallState(self._retrying, fn=None, args=(), kwargs={})
        self.failures += 1
        self._state.set_exception((type(exc), exc, exc.__traceback__))
        action = self._retrying.iter(self._state)
        if not isinstance(action, tenacity.DoSleep):  # pragma: no cover - iter raises in every other case
            raise exc
        self._state.prepare_for_next_attempt()
        return float(action)
