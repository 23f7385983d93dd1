"""The team console's routes: queues and claim-next, lease renewal, reveals, bulk actions, appeals (UI and the
platform's API), queue administration, statements of reasons and the throughput dashboard. The logic is in
:class:`bastion.review.team_service.TeamService`; every route declares its roles in :data:`ROUTE_ROLES`
(merged into ``bastion.web.ui.ROUTE_ROLES`` and tested as one matrix)."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from bastion.review.appeals import OUTCOMES
from bastion.review.service import ACTIONS, POLICIES
from bastion.review.team import DEFAULT_SETTINGS, QUEUE_KINDS, SEARCH_FIELDS
from bastion.review.team_service import Conflict, Denied, TeamService
from bastion.web.security import Principal, ui_require

HUMANS = ("analyst", "reviewer")
ROUTE_ROLES: dict[tuple[str, str], tuple[str, ...]] = {
    ("GET", "/ui/team"): HUMANS,
    ("POST", "/ui/team/claim"): ("reviewer",),
    ("POST", "/ui/cases/{case_id}/claim"): ("reviewer",),
    ("POST", "/ui/cases/{case_id}/renew"): ("reviewer",),
    ("POST", "/ui/cases/{case_id}/release"): ("reviewer",),
    ("POST", "/ui/cases/{case_id}/reveal"): HUMANS,
    ("GET", "/ui/cases/{case_id}/bulk"): HUMANS,
    ("POST", "/ui/cases/{case_id}/bulk"): ("reviewer",),
    ("GET", "/ui/appeals"): HUMANS,
    ("GET", "/ui/appeals/{appeal_id}"): HUMANS,
    ("POST", "/ui/appeals/{appeal_id}/decide"): ("reviewer",),
    ("GET", "/ui/queues"): (),
    ("POST", "/ui/queues"): (),
    ("POST", "/ui/team/settings"): (),
    ("GET", "/ui/team/stats"): HUMANS,
    ("POST", "/v1/review/claim"): ("reviewer",),
    ("POST", "/v1/appeals"): ("ingest",),
    ("GET", "/v1/appeals/{appeal_id}"): ("ingest", "reviewer", "analyst"),
    ("POST", "/v1/appeals/{appeal_id}/decision"): ("reviewer",),
    ("GET", "/v1/review/sor"): HUMANS,
    ("GET", "/v1/review/stats"): HUMANS,
    ("GET", "/v1/review/cases/{case_id}/history"): HUMANS,
}

router = APIRouter()


def _roles(method: str, path: str) -> Any:
    return Depends(ui_require(*ROUTE_ROLES[(method, path)]))


def _team(request: Request) -> TeamService:
    return request.app.state.team  # type: ignore[no-any-return]


def _call(request: Request, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Run a team call under the engine's lock, mapping its errors to 4xx."""
    try:
        with request.app.state.service.lock:
            return fn(*args, **kw)
    except Denied as exc:
        raise HTTPException(status_code=403, detail=str(exc)) from None
    except Conflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    except KeyError as exc:
        raise HTTPException(status_code=404, detail=f"not found: {exc.args[0] if exc.args else ''}") from None
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None


