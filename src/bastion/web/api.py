"""The HTTP API (FastAPI): ingest, synchronous checks, account lookups, health and metrics."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import msgspec
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from bastion.actions.effects import Subject
from bastion.app import Runtime
from bastion.engine import Exported
from bastion.events.codec import BadEvent, convert_event
from bastion.observability import Metrics
from bastion.web.keys import ApiKeyStore
from bastion.web.openapi import (
    CHECK_BODY,
    ERRORS,
    INGEST_BODY,
    CheckResult,
    Health,
    IngestResult,
    Ready,
    install,
)
from bastion.web.security import BodyLimit, Principal, SecurityHeaders, require

MAX_BATCH = 10_000
MAX_BODY = 32 * 1024 * 1024
FORM_MAX_BODY = 1024 * 1024            # login, review decisions, rule drafts: every body but ingest's
BODY_LIMITS = {"/v1/events": MAX_BODY, "/v1/check": MAX_BODY}

router = APIRouter()
log = logging.getLogger("bastion.web")


class Service:
    """The engine behind the API; one writer at a time."""

    def __init__(self, runtime: Runtime, metrics: Metrics) -> None:
        self.runtime = runtime
        self.metrics = metrics
        self.lock = threading.Lock()


def _service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


async def json_body(request: Request) -> Any:
    """The request body as JSON; every bad body (empty, too large, not JSON, nested past the decoder's limit)
    is answered 4xx with a message, never 500."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(status_code=413, detail=f"body larger than {MAX_BODY} bytes")
    if not body.strip():
        raise HTTPException(status_code=400, detail="empty body: send a JSON value")
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise HTTPException(status_code=400, detail=f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise HTTPException(status_code=400, detail="body is not valid JSON: nested too deeply") from None


def _dead_letter_text(obj: Any) -> str:
    try:
        return msgspec.json.encode(obj).decode()
    except (TypeError, ValueError, OverflowError, RecursionError):  # pragma: no cover - decoded JSON encodes
        return repr(obj)[:65_536]


@router.post("/v1/events", tags=["ingest"], summary="Ingest a batch of canonical events",
             response_description="accepted and rejected counts, with an error per rejected event",
             response_model=IngestResult, responses=ERRORS, openapi_extra=INGEST_BODY)
async def ingest(request: Request, _who: Principal = Depends(require("ingest"))) -> dict[str, Any]:
    """Body: a JSON array of events, or ``{"events": [...]}``, or one event object. Valid events are processed
    in order; invalid ones (including events outside the timestamp window or over the text and nesting limits)
    are rejected with their index and reason and do not stop the batch, nor does an event whose processing
    fails."""
    payload = await json_body(request)
    if isinstance(payload, dict) and isinstance(payload.get("events"), list):
        batch = payload["events"]
    elif isinstance(payload, list):
        batch = payload
    elif isinstance(payload, dict):
        batch = [payload]
    else:
        raise HTTPException(status_code=400, detail="expected an event object, an array, or {\"events\": [...]}")
    if len(batch) > MAX_BATCH:
        raise HTTPException(status_code=413, detail=f"batch of {len(batch)} events exceeds {MAX_BATCH}")
    svc = _service(request)
    limits = svc.runtime.limits
    errors: list[dict[str, Any]] = []
    accepted = duplicates = 0
    actions = 0
    # every event is validated fully (shape, timestamp window, text and nesting limits) before the engine sees
    # it, and outside the engine lock, so nothing that can fail on an event's content is left for process()
    checked: list[tuple[int, Any, str]] = []
    for i, obj in enumerate(batch):
        try:
            checked.append((i, convert_event(obj, limits), ""))
        except BadEvent as exc:
            checked.append((i, obj, exc.reason))
    with svc.lock:
        for i, event, bad in checked:
            if bad:
                errors.append({"index": i, "id": _event_id(event), "error": bad})
                svc.metrics.bad.labels("http").inc()
                if svc.runtime.writer is not None:
                    svc.runtime.writer.write_dead_letter(None, bad, _dead_letter_text(event))
                continue
            t0 = time.perf_counter()
            try:
                applied = svc.runtime.engine.process(event)
            except Exception as exc:  # one event that breaks the engine must not cost the rest of the batch
                # Content cannot cause this any more (validated above); a sink or backend failed part-way. The
                # id stays seen, as the engine may have applied part of the event: a resend would apply it twice.
                log.exception("processing event %r failed", event.id)
                errors.append({"index": i, "id": event.id,
                               "error": f"processing failed ({type(exc).__name__}); see the server log "
                                        "(the id counts as seen: a resend is a duplicate)"})
                svc.metrics.bad.labels("http").inc()
                continue
            svc.metrics.latency.labels("process").observe(time.perf_counter() - t0)
            if applied is None:
                duplicates += 1
                svc.metrics.duplicates.inc()
            else:
                accepted += 1
                actions += len(applied)
        svc.runtime.engine.flush()
    return {"accepted": accepted, "duplicates": duplicates, "rejected": len(errors), "actions": actions,
            "errors": errors}


def _event_id(obj: Any) -> str | None:
    eid = obj.get("id") if isinstance(obj, dict) else None
    return eid[:128] if isinstance(eid, str) else None


VERDICT_ORDER = ("account.suspend", "post.hide", "account.limit", "post.downrank", "review.enqueue", "label.add")


@router.post("/v1/check", tags=["ingest"], summary="Synchronous verdict for one event (nothing is stored)",
             response_model=CheckResult, responses=ERRORS, openapi_extra=CHECK_BODY)
async def check(request: Request, _who: Principal = Depends(require("ingest"))) -> dict[str, Any]:
    """Evaluate one event - for example a reply before it is published - against the current state, without
    changing it. Returns the effects that would apply, their reasons, the scores read, and a verdict."""
    payload = await json_body(request)
    try:
        event = convert_event(payload, _service(request).runtime.limits)
    except BadEvent as exc:
        raise HTTPException(status_code=422, detail=f"invalid event: {exc.reason}") from None
    svc = _service(request)
    t0 = time.perf_counter()
    with svc.lock:
        effects, ctx = svc.runtime.engine.check(event)
    took = time.perf_counter() - t0
    svc.metrics.latency.labels("check").observe(took)
    enforced = [e for e in effects if e.stage == "enforce"]
    verdict = "allow"
    for name in VERDICT_ORDER:
        if any(e.action == name for e in enforced):
            verdict = name
            break
    scores = {k: v for k, v in ctx._cache.items() if k.startswith("score.") and isinstance(v, float)}
    return {
        "verdict": verdict,
        "effects": [msgspec.to_builtins(e) for e in effects],
        "reasons": [e.reason for e in enforced if e.reason],
        "scores": scores,
        "latency_ms": round(took * 1000, 3),
    }


@router.get("/v1/accounts/{account_id}", tags=["investigate"], summary="State, scores, labels and actions")
def account(account_id: str, request: Request,
            _who: Principal = Depends(require("analyst", "reviewer"))) -> dict[str, Any]:
    svc = _service(request)
    rt = svc.runtime
    with svc.lock:
        acc = rt.state.accounts.get(account_id)
        if acc is None:
            raise HTTPException(status_code=404, detail=f"no account {account_id!r}")
        now = rt.engine.stats.last_ts or 0
        subj = Subject("account", account_id)
        out: dict[str, Any] = {
            "account": msgspec.to_builtins(acc),
            "scores": rt.engine.scores.data.get(subj, {}),
            "labels": [msgspec.to_builtins(lb) for lb in rt.state.labels.active("account", account_id, now)],
            "recent_actions": [msgspec.to_builtins(a) for a in rt.engine.recent.get(account_id, [])],
            "linked_to": [{"id": lk.parent, "score": lk.score, "evidence": lk.evidence}
                          for lk in rt.links.ranked(account_id)],
            "clusters": [{"id": c.id, "kind": c.kind, "size": len(c.members), "score": c.score}
                         for c in rt.clusters.of(account_id)],
            "reports": [msgspec.to_builtins(r) for r in rt.state.reports.for_subject("account", account_id)],
        }
        if rt.explainer is not None:
            out["explanations"] = rt.explainer.explain_account(acc, now)
    return out


@router.get("/healthz", tags=["ops"], summary="Liveness", response_model=Health)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["ops"], summary="Readiness", response_model=Ready)
def readyz(request: Request) -> dict[str, Any]:
    svc = _service(request)
    return {"status": "ready", "events": svc.runtime.engine.stats.events,
            "review_ranking": svc.runtime.queue.ranking}


@router.get("/metrics", tags=["ops"], summary="Prometheus metrics")
def metrics(request: Request) -> Response:
    svc = _service(request)
    now = svc.runtime.engine.stats.last_ts or 0
    by_queue: dict[str, int] = {}
    breached: dict[str, int] = {}
    for case in svc.runtime.queue.open_cases():
        by_queue[case.queue] = by_queue.get(case.queue, 0) + 1
        if now > case.deadline_ms():
            breached[case.queue] = breached.get(case.queue, 0) + 1
    for q, n in by_queue.items():
        svc.metrics.queue_open.labels(q).set(n)
        svc.metrics.deadline_breaches.labels(q).set(breached.get(q, 0))
    for det in svc.runtime.detectors:
        if isinstance(det, Exported):
            det.prometheus(svc.metrics)
    return Response(svc.metrics.render(), media_type="text/plain; version=0.0.4")


class BastionApp(FastAPI):
    """FastAPI with Bastion's outermost layers around everything, error responses included: security headers
    (:class:`~bastion.web.security.SecurityHeaders`) and body limits (:class:`~bastion.web.security.BodyLimit`:
    ``MAX_BODY`` for ingest and checks, ``FORM_MAX_BODY`` for everything else)."""

    production = False

    def build_middleware_stack(self) -> Any:
        return SecurityHeaders(BodyLimit(super().build_middleware_stack(), FORM_MAX_BODY, BODY_LIMITS),
                               production=self.production)


def create_app(runtime: Runtime, keys: ApiKeyStore) -> FastAPI:
    """The API over ``runtime``, which reports to its own metrics (``build_runtime(settings, "api")``)."""
    if runtime.metrics is None:
        raise ValueError("the API needs a runtime built with build_runtime(settings, \"api\") (its metrics)")
    production = runtime.settings.environment == "production"
    # production serves no interactive docs and no schema to anonymous callers (docs/security.md)
    docs: dict[str, Any] = {"docs_url": None, "redoc_url": None, "openapi_url": None} if production else {}
    app = BastionApp(title="Bastion", version="0.1.0",
                     description="Real-time trust-and-safety: ingest events, check one synchronously, investigate.",
                     **docs)
    app.production = production
    app.state.service = Service(runtime, runtime.metrics)
    app.state.keys = keys

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": exc.errors()})

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - last resort
        import logging

        logging.getLogger("bastion.web").exception("unhandled error: %s", exc)
        return JSONResponse(status_code=500, content={"detail": "internal error; see the server log"})

    app.include_router(router)
    install(app)
    return app
