"""Review evaluation on the simulator: violating exposure prevented at a reviewer capacity of K cases per hour.

Protocol (time-consistent; ``bastion review eval``):

* The run's events are replayed through the engine and the review queue. At every hour of event time the
  open cases are **snapshotted** as the queue knew them then (signals, reports, exposure estimate, model
  scores). Each hour, reviewers take the K best cases not yet reviewed in the order under test, ranked on
  that hour's snapshot - so an ordering only ever uses what was known at the time it ranks. (The first
  version ranked every hour with the end-of-day queue: reports and signals that arrived at 20:00 lifted a
  case at 01:00, a look into the future that report-count and FIFO orderings did not get.)
* Exposure is the simulator's count of views a violating subject collected. It accrues evenly over the
  subject's active span (an account: its first to its last event; a post: the 24 hours after it was
  written); actioning it at hour t prevents the part after t, all of it when t is before the span. Each
  violating account or post is credited once, at its earliest action: a violating cluster decision actions
  its violating members, and a member already actioned through its own case (or an earlier cluster) adds
  nothing more. (The first version credited a cluster with its members' whole exposure on top of their
  own account cases: about 40% of the "bad exposure in the queue" was counted twice.)
* Orderings: ``fifo`` (first enqueued first); ``report_count`` (most reports so far, from the truth);
  ``formula`` (the hand-set harm formula with no decisions: raw signal scores, every reporter at the
  prior reputation); ``formula_feedback`` (the formula as the live service runs it: each decision of the
  simulated day updates reporter reputations and per-source precision before the next hour ranks);
  ``formula_measured`` (the same, its per-source precision starting from the one measured on the training
  run of the learned prioritiser - what the formula does live next to a trained model);
  ``learned`` (the trained prioritiser, :mod:`bastion.review.prioritiser`, with the live reporter
  reputations of the day's decisions); ``oracle`` (the truth: the exposure a case would still prevent, a
  ceiling for the others). The learned prioritiser is trained on *another* simulated run
  (another seed), never on the run it is evaluated on.
* ``precision_at_k``: the share of violating cases among the k highest-priority cases of the end-of-day
  queue (every case of the day), ranked with what the ordering knew before the day (no decisions of the day,
  which would leak the labels of the cases they decided). ``reviewed_precision_at_100``: the share of
  violating cases among the first 100 cases the reviewers of the simulation took, feedback included - what
  a reviewer sees at the top of the live queue.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.review.queue import Case, ReviewQueue
from bastion.review.world import HOUR, World
from bastion.review.world import load_truth as _load_truth

if TYPE_CHECKING:
    from bastion.actions.outcomes import ClusterBook
    from bastion.app import Books, Runtime

ORDERINGS = ("formula", "formula_feedback", "formula_measured", "learned", "fifo", "report_count", "oracle")


# -- snapshots of the queue -------------------------------------------------------------------------------
@dataclass
class Snapshot:
    """The open cases at time ``t`` as the queue knew them (frozen copies) with their model scores and
    (clusters) members."""

    t: int
    cases: list[Case]
    scores: dict[str, dict[str, float]]
    members: dict[str, list[str]] = field(default_factory=dict)


def _freeze(case: Case) -> Case:
    c = copy.copy(case)
    c.signals = dict(case.signals)
    c.reporters = set(case.reporters)
    c.sources = set(case.sources)
    c.reports = list(case.reports)
    return c


class Recorder:
    """A detector that snapshots a queue at every hour boundary of event time (at the first event past it,
    before that event's effects) and, after the batch detectors, at the end of the stream."""

    name = "review_snapshots"

    def __init__(self, queue: ReviewQueue, start: int, end: int, clusters: ClusterBook | None = None) -> None:
        self.queue, self.start, self.end, self.clusters = queue, start, end, clusters
        self.world: World | None = None   # the truth it was made for (queue_recorder)
        self.next_t = start + HOUR
        self.hourly: list[Snapshot] = []
        self.final: Snapshot | None = None

    def take(self, t: int) -> Snapshot:
        q = self.queue
        cases, scores, members = [], {}, {}
        for c in q.open_cases():
            q.refresh_exposure(c)
            cases.append(_freeze(c))
            scores[c.id] = q.scores_of(c)
            if c.subject.kind == "cluster" and self.clusters is not None:
                cl = self.clusters.clusters.get(c.subject.id)
                members[c.id] = list(cl.members) if cl else []
        return Snapshot(t, cases, scores, members)

    def _catch_up(self, ts: int) -> None:
        while ts >= self.next_t and self.next_t <= self.end:
            self.hourly.append(self.take(self.next_t))
            self.next_t += HOUR

    def evaluate(self, ctx: Any) -> None:
        if ctx.dry_run:
            return
        ts = ctx.event.ts
        if ts >= self.next_t:
            self._catch_up(ts)

    def finish(self, _runtime: Any = None) -> None:
        self._catch_up(self.end)
        self.final = self.take(max(self.end, self.queue.now_ms))


def queue_recorder(books: Books, truth: dict[str, Any] | str | Path) -> Recorder:
    """A :class:`Recorder` of ``books``' review queue over the truth's time span: pass ``books`` and the
    recorder (``watchers=[rec]``) to :func:`~bastion.app.build_runtime`; :func:`evaluate_review` then scores
    the runtime time-consistently."""
    world = World(_load_truth(truth))
    rec = Recorder(books.queue, world.start, world.end, books.clusters)
    rec.world = world
    return rec


@dataclass
class Replay:
    """A replayed run: hourly snapshots (``hourly``), the end-of-stream one (``final``) and the truth."""

    world: World
    hourly: list[Snapshot]
    final: Snapshot


def from_runtime(runtime: Runtime) -> Replay:
    """The :class:`Replay` of a runtime that ran with a :func:`queue_recorder` among its watchers."""
    rec = next((d for d in runtime.detectors if isinstance(d, Recorder) and d.world is not None), None)
    if rec is None or rec.world is None:
        raise ValueError("this runtime ran without a queue_recorder(): no hourly snapshots of its queue")
    world = rec.world
    if rec.final is None:
        rec.finish()
    assert rec.final is not None
    return Replay(world, rec.hourly, rec.final)


def replay(truth: dict[str, Any] | str | Path, events: Path, settings: Any = None, **runtime: Any) -> Replay:
    """Replay ``events`` through a fresh engine (rules, models, linker and cluster detectors as configured;
    ``runtime`` goes to :func:`~bastion.app.build_runtime`) and snapshot its review queue every hour."""
    import tempfile

    from bastion.app import Books, build_runtime
    from bastion.settings import Settings
    from bastion.sources.files import items

    if settings is None:
        settings = Settings.load(db_path=Path(tempfile.mkdtemp(prefix="bastion-review-eval-")) / "review.db")
    books = Books()
    rt = build_runtime(settings, "evaluation", books=books, watchers=[queue_recorder(books, truth)], **runtime)
    rt.run(items(Path(events), "canonical"))
    rt.run_batch_detectors()
    rep = from_runtime(rt)
    rt.close()
    return rep


# -- orderings --------------------------------------------------------------------------------------------
class _Ctx:
    """The :class:`~bastion.review.prioritiser.CaseContext` of a snapshot."""

    def __init__(self, snap: Snapshot, reputation: Callable[[str], float], source_table: Any = None) -> None:
        self.snap, self.reputation, self.source_table = snap, reputation, source_table

    def scores_of(self, case: Case) -> dict[str, float]:
        return self.snap.scores.get(case.id, {})


def _prior_reputation(_reporter: str) -> float:
    return 0.5


class Ordering:
    """Ranks the available cases of a snapshot; :meth:`observe` sees each decision (the feedback loop)."""

    name = ""

    def __init__(self, world: World) -> None:
        self.world = world

    def priorities(self, cases: list[Case], snap: Snapshot) -> list[float]:
        raise NotImplementedError

    def observe(self, case: Case, violating: bool) -> None:
        return None


class Fifo(Ordering):
    name = "fifo"

    def priorities(self, cases: list[Case], snap: Snapshot) -> list[float]:
        return [-float(c.opened_ms) for c in cases]


class ReportCount(Ordering):
    name = "report_count"

    def priorities(self, cases: list[Case], snap: Snapshot) -> list[float]:
        return [float(bisect.bisect_right(self.world.reports.get(c.subject.id, []), snap.t)) for c in cases]


class Formula(Ordering):
    """The hand-set formula; with ``feedback`` each decision updates reputations and source precision."""

    def __init__(self, world: World, feedback: bool = False, prior: Any = None) -> None:
        from bastion.review.service import Reputation, SourcePrecision

        super().__init__(world)
        self.feedback = feedback
        self.name = "formula_measured" if prior is not None else "formula_feedback" if feedback else "formula"
        self.rep, self.prec = Reputation(), SourcePrecision(prior=prior)
        self.calibrate = self.prec.calibrate if feedback or prior is not None else None

    def priorities(self, cases: list[Case], snap: Snapshot) -> list[float]:
        reputation = self.rep.mean if self.feedback else _prior_reputation
        return [c.priority(snap.t, calibrate=self.calibrate, reputation=reputation) for c in cases]

    def observe(self, case: Case, violating: bool) -> None:
        if self.feedback:
            self.rep.update(case.reporters, violating)
            self.prec.update(case.sources, violating)


class Learned(Ordering):
    """A trained :class:`~bastion.review.prioritiser.LearnedPrioritiser` with live reporter reputations and,
    with ``online`` (the live service's default), per-source precision recalibrated by every decision: it
    starts from the model's prior table and each decision adds to the sources that raised the case."""

    name = "learned"

    def __init__(self, world: World, model: Any, feedback: bool = True, online: bool = True) -> None:
        from bastion.review.service import Reputation

        super().__init__(world)
        self.model, self.feedback, self.rep = model, feedback, Reputation()
        self.online = online and hasattr(model, "prior_table")
        self.table = model.prior_table() if self.online else None
        if not online:
            self.name = "learned_static"

    def priorities(self, cases: list[Case], snap: Snapshot) -> list[float]:
        ctx = _Ctx(snap, self.rep.mean if self.feedback else _prior_reputation,
                   self.table if self.feedback else None)
        return list(self.model.priorities(cases, ctx, snap.t))

    def observe(self, case: Case, violating: bool) -> None:
        if self.feedback:
            self.rep.update(case.reporters, violating)
            if self.table is not None:
                self.table.update([s for s in case.sources if not s.startswith("reviewer:")], violating)


class Oracle(Ordering):
    """The truth itself: the exposure a case would still prevent now (a ceiling, not a contender)."""

    name = "oracle"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.done: set[tuple[str, str]] = set()

    def priorities(self, cases: list[Case], snap: Snapshot) -> list[float]:
        w = self.world
        return [sum(w.prevented(u, snap.t) for u in w.units(c.subject.kind, c.subject.id, _members(snap, c))
                    if u not in self.done) for c in cases]

    def observe_units(self, units: list[tuple[str, str]]) -> None:
        self.done.update(units)


def _key(c: Case) -> tuple[str, str]:
    return (c.subject.kind, c.subject.id)


def _members(snap: Snapshot, c: Case) -> list[str] | None:
    return snap.members.get(c.id) if c.subject.kind == "cluster" else None


def _ranked(cases: list[Case], prios: list[float]) -> list[Case]:
    order = sorted(range(len(cases)), key=lambda i: (-prios[i], cases[i].opened_ms, cases[i].id))
    return [cases[i] for i in order]


def simulate(rep: Replay, ordering: Ordering, cap: int) -> dict[str, Any]:
    """Reviewers take ``cap`` cases an hour in ``ordering``; returns what they prevented and decided."""
    world = rep.world
    reviewed: set[tuple[str, str]] = set()
    actioned: dict[tuple[str, str], int] = {}
    decided: list[bool] = []
    for snap in rep.hourly:
        avail = [c for c in snap.cases if _key(c) not in reviewed]
        if not avail:
            continue
        for c in _ranked(avail, ordering.priorities(avail, snap))[:cap]:
            reviewed.add(_key(c))
            members = _members(snap, c)
            bad = world.is_bad(c.subject.kind, c.subject.id, members)
            decided.append(bad)
            ordering.observe(c, bad)
            units = world.units(c.subject.kind, c.subject.id, members)
            for u in units:
                actioned.setdefault(u, snap.t)
            if isinstance(ordering, Oracle):
                ordering.observe_units(units)
    prevented = sum(world.prevented(u, t) for u, t in actioned.items())
    return {"prevented": prevented, "reviewed": len(decided),
            "reviewed_precision_at_100": round(sum(decided[:100]) / len(decided[:100]), 4) if decided else None}


def _bad_exposure(rep: Replay) -> float:
    units: set[tuple[str, str]] = set()
    for c in rep.final.cases:
        units.update(rep.world.units(c.subject.kind, c.subject.id, _members(rep.final, c)))
    return sum(rep.world.span(u)[2] for u in units)


def evaluate_replay(rep: Replay, model: Any = None, capacities: tuple[int, ...] = (10, 50),
                    orderings: Iterable[str] = ORDERINGS) -> dict[str, Any]:
    """Every ordering at every capacity on one replayed run (``learned`` only with a ``model``)."""
    world, final = rep.world, rep.final
    labels = [world.is_bad(c.subject.kind, c.subject.id, _members(final, c)) for c in final.cases]
    out: dict[str, Any] = {"cases": len(final.cases), "bad_cases": sum(labels),
                           "bad_exposure": round(_bad_exposure(rep), 1), "hours": len(rep.hourly),
                           "seed": world.meta.get("seed")}
    if model is not None:
        out["model"] = {"version": getattr(model, "version", None), "n_train": getattr(model, "n_train_", None),
                        "trained_on": getattr(model, "meta_", {}).get("trained_on"),
                        "command": getattr(model, "meta_", {}).get("command")}

    def make(name: str) -> Ordering | None:
        if name == "fifo":
            return Fifo(world)
        if name == "report_count":
            return ReportCount(world)
        if name == "formula":
            return Formula(world)
        if name == "formula_feedback":
            return Formula(world, feedback=True)
        if name == "formula_measured" and model is not None:
            return Formula(world, feedback=True, prior=model.table_)
        if name == "learned" and model is not None:
            return Learned(world, model)
        if name == "oracle":
            return Oracle(world)
        return None

    names = [n for n in orderings if make(n) is not None]
    by_name: dict[str, dict[str, Any]] = {}
    for name in names:
        m: dict[str, Any] = {}
        static = make(name)
        if name in ("formula", "formula_feedback", "formula_measured", "learned"):
            assert static is not None
            # no decisions of the day (the feedback variant ranks the end-of-day queue like the formula; the
            # measured one keeps the source precision measured on the training run)
            if isinstance(static, Formula):
                static.feedback = False
                static.calibrate = static.prec.calibrate if static.prec.prior is not None else None
            if isinstance(static, Learned):
                static.feedback = False
            ranked = _ranked(final.cases, static.priorities(final.cases, final))
            bad = {id(c): b for c, b in zip(final.cases, labels, strict=True)}
            for k in (10, 50, 100):
                top = ranked[:k]
                m[f"precision_at_{k}"] = round(sum(bad[id(c)] for c in top) / len(top), 4) if top else None
        for cap in capacities:
            o = make(name)
            assert o is not None
            m[f"capacity_{cap}"] = simulate(rep, o, cap)
        by_name[name] = m
    for cap in capacities:
        base = {n: by_name[n][f"capacity_{cap}"]["prevented"] for n in ("fifo", "report_count") if n in by_name}
        for name in names:
            c = by_name[name][f"capacity_{cap}"]
            for ref, v in base.items():
                c[f"vs_{ref}"] = round(c["prevented"] / v, 3) if v > 0 else None
            c["prevented"] = round(c["prevented"], 1)
    out["orderings"] = by_name
    return out


def to_replay(truth: dict[str, Any] | str | Path, source: Any, settings: Any = None) -> Replay:
    """``source`` as a :class:`Replay`: an events file (replayed here), a :class:`Replay`, or a runtime that
    ran with a :func:`queue_recorder`."""
    if isinstance(source, Replay):
        return source
    if isinstance(source, (str, Path)):
        return replay(truth, Path(source), settings)
    return from_runtime(source)


def trained_on_seed(model: Any, rep: Replay) -> bool:
    """Whether ``model`` was trained on the simulated run ``rep`` replays (same seed): its numbers there
    would be scored on its own training labels."""
    seed = rep.world.meta.get("seed")
    trained = (getattr(model, "meta_", None) or {}).get("trained_on") or {}
    return model is not None and seed is not None and trained.get("seed") == seed


def evaluate_review(truth: dict[str, Any] | str | Path, source: Any, capacities: tuple[int, ...] = (10, 50),
                    model: Any = None, settings: Any = None) -> dict[str, Any]:
    """Score review orderings against the simulator truth. ``source`` is an events file (replayed here), a
    :class:`Replay`, or a runtime that ran with a :func:`queue_recorder`; ``model`` a trained prioritiser
    (trained on another run)."""
    return evaluate_replay(to_replay(truth, source, settings), model, capacities)


def live_ordering(model: Any) -> str:
    """The ordering of :func:`evaluate_replay` that simulates the live queue: the learned prioritiser when one
    is loaded, else the formula with its feedback loop (both update reporter reputations, and the formula its
    per-source precision, after every decision, as :class:`~bastion.review.service.ReviewService` does)."""
    return "learned" if model is not None else "formula_feedback"


def queue_metrics(rep: Replay, model: Any = None, capacities: tuple[int, ...] = (10, 50)) -> dict[str, Any]:
    """The review-queue metrics of ``bastion eval`` (:func:`bastion.evaluation.metrics.evaluate`) on a replayed
    run, with the code of ``bastion review eval``: the live queue's ordering (:func:`live_ordering`) against
    FIFO, report count and the oracle at each capacity. A ``model`` trained on this very run's seed is not
    scored (its own training labels): the formula is, with a note."""
    out: dict[str, Any] = {}
    if trained_on_seed(model, rep):
        out["note"] = (f"review_prioritiser v{getattr(model, 'version', None)} was trained on seed "
                       f"{rep.world.meta.get('seed')}, the evaluated run: the formula is scored instead")
        model = None
    live = live_ordering(model)
    m = evaluate_replay(rep, model, capacities, orderings=(live, "fifo", "report_count", "oracle"))
    o = m["orderings"]
    out.update({"ordering": live, "replay_cases": m["cases"], "replay_bad_cases": m["bad_cases"],
                "replay_bad_exposure": m["bad_exposure"], "hours": m["hours"], "seed": m["seed"],
                "replay_precision_at_100": o[live].get("precision_at_100")})
    if "model" in m:
        out["model"] = m["model"]
    for cap in capacities:
        k = f"capacity_{cap}"
        c = o[live][k]
        out[k] = {"ordering": live, "bastion": c["prevented"], "fifo": o["fifo"][k]["prevented"],
                  "report_count": o["report_count"][k]["prevented"], "oracle": o["oracle"][k]["prevented"],
                  "vs_fifo": c.get("vs_fifo"), "vs_reports": c.get("vs_report_count"),
                  "reviewed_precision_at_100": c.get("reviewed_precision_at_100")}
    return out


# -- training from a simulated run -----------------------------------------------------------------------
def training_cases(rep: Replay, max_rows_per_case: int = 25, world_id: int | None = None) -> list[Any]:
    """Simulated reviewer decisions on a replayed run: every case, decided by the truth, with one feature
    row per hour it was open (reputations and source precision filled in out of fold by
    :func:`~bastion.review.prioritiser.fit_cases`)."""
    from bastion.review.prioritiser import TrainingCase, features_of, source_scores

    world = rep.world
    final = {_key(c): c for c in rep.final.cases}
    seen: dict[tuple[str, str], list[tuple[Snapshot, Case]]] = {}
    for snap in [*rep.hourly, rep.final]:
        for c in snap.cases:
            seen.setdefault(_key(c), []).append((snap, c))
    out = []
    for key, hist in seen.items():
        last_snap, last = hist[-1]
        fin = final.get(key, last)
        members = _members(last_snap, last)
        bad = world.is_bad(key[0], key[1], members)
        step = max(1, len(hist) // max_rows_per_case)
        rows = []
        for snap, c in hist[::step]:
            def make(table: Any, reputation: Callable[[str], float], snap: Snapshot = snap, c: Case = c
                     ) -> dict[str, float]:
                return features_of(c, _Ctx(snap, reputation), snap.t, table)
            rows.append(make)
        out.append(TrainingCase(f"{key[0]}:{key[1]}" if world_id is None else f"{world_id}:{key[0]}:{key[1]}",
                                bad, source_scores(fin), set(fin.reporters), rows, world_id))
    return out


def train_on_replay(rep: Replay, **params: Any) -> Any:
    """A :class:`~bastion.review.prioritiser.LearnedPrioritiser` trained on simulated decisions of ``rep``."""
    from bastion.review.prioritiser import fit_cases

    model = fit_cases(training_cases(rep), **params)
    meta = rep.world.meta
    model.meta_["trained_on"] = {"seed": meta.get("seed"), "users": meta.get("users"), "days": meta.get("days"),
                                 "text_split": meta.get("text_split"), "ctx": meta.get("ctx"),
                                 "backfill": meta.get("backfill"), "cases": len(rep.final.cases),
                                 "decisions": "simulated decisions (every case, every hour it was open, "
                                              "decided by the truth)"}
    return model


def sim_command(meta: dict[str, Any], out: str) -> str:
    days = meta.get("days")
    days_s = f"{days:g}" if isinstance(days, (int, float)) else str(days)
    extra = ""
    if meta.get("text_split") not in (None, "test"):
        extra += f" --text-split {meta['text_split']}"
    if meta.get("ctx") is False:
        extra += " --no-ctx"
    if meta.get("backfill") is False:
        extra += " --no-backfill"
    return f"bastion sim --out {out} --users {meta.get('users')} --days {days_s} --seed {meta.get('seed')}{extra}"


def markdown(metrics: dict[str, Any], command: str, capacity: int = 10) -> str:
    """The "review" section of docs/evaluation.md. ``command`` is the ``bastion review eval`` command line;
    ``metrics["commands"]`` (when the CLI filled it) the ones that made its runs and model."""
    cmds = [*metrics.get("commands", []), command]
    lines = ["## Review queue", "", "Produced by `" + " && ".join(cmds) + "`.", "",
             f"{metrics['cases']} cases ({metrics['bad_cases']} violating); violating exposure in the queue "
             f"{metrics['bad_exposure']}; reviewer capacity K={capacity} cases/hour over {metrics['hours']} hours.",
             ""]
    mod = metrics.get("model")
    if mod:
        tr = mod.get("trained_on") or {}
        shipped = " (the one shipped in the package, `bastion/artifacts/review_prioritiser/`)" if "--ship" in str(
            mod.get("command") or "") else ""
        lines += [f"Learned prioritiser: `review_prioritiser` v{mod.get('version')}{shipped}, trained on "
                  f"{tr.get('decisions', 'decisions')} of the seed-{tr.get('seed')} run ({tr.get('cases')} cases, "
                  f"{mod.get('n_train')} rows); evaluated on the seed-{metrics.get('seed')} run.", ""]
    lines += ["| ordering | precision@100 | reviewed precision@100 | prevented | vs FIFO | vs report count |",
              "|---|---|---|---|---|---|"]
    names = {"formula": "formula (no decisions)", "formula_feedback": "formula + feedback (live loop)",
             "formula_measured": "formula + feedback + measured source precision",
             "learned": "learned prioritiser", "fifo": "FIFO", "report_count": "report count",
             "oracle": "oracle (the truth; a ceiling)"}
    for key, m in metrics["orderings"].items():
        c = m.get(f"capacity_{capacity}", {})
        lines.append(f"| {names.get(key, key)} | {m.get('precision_at_100', '-')} | "
                     f"{c.get('reviewed_precision_at_100')} | {c.get('prevented')} | {c.get('vs_fifo')} | "
                     f"{c.get('vs_report_count')} |")
    lines += ["", "Targets: >= 1.5x FIFO, >= 1.2x report-count ordering, precision@100 >= 0.90.", "",
              "Protocol (`bastion/review/evaluation.py`): every hour of the replayed day, reviewers take the K "
              "best cases not yet reviewed, ranked on that hour's snapshot of the queue (what was known then). "
              "A violating account's or post's exposure (the simulator's views) accrues evenly over its active "
              "span; actioning it prevents the rest, and each account or post is credited once, at its first "
              "action (a violating cluster actions its violating members). *precision@100*: violating share of "
              "the 100 highest-priority cases of the end-of-day queue, ranked without the day's decisions; "
              "*reviewed precision@100*: of the first 100 cases the simulated reviewers took, feedback included. "
              "The feedback orderings update reporter reputations (and the formula's per-source precision) "
              "after every decision, as the live service does.", "",
              "`bastion eval` (the shared scoreboard) reports the review queue with these definitions: "
              "precision@k of the results' `queue.jsonl` (the end-of-day queue, a cluster case violating when "
              "most of its members are) and the violating exposure in it, each account or post once. Its "
              "exposure prevented at K = 10 and 50 needs the queue at every hour, which a results directory does "
              "not hold (`queue.jsonl` is the end-of-day queue; ranking every hour with it was the hindsight "
              "flaw), so it comes from this code on a replay - `bastion eval --events EVENTS`, and `bastion demo` "
              "from its own run's hourly snapshots - for the ordering the live queue uses (the learned "
              "prioritiser when one is loaded, else the formula with its feedback loop); with the results "
              "directory alone it is left empty."]
    return "\n".join(lines)
