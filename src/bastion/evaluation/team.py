"""Team review simulation: a team of simulated reviewers working the engine's review queue in simulated time.

``bastion review team-sim`` (offline tooling, never imported by the runtime). For each world:

* The world's events are replayed through the engine (:func:`replay_steps`, the code path of
  :func:`bastion.review.evaluation.replay`) and its review queue is snapshotted every ``step`` minutes of event
  time (default 10): the cases, their evidence, model scores and cluster members as the queue knew them then.
  The truth (which subjects violate, their exposure) comes from the world's ``truth.json``.
* A team of reviewers (:func:`make_team`) works staggered shifts. A reviewer on duty and free first takes the
  oldest pending **appeal** it did not decide itself; otherwise it **claims** the best unclaimed case of the
  latest snapshot under the ordering being evaluated. A claim is exclusive and lasts the decision time; the
  ordering re-ranks at every snapshot with the decisions finished by then (reporter reputations and, for the
  formula, per-source precision learn from the reviewers' decisions - errors included).
* A reviewer's decision time is log-normal around a median per subject kind, longer for high-severity
  policies, scaled by the reviewer's own speed; it enforces a violating subject with probability ``1 - fn``
  and a benign one with probability ``fp`` (per reviewer). See :class:`TeamConfig` for every constant and where
  it comes from.
* Appeals: a wrongly enforced (benign) subject appeals with probability ``appeal_wrong``, a rightly enforced
  one with ``appeal_right``, after an exponential delay. An appeal is decided by a reviewer other than the
  original decider, with the same error model: it is overturned when that reviewer finds the subject benign.
  Appeals keep being worked after the measured period by the same shift pattern (cases stop at its end).
* Harm is the existing definition of :mod:`bastion.review.evaluation`: a violating account's or post's
  exposure accrues evenly over its active span, an enforcement at time t prevents the part after t, each unit
  is credited once at its earliest enforcement; an enforcement wrongly overturned on appeal at t' gives back
  the part after t'.

Every random draw is a hash of (seed, purpose, reviewer, case), so the same reviewer on the same case takes the
same time and makes the same call whatever ordering brought it there (common random numbers), and a run
is reproducible from its seed.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import json
import math
import shutil
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bastion.review.evaluation import (
    Fifo,
    Formula,
    Learned,
    Ordering,
    Recorder,
    Replay,
    ReportCount,
    Snapshot,
    _members,
    _ranked,
)
from bastion.review.queue import SEVERITY, Case
from bastion.review.world import HOUR, World
from bastion.review.world import load_truth as _load_truth

MINUTE = 60_000
HARM_ORDERINGS = ("learned", "formula_feedback")
TEAM_ORDERINGS = ("learned", "fifo", "report_count")
_NORMAL = statistics.NormalDist()


# -- the team ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TeamConfig:
    """The team and its behaviour. Sources (docs/evaluation.md, "Team review simulation"):

    * decision times: moderators report 150 (hard queues) to 1,000 (easy queues) items a day, i.e. about 25 s
      to 3 min an item; a Bastion case is a whole account, post or cluster with its evidence, so the medians
      sit in the upper half: 1 min (post), 2.5 min (account, domain), 5 min (cluster), x1.25 for policies of
      severity >= 0.8 (abuse, hate, repeat offenders, coordination). Log-normal with ``sigma`` 0.7 (a long
      right tail); each reviewer's speed multiplier is log-normal with sigma ``speed_sigma``. The medians and
      spreads are assumptions within the reported range.
    * errors: Meta's CEO wrote that its reviewers "make the wrong call in more than one out of every 10
      cases"; its stated target was an error rate under 1%. Each reviewer's false-positive rate (enforces a
      benign subject) is drawn uniformly in ``fp_range`` and its false-negative rate (clears a violating one)
      in ``fn_range``: 1-6% and 4-14%, assumptions between those two figures (misses commoner than wrong
      enforcements).
    * appeals: rates and delay are assumptions (no public per-case figure found); second review by a different
      reviewer follows Meta's stated routing of secondary review.
    * shifts: ``reviewers`` shifts of ``shift_hours`` each, start times spread evenly over the day so the team
      covers it, each with a ``break_min`` break at mid-shift.
    """

    reviewers: int = 5
    shift_hours: float = 8.0
    break_min: float = 30.0
    median_s: tuple[tuple[str, float], ...] = (("post", 60.0), ("account", 150.0), ("domain", 150.0),
                                               ("cluster", 300.0))
    high_severity: float = 0.8
    high_severity_factor: float = 1.25
    sigma: float = 0.7
    speed_sigma: float = 0.25
    fp_range: tuple[float, float] = (0.01, 0.06)
    fn_range: tuple[float, float] = (0.04, 0.14)
    appeal_wrong: float = 0.6
    appeal_right: float = 0.15
    appeal_delay_h: float = 2.0
    appeal_time_factor: float = 1.5
    seed: int = 0

    def median_for(self, kind: str) -> float:
        return dict(self.median_s).get(kind, 150.0)


@dataclass(frozen=True)
class Reviewer:
    name: str
    speed: float     # multiplies every decision time
    fp: float        # P(enforce | benign subject)
    fn: float        # P(clear | violating subject)
    start_h: float   # shift start, hours after the world's start, every day


def _u(seed: int, *parts: object) -> float:
    """A uniform draw in (0, 1) from a hash of ``seed`` and ``parts`` (deterministic, order-free)."""
    h = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return (int.from_bytes(h, "big") + 0.5) / 2.0 ** 64


def make_team(cfg: TeamConfig, day_h: float = 24.0) -> list[Reviewer]:
    """``cfg.reviewers`` reviewers with their own speed and error rates (drawn from ``cfg.seed``) and shifts
    staggered over the first ``day_h`` hours of every day (a world shorter than a day: its span)."""
    n = cfg.reviewers
    if n < 2:
        raise ValueError("a team needs at least 2 reviewers (an appeal goes to someone other than the decider)")
    if not 0 < cfg.shift_hours <= 24 or cfg.break_min < 0 or cfg.break_min / 60 >= cfg.shift_hours:
        raise ValueError("shift_hours must be in (0, 24] and the break shorter than the shift")
    span = max(0.0, min(day_h, 24.0) - cfg.shift_hours)
    out = []
    for i in range(n):
        def draw(what: str, i: int = i) -> float:
            return _u(cfg.seed, "reviewer", i, what)
        out.append(Reviewer(
            name=f"r{i + 1}",
            speed=round(math.exp(cfg.speed_sigma * _NORMAL.inv_cdf(draw("speed"))), 3),
            fp=round(cfg.fp_range[0] + (cfg.fp_range[1] - cfg.fp_range[0]) * draw("fp"), 4),
            fn=round(cfg.fn_range[0] + (cfg.fn_range[1] - cfg.fn_range[0]) * draw("fn"), 4),
            start_h=round(span * i / (n - 1), 3)))
    return out


class Shifts:
    """When each reviewer is on duty: every day from the world's start, ``shift_hours`` from its start hour
    with a break at mid-shift."""

    def __init__(self, team: list[Reviewer], cfg: TeamConfig, start: int, days: int) -> None:
        self.windows: list[list[tuple[int, int]]] = []
        half, brk = cfg.shift_hours / 2 * HOUR, cfg.break_min * MINUTE
        for r in team:
            ws = []
            for d in range(days):
                s = start + d * 24 * HOUR + int(r.start_h * HOUR)
                mid = s + int(half)
                ws += [(s, int(mid - brk / 2)), (int(mid + brk / 2), s + int(cfg.shift_hours * HOUR))]
            self.windows.append(ws)

    def on_duty(self, i: int, t: int) -> tuple[int, int] | None:
        """The earliest time >= t reviewer ``i`` is on duty and the end of that work window (None: never)."""
        for a, b in self.windows[i]:
            if t < b:
                return max(a, t), b
        return None

    def hours(self, i: int, t0: int, t1: int) -> float:
        return sum(max(0, min(b, t1) - max(a, t0)) for a, b in self.windows[i]) / HOUR


# -- replay with finer snapshots --------------------------------------------------------------------------
class StepRecorder(Recorder):
    """:class:`~bastion.review.evaluation.Recorder` snapshotting every ``step_ms`` instead of every hour."""

    def __init__(self, queue: Any, start: int, end: int, clusters: Any = None, step_ms: int = 10 * MINUTE):
        super().__init__(queue, start, end, clusters)
        self.step = step_ms
        self.next_t = start + step_ms

    def _catch_up(self, ts: int) -> None:
        while ts >= self.next_t and self.next_t <= self.end:
            self.hourly.append(self.take(self.next_t))
            self.next_t += self.step


def _counting(stream: Iterable[Any], log: Callable[[str], None] | None, every: int = 20_000) -> Iterator[Any]:
    t0 = time.perf_counter()
    n = 0
    for n, item in enumerate(stream, 1):
        if log is not None and n % every == 0:
            log(f"    {n:,} events replayed ({time.perf_counter() - t0:.0f}s)")
        yield item


def replay_steps(truth: dict[str, Any] | str | Path, events: Path, step_ms: int = 10 * MINUTE,
                 settings: Any = None, log: Callable[[str], None] | None = None, **runtime: Any) -> Replay:
    """Replay ``events`` through a fresh engine (as :func:`bastion.review.evaluation.replay` does) and snapshot
    its review queue every ``step_ms`` of event time."""
    import tempfile

    from bastion.app import Books, build_runtime
    from bastion.settings import Settings
    from bastion.sources.files import items

    world = World(_load_truth(truth))
    if settings is None:
        settings = Settings.load(db_path=Path(tempfile.mkdtemp(prefix="bastion-team-sim-")) / "review.db")
    books = Books()
    rec = StepRecorder(books.queue, world.start, world.end, books.clusters, step_ms)
    rt = build_runtime(settings, "evaluation", books=books, watchers=[rec], **runtime)
    try:
        rt.run(_counting(items(Path(events), "canonical"), log))
        rt.run_batch_detectors()
        rec.finish()
    finally:
        rt.close()
    assert rec.final is not None
    return Replay(world, rec.hourly, rec.final)


# -- the simulation ---------------------------------------------------------------------------------------
@dataclass
class Claim:
    reviewer: int
    key: tuple[str, str]
    start: int
    end: int
    violating: bool
    enforced: bool


@dataclass
class Appeal:
    key: tuple[str, str]
    decider: int          # the reviewer whose enforcement is appealed
    arrival: int
    violating: bool
    units: list[tuple[str, str]]
    reviewer: int | None = None
    start: int | None = None
    end: int | None = None
    overturned: bool | None = None
    case: Case | None = field(default=None, repr=False)


@dataclass
class TeamRun:
    """What one ordering's team did: every claim and appeal (for invariants) and the measures."""

    ordering: str
    team: list[Reviewer]
    claims: list[Claim] = field(default_factory=list)
    appeals: list[Appeal] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def _key(c: Case) -> tuple[str, str]:
    return (c.subject.kind, c.subject.id)


