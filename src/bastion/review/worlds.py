"""The review queue across randomized worlds: cached hourly replays of many worlds, to train and check the
learned prioritiser on populations it was not fitted to (issue 16, "the queue").

A world (:mod:`bastion.sim.worlds`) is simulated once, replayed once through the engine with hourly snapshots
of its review queue (:func:`bastion.review.evaluation.replay`), and the snapshots are written as gzipped JSON
(no pickle) next to the world, so training, tuning and checking a prioritiser on many worlds costs a replay per
world only once. Odd training worlds are replayed without ip/device context (a Bluesky-like stream), as the
bot calibration worlds were, so a prioritiser learns from both kinds of stream.
"""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bastion.review.evaluation import Replay, Snapshot, replay
from bastion.review.queue import Case
from bastion.review.world import World, load_truth

FORMAT = 1


def _case_json(c: Case) -> dict[str, Any]:
    return c.to_row(0.0)


def _case_of(row: dict[str, Any]) -> Case:
    return Case.from_row(row)


def snapshot_json(s: Snapshot) -> dict[str, Any]:
    return {"t": s.t, "cases": [_case_json(c) for c in s.cases], "scores": s.scores, "members": s.members}


def snapshot_of(d: dict[str, Any]) -> Snapshot:
    return Snapshot(int(d["t"]), [_case_of(r) for r in d["cases"]],
                    {k: {n: float(v) for n, v in sc.items()} for k, sc in d.get("scores", {}).items()},
                    {k: list(v) for k, v in d.get("members", {}).items()})


