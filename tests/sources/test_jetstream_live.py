"""The live Jetstream client against a real local websocket server that drops the connection midway."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.server import ServerConnection, serve

from bastion.events.codec import encode_event
from bastion.settings import find_data_dir
from bastion.sources.files import jetstream_items
from bastion.sources.jetstream_live import (
    JetstreamError,
    StreamStats,
    frames,
    live_items,
    stream,
    subscribe_url,
)

GOLDEN = find_data_dir() / "platform_events" / "bluesky_jetstream" / "golden_v1.jsonl"
REWIND_S = 2.0


class FakeJetstream:
    """Serves Jetstream lines like /subscribe: from ``cursor`` (time_us >= cursor, file order) when one is
    given, else from the start; the first connection is cut (TCP abort) after ``drop_after`` lines."""

    def __init__(self, lines: list[str], drop_after: int | None, extra: list[str] | None = None) -> None:
        self.lines = lines
        self.drop_after = drop_after
        self.extra = extra or []
        self.queries: list[dict[str, list[str]]] = []
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_evt: asyncio.Event | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    async def handler(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path).query)
        self.queries.append(query)
        cursor = int(query["cursor"][0]) if "cursor" in query else None
        lines = [ln for ln in self.lines if cursor is None or json.loads(ln)["time_us"] >= cursor]
        if len(self.queries) == 1:
            lines = self.extra + lines
        for i, line in enumerate(lines):
            if len(self.queries) == 1 and i == self.drop_after:
                ws.transport.abort()  # the connection drops, no close frame
                return
            await ws.send(line)
        await ws.wait_closed()  # a live tail: stay open until the client leaves

    async def _main(self) -> None:
        self.stop_evt = asyncio.Event()
        async with serve(self.handler, "127.0.0.1", 0) as server:
            self.port = server.sockets[0].getsockname()[1]
            self.ready.set()
            await self.stop_evt.wait()

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._main())
        self.loop.close()

    def __enter__(self) -> FakeJetstream:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.loop is not None and self.stop_evt is not None
        self.loop.call_soon_threadsafe(self.stop_evt.set)
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/subscribe"


@pytest.fixture(scope="module")
def golden_lines() -> list[str]:
    return [ln for ln in GOLDEN.read_text().splitlines() if ln.strip()]


def _take(it: Iterator[Any], n: int) -> list[Any]:
    out = []
    for x in it:
        out.append(x)
        if len(out) == n:
            break
    return out


def test_live_items_survive_a_drop_and_match_the_file_replay(golden_lines: list[str]) -> None:
    file_events = [i.event for i in jetstream_items(GOLDEN)]
    assert all(e is not None for e in file_events)
    stats = StreamStats()
    with FakeJetstream(golden_lines, drop_after=5) as server:
        it = live_items(server.url, rewind_s=REWIND_S, backoff_s=0.05, max_failures=5, stats=stats, proxy=None)
        try:
            got = _take(it, len(file_events))
        finally:
            it.close()  # type: ignore[attr-defined]
    assert [i.error for i in got] == [None] * len(got)
    assert [i.event.id for i in got] == [e.id for e in file_events]  # type: ignore[union-attr]
    assert [encode_event(i.event) for i in got] == [encode_event(e) for e in file_events]  # type: ignore[arg-type]
    # the reconnect resumed from the largest time_us seen before the drop, rewound a few seconds
    assert len(server.queries) == 2 and "cursor" not in server.queries[0]
    seen_before_drop = max(json.loads(ln)["time_us"] for ln in golden_lines[:5])
    assert int(server.queries[1]["cursor"][0]) == seen_before_drop - int(REWIND_S * 1_000_000)
    assert stats.connects == 2 and stats.duplicates == 5 and stats.messages == len(golden_lines)
    assert [i.line for i in got][-1] == len(golden_lines)


def test_stream_async_with_filters_and_invalid_frames(golden_lines: list[str]) -> None:
    stats = StreamStats()

    async def collect(url: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        async with contextlib.aclosing(stream(url, ["app.bsky.feed.*"], dids=["did:plc:a"], rewind_s=REWIND_S,
                                              backoff_s=0.05, max_failures=3, stats=stats, proxy=None)) as msgs:
            async for msg in msgs:
                out.append(msg)
                if len(out) == len(golden_lines):
                    break
        return out

    with FakeJetstream(golden_lines, drop_after=8, extra=["not json", "[1, 2]"]) as server:
        msgs = asyncio.run(collect(server.url))
    assert msgs == [json.loads(ln) for ln in golden_lines]
    assert stats.invalid == 2
    assert server.queries[0]["wantedCollections"] == ["app.bsky.feed.*"]
    assert server.queries[1]["wantedDids"] == ["did:plc:a"] and "cursor" in server.queries[1]


def test_invalid_frames_become_dead_letters(golden_lines: list[str]) -> None:
    with FakeJetstream(golden_lines, drop_after=None, extra=["{oops"]) as server:
        it = live_items(server.url, backoff_s=0.05, max_failures=3, proxy=None)
        first = next(it)
        it.close()  # type: ignore[attr-defined]
    assert first.event is None and first.error is not None and first.raw == b"{oops"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_gives_up_after_consecutive_failures() -> None:
    url = f"ws://127.0.0.1:{_free_port()}/subscribe"
    stats = StreamStats()

    async def run() -> None:
        async for _ in frames(url, cursor=123, backoff_s=0.01, max_failures=3, stats=stats, proxy=None):
            pass

    with pytest.raises(JetstreamError):
        asyncio.run(run())
    assert len(stats.urls) == 3 and all(u.endswith("cursor=123") for u in stats.urls)
    with pytest.raises(JetstreamError):
        list(live_items(url, backoff_s=0.01, max_failures=2, proxy=None))


def test_subscribe_url() -> None:
    url = subscribe_url("wss://h/subscribe?cursor=1&compress=false", ["a.b", "c.d"], ["did:x"], 99)
    assert parse_qs(urlsplit(url).query) == {"compress": ["false"], "wantedCollections": ["a.b", "c.d"],
                                              "wantedDids": ["did:x"], "cursor": ["99"]}


def test_data_file_is_there() -> None:
    assert isinstance(GOLDEN, Path) and GOLDEN.is_file()
