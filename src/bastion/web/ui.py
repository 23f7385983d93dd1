"""The reviewer and investigator UI: server-rendered Jinja2 pages with htmx (vendored, no build step), plus the
JSON case routes. Every route declares its roles (:data:`ROUTE_ROLES`, tested as a matrix).

``mount_ui(app, settings, runtime)`` serves the runtime's review service and team console (a runtime built with
``build_runtime(settings, "api")``), the session manager
(``app.state.session_resolver``), the login limiter, the routes and ``/ui/static``.
"""

from __future__ import annotations

import html
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from bastion.actions.effects import Subject
from bastion.app import Runtime
from bastion.review.entities import ENTITY_KINDS, SearchFilter
from bastion.review.queue import DEADLINE_H, QUEUES
from bastion.review.service import ACTIONS, POLICIES, VERDICTS, ReviewService
from bastion.settings import Settings
from bastion.web.console import ROUTE_ROLES as CONSOLE_ROLES
from bastion.web.security import (
    LoginLimiter,
    LoginRequired,
    Principal,
    SessionManager,
    authenticate,
    password_hasher,
    ui_require,
)

HERE = Path(__file__).parent
HUMANS = ("analyst", "reviewer")       # admin is always admitted by require()
# route -> roles admitted (besides admin); the authorisation matrix test walks this table
ROUTE_ROLES: dict[tuple[str, str], tuple[str, ...]] = {
    ("GET", "/ui/"): HUMANS,
    ("GET", "/ui/cases/{case_id}"): HUMANS,
    ("POST", "/ui/cases/{case_id}/decide"): ("reviewer",),
    ("GET", "/ui/search"): HUMANS,
    ("GET", "/ui/entity/{kind}/{value}"): HUMANS,
    ("GET", "/ui/events"): HUMANS,
    ("POST", "/ui/rules/draft"): ("analyst",),
    ("POST", "/ui/rules/save"): ("analyst",),
    ("GET", "/ui/dashboard"): HUMANS,
    ("GET", "/ui/audit"): (),
    ("GET", "/ui/users"): (),
    ("POST", "/ui/users"): (),
    ("GET", "/v1/cases"): HUMANS,
    ("GET", "/v1/cases/{case_id}"): HUMANS,
    ("POST", "/v1/cases/{case_id}/decision"): ("reviewer",),
    ("GET", "/v1/review/precision"): HUMANS,
}
ROUTE_ROLES.update(CONSOLE_ROLES)   # the team console's routes (bastion.web.console)


def roles_for(method: str, path: str) -> Any:
    return Depends(ui_require(*ROUTE_ROLES[(method, path)]))


router = APIRouter()


# -- helpers ----------------------------------------------------------------------------------------------
def _svc(request: Request) -> ReviewService:
    return request.app.state.review  # type: ignore[no-any-return]


def _lock(request: Request) -> Any:
    return request.app.state.service.lock


def fmt_ts(ms: int | float | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def fmt_rel(ms: float) -> str:
    h = abs(ms) / 3_600_000
    txt = f"{h * 60:.0f}m" if h < 1 else f"{h:.1f}h"
    return f"in {txt}" if ms >= 0 else f"{txt} ago"


def svg_bars(points: list[tuple[float, int]], width: int = 640, height: int = 120, color: str = "#3b6ea5",
             label: str = "") -> str:
    """A bar chart as inline SVG (no JavaScript, no image request)."""
    if not points:
        return f'<svg class="chart" width="{width}" height="{height}"><text x="8" y="20">no data</text></svg>'
    top = max(c for _, c in points) or 1
    bw = width / len(points)
    bars = []
    for i, (_t, c) in enumerate(points):
        h = (height - 20) * c / top
        bars.append(f'<rect x="{i * bw:.1f}" y="{height - 14 - h:.1f}" width="{max(1.0, bw - 1):.1f}" '
                    f'height="{h:.1f}" fill="{color}"><title>{c}</title></rect>')
    lo, hi = fmt_ts(points[0][0]), fmt_ts(points[-1][0])
    return (f'<svg class="chart" role="img" aria-label="{html.escape(label)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">{"".join(bars)}<text x="0" y="{height - 2}" font-size="10">{lo}</text>'
            f'<text x="{width}" y="{height - 2}" font-size="10" text-anchor="end">{hi}</text>'
            f'<text x="4" y="10" font-size="10">max {top}</text></svg>')


def svg_lines(series: dict[str, list[tuple[float, float]]], width: int = 640, height: int = 140) -> str:
    colors = ["#3b6ea5", "#c0392b", "#27ae60", "#8e44ad", "#d68910", "#566573"]
    pts = [p for s in series.values() for p in s]
    if not pts:
        return f'<svg class="chart" width="{width}" height="{height}"><text x="8" y="20">no data yet</text></svg>'
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y1 = max(p[1] for p in pts) or 1
    sx = (width - 110) / ((x1 - x0) or 1)
    out = []
    for i, (name, s) in enumerate(sorted(series.items())):
        c = colors[i % len(colors)]
        path = " ".join(f"{(x - x0) * sx:.1f},{(height - 12) - (height - 24) * y / y1:.1f}" for x, y in s)
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{path}"/>'
                   f'<text x="{width - 105}" y="{14 + 14 * i}" fill="{c}" font-size="11">{html.escape(name)}</text>')
    return (f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}">{"".join(out)}'
            f'<text x="2" y="10" font-size="10">max {y1:g}</text></svg>')