def save_replay(rep: Replay, path: Path) -> None:
    """Write ``rep``'s snapshots (not its truth: that stays in the world's truth.json) as gzipped JSON."""
    tmp = path.with_name(path.name + ".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as fh:
        json.dump({"format": FORMAT, "hourly": [snapshot_json(s) for s in rep.hourly],
                   "final": snapshot_json(rep.final)}, fh, separators=(",", ":"))
    tmp.rename(path)


def load_replay(path: Path, truth: dict[str, Any] | str | Path) -> Replay:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        d = json.load(fh)
    if d.get("format") != FORMAT:
        raise ValueError(f"{path}: replay cache format {d.get('format')!r}, expected {FORMAT}; delete it to redo")
    return Replay(World(load_truth(truth)), [snapshot_of(s) for s in d["hourly"]], snapshot_of(d["final"]))


def context_of(world: int) -> str:
    """Training worlds alternate: even with ip/device context, odd without. Test worlds keep their context."""
    return "noctx" if world < 1001 and world % 2 else "ctx"


def world_replay(world: int, cache: Path, users: int, days: float, context: str | None = None,
                 settings: Any = None, log: Callable[[str], None] | None = None) -> Replay:
    """World ``world`` simulated (or reused from ``cache``), replayed with hourly queue snapshots (or the cached
    snapshots read back)."""
    from bastion.evaluation.worlds import strip_ctx
    from bastion.sim import SimConfig, simulate
    from bastion.sim.worlds import world_split

    ctx = context or context_of(world)
    sim_dir = cache / f"world-{world}-u{users}-d{days:g}"
    truth = sim_dir / "truth.json"
    if not truth.is_file():
        tmp = sim_dir.with_name(sim_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        simulate(SimConfig(users=users, days=days, seed=world, world=world, text_split=world_split(world)), tmp)
        shutil.rmtree(sim_dir, ignore_errors=True)
        tmp.rename(sim_dir)
    cached = sim_dir / f"review-replay-{ctx}.json.gz"
    if cached.is_file():
        return load_replay(cached, truth)
    events = sim_dir / "events.jsonl"
    if ctx == "noctx":
        stripped = sim_dir / "events-noctx.jsonl"
        if not stripped.is_file():
            strip_ctx(events, stripped.with_suffix(".tmp"))
            stripped.with_suffix(".tmp").rename(stripped)
        events = stripped
    if settings is None:
        from bastion.settings import Settings

        settings = Settings.load(db_path=Path(tempfile.mkdtemp(prefix="bastion-review-worlds-")) / "review.db")
    if log:
        log(f"world {world} ({ctx}): replaying {events} ...")
    rep = replay(truth, events, settings)
    save_replay(rep, cached)
    return rep


def world_replays(worlds: Iterable[int], cache: Path, users: int, days: float, context: str | None = None,
                  log: Callable[[str], None] | None = None) -> dict[int, Replay]:
    return {w: world_replay(w, cache, users, days, context, log=log) for w in worlds}



# -- training and choosing across worlds -------------------------------------------------------------------
#: the priority shapes tried on the validation worlds (every combination); see LearnedPrioritiser.priorities
SHAPE_GRID: dict[str, tuple[float, ...]] = {
    "sharpness": (1.0, 4.0), "exposure_exponent": (0.0, 0.25), "floor": (0.0, 0.002), "cap": (0.2, 0.5, 1.0),
}
PRIOR_DECISIONS = 20.0   # a source's training precision counts as this many decisions in a new world


def precision_at(rep: Replay, model: Any, k: int = 50) -> float | None:
    """Violating share of the ``k`` highest-priority cases of the end-of-stream queue, ranked by ``model``
    without decisions (what ``bastion eval`` reads from ``queue.jsonl``)."""
    from bastion.review.evaluation import _Ctx, _members, _prior_reputation, _ranked

    f = rep.final
    top = _ranked(f.cases, model.priorities(f.cases, _Ctx(f, _prior_reputation, None), f.t))[:k]
    if not top:
        return None
    return sum(rep.world.is_bad(c.subject.kind, c.subject.id, _members(f, c)) for c in top) / len(top)


def ceiling_at(rep: Replay, k: int = 50) -> float | None:
    """The best precision@k any ordering can reach on ``rep``'s end-of-stream queue: violating cases / k
    (a world with few violating cases caps it below 1)."""
    from bastion.review.evaluation import _members

    f = rep.final
    n = min(k, len(f.cases))
    if not n:
        return None
    bad = sum(rep.world.is_bad(c.subject.kind, c.subject.id, _members(f, c)) for c in f.cases)
    return min(bad, n) / n


def train_across_worlds(replays: dict[int, Replay], prior_decisions: float = PRIOR_DECISIONS,
                        **params: Any) -> Any:
    """One prioritiser from simulated decisions on every world of ``replays`` (leave-one-world-out source
    precision; :func:`~bastion.review.prioritiser.fit_cases`)."""
    from bastion.review.evaluation import training_cases
    from bastion.review.prioritiser import fit_cases

    cases = [c for w, rep in replays.items() for c in training_cases(rep, world_id=w)]
    return fit_cases(cases, prior_decisions=prior_decisions, **params)


def choose_shape(model: Any, validation: dict[int, Replay], grid: dict[str, tuple[float, ...]] = SHAPE_GRID,
                 capacity: int = 10, finalists: int = 5, log: Callable[[str], None] | None = None
                 ) -> dict[str, Any]:
    """Pick the priority shape on validation worlds: the best worst-world precision@50 (as a share of the
    world's ceiling, :func:`ceiling_at`), then the best mean of that share, then (among the ``finalists`` best) the most exposure prevented at ``capacity`` cases an
    hour relative to FIFO (mean over worlds), then the stricter corroboration cap. Sets ``model.shape``;
    returns the table of every shape tried."""
    import itertools

    from bastion.review.evaluation import Fifo, Learned, simulate

    base = {k: v for k, v in model.shape.items() if k == "prior_decisions"}
    keys = list(grid)
    tried = []
    ceilings = {w: ceiling_at(rep) for w, rep in validation.items()}
    for values in itertools.product(*(grid[k] for k in keys)):
        shape = {**base, **dict(zip(keys, values, strict=True))}
        model.shape = shape
        got = {w: precision_at(rep, model) for w, rep in validation.items()}
        # precision@50 as a share of what the world allows (its violating cases / 50 when fewer than 50)
        ps = [p / c for w, p in got.items() if p is not None and (c := ceilings[w])]
        tried.append({"shape": shape, "worst_p50": min(ps) if ps else 0.0,
                      "mean_p50": sum(ps) / len(ps) if ps else 0.0,
                      "p50": {str(w): p for w, p in got.items()}})
    tried.sort(key=lambda r: (-r["worst_p50"], -r["mean_p50"], r["shape"]["cap"]))
    fifo = {w: simulate(rep, Fifo(rep.world), capacity)["prevented"] for w, rep in validation.items()}
    for r in tried[:finalists]:
        model.shape = r["shape"]
        ratios = [simulate(rep, Learned(rep.world, model), capacity)["prevented"] / fifo[w]
                  for w, rep in validation.items() if fifo[w] > 0]
        r["vs_fifo"] = sum(ratios) / len(ratios) if ratios else 0.0
        if log:
            log(f"  shape {r['shape']}: worst p@50/ceiling {r['worst_p50']:.3f}, mean {r['mean_p50']:.3f}, "
                f"prevented {r['vs_fifo']:.2f}x FIFO")
    best = sorted(tried[:finalists], key=lambda r: (-r["worst_p50"], -r["mean_p50"], -r["vs_fifo"],
                                                     r["shape"]["cap"]))[0]
    model.shape = dict(best["shape"])
    return {"chosen": best, "tried": tried}
