"""The labeler's public XRPC routes (atproto labelers serve them without authentication):

- ``GET /xrpc/com.atproto.label.queryLabels?uriPatterns=...&sources=...&limit=...&cursor=...``: JSON
  ``{cursor, labels}``; bad parameters are 400 ``{"error": "InvalidRequest", "message": ...}``.
- ``/xrpc/com.atproto.label.subscribeLabels?cursor=N`` (WebSocket): binary event-stream frames, each a
  DAG-CBOR header ``{op: 1, t: "#labels"}`` and body ``{seq, labels}``; with a cursor, every label after it is
  replayed first, then new ones follow as they are logged (the log is polled, so the writer may be another
  process). A cursor past the newest label gets ``{op: -1}`` + ``{error: "FutureCursor", message}`` and the
  socket is closed; without a cursor only new labels are sent.

:func:`mount_labeler` adds them to an app; :func:`create_labeler_app` is ``bastion labeler serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from bastion.labeler.labels import error_frame, labels_frame, to_json
from bastion.labeler.log import LabelLog, QueryError

router = APIRouter(tags=["atproto labeler"])
POLL_S = 0.2
REPLAY_BATCH = 500
MAX_PATTERNS = 100


def _log(app: Any) -> LabelLog:
    return app.state.label_log  # type: ignore[no-any-return]


def _bad(message: str) -> JSONResponse:
    return JSONResponse(status_code=400, content={"error": "InvalidRequest", "message": message})


def _int_param(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(f"{name} must be an integer, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise QueryError(f"{name} must be between {low} and {high}, got {value}")
    return value


@router.get("/xrpc/com.atproto.label.queryLabels", summary="Find labels by URI pattern (public)")
async def query_labels(request: Request) -> JSONResponse:
    """Labels whose ``uri`` matches one of ``uriPatterns`` (repeat the parameter; a trailing ``*`` matches a
    prefix, ``*`` alone everything), optionally only from ``sources`` (DIDs), ``limit`` 1-250 (default 50),
    after ``cursor`` (the ``cursor`` of the previous page). Negations are returned like other labels."""
    params = request.query_params
    patterns = params.getlist("uriPatterns")
    sources = params.getlist("sources")
    try:
        if not patterns:
            raise QueryError("uriPatterns is required (one or more at:// URIs or DIDs, a trailing * for a prefix)")
        if len(patterns) > MAX_PATTERNS or len(sources) > MAX_PATTERNS:
            raise QueryError(f"at most {MAX_PATTERNS} uriPatterns and sources")
        limit = _int_param(params.get("limit"), "limit", 50, 1, 250)
        cursor = _int_param(params.get("cursor"), "cursor", 0, 0, 2**63 - 1)
        rows = await asyncio.to_thread(_log(request.app).query, patterns, sources, cursor, limit)
    except QueryError as exc:
        return _bad(str(exc))
    body: dict[str, Any] = {"labels": [to_json(label) for _seq, label in rows]}
    if rows:
        body["cursor"] = str(rows[-1][0])
    return JSONResponse(body)


async def _send_error(ws: WebSocket, error: str, message: str) -> None:
    await ws.send_bytes(error_frame(error, message))
    await ws.close(code=1008 if error != "FutureCursor" else 1000)


@router.websocket("/xrpc/com.atproto.label.subscribeLabels")
async def subscribe_labels(ws: WebSocket) -> None:
    await ws.accept()
    label_log = _log(ws.app)
    raw = ws.query_params.get("cursor")
    head = await asyncio.to_thread(label_log.head)
    if raw is None:
        cursor = head
    else:
        try:
            cursor = int(raw)
            if cursor < 0:
                raise ValueError
        except ValueError:
            await _send_error(ws, "InvalidRequest", f"cursor must be a non-negative integer, got {raw[:40]!r}")
            return
        if cursor > head:
            await _send_error(ws, "FutureCursor", "Cursor in the future.")
            return
    receiver = asyncio.ensure_future(ws.receive())
    try:
        while True:
            rows = await asyncio.to_thread(label_log.since, cursor, REPLAY_BATCH)
            for seq, label in rows:
                await ws.send_bytes(labels_frame(seq, [label]))
                cursor = seq
            if len(rows) == REPLAY_BATCH:
                continue
            done, _ = await asyncio.wait({receiver}, timeout=POLL_S)
            if done:
                message = receiver.result()
                if message.get("type") == "websocket.disconnect":
                    return
                receiver = asyncio.ensure_future(ws.receive())   # clients send nothing; ignore what they do
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver


def mount_labeler(app: FastAPI, label_log: LabelLog) -> None:
    app.state.label_log = label_log
    app.include_router(router)


def create_labeler_app(label_log: LabelLog) -> FastAPI:
    """The labeler routes alone (``bastion labeler serve``), with ``/xrpc/_health``."""
    app = FastAPI(title="Bastion labeler", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None)
    mount_labeler(app, label_log)

    @app.get("/xrpc/_health")
    def health() -> dict[str, Any]:
        return {"version": "bastion-labeler", "head": label_log.head()}

    return app