def svg_graph(center: str, members: list[str], bad: set[str] | None = None, size: int = 260) -> str:
    """A small star/ring layout of a cluster or link neighbourhood: the subject in the middle."""
    r = size / 2 - 24
    cx = cy = size / 2
    parts = []
    n = max(1, len(members))
    for i, m in enumerate(members[:40]):
        a = 2 * math.pi * i / min(n, 40)
        x, y = cx + r * math.cos(a), cy + r * math.sin(a)
        parts.append(f'<line x1="{cx}" y1="{cy}" x2="{x:.1f}" y2="{y:.1f}" stroke="#bbb"/>')
        fill = "#c0392b" if bad and m in bad else "#3b6ea5"
        parts.append(f'<a href="/ui/entity/account/{html.escape(m)}"><circle cx="{x:.1f}" cy="{y:.1f}" r="7" '
                     f'fill="{fill}"><title>{html.escape(m)}</title></circle></a>')
    parts.append(f'<circle cx="{cx}" cy="{cy}" r="10" fill="#222"><title>{html.escape(center)}</title></circle>')
    return f'<svg class="graph" width="{size}" height="{size}" viewBox="0 0 {size} {size}">{"".join(parts)}</svg>'


def render(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    env: Environment = request.app.state.ui_env
    who = getattr(request.state, "principal", None)
    sessions: SessionManager = request.app.state.sessions
    body = env.get_template(template).render(request=request, who=who, csrf=sessions.csrf_token(request),
                                         queues=QUEUES, **ctx)
    resp = HTMLResponse(body, status_code=status)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# -- login ----------------------------------------------------------------------------------------------
@router.get("/ui/login", include_in_schema=False)
def login_page(request: Request, next: str = "/ui/") -> HTMLResponse:
    resp = HTMLResponse("")
    token = request.app.state.sessions.login_csrf(request, resp)
    page = render(request, "login.html", login_csrf=token, next=_safe_next(next), error="")
    for k, v in resp.headers.items():
        if k == "set-cookie":
            page.headers.append("set-cookie", v)
    return page


def _safe_next(nxt: str) -> str:
    return nxt if nxt.startswith("/ui/") and "//" not in nxt else "/ui/"


@router.post("/ui/login", include_in_schema=False)
def login(request: Request, username: str = Form(""), password: str = Form(""), csrf_token: str = Form(""),
          next: str = Form("/ui/")) -> Response:
    sessions: SessionManager = request.app.state.sessions
    limiter: LoginLimiter = request.app.state.login_limiter
    svc = _svc(request)
    if not sessions.check_login_csrf(request, csrf_token):
        raise HTTPException(status_code=403, detail="missing or invalid CSRF token")
    client = _client(request)  # the peer, or the address a trusted proxy forwarded (settings.trusted_proxies)
    wait, slot = limiter.reserve(username, client)  # counted before the password is checked
    if wait > 0:
        svc.store.audit(username or "?", "login.throttled", "", {"client": client})
        return HTMLResponse(f"too many failed logins; try again in {int(wait) + 1} s", status_code=429,
                            headers={"Retry-After": str(int(wait) + 1)})
    row = authenticate(svc.store, username, password, request.app.state.hasher)
    if row is None:
        svc.store.audit(username or "?", "login.failed", "", {"client": client})
        resp = HTMLResponse("")
        token = sessions.login_csrf(request, resp)
        return render(request, "login.html", status=401, login_csrf=token, next=_safe_next(next),
                      error="wrong user name or password")
    limiter.succeeded(username, client, slot)
    resp = RedirectResponse(_safe_next(next), status_code=303)
    sessions.login(resp, row["name"])
    svc.store.audit(row["name"], "login", "", {"client": client, "role": row["role"]})
    return resp


@router.post("/ui/logout", include_in_schema=False)
async def logout(request: Request, who: Principal = Depends(ui_require(*HUMANS))) -> Response:
    resp = RedirectResponse("/ui/login", status_code=303)
    request.app.state.sessions.logout(request, resp)
    _svc(request).store.audit(who.name, "logout", "", {})
    return resp


# -- queue and cases -------------------------------------------------------------------------------------
def _queue_rows(svc: ReviewService, queue: str | None, limit: int = 100) -> list[dict[str, Any]]:
    now = svc.now_ms()
    top = svc.queue.ranked(now, queue)[:limit]
    ps = svc.queue.p_violations([case for case, _ in top], now)  # the learned P when it ranks, else the formula's
    rows = []
    for rank, ((case, prio), p) in enumerate(zip(top, ps, strict=True), 1):
        dl = case.deadline_ms()
        rows.append({"rank": rank, "case": case, "priority": prio, "deadline": fmt_rel(dl - now),
                     "breached": now > dl, "p": p, "reasons": case.reason_list()[:4]})
    return rows


@router.get("/ui/", include_in_schema=False)
def queue_page(request: Request, queue: str | None = None,
               who: Principal = roles_for("GET", "/ui/")) -> HTMLResponse:
    svc = _svc(request)
    with _lock(request):
        svc.queue.sync()
        rows = _queue_rows(svc, queue if queue in QUEUES else None)
        counts = svc.queue.breaches(svc.now_ms())
    return render(request, "queue.html", rows=rows, counts=counts, current=queue or "", deadlines=DEADLINE_H,
                  ranking=svc.queue.ranking)


@router.get("/ui/cases/{case_id}", include_in_schema=False)
def case_page(request: Request, case_id: str, who: Principal = roles_for("GET", "/ui/cases/{case_id}"),
              msg: str = "") -> HTMLResponse:
    svc = _svc(request)
    with _lock(request):
        case = svc.queue.by_id.get(case_id)
        if case is None:
            raise HTTPException(status_code=404, detail=f"no case {case_id!r}")
        ev = svc.evidence(case)
        now = svc.now_ms()
        prio = svc.queue.priority_of(case, now)
        nxt = next((c.id for c, _ in svc.queue.ranked(now) if c.id != case_id), None)
        team = request.app.state.team.view(case, who.name, who.role)
    graph = ""
    if ev.get("clusters"):
        cl = ev["clusters"][0]
        graph = svg_graph(cl["id"], cl["members"])
    elif ev.get("links"):
        graph = svg_graph(ev.get("account_id") or case.subject.id, [lk["parent"] for lk in ev["links"]])
    decisions = [dict(r) for r in svc.store.query(
        "SELECT * FROM decisions WHERE subject_kind=? AND subject_id=? ORDER BY decided_at DESC LIMIT 10",
        (case.subject.kind, case.subject.id))]
    return render(request, "case.html", case=case, ev=ev, prio=prio, graph=graph, fmt_ts=fmt_ts, next_case=nxt,
                  verdicts=VERDICTS, policies=POLICIES, actions=ACTIONS, decisions=decisions, msg=msg,
                  deadline=fmt_rel(case.deadline_ms() - now), breached=now > case.deadline_ms(),
                  can_decide=who.role in ("reviewer", "admin") and team["may_decide"], team=team)


def _decide(request: Request, who: Principal, case_id: str, verdict: str, policy: str, action: str,
            note: str) -> dict[str, Any]:
    """A decision through the team console: under the reviewer's claim, in a queue they may decide."""
    from bastion.review.team_service import Conflict, Denied

    team = request.app.state.team
    try:
        with _lock(request):
            return team.decide(case_id, who.name, who.role, verdict, policy, action, note)  # type: ignore[no-any-return]
    except KeyError:
        raise HTTPException(status_code=404, detail=f"no case {case_id!r}") from None
    except Denied as exc:
        raise HTTPException(status_code=403, detail=str(exc)) from None
    except Conflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    except ValueError as exc:
        raise HTTPException(status_code=409 if "already decided" in str(exc) else 422, detail=str(exc)) from None


@router.post("/ui/cases/{case_id}/decide", include_in_schema=False)
async def decide_form(request: Request, case_id: str, verdict: str = Form(...), policy: str = Form(...),
                      action: str = Form("none"), note: str = Form(""),
                      who: Principal = roles_for("POST", "/ui/cases/{case_id}/decide")) -> Response:
    rec = _decide(request, who, case_id, verdict, policy, action, note[:1000])
    msg = f"decided {case_id}: {verdict} ({policy}, {action}); actions {', '.join(rec['applied']) or 'none'}"
    return RedirectResponse(f"/ui/cases/{case_id}?msg={msg}", status_code=303)


# -- JSON case API ----------------------------------------------------------------------------------------
@router.get("/v1/cases", tags=["review"], summary="Open cases, highest priority first")
def cases_json(request: Request, queue: str | None = None, limit: int = 100,
               who: Principal = roles_for("GET", "/v1/cases")) -> list[dict[str, Any]]:
    svc = _svc(request)
    with _lock(request):
        return [{"rank": r["rank"], "case": r["case"].id, "subject": {"kind": r["case"].subject.kind,
                 "id": r["case"].subject.id}, "queue": r["case"].queue, "priority": round(r["priority"], 6),
                 "p_violation": round(r["p"], 4), "reasons": r["reasons"], "deadline": r["deadline"],
                 "breached": r["breached"]} for r in _queue_rows(svc, queue, min(max(1, limit), 1000))]


@router.get("/v1/cases/{case_id}", tags=["review"], summary="One case with its signals and reports")
def case_json(request: Request, case_id: str, who: Principal = roles_for("GET", "/v1/cases/{case_id}")) -> Any:
    svc = _svc(request)
    with _lock(request):
        case = svc.queue.by_id.get(case_id)
        if case is None:
            raise HTTPException(status_code=404, detail=f"no case {case_id!r}")
        return JSONResponse({"id": case.id, "subject": {"kind": case.subject.kind, "id": case.subject.id},
                             "queue": case.queue, "status": case.status, "decision": case.decision,
                             "priority": svc.queue.priority_of(case), "reasons": case.reason_list(),
                             "reporters": sorted(case.reporters), "sources": sorted(case.sources),
                             "exposure": case.exposure})


@router.post("/v1/cases/{case_id}/decision", tags=["review"], summary="Decide a case")
async def decide_json(request: Request, case_id: str,
                      who: Principal = roles_for("POST", "/v1/cases/{case_id}/decision")) -> dict[str, Any]:
    """Body: ``{"verdict": ..., "policy": ..., "action": "none", "note": ""}``, every field a string."""
    from bastion.web.api import json_body

    body = await json_body(request)
    if not isinstance(body, dict):
        raise HTTPException(status_code=422, detail="expected a JSON object with verdict, policy, action, note")
    fields: dict[str, str] = {}
    for name, default in (("verdict", None), ("policy", None), ("action", "none"), ("note", "")):
        value = body.get(name, default)
        if not isinstance(value, str):
            raise HTTPException(status_code=422, detail=f"{name} must be a string" if value is not None
                                else f"{name} is required")
        fields[name] = value
    return _decide(request, who, case_id, fields["verdict"], fields["policy"], fields["action"],
                   fields["note"][:1000])


@router.get("/v1/review/precision", tags=["review"], summary="Per-rule and per-model precision from decisions")
def precision_json(request: Request, who: Principal = roles_for("GET", "/v1/review/precision")) -> Any:
    return _svc(request).precision.table()


# -- investigation --------------------------------------------------------------------------------------
@router.get("/ui/search", include_in_schema=False)
def search_page(request: Request, q: str = "", who: Principal = roles_for("GET", "/ui/search")) -> Response:
    svc = _svc(request)
    q = q.strip()[:200]
    hits: list[tuple[str, str, str]] = []
    if q:
        with _lock(request):
            state = svc.runtime.state
            if state.accounts.get(q) is not None:
                return RedirectResponse(f"/ui/entity/account/{q}", status_code=303)
            ql = q.lower()
            for acc in state.accounts:
                if ql in acc.id.lower() or (acc.handle and ql in acc.handle.lower()):
                    hits.append(("account", acc.id, acc.handle or ""))
                    if len(hits) >= 50:
                        break
            if svc.recorder is not None:
                for kind in ("ip", "device", "domain", "text_hash"):
                    if svc.recorder.entity(kind, q) is not None:
                        hits.append((kind, q, ""))
    return render(request, "search.html", q=q, hits=hits)


@router.get("/ui/entity/{kind}/{value:path}", include_in_schema=False)
def entity_page(request: Request, kind: str, value: str,
                who: Principal = roles_for("GET", "/ui/entity/{kind}/{value}")) -> HTMLResponse:
    if kind not in ENTITY_KINDS:
        raise HTTPException(status_code=404, detail=f"unknown entity kind {kind!r}")
    svc = _svc(request)
    rt = svc.runtime
    with _lock(request):
        now = svc.now_ms()
        info = svc.recorder.entity(kind, value) if svc.recorder else None
        related = svc.recorder.related(kind, value) if svc.recorder else {}
        ctx: dict[str, Any] = {"kind": kind, "value": value, "info": info, "related": related,
                               "rows": list(reversed(info.rows)) if info else [],
                               "labels": rt.state.labels.active(kind, value, now),
                               "scores": dict(rt.engine.scores.data.get(Subject(kind, value), {}))}
        if kind == "account":
            ctx["account"] = rt.state.accounts.get(value)
            ctx["links"] = rt.links.ranked(value)[:10]
            ctx["clusters"] = rt.clusters.of(value)[:5]
            ctx["actions"] = list(reversed(rt.engine.recent.get(value, [])))[:20]
            ctx["reports"] = rt.state.reports.for_subject("account", value)[-20:]
            cases = [c for c in svc.queue.cases.values() if c.subject == Subject("account", value)]
            ctx["cases"] = cases
        elif kind in ("ip", "device"):
            ctx["accounts"] = rt.state.identifiers.accounts(kind, value)[:100]
        if info is not None:
            ctx["chart"] = svg_bars(_bucket([r["ts"] for r in info.rows]), label="events over time")
        ctx["decisions"] = [dict(r) for r in svc.store.query(
            "SELECT * FROM decisions WHERE subject_kind=? AND subject_id=? ORDER BY decided_at DESC LIMIT 20",
            (kind, value))]
    return render(request, "entity.html", fmt_ts=fmt_ts, **ctx)


def _bucket(ts: list[int], n: int = 24) -> list[tuple[float, int]]:
    if not ts:
        return []
    lo, hi = min(ts), max(ts)
    w = max(1, (hi - lo) // n + 1)
    counts = [0] * n
    for t in ts:
        counts[min(n - 1, (t - lo) // w)] += 1
    return [(lo + i * w, c) for i, c in enumerate(counts)]


def _parse_time(s: str) -> int | None:
    s = s.strip()
    if not s:
        return None
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise HTTPException(status_code=422, detail=f"time {s!r}: use YYYY-MM-DDTHH:MM") from None
    return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp() * 1000)


def _filter(type: str, actor: str, since: str, until: str, text: str, entity: str, feature: str) -> SearchFilter:
    return SearchFilter(type=type.strip(), actor=actor.strip(), since_ms=_parse_time(since),
                        until_ms=_parse_time(until), text=text.strip()[:200], entity=entity.strip(),
                        feature=feature.strip()[:500])


@router.get("/ui/events", include_in_schema=False)
def events_page(request: Request, type: str = "", actor: str = "", since: str = "", until: str = "",
                text: str = "", entity: str = "", feature: str = "",
                who: Principal = roles_for("GET", "/ui/events")) -> HTMLResponse:
    svc = _svc(request)
    flt = _filter(type, actor, since, until, text, entity, feature)
    error, rows, total, chart = "", [], 0, ""
    searched = any((type, actor, since, until, text, entity, feature))
    if svc.recorder is not None and searched:
        try:
            with _lock(request):
                rows = svc.recorder.search(flt, limit=100)
                total, points = svc.recorder.count_over_time(flt)
            chart = svg_bars(points, label="matching events over time")
        except ValueError as exc:
            error = str(exc)
    return render(request, "events.html", flt=flt, rows=rows, total=total, chart=chart, error=error,
                  searched=searched, fmt_ts=fmt_ts, since=since, until=until,
                  can_rule=who.role in ("analyst", "admin"), recorded=len(svc.recorder.rows) if svc.recorder else 0)


@router.post("/ui/rules/draft", include_in_schema=False)
async def draft_rule(request: Request, name: str = Form(...), queue: str = Form("abuse"), type: str = Form(""),
                     actor: str = Form(""), since: str = Form(""), until: str = Form(""), text: str = Form(""),
                     entity: str = Form(""), feature: str = Form(""),
                     who: Principal = roles_for("POST", "/ui/rules/draft")) -> HTMLResponse:
    from starlette.concurrency import run_in_threadpool

    from bastion.review.rulemaker import backtest_draft, draft_rule_yaml

    svc = _svc(request)
    flt = _filter(type, actor, since, until, text, entity, feature)
    try:
        yaml_text = draft_rule_yaml(flt, name.strip(), queue if queue in QUEUES else "abuse", who.name)
        with _lock(request):
            events = svc.recorder.matching_events(flt) if svc.recorder else []
        # loading the draft and replaying it is CPU work: off the event loop
        result = await run_in_threadpool(backtest_draft, yaml_text, events, svc.store.decisions(),
                                         svc.runtime.truth_path)
        error = ""
    except ValueError as exc:
        yaml_text, result, error = "", {}, str(exc)
    return render(request, "_draft.html", yaml_text=yaml_text, result=result, error=error, name=name)


@router.post("/ui/rules/save", include_in_schema=False)
async def save_rule(request: Request, name: str = Form(...), yaml_text: str = Form(...),
                    who: Principal = roles_for("POST", "/ui/rules/save")) -> HTMLResponse:
    from starlette.concurrency import run_in_threadpool

    from bastion.review.rulemaker import DraftRefused, save_shadow_rule
    svc = _svc(request)
    rules_dir = svc.rules_dir
    if rules_dir is None:
        raise HTTPException(status_code=409, detail="no rules directory configured")
    rules = svc.runtime.rules
    registry = rules.registry if rules is not None else None
    # parsing, validating and reloading rules is CPU work on analyst input: off the event loop, so the
    # server keeps answering (/healthz, ingest) while it runs
    try:
        path = await run_in_threadpool(save_shadow_rule, rules_dir, name.strip(), yaml_text, registry)
    except DraftRefused as exc:
        return HTMLResponse(f'<p class="error">{html.escape(str(exc))}</p>', status_code=exc.status)
    written = path.read_text(encoding="utf-8")
    svc.store.audit(who.name, "rule.change", f"rule:{name.strip()}", {"path": str(path), "stage": "shadow",
                                                                      "yaml": written})
    if rules is not None:
        ok, message = await run_in_threadpool(rules.reload)
        if not ok:
            return HTMLResponse(f'<p class="error">saved {html.escape(path.name)} in shadow mode, but the reload '
                                f'was refused; the running rules stay: {html.escape(message)}</p>',
                                status_code=409)
    return HTMLResponse(f'<p class="ok">saved {html.escape(path.name)} in shadow mode (audited)</p>')


# -- dashboard, audit, users -----------------------------------------------------------------------------
@router.get("/ui/dashboard", include_in_schema=False)
def dashboard(request: Request, who: Principal = roles_for("GET", "/ui/dashboard")) -> HTMLResponse:
    svc = _svc(request)
    with _lock(request):
        svc.snapshot()
        counts = svc.queue.breaches(svc.now_ms())
    since = time.time() - 7 * 86400
    series: dict[str, list[tuple[float, float]]] = {}
    for r in svc.store.snapshots(since):
        series.setdefault(r["queue"], []).append((r["ts"], float(r["open_cases"])))
    dec = {k: [(t, float(c)) for t, c in v] for k, v in svc.decisions_over_time().items()}
    prec_rows = svc.precision.table()
    # rule precision over time: cumulative precision per source at each decision
    prec_series: dict[str, list[tuple[float, float]]] = {}
    tp: dict[str, int] = {}
    n: dict[str, int] = {}
    for d in svc.store.decisions():
        if d["verdict"] == "escalate":
            continue
        for s in d["sources"]:
            n[s] = n.get(s, 0) + 1
            tp[s] = tp.get(s, 0) + (d["verdict"] == "violating")
            prec_series.setdefault(s, []).append((d["decided_at"], tp[s] / n[s]))
    top = dict(sorted(prec_series.items(), key=lambda kv: -len(kv[1]))[:6])
    totals = {r["verdict"]: r["n"] for r in svc.store.query(
        "SELECT verdict, COUNT(*) AS n FROM decisions GROUP BY verdict")}
    return render(request, "dashboard.html", counts=counts, queue_chart=svg_lines(series),
                  decision_chart=svg_lines(dec), precision_chart=svg_lines(top), precision=prec_rows, totals=totals)


@router.get("/ui/audit", include_in_schema=False)
def audit_page(request: Request, kind: str = "", subject: str = "",
               who: Principal = roles_for("GET", "/ui/audit")) -> HTMLResponse:
    rows = _svc(request).store.audit_rows(kind=kind or None, subject=subject or None, limit=300)
    return render(request, "audit.html", rows=rows, kind=kind, subject=subject,
                  fmt_wall=lambda t: datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S"))


@router.get("/ui/users", include_in_schema=False)
def users_page(request: Request, who: Principal = roles_for("GET", "/ui/users"), msg: str = "") -> HTMLResponse:
    return render(request, "users.html", users=_svc(request).store.users(), msg=msg)


@router.post("/ui/users", include_in_schema=False)
async def users_add(request: Request, name: str = Form(...), role: str = Form(...), password: str = Form(...),
                    who: Principal = roles_for("POST", "/ui/users")) -> Response:
    from bastion.web.security import create_user

    svc = _svc(request)
    try:
        create_user(svc.store, name.strip(), role, password, request.app.state.hasher)
    except ValueError as exc:
        return render(request, "users.html", status=422, users=svc.store.users(), msg=str(exc))
    svc.store.audit(who.name, "user.add", f"user:{name}", {"role": role})
    return RedirectResponse(f"/ui/users?msg=added {name}", status_code=303)


# -- mounting -------------------------------------------------------------------------------------------
def mount_ui(app: FastAPI, settings: Settings, runtime: Runtime, hasher: Any = None) -> ReviewService:
    """Serve the UI on ``app`` over ``runtime``'s review service and team console (see the module docstring)."""
    from bastion.web.console import router as console_router

    svc, team = runtime.review, runtime.team
    if svc is None or team is None:
        raise ValueError("the reviewer UI needs a runtime built with build_runtime(settings, \"api\")")
    app.state.review = svc
    app.state.team = team
    app.state.sessions = SessionManager(svc.store, settings.secret_key, settings.session_cookie_secure)
    app.state.session_resolver = app.state.sessions.resolve
    app.state.login_limiter = LoginLimiter()
    app.state.hasher = hasher or password_hasher()
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"]),
                      auto_reload=False)
    env.filters["ts"] = fmt_ts
    env.filters["num"] = lambda x, d=3: f"{x:.{d}g}" if isinstance(x, float) else x
    app.state.ui_env = env
    app.include_router(router)
    app.include_router(console_router)
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _exc: LoginRequired) -> Response:
        return RedirectResponse(f"/ui/login?next={request.url.path}", status_code=303)

    @app.get("/", include_in_schema=False)
    def _root() -> Response:
        return RedirectResponse("/ui/", status_code=303)

    return svc
