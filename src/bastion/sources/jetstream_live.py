"""Live Bluesky Jetstream v1 websocket client (../shared/spec/platform-formats.md section 1).

:func:`stream` yields Jetstream messages (decoded JSON objects) from ``wss://…/subscribe``, reconnecting with
exponential backoff and full jitter (:class:`bastion.retry.Backoff`). Jetstream delivery is at-least-once and ``time_us`` is not strictly monotonic,
so a reconnect resumes from the largest ``time_us`` seen *minus* ``rewind_s`` seconds; the messages that the
rewind delivers a second time are dropped here (by ``did``, ``time_us``, ``kind``, ``rev``, ``collection``,
``rkey``), and the engine drops repeated event ids anyway.

:func:`live_items` is the synchronous wrapper used by the engine's sources: it runs the client on its own event
loop in a background thread (so keepalives go on while the caller works) and yields canonical
:class:`~bastion.sources.files.Item` objects through a :class:`~bastion.events.jetstream.JetstreamMapper`,
exactly like a file replay of the same messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import tenacity
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException

from bastion.events.codec import BadEvent, convert_event
from bastion.events.jetstream import JetstreamMapper
from bastion.retry import Backoff, RetryPolicy
from bastion.sources.files import Item

log = logging.getLogger("bastion.sources.jetstream_live")

DEFAULT_URL = "wss://jetstream2.us-east.bsky.network/subscribe"
_OWN_PARAMS = frozenset({"wantedCollections", "wantedDids", "cursor"})


class JetstreamError(ConnectionError):
    """The stream cannot go on: a permanent refusal (bad URL, 4xx) or too many consecutive failures."""


def subscribe_url(url: str, collections: Iterable[str] | None = None, dids: Iterable[str] | None = None,
                  cursor: int | None = None) -> str:
    """The ``/subscribe`` URL with ``wantedCollections``/``wantedDids`` (repeated) and ``cursor`` (unix µs).

    >>> subscribe_url("wss://js.example/subscribe?compress=false", ["app.bsky.feed.post"], cursor=17)
    'wss://js.example/subscribe?compress=false&wantedCollections=app.bsky.feed.post&cursor=17'
    """
    parts = urlsplit(url)
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _OWN_PARAMS]
    params += [("wantedCollections", c) for c in collections or ()]
    params += [("wantedDids", d) for d in dids or ()]
    if cursor is not None:
        params.append(("cursor", str(int(cursor))))
    return urlunsplit(parts._replace(query=urlencode(params)))


@dataclass
class StreamStats:
    connects: int = 0
    messages: int = 0          # messages yielded (duplicates excluded)
    duplicates: int = 0        # redelivered after a rewind, dropped
    invalid: int = 0           # frames that are not a JSON object
    cursor: int | None = None  # largest time_us seen
    last_error: str | None = None
    urls: list[str] = field(default_factory=list)


def _key(msg: dict[str, Any]) -> tuple[Any, ...]:
    c: dict[str, Any] = msg["commit"] if isinstance(msg.get("commit"), dict) else {}
    return (msg.get("did"), msg.get("time_us"), msg.get("kind"), c.get("rev"), c.get("collection"), c.get("rkey"))


def _permanent(exc: BaseException) -> bool:
    if isinstance(exc, InvalidURI):
        return True
    if isinstance(exc, InvalidStatus):
        code = exc.response.status_code
        return 400 <= code < 500 and code not in (408, 429)
    return False


async def frames(url: str, collections: Iterable[str] | None = None, cursor: int | None = None, *,
                 dids: Iterable[str] | None = None, rewind_s: float = 5.0, backoff_s: float = 0.5,
                 max_backoff_s: float = 30.0, max_failures: int | None = None, dedupe: bool = True,
                 stats: StreamStats | None = None, **connect_kwargs: Any,
                 ) -> AsyncIterator[tuple[str | bytes, dict[str, Any] | None]]:
    """``(raw frame, message or None when the frame is not a JSON object)``, forever, reconnecting.

    ``max_failures`` consecutive failed connections (None: no limit) end it with :class:`JetstreamError`;
    a connection that delivered a message resets the count. Extra keyword arguments go to
    ``websockets.connect`` (e.g. ``proxy=None``, ``open_timeout``)."""
    collections, dids = list(collections or ()), list(dids or ())
    st = stats if stats is not None else StreamStats()
    rewind_us = int(rewind_s * 1_000_000)
    resume = cursor
    seen: dict[tuple[Any, ...], int] = {}
    # a connection that delivered a message ends a streak of failures; the next wait is the first again
    backoff = Backoff(RetryPolicy(max_attempts=max_failures, max_time_s=None, base_s=backoff_s,
                                  max_backoff_s=max_backoff_s))
    connect_kwargs.setdefault("max_size", 1 << 22)
    connect_kwargs.setdefault("open_timeout", 10)
    while True:
        target = subscribe_url(url, collections, dids, resume)
        st.urls.append(target)
        got = False
        try:
            async with ws_connect(target, **connect_kwargs) as ws:
                st.connects += 1
                async for raw in ws:
                    try:
                        msg = json.loads(raw)
                    except (ValueError, RecursionError):
                        msg = None
                    if not isinstance(msg, dict):
                        st.invalid += 1
                        yield raw, None
                        continue
                    got = True
                    t = msg.get("time_us")
                    if isinstance(t, int) and not isinstance(t, bool):
                        if dedupe:
                            key = _key(msg)
                            if key in seen:
                                st.duplicates += 1
                                continue
                            seen[key] = t
                        if st.cursor is None or t > st.cursor:
                            st.cursor = t
                            resume = t - rewind_us
                        if dedupe and len(seen) > 200_000:
                            floor = st.cursor - 2 * rewind_us
                            seen = {k: v for k, v in seen.items() if v >= floor}
                    st.messages += 1
                    yield raw, msg
            st.last_error = "closed by the server"
        except (OSError, TimeoutError, WebSocketException) as exc:
            if _permanent(exc):
                raise JetstreamError(f"{target}: {exc}") from exc
            st.last_error = f"{type(exc).__name__}: {exc}"
        try:
            delay = backoff.first_wait() if got else backoff.failed(ConnectionError(st.last_error))
        except tenacity.RetryError:
            raise JetstreamError(f"{url}: {backoff.failures} consecutive failures, last: {st.last_error}") from None
        log.warning("jetstream connection lost (%s); reconnecting in %.2fs from cursor %s",
                    st.last_error, delay, resume)
        await asyncio.sleep(delay)


async def stream(url: str = DEFAULT_URL, collections: Iterable[str] | None = None, cursor: int | None = None,
                 **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
    """Jetstream v1 messages from ``url``, with reconnect, backoff and cursor resume (see :func:`frames`).
    Frames that are not JSON objects are skipped (counted in ``stats.invalid`` when ``stats`` is passed).
    To stop early, iterate inside ``contextlib.aclosing(stream(...))`` so the connection closes cleanly."""
    async for _raw, msg in frames(url, collections, cursor, **kwargs):
        if msg is not None:
            yield msg


_END = object()


class _Pump(threading.Thread):
    """Runs :func:`frames` on a private event loop and hands frames over through a bounded queue."""

    def __init__(self, agen_kwargs: dict[str, Any], maxsize: int) -> None:
        super().__init__(name="jetstream-live", daemon=True)
        self.kwargs = agen_kwargs
        self.q: queue.Queue[Any] = queue.Queue(maxsize)
        self.loop = asyncio.new_event_loop()
        self.task: asyncio.Task[None] | None = None
        self.started_evt = threading.Event()

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.task = self.loop.create_task(self._main())
            self.started_evt.set()
            with contextlib.suppress(asyncio.CancelledError):
                self.loop.run_until_complete(self.task)
        finally:
            self.started_evt.set()
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    async def _put(self, item: Any) -> None:
        while True:
            try:
                self.q.put_nowait(item)
                return
            except queue.Full:
                await asyncio.sleep(0.005)

    async def _main(self) -> None:
        try:
            async for item in frames(**self.kwargs):
                await self._put(item)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the consumer
            await self._put(exc)
            return
        await self._put(_END)

    def stop(self) -> None:
        self.started_evt.wait(5)
        if self.task is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.task.cancel)
        self.join(5)


def live_items(url: str = DEFAULT_URL, collections: Iterable[str] | None = None, cursor: int | None = None, *,
               mapper: JetstreamMapper | None = None, buffer: int = 10_000, **kwargs: Any) -> Iterator[Item]:
    """Canonical :class:`Item` objects from a live Jetstream: each message through ``mapper`` (what it cannot
    map is counted in ``mapper.ignored``), frames that are not JSON objects as dead letters. ``line`` is the
    1-based message number. Runs until the caller stops iterating (or :func:`frames` gives up, raising
    :class:`JetstreamError`). Keyword arguments go to :func:`frames`."""
    mapper = mapper or JetstreamMapper()
    pump = _Pump({"url": url, "collections": collections, "cursor": cursor, **kwargs}, buffer)
    pump.start()
    n = 0
    try:
        while True:
            got = pump.q.get()
            if got is _END:
                return
            if isinstance(got, BaseException):
                raise got
            raw, msg = got
            n += 1
            raw_b = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
            if msg is None:
                yield Item(n, None, "invalid JSON: frame is not a JSON object", raw_b)
                continue
            for obj in mapper.map(msg):
                try:
                    yield Item(n, convert_event(obj))
                except BadEvent as exc:
                    yield Item(n, None, f"jetstream mapping produced an invalid event: {exc.reason}", raw_b)
    finally:
        pump.stop()


__all__ = ["DEFAULT_URL", "JetstreamError", "StreamStats", "frames", "live_items", "stream", "subscribe_url"]