def decision_ms(cfg: TeamConfig, r: Reviewer, i: int, c: Case, what: str = "case") -> int:
    """A reviewer's decision time on a case (an appeal takes ``appeal_time_factor`` longer)."""
    med = cfg.median_for(c.subject.kind) * r.speed
    if SEVERITY.get(c.queue, 0.5) >= cfg.high_severity:
        med *= cfg.high_severity_factor
    if what == "appeal":
        med *= cfg.appeal_time_factor
    z = _NORMAL.inv_cdf(_u(cfg.seed, what, "time", i, c.subject.kind, c.subject.id))
    return max(1000, int(med * math.exp(cfg.sigma * z) * 1000))


def _day_h(world: World) -> float:
    return min(24.0, (world.end - world.start) / HOUR)


def _pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None when it falls on an infinite (never reached) value or there are none."""
    if not values:
        return None
    v = sorted(values)[max(0, math.ceil(q * len(values)) - 1)]
    return None if math.isinf(v) else v


def simulate_team(rep: Replay, ordering: Ordering, cfg: TeamConfig, team: list[Reviewer] | None = None,
                  max_days: int = 30) -> TeamRun:
    """The team of ``cfg`` works ``rep``'s queue in ``ordering``; cases are claimed until the world's end,
    appeals decided until none is left (at most ``max_days`` of shifts)."""
    team = team if team is not None else make_team(cfg, _day_h(rep.world))
    if len(team) < 2:
        raise ValueError("a team needs at least 2 reviewers")
    world, snaps = rep.world, rep.hourly
    horizon = world.end
    shifts = Shifts(team, cfg, world.start, max_days)
    run = TeamRun(ordering.name, team)
    claimed: set[tuple[str, str]] = set()
    actioned: dict[tuple[str, str], int] = {}
    reverted: dict[tuple[str, str], int] = {}
    pending_obs: list[tuple[int, int, Case, bool]] = []   # (decision end, seq, case, enforced)
    appeals: list[tuple[int, int, Appeal]] = []           # heap by arrival
    open_appeals: list[Appeal] = []                        # arrived, not yet taken (FIFO by arrival)
    first_review: dict[tuple[str, str], int] = {}
    seq = 0
    snap_times = [s.t for s in snaps]
    rank: dict[str, Any] = {"idx": -1, "list": [], "pos": 0}

    def current(t: int) -> Snapshot | None:
        idx = bisect.bisect_right(snap_times, t) - 1
        if idx < 0:
            return None
        if idx != rank["idx"]:
            snap = snaps[idx]
            pending_obs.sort(key=lambda o: (o[0], o[1]))
            while pending_obs and pending_obs[0][0] <= snap.t:
                _, _, case, enforced = pending_obs.pop(0)
                ordering.observe(case, enforced)
            avail = [c for c in snap.cases if _key(c) not in claimed]
            rank.update(idx=idx, list=_ranked(avail, ordering.priorities(avail, snap)) if avail else [], pos=0)
        return snaps[idx]

    def next_case(t: int) -> tuple[Case, Snapshot] | None:
        snap = current(t)
        if snap is None:
            return None
        lst = rank["list"]
        while rank["pos"] < len(lst):
            c = lst[rank["pos"]]
            rank["pos"] += 1
            if _key(c) not in claimed:
                return c, snap
        return None

    heap = [(shifts.windows[i][0][0], i) for i in range(len(team))]
    heapq.heapify(heap)
    while heap:
        t, i = heapq.heappop(heap)
        duty = shifts.on_duty(i, t)
        if duty is None:
            continue
        t2, window_end = duty
        if t2 != t:
            heapq.heappush(heap, (t2, i))
            continue
        r = team[i]
        while appeals and appeals[0][0] <= t:
            open_appeals.append(heapq.heappop(appeals)[2])
        ap = next((a for a in open_appeals if a.decider != i), None)
        if ap is not None:
            open_appeals.remove(ap)
            case = ap.case
            assert case is not None
            d = decision_ms(cfg, r, i, case, "appeal")
            u = _u(cfg.seed, "appeal-call", i, *ap.key)
            ap.reviewer, ap.start, ap.end = i, t, t + d
            ap.overturned = (u < r.fn) if ap.violating else (u < 1.0 - r.fp)
            if ap.overturned:
                for unit in ap.units:
                    if unit in actioned:
                        reverted[unit] = min(reverted.get(unit, t + d), t + d)
            run.appeals.append(ap)
            heapq.heappush(heap, (t + d, i))
            continue
        got = next_case(t) if t < horizon else None
        if got is not None:
            c, snap = got
            key = _key(c)
            claimed.add(key)
            members = _members(snap, c)
            bad = world.is_bad(key[0], key[1], members)
            d = decision_ms(cfg, r, i, c)
            u = _u(cfg.seed, "call", i, *key)
            enforced = (u < 1.0 - r.fn) if bad else (u < r.fp)
            end = t + d
            run.claims.append(Claim(i, key, t, end, bad, enforced))
            first_review.setdefault(key, t)
            seq += 1
            pending_obs.append((end, seq, c, enforced))
            units = world.units(key[0], key[1], members) if enforced and bad else []
            for unit in units:
                actioned[unit] = min(actioned.get(unit, end), end)
            if enforced:
                p = cfg.appeal_right if bad else cfg.appeal_wrong
                if _u(cfg.seed, "appeals?", *key) < p:
                    delay = -math.log(_u(cfg.seed, "appeal-delay", *key)) * cfg.appeal_delay_h * HOUR
                    ap = Appeal(key, i, end + int(delay), bad, units, case=c)
                    seq += 1
                    heapq.heappush(appeals, (ap.arrival, seq, ap))
            heapq.heappush(heap, (end, i))
            continue
        # idle: wake at the next snapshot, the next appeal, or the end of this work window
        wakes = [window_end]
        if t < horizon:
            j = bisect.bisect_right(snap_times, t)
            if j < len(snap_times):
                wakes.append(snap_times[j])
        if appeals:
            wakes.append(appeals[0][0])
        if open_appeals:  # only this reviewer's own decisions are waiting: someone else takes them
            wakes.append(t + 5 * MINUTE)
        if t >= horizon and not appeals and not open_appeals:
            continue
        heapq.heappush(heap, (max(t + 1, min(wakes)), i))
    # appeals still open after max_days of shifts
    for _, _, ap in appeals:
        run.appeals.append(ap)
    run.appeals.extend(open_appeals)
    run.metrics = _measures(rep, run, shifts, actioned, reverted, first_review)
    return run


def _measures(rep: Replay, run: TeamRun, shifts: Shifts, actioned: dict[tuple[str, str], int],
              reverted: dict[tuple[str, str], int], first_review: dict[tuple[str, str], int]) -> dict[str, Any]:
    world, final = rep.world, rep.final
    hours = sum(shifts.hours(i, world.start, world.end) for i in range(len(run.team)))
    prevented = 0.0
    for unit, t in actioned.items():
        p = world.prevented(unit, t)
        if unit in reverted:
            p -= world.prevented(unit, reverted[unit])
        prevented += max(0.0, p)
    # violating cases of the day and their time to first review (never reviewed: infinite)
    ttfr, units = [], set()
    for c in final.cases:
        members = _members(final, c)
        if world.is_bad(c.subject.kind, c.subject.id, members):
            fr = first_review.get(_key(c))
            ttfr.append(math.inf if fr is None else (fr - c.opened_ms) / MINUTE)
            units.update(world.units(c.subject.kind, c.subject.id, members))
    # time to detect: a violating account or post, from its start (or the world's) to its first enforcement
    ttd, censored = [], []
    for unit in units:
        a0 = max(world.span(unit)[0], world.start)
        ta = actioned.get(unit)
        ttd.append(math.inf if ta is None else (ta - a0) / MINUTE)
        censored.append((min(ta, world.end) if ta is not None else world.end) - a0)
    in_period = [c for c in run.claims if c.start < world.end]
    busy = sum(min(c.end, world.end) - c.start for c in in_period)
    busy += sum(min(a.end, world.end) - a.start for a in run.appeals
                if a.start is not None and a.end is not None and a.start < world.end)
    enf = [c for c in run.claims if c.enforced]
    wrong = [c for c in enf if not c.violating]
    ap_wrong = [a for a in run.appeals if not a.violating]
    ap_right = [a for a in run.appeals if a.violating]
    decided = [a for a in run.appeals if a.overturned is not None]
    waits = [(a.start - a.arrival) / HOUR for a in decided if a.start is not None]

    def r(x: float | None, n: int = 1) -> float | None:
        return None if x is None else round(x, n)

    # precision of what reviewers see over time: the violating share of the cases claimed in each 6-hour block
    blocks: dict[int, list[bool]] = {}
    for c in run.claims:
        if c.start < world.end:
            blocks.setdefault(int((c.start - world.start) // (6 * HOUR)), []).append(c.violating)
    first = [c.violating for c in sorted(run.claims, key=lambda c: c.start)[:100]]
    return {
        "reviewed_precision_by_6h": [round(sum(blocks[b]) / len(blocks[b]), 4) if blocks.get(b) else None
                                     for b in range(max(blocks) + 1 if blocks else 0)],
        "reviewed_precision_first_100": round(sum(first) / len(first), 4) if first else None,
        "reviewer_hours": round(hours, 2), "busy_share": round(busy / (hours * HOUR), 3) if hours else None,
        "cases_claimed": len(run.claims), "cases_in_queue": len(final.cases),
        "prevented": round(prevented, 1),
        "prevented_per_reviewer_hour": round(prevented / hours, 2) if hours else None,
        "enforcements": len(enf), "enforcement_precision": round(1 - len(wrong) / len(enf), 4) if enf else None,
        "violating_cases": len(ttfr),
        "violating_reviewed_share": round(sum(1 for x in ttfr if not math.isinf(x)) / len(ttfr), 4) if ttfr else None,
        "ttfr_median_min": r(_pct(ttfr, 0.5)), "ttfr_p90_min": r(_pct(ttfr, 0.9)),
        "violating_units": len(ttd),
        "detected_share": round(sum(1 for x in ttd if not math.isinf(x)) / len(ttd), 4) if ttd else None,
        "ttd_median_min": r(_pct(ttd, 0.5)), "ttd_p90_min": r(_pct(ttd, 0.9)),
        # undetected units count until the world's end (a lower bound on their time to detect)
        "ttd_mean_censored_min": r(sum(censored) / len(censored) / MINUTE) if censored else None,
        "wrong_enforcements": len(wrong),
        "wrong_appealed": len(ap_wrong),
        "wrong_overturned": sum(1 for a in ap_wrong if a.overturned),
        "wrong_overturned_share": round(sum(1 for a in ap_wrong if a.overturned) / len(wrong), 4) if wrong else None,
        "wrong_appealed_overturned_share": (round(sum(1 for a in ap_wrong if a.overturned) / len(ap_wrong), 4)
                                            if ap_wrong else None),
        "right_appealed": len(ap_right),
        "right_overturned": sum(1 for a in ap_right if a.overturned),
        "appeals_undecided": sum(1 for a in run.appeals if a.overturned is None),
        "appeal_wait_median_h": r(_pct(waits, 0.5), 2),
        "appeals_by_original_decider": sum(1 for a in run.appeals if a.reviewer == a.decider),
    }


# -- orderings and worlds ---------------------------------------------------------------------------------
def make_ordering(name: str, world: World, model: Any = None) -> Ordering:
    """``learned`` (the trained prioritiser with live reporter reputations; the formula with its feedback loop
    when ``model`` is None, as the live queue does), ``formula_feedback``, ``fifo`` or ``report_count``."""
    if name == "learned":
        return Learned(world, model) if model is not None else Formula(world, feedback=True)
    if name == "learned_static":   # the same model without online recalibration of its source precision
        if model is None:
            raise ValueError("learned_static needs a trained review prioritiser")
        return Learned(world, model, online=False)
    if name == "formula_feedback":
        return Formula(world, feedback=True)
    if name == "fifo":
        return Fifo(world)
    if name == "report_count":
        return ReportCount(world)
    raise ValueError(f"unknown ordering {name!r}: use one of learned, learned_static, formula_feedback, fifo, "
                     "report_count")


def check_model(model: Any, worlds: Iterable[int]) -> None:
    """Refuse a prioritiser trained on a test world or on one of the evaluated worlds."""
    if model is None:
        return
    tr = (getattr(model, "meta_", None) or {}).get("trained_on") or {}
    ws = set(worlds)
    from bastion.evaluation.worlds import parse_worlds

    for k in ("worlds", "val_worlds"):   # trained across randomized worlds
        spec = tr.get(k)
        used = set(parse_worlds(spec)) if isinstance(spec, str) and spec else set()
        if used & ws or any(w > 1000 for w in used):
            raise ValueError(f"review_prioritiser v{getattr(model, 'version', None)} was trained or tuned on worlds "
                             f"{spec}, which include an evaluated or test world")
    for k in ("world", "seed"):
        v = tr.get(k)
        if isinstance(v, int) and (v in ws or (k == "world" and v > 1000)):
            raise ValueError(f"review_prioritiser v{getattr(model, 'version', None)} was trained on {k} {v}, "
                             "an evaluated or test world: train it on training worlds (1-999) or the default world")


def evaluate_replay_team(rep: Replay, cfg: TeamConfig, model: Any = None,
                         orderings: Iterable[str] = TEAM_ORDERINGS) -> dict[str, Any]:
    """Every ordering's team run on one replay: its measures, keyed by ordering."""
    team = make_team(cfg, _day_h(rep.world))
    out: dict[str, Any] = {}
    for name in orderings:
        o = make_ordering(name, rep.world, model)
        m = simulate_team(rep, o, cfg, team).metrics
        m["ranked_by"] = o.name
        out[name] = m
    return out


