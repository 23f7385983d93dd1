"""The review queue's harm captured hour by hour, for the HTML report.

``bastion review eval`` (:func:`bastion.review.evaluation.simulate`) totals the violating exposure that reviewers
taking K cases an hour prevent over a replayed run. This runs the same simulation with the same orderings and
records when each violating account or post was first actioned, so the total can be drawn as it accrues: the
curve at hour h is the exposure prevented by the decisions of hours 0..h, and its last point is the total that
:func:`bastion.review.evaluation.queue_metrics` reports (the report checks they agree).
"""

from __future__ import annotations

from typing import Any

HOUR_MS = 3_600_000


class _Timed:
    """Mixed in front of an ordering: records the hour at which each violating unit was first actioned."""

    world: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.snap: Any = None
        self.first: dict[tuple[str, str], int] = {}

    def priorities(self, cases: list[Any], snap: Any) -> list[float]:
        self.snap = snap
        return super().priorities(cases, snap)  # type: ignore[misc]

    def observe(self, case: Any, violating: bool) -> None:
        members = self.snap.members.get(case.id) if case.subject.kind == "cluster" else None
        for u in self.world.units(case.subject.kind, case.subject.id, members):
            self.first.setdefault(u, self.snap.t)
        super().observe(case, violating)  # type: ignore[misc]


def _timed(cls: type) -> type:
    return type(f"Timed{cls.__name__}", (_Timed, cls), {})


def harm_over_time(rep: Any, model: Any = None, capacities: tuple[int, ...] = (10, 50)) -> dict[str, Any]:
    """Cumulative exposure prevented after each hour of ``rep`` (a :class:`bastion.review.evaluation.Replay`) by
    the live queue's ordering (the learned prioritiser ``model``, or the formula with feedback without one; a
    model trained on this run's seed is not scored, as in ``queue_metrics``), FIFO, report count and the oracle,
    at each reviewer capacity (cases per hour).

    Returns ``{"ordering": live, "hours": [h...], "capacity_K": {name: {"curve": [...], "total": x}}}``."""
    from bastion.review.evaluation import (
        Fifo,
        Formula,
        Learned,
        Oracle,
        ReportCount,
        live_ordering,
        simulate,
        trained_on_seed,
    )

    if trained_on_seed(model, rep):
        model = None
    live = live_ordering(model)
    world = rep.world
    start = rep.hourly[0].t if rep.hourly else world.start
    times = [s.t for s in rep.hourly]
    out: dict[str, Any] = {"ordering": live, "hours": [round((t - start) / HOUR_MS, 3) for t in times]}

    def make(name: str) -> Any:
        if name == "learned":
            return _timed(Learned)(world, model)
        if name == "formula_feedback":
            return _timed(Formula)(world, feedback=True)
        return _timed({"fifo": Fifo, "report_count": ReportCount, "oracle": Oracle}[name])(world)

    for cap in capacities:
        by: dict[str, Any] = {}
        for name in (live, "fifo", "report_count", "oracle"):
            o = make(name)
            total = simulate(rep, o, cap)["prevented"]
            gains = sorted((t, world.prevented(u, t)) for u, t in o.first.items())
            curve, acc, i = [], 0.0, 0
            for t in times:
                while i < len(gains) and gains[i][0] <= t:
                    acc += gains[i][1]
                    i += 1
                curve.append(round(acc, 1))
            by[name] = {"curve": curve, "total": round(total, 1)}
        out[f"capacity_{cap}"] = by
    return out