def _render(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    from bastion.web.ui import fmt_ts, render

    return render(request, template, status=status, fmt_ts=fmt_ts, **ctx)


# -- queues and claims -------------------------------------------------------------------------------------
@router.get("/ui/team", include_in_schema=False)
def team_page(request: Request, msg: str = "", who: Principal = _roles("GET", "/ui/team")) -> HTMLResponse:
    team = _team(request)
    with request.app.state.service.lock:
        claims = team.team.active_claims()
        rows = []
        for q in team.queues_for(who.name, who.role):
            if q.kind == "appeals":
                items = [(a["id"], 0.0) for a in team.appeals.open()]
            else:
                items = [(c.id, p) for c, p in team.queue_cases(q)]
            rows.append({"q": q, "open": len(items), "claimed": sum(1 for i, _ in items if i in claims),
                         "may_decide": q.may_decide(who.name, who.role)})
        mine = sorted(i for i, r in claims.items() if r == who.name)
    exposure = team.team.exposure_counts().get(who.name, {})
    return _render(request, "team.html", rows=rows, mine=mine, msg=msg, exposure=exposure,
                   settings=team.team.settings(), streak=team.team.streak(who.name))


@router.post("/ui/team/claim", include_in_schema=False)
async def claim_next_form(request: Request, queue: str = Form(""),
                          who: Principal = _roles("POST", "/ui/team/claim")) -> Response:
    got = _call(request, _team(request).claim_next, who.name, who.role, queue or None)
    if got["kind"] == "case":
        return RedirectResponse(f"/ui/cases/{got['id']}", status_code=303)
    if got["kind"] == "appeal":
        return RedirectResponse(f"/ui/appeals/{got['id']}", status_code=303)
    return RedirectResponse(f"/ui/team?msg={got['reason']}", status_code=303)


@router.post("/v1/review/claim", tags=["review"], summary="Claim the next case (or appeal) of your queues")
async def claim_next_json(request: Request, who: Principal = _roles("POST", "/v1/review/claim")) -> Any:
    """Body (optional): ``{"queue": NAME}``. Answers ``{"kind": "case"|"appeal"|null, "id", "reason"}``."""
    from bastion.web.api import json_body

    queue = None
    if (await request.body()).strip():
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("queue", ""), str):
            raise HTTPException(status_code=422, detail='expected {"queue": NAME}')
        queue = body.get("queue") or None
    got = _call(request, _team(request).claim_next, who.name, who.role, queue)
    if got["id"]:
        got["lease_s"] = _team(request).lease_ms // 1000
    return got


@router.post("/ui/cases/{case_id}/claim", include_in_schema=False)
async def claim_form(request: Request, case_id: str, who: Principal = _roles("POST", "/ui/cases/{case_id}/claim")
                     ) -> Response:
    _call(request, _team(request).claim, case_id, who.name, who.role)
    return RedirectResponse(f"/ui/cases/{case_id}", status_code=303)


@router.post("/ui/cases/{case_id}/renew", include_in_schema=False)
async def renew(request: Request, case_id: str, who: Principal = _roles("POST", "/ui/cases/{case_id}/renew")) -> Any:
    expires = _call(request, _team(request).renew, case_id, who.name)
    return {"item": case_id, "expires_ms": expires}


@router.post("/ui/cases/{case_id}/release", include_in_schema=False)
async def release(request: Request, case_id: str,
                  who: Principal = _roles("POST", "/ui/cases/{case_id}/release")) -> Response:
    if not _call(request, _team(request).release, case_id, who.name):
        raise HTTPException(status_code=409, detail=f"{who.name} does not hold {case_id}")
    return RedirectResponse(f"/ui/team?msg=released {case_id}", status_code=303)


@router.post("/ui/cases/{case_id}/reveal", include_in_schema=False)
async def reveal(request: Request, case_id: str, what: str = Form("content"),
                 who: Principal = _roles("POST", "/ui/cases/{case_id}/reveal")) -> Any:
    team = _team(request)
    if case_id not in team.review.queue.by_id and team.appeals.get(case_id) is None:
        raise HTTPException(status_code=404, detail=f"no case {case_id!r}")
    _call(request, team.reveal, case_id, who.name, what)
    return {"revealed": case_id, "what": what[:100]}


@router.get("/v1/review/cases/{case_id}/history", tags=["review"], summary="Who did what on a case")
def history_json(request: Request, case_id: str,
                 who: Principal = _roles("GET", "/v1/review/cases/{case_id}/history")) -> Any:
    team = _team(request)
    if case_id not in team.review.queue.by_id and team.appeals.get(case_id) is None:
        raise HTTPException(status_code=404, detail=f"no case {case_id!r}")
    return team.team.history(case_id)