def run_world(world: int, cache: Path, users: int, days: float, cfg: TeamConfig, model: Any = None,
              step_min: float = 10.0, orderings: Iterable[str] = TEAM_ORDERINGS, settings: Any = None,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Generate (or reuse, in ``cache``) world ``world``, replay it and run the team under every ordering."""
    from bastion.sim import SimConfig, simulate
    from bastion.sim.worlds import world_split

    sim_dir = cache / f"world-{world}-u{users}-d{days:g}"
    truth = sim_dir / "truth.json"
    t0 = time.perf_counter()
    if not truth.is_file():
        log(f"  simulating world {world} ({world_split(world)}), {users:,} users, {days:g} day(s) ...")
        tmp = sim_dir.with_name(sim_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        simulate(SimConfig(users=users, days=days, seed=world, world=world, text_split=world_split(world)), tmp)
        shutil.rmtree(sim_dir, ignore_errors=True)
        tmp.rename(sim_dir)
    log(f"  replaying world {world} through the engine (queue snapshot every {step_min:g} min) ...")
    rep = replay_steps(truth, sim_dir / "events.jsonl", int(step_min * MINUTE), settings, log=log)
    t1 = time.perf_counter()
    w = rep.world
    bad = sum(w.is_bad(c.subject.kind, c.subject.id, _members(rep.final, c)) for c in rep.final.cases)
    log(f"  {len(rep.final.cases):,} cases ({bad} violating), {len(rep.hourly)} snapshots ({t1 - t0:.0f}s)")
    res = evaluate_replay_team(rep, cfg, model, orderings)
    for name, m in res.items():
        log(f"  {name:>12}: prevented/reviewer-hour {m['prevented_per_reviewer_hour']}, time to first review "
            f"median {_fmt_min(m['ttfr_median_min'])} p90 {_fmt_min(m['ttfr_p90_min'])}, time to detect median "
            f"{_fmt_min(m['ttd_median_min'])}, wrong enforcements overturned {m['wrong_overturned']}/"
            f"{m['wrong_enforcements']}")
    log(f"  team simulation {time.perf_counter() - t1:.0f}s")
    return {"world": world, "split": world_split(world), "users": users, "days": days,
            "cases": len(rep.final.cases), "violating_cases": bad, "snapshots": len(rep.hourly),
            "replay_s": round(t1 - t0, 1), "orderings": res}


def evaluate_worlds(worlds: list[int], cache: Path, users: int, days: float, cfg: TeamConfig, model: Any = None,
                    step_min: float = 10.0, orderings: Iterable[str] = TEAM_ORDERINGS, settings: Any = None,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """The team simulation on every world; per-world measures, the worst world and the comparisons."""
    check_model(model, worlds)
    orderings = tuple(orderings)
    cache.mkdir(parents=True, exist_ok=True)
    per: dict[str, Any] = {}
    for n, w in enumerate(worlds, 1):
        log(f"[{n}/{len(worlds)}] world {w}")
        per[str(w)] = run_world(w, cache, users, days, cfg, model, step_min, orderings, settings, log)
    report: dict[str, Any] = {
        "worlds": worlds, "users": users, "days": days, "step_min": step_min, "orderings": list(orderings),
        "config": asdict(cfg), "team": [asdict(r) for r in make_team(cfg, min(24.0, days * 24))],
        "per_world": per,
        "model": None if model is None else {
            "version": getattr(model, "version", None),
            "trained_on": (getattr(model, "meta_", None) or {}).get("trained_on"),
            "command": (getattr(model, "meta_", None) or {}).get("command")},
    }
    report["comparison"] = compare(per, orderings)
    return report


def compare(per: dict[str, Any], orderings: tuple[str, ...]) -> dict[str, Any]:
    """Per world: the harm order's prevented-per-reviewer-hour ratio to FIFO and report count and its time to
    detect reduction; the worst world of each."""
    out: dict[str, Any] = {"per_world": {}}
    if "learned" not in orderings:
        return out
    for w, res in per.items():
        o = res["orderings"]
        row: dict[str, Any] = {}
        for ref in ("fifo", "report_count"):
            if ref not in o:
                continue
            a, b = o["learned"]["prevented_per_reviewer_hour"], o[ref]["prevented_per_reviewer_hour"]
            row[f"harm_vs_{ref}"] = round(a / b, 3) if b else None
            ta, tb = o["learned"]["ttd_mean_censored_min"], o[ref]["ttd_mean_censored_min"]
            row[f"ttd_reduction_vs_{ref}"] = round(1 - ta / tb, 3) if tb else None
        out["per_world"][w] = row
    keys = sorted({k for row in out["per_world"].values() for k in row})
    out["worst"] = {}
    for k in keys:
        vals = [(w, row[k]) for w, row in out["per_world"].items() if row.get(k) is not None]
        if vals:
            w, v = min(vals, key=lambda wv: wv[1])
            out["worst"][k] = {"value": v, "world": int(w)}
    return out


# -- the docs section -------------------------------------------------------------------------------------
def _fmt_min(v: float | None) -> str:
    if v is None:
        return "not reached"
    return f"{v / 60:.1f} h" if v >= 120 else f"{v:.0f} min"


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


NAMES = {"learned": "learned (Bastion's queue)", "learned_static": "learned, no online source recalibration", "formula_feedback": "formula + feedback", "fifo": "FIFO",
         "report_count": "report count"}


def markdown(report: dict[str, Any], command: str, full: bool = True) -> str:
    """The "Team review simulation" section of docs/evaluation.md (``full``: with the reviewer model, its
    sources and the protocol; else the figures only, for a second run next to the first)."""
    from bastion.sim.worlds import world_split

    cfg = report["config"]
    mod = report.get("model") or {}
    tr = mod.get("trained_on") or {}
    size = f"{report['users']:,} users x {report['days']:g} day"
    lines = [f"## Team review simulation (issue 21){'' if full else ': ' + size}", "",
             f"Command: `{command}`", "",
             f"Worlds {', '.join(map(str, report['worlds']))} "
             f"({'/'.join(sorted({world_split(w) for w in report['worlds']}))} worlds: never used to train or tune "
             f"anything), {report['users']:,} users, {report['days']:g} day each; queue snapshot every "
             f"{report['step_min']:g} min.", ""]
    if mod:
        where = (f"randomized training worlds {tr.get('worlds')} (shape chosen on {tr.get('val_worlds')}), "
                 f"{tr.get('users')} users each" if tr.get("worlds") else
                 f"default world (seed {tr.get('seed')}, {tr.get('users')} users; not a randomized world)")
        lines += [f"Harm order: the learned prioritiser `review_prioritiser` v{mod.get('version')}, trained on the "
                  f"{where} - `{mod.get('command')}` - with live reporter reputations and per-source precision "
                  "learned from the simulated reviewers' decisions (`learned_static`: the same model without "
                  "recalibrating its sources).", ""]
    else:
        lines += ["Harm order: no learned prioritiser was loaded; the harm formula with its feedback loop ranks.",
                  ""]
    team = report["team"]
    lines += [f"Team: {cfg['reviewers']} reviewers, {cfg['shift_hours']:g}-hour shifts starting at "
              + ", ".join(f"{r['start_h']:g}h" for r in team)
              + f" of each day, a {cfg['break_min']:g}-minute break at mid-shift. Per reviewer (speed multiplier, "
              "false-positive rate, false-negative rate): "
              + "; ".join(f"{r['name']} {r['speed']:g}x, fp {r['fp']:.1%}, fn {r['fn']:.1%}" for r in team) + ".",
              ""]
    med = dict(cfg["median_s"])
    lines += [] if not full else [
        "Reviewer model (`bastion/evaluation/team.py`, `TeamConfig`). Decision time is log-normal (sigma "
        f"{cfg['sigma']:g}) around a median of {med['post']:g} s for a post, {med['account']:g} s for an account "
        f"or domain and {med['cluster']:g} s for a cluster, x{cfg['high_severity_factor']:g} for policies of "
        f"severity >= {cfg['high_severity']:g}, times the reviewer's speed (log-normal, sigma "
        f"{cfg['speed_sigma']:g}); an appeal takes x{cfg['appeal_time_factor']:g}. Reported moderator "
        "throughput is 150 items a day in hard queues to 1,000 in easy ones (about 25 s to 3 min an item; Vice "
        "report on Facebook's moderators, as quoted at malayamovement.com/blog/blog-post-title-three-5km8e); a "
        "Bastion case is a whole account, post or cluster with its evidence, so the medians sit in the upper "
        "half of that range - an assumption. Errors: each reviewer enforces a benign subject with a false-"
        f"positive rate drawn in {cfg['fp_range'][0]:.0%}-{cfg['fp_range'][1]:.0%} and clears a violating one "
        f"with a false-negative rate in {cfg['fn_range'][0]:.0%}-{cfg['fn_range'][1]:.0%}: between Facebook's "
        "stated target of an error rate under 1% (b.elezea.com/2018/08/28/facebook-has-pretty.html, quoting "
        "Motherboard) and its CEO's \"wrong call in more than one out of every 10 cases\" (NYU Stern, 2020, "
        "as quoted at johnkoetsier.com/300000-facebook-content-moderation-mistakes-daily-report-says/) - an "
        f"assumption. Appeals: a wrongly enforced subject appeals with probability {cfg['appeal_wrong']:g}, a "
        f"rightly enforced one with {cfg['appeal_right']:g}, after an exponential delay (mean "
        f"{cfg['appeal_delay_h']:g} h) - assumptions, no public per-case figure found; an appeal goes to a "
        "reviewer other than the decider (as Meta says it routes secondary review, "
        "transparency.meta.com/oversight/oversight-board-cases/sweden-violence-against-women) with the same "
        "error model, and is overturned when that reviewer finds the subject benign. Appeals go before cases "
        "and are worked by the same shifts after the day until none is left; cases are claimed until the "
        "world's end. A subject is decided once (a cleared violating subject is not re-queued in the day).",
        "",
        "Protocol: the world's events are replayed through the engine (every rule, model, linker and "
        "clusterer), its review queue snapshotted every few minutes of event time; a free reviewer on shift "
        "claims the best unclaimed case of the latest snapshot in the ordering under test (a claim is exclusive "
        "and lasts the decision time), and the ordering re-ranks at each snapshot with the reviewers' decisions "
        "finished by then (reporter reputations learn from them, errors included). Harm is "
        "`bastion review eval`'s: a violating account's or post's exposure accrues evenly over its active "
        "span, an enforcement prevents the rest, each once at its earliest enforcement; an enforcement wrongly "
        "overturned on appeal gives back what follows the reversal. Prevented per reviewer-hour divides by the "
        "team's on-shift hours in the day. Time to first review runs from the case's opening to its first "
        "claim; time to detect from a violating account's or post's first activity (or the world's start) to "
        "its enforcement. Every draw is a hash of (seed, reviewer, case), so a reviewer takes the same time and "
        "makes the same call on a case whatever ordering brought it there.", ""]
    comp = report.get("comparison", {})
    worst = comp.get("worst", {})
    if worst:
        lines += ["| harm order vs | prevented per reviewer-hour, worst world (ratio) | time to detect reduction, "
                  "worst world |", "|---|---|---|"]
        for ref in ("fifo", "report_count"):
            h, d = worst.get(f"harm_vs_{ref}"), worst.get(f"ttd_reduction_vs_{ref}")
            if h or d:
                lines.append(f"| {NAMES[ref]} | {_f(h and h['value'])}x (world {_f(h and h['world'])}) | "
                             f"{_pct_s(d and d['value'])} (world {_f(d and d['world'])}) |")
        lines += ["", "LinkedIn reports 60% less time to detect with its learned prioritisation against FIFO "
                  "(engineering.linkedin.com/blog/2023/augmenting-our-content-moderation-efforts-through-"
                  "machine-learni); the row \"time to detect reduction vs FIFO\" is the comparable figure here.", ""]
    head = ("| world | ordering | prevented / reviewer-hour | time to first review, violating cases: median / p90 "
            "| reviewed | time to detect: median / p90 / mean* | detected | enforcement precision "
            "| wrong enforcements overturned on appeal | right ones overturned | busy** |")
    lines += [head, "|" + "---|" * 11]
    for w, res in report["per_world"].items():
        for name, m in res["orderings"].items():
            lines.append(
                f"| {w} | {NAMES.get(name, name)} | {_f(m['prevented_per_reviewer_hour'])} | "
                f"{_fmt_min(m['ttfr_median_min'])} / {_fmt_min(m['ttfr_p90_min'])} | "
                f"{_pct_s(m['violating_reviewed_share'])} of {m['violating_cases']} | "
                f"{_fmt_min(m['ttd_median_min'])} / {_fmt_min(m['ttd_p90_min'])} / "
                f"{_fmt_min(m['ttd_mean_censored_min'])} | {_pct_s(m['detected_share'])} of {m['violating_units']} | "
                f"{_f(m['enforcement_precision'])} | {m['wrong_overturned']} of {m['wrong_enforcements']} "
                f"({_pct_s(m['wrong_overturned_share'])}; {m['wrong_appealed']} appealed) | "
                f"{m['right_overturned']} of {m['right_appealed']} appealed | {_pct_s(m['busy_share'])} |")
    lines += ["", "Per world: " + "; ".join(
        f"{w}: {res['cases']:,} cases, {res['violating_cases']} violating (replay {res['replay_s']:.0f} s)"
        for w, res in report["per_world"].items())
        + ".", "",
        "*mean time to detect counts an account or post never enforced until the world's end (a lower bound). "
        "\"not reached\": the percentile falls on cases never reviewed (or units never enforced) in the day. "
        "**time spent deciding cases and appeals in the day over the team's on-shift hours; a decision started "
        "before a break or the end of a shift is finished, so it can pass 100%.", ""]
    return "\n".join(lines)


def _pct_s(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=1, default=str)