# -- bulk -----------------------------------------------------------------------------------------------
@router.get("/ui/cases/{case_id}/bulk", include_in_schema=False)
def bulk_page(request: Request, case_id: str, msg: str = "",
              who: Principal = _roles("GET", "/ui/cases/{case_id}/bulk")) -> HTMLResponse:
    from bastion.web.ui import svg_graph

    team = _team(request)
    with request.app.state.service.lock:
        case = team.review.queue.by_id.get(case_id)
        if case is None:
            raise HTTPException(status_code=404, detail=f"no case {case_id!r}")
        group = team.group(case)
        if group is None:
            raise HTTPException(status_code=404, detail=f"case {case_id} has no cluster or linked group")
        state = team.review.runtime.state
        now = team.review.now_ms()
        members = []
        for m in group["members"]:
            acc = state.accounts.get(m)
            members.append({"id": m, "status": acc.status if acc else "unknown",
                            "followers": acc.followers if acc else 0,
                            "labels": [lb.label for lb in state.labels.active("account", m, now)]})
        may = case.status == "open" and team.may_decide(case, who.name, who.role)
    return _render(request, "bulk.html", case=case, group=group, members=members, msg=msg, may_decide=may,
                   graph=svg_graph(group["id"], group["members"]), policies=POLICIES,
                   actions=[a for a in ACTIONS if a not in ("post.hide", "post.downrank")],
                   evidence_json=json.dumps(group["evidence"], indent=1, default=str)[:4000])


@router.post("/ui/cases/{case_id}/bulk", include_in_schema=False)
async def bulk_form(request: Request, case_id: str, who: Principal = _roles("POST", "/ui/cases/{case_id}/bulk")
                    ) -> Response:
    form = await request.form()
    members = [str(m) for m in form.getlist("member")][:500]
    policy, action, note = str(form.get("policy", "")), str(form.get("action", "label")), str(form.get("note", ""))
    res = _call(request, _team(request).bulk_decide, case_id, who.name, who.role, members, policy, action,
                note[:1000])
    n = sum(len(m["actions"]) for m in res["members"])
    return RedirectResponse(f"/ui/cases/{case_id}?msg=bulk: {len(res['members'])} members, {n} actions",
                            status_code=303)


# -- appeals --------------------------------------------------------------------------------------------
@router.get("/ui/appeals", include_in_schema=False)
def appeals_page(request: Request, who: Principal = _roles("GET", "/ui/appeals")) -> HTMLResponse:
    team = _team(request)
    return _render(request, "appeals.html", appeals=team.appeals.all(), claims=team.team.active_claims())


@router.get("/ui/appeals/{appeal_id}", include_in_schema=False)
def appeal_page(request: Request, appeal_id: str, msg: str = "",
                who: Principal = _roles("GET", "/ui/appeals/{appeal_id}")) -> HTMLResponse:
    team = _team(request)
    ap = team.appeals.get(appeal_id)
    if ap is None:
        raise HTTPException(status_code=404, detail=f"no appeal {appeal_id!r}")
    sor = team.sor.get(ap["sor_id"])
    rt = team.review.runtime
    with request.app.state.service.lock:
        labels = rt.state.labels.active(ap["subject_kind"], ap["subject_id"], team.review.now_ms())
        recent = list(rt.engine.recent.get(ap["subject_id"], []))[-10:] if ap["subject_kind"] == "account" else []
    holder = team.team.holder(appeal_id)
    q = team.team.queue("appeals")
    may = (ap["status"] == "open" and q is not None and q.may_decide(who.name, who.role)
           and ap["original_decider"] != who.name and (holder is None or holder[0] == who.name))
    return _render(request, "appeal.html", ap=ap, sor=sor, labels=labels, recent=recent, holder=holder,
                   may_decide=may, msg=msg, history=team.team.history(appeal_id), outcomes=OUTCOMES,
                   own=ap["original_decider"] == who.name)


@router.post("/ui/appeals/{appeal_id}/decide", include_in_schema=False)
async def appeal_decide_form(request: Request, appeal_id: str, outcome: str = Form(...), note: str = Form(""),
                             who: Principal = _roles("POST", "/ui/appeals/{appeal_id}/decide")) -> Response:
    res = _call(request, _team(request).decide_appeal, appeal_id, who.name, who.role, outcome, note[:1000])
    return RedirectResponse(f"/ui/appeals/{appeal_id}?msg=appeal {outcome}; {len(res['applied'])} reversing "
                            f"action(s)", status_code=303)


@router.post("/v1/appeals", tags=["review"], summary="Forward an appeal against an enforcement")
async def appeal_submit(request: Request, who: Principal = _roles("POST", "/v1/appeals")) -> Any:
    """Body: ``{"subject": {"kind": "account"|"post", "id": ...}, "appellant": ..., "text": ...,
    "statement": optional statement-of-reasons id}``. 404 when nothing is enforced on the subject, 409 when an
    appeal against the statement is open."""
    from bastion.web.api import json_body

    body = await json_body(request)
    subj = body.get("subject") if isinstance(body, dict) else None
    if not isinstance(subj, dict) or subj.get("kind") not in ("account", "post") or not isinstance(subj.get("id"), str) \
            or not subj["id"]:
        raise HTTPException(status_code=422, detail='subject must be {"kind": "account"|"post", "id": "..."}')
    fields = {}
    for name, limit in (("appellant", 200), ("text", 5000), ("statement", 100)):
        v = body.get(name, "")
        if not isinstance(v, str) or len(v) > limit:
            raise HTTPException(status_code=422, detail=f"{name} must be a string of at most {limit} characters")
        fields[name] = v
    res = _call(request, _team(request).submit_appeal, subj["kind"], subj["id"][:200], fields["appellant"],
                fields["text"], f"api:{who.name}", fields["statement"] or None)
    return JSONResponse(res, status_code=201)


@router.get("/v1/appeals/{appeal_id}", tags=["review"], summary="An appeal's status")
def appeal_json(request: Request, appeal_id: str, who: Principal = _roles("GET", "/v1/appeals/{appeal_id}")) -> Any:
    ap = _team(request).appeals.get(appeal_id)
    if ap is None:
        raise HTTPException(status_code=404, detail=f"no appeal {appeal_id!r}")
    return {k: ap[k] for k in ("id", "sor_id", "subject_kind", "subject_id", "status", "created_ms", "decided_ms",
                               "reversal")}


@router.post("/v1/appeals/{appeal_id}/decision", tags=["review"], summary="Uphold or reject an appeal")
async def appeal_decide_json(request: Request, appeal_id: str,
                             who: Principal = _roles("POST", "/v1/appeals/{appeal_id}/decision")) -> Any:
    """Body: ``{"outcome": "upheld"|"rejected", "note": ""}``."""
    from bastion.web.api import json_body

    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("outcome"), str) \
            or not isinstance(body.get("note", ""), str):
        raise HTTPException(status_code=422, detail='expected {"outcome": "upheld"|"rejected", "note": ""}')
    return _call(request, _team(request).decide_appeal, appeal_id, who.name, who.role, body["outcome"],
                 body.get("note", "")[:1000])


# -- statements of reasons ----------------------------------------------------------------------------------
@router.get("/v1/review/sor", tags=["review"], summary="Statements of reasons (DSA Transparency Database format)")
def sor_export(request: Request, since_ms: int = 0, limit: int = 10_000,
               who: Principal = _roles("GET", "/v1/review/sor")) -> Response:
    """JSON Lines, one statement per line, oldest first."""
    rows = _team(request).sor.export_rows(max(0, since_ms), min(max(1, limit), 100_000))

    def lines() -> Iterator[bytes]:
        for r in rows:
            yield (json.dumps(r, separators=(",", ":")) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


# -- admin: queues and settings -------------------------------------------------------------------------
@router.get("/ui/queues", include_in_schema=False)
def queues_page(request: Request, msg: str = "", who: Principal = _roles("GET", "/ui/queues")) -> HTMLResponse:
    team = _team(request)
    return _render(request, "queues.html", queue_defs=team.team.queues(), msg=msg, fields=SEARCH_FIELDS,
                   kinds=QUEUE_KINDS, settings=team.team.settings(), setting_names=list(DEFAULT_SETTINGS))


@router.post("/ui/queues", include_in_schema=False)
async def queues_save(request: Request, name: str = Form(...), description: str = Form(""), see: str = Form(""),
                      decide: str = Form(""), queues: str = Form(""), subject_kind: str = Form(""),
                      source: str = Form(""), reason: str = Form(""), min_p: str = Form(""),
                      who: Principal = _roles("POST", "/ui/queues")) -> Response:
    team = _team(request)
    flt = {"queues": queues, "subject_kind": subject_kind, "source": source, "reason": reason, "min_p": min_p}
    try:
        q = team.team.save_queue(name.strip(), "search", description, flt, see, decide, who.name)
    except ValueError as exc:
        return _render(request, "queues.html", status=422, queue_defs=team.team.queues(), msg=str(exc),
                       fields=SEARCH_FIELDS, kinds=QUEUE_KINDS, settings=team.team.settings(),
                       setting_names=list(DEFAULT_SETTINGS))
    team.store.audit(who.name, "queue.save", f"queue:{q.name}", {"kind": q.kind, "filter": q.filter, "see": q.see,
                                                                  "decide": q.decide})
    return RedirectResponse(f"/ui/queues?msg=saved {q.name}", status_code=303)


@router.post("/ui/team/settings", include_in_schema=False)
async def settings_save(request: Request, key: str = Form(...), value: str = Form(...),
                        who: Principal = _roles("POST", "/ui/team/settings")) -> Response:
    team = _team(request)
    try:
        team.team.set_setting(key, float(value))
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    team.store.audit(who.name, "team.setting", f"setting:{key}", {"value": value})
    return RedirectResponse(f"/ui/queues?msg=set {key} = {html.escape(value)}", status_code=303)


# -- throughput ----------------------------------------------------------------------------------------
@router.get("/v1/review/stats", tags=["review"], summary="Per-reviewer and per-queue throughput")
def stats_json(request: Request, hours: float = 24 * 7, who: Principal = _roles("GET", "/v1/review/stats")) -> Any:
    return _team(request).stats(time.time() - max(0.0, hours) * 3600)


def svg_hbars(items: list[tuple[str, float]], unit: str = "", width: int = 520, color: str = "#3b6ea5") -> str:
    """Horizontal bars as inline SVG, one per named value."""
    if not items:
        return '<svg class="chart" width="200" height="24"><text x="4" y="16">no data</text></svg>'
    top = max(v for _, v in items) or 1.0
    row = 20
    parts = []
    for i, (name, v) in enumerate(items):
        w = (width - 180) * v / top
        parts.append(f'<text x="0" y="{i * row + 14}" font-size="11">{html.escape(name[:22])}</text>'
                     f'<rect x="150" y="{i * row + 3}" width="{w:.1f}" height="{row - 6}" fill="{color}"/>'
                     f'<text x="{155 + w:.1f}" y="{i * row + 14}" font-size="11">{v:g}{unit}</text>')
    h = row * len(items)
    return f'<svg class="chart" role="img" width="{width}" height="{h}" viewBox="0 0 {width} {h}">{"".join(parts)}</svg>'


@router.get("/ui/team/stats", include_in_schema=False)
def stats_page(request: Request, hours: float = 24 * 7, who: Principal = _roles("GET", "/ui/team/stats")
               ) -> HTMLResponse:
    st = _team(request).stats(time.time() - max(0.0, hours) * 3600)
    rv, qs = st["reviewers"], st["queues"]
    charts = {
        "reviewer_rate": svg_hbars(sorted(((k, v["decisions_per_hour"]) for k, v in rv.items()), key=lambda x: -x[1]),
                                   "/h"),
        "queue_ttfr": svg_hbars([(k, v["ttfr_median_h"]) for k, v in sorted(qs.items())
                                 if v["ttfr_median_h"] is not None], " h", color="#8e44ad"),
        "queue_breaches": svg_hbars([(k, float(v["deadline_breaches"] + v.get("open_breached", 0)))
                                     for k, v in sorted(qs.items())], "", color="#c0392b"),
        "overturn": svg_hbars([(k, v["overturn_rate"]) for k, v in sorted(rv.items())
                               if v["overturn_rate"] is not None], "", color="#d68910"),
    }
    return _render(request, "stats.html", st=st, charts=charts, hours=hours)
