"""The learned prioritiser: a calibrated stacker retrained from reviewer decisions.

It learns P(violation) of a case from all of its evidence, the same evidence the hand-set formula combines by
hand:

* every signal source (``rule:NAME``, ``model:NAME@V``, ``linker``, ``cluster:KIND``, ``reports``) through its
  **measured precision** - a per-source table of violating / benign decisions (Beta-smoothed toward the
  source's own score), learned with the model and kept in its artifact; features are the best, the mean, the
  worst and the noisy-OR of those precisions;
* the raw signal scores and the model scores on the subject (bot, spam, abuse, hate, evasion ...);
* reports, each weighted by its reporter's reputation (the live one, learned from earlier decisions);
* offender history, exposure, age, policy queue and subject kind.

LightGBM (binary objective, small trees) fits those features; isotonic regression on out-of-fold predictions
calibrates it. Its priority is the same harm product as the formula
(:func:`~bastion.review.queue.harm_priority`) with P_learned in place of the formula's P, so the two differ only
in P(violation) and compare directly (``bastion review eval``).

Training data are reviewer decisions: the decisions table (``bastion review train-prioritiser``), or simulated
decisions on a simulator run (``--events/--truth``: every case of that run, at every hour it is open, decided by
the truth). The source table and the reporter reputations of training rows are computed out of fold (from
the other cases' decisions), so a row never sees its own label. The model is saved in the model registry as
``review_prioritiser`` (LightGBM's text format and numpy arrays, no pickle); a live queue uses the newest one
when there is one (:func:`load_prioritiser`) and the formula otherwise.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from bastion.review.queue import (
    AGING_FLOOR_PER_HOUR,
    AGING_PER_HOUR,
    EXPOSURE_EXPONENT,
    P_SHARPNESS,
    QUEUES,
    SEVERITY,
    Case,
    harm_priority,
)

MODEL_NAME = "review_prioritiser"
SCORE_NAMES = ("bot", "spam", "abuse", "hate", "evasion", "abuse_context")
FEATURES = (
    "p_signal_raw", "raw_max", "n_signals", "n_sources",
    "src_prec_max", "src_prec_mean", "src_prec_min", "src_prec_nor", "src_prec_n_known",
    "src_prec_second", "n_strong_sources", "n_weak_sources", "corroborated",
    "rule_max", "model_max", "linker", "cluster",
    "p_report", "n_reporters", "mean_reputation", "min_reputation", "max_reputation", "n_reports_kept",
    "history", "severity", "log_exposure", "age_h", "quiet_h",
    "is_account", "is_post", "is_cluster", "queue_code",
    *(f"score_{n}" for n in SCORE_NAMES), "author_bot", "author_spam",
)
PRIOR_WEIGHT = 5.0      # pseudo-decisions behind a source's own score before its measured precision counts
REPORTS_PRIOR = 0.5     # the "own score" of the reports source
# Corroboration (issue 16): a source "supports" a case when its measured precision reaches SUPPORT_PRECISION;
# a case is corroborated with two supporting sources or one source of STRONG_PRECISION. Defaults for a model
# without its own (a trained model stores the values chosen on training worlds in its ``shape``).
SUPPORT_PRECISION = 0.5
STRONG_PRECISION = 0.8


class CaseContext(Protocol):
    """What the features of a case read besides the case: reporter reputation and model scores."""

    reputation: Callable[[str], float]

    def scores_of(self, case: Case) -> Mapping[str, float]: ...


# -- the per-source precision table -----------------------------------------------------------------------
@dataclass
class SourceTable:
    """Violating / benign decisions per signal source; ``precision`` shrinks toward the source's own score.

    >>> t = SourceTable()
    >>> t.update(["rule:a"], True); t.update(["rule:a"], False); t.update(["rule:a"], False)
    >>> round(t.precision("rule:a", 0.8), 3), t.precision("rule:new", 0.8)
    (0.625, 0.8)
    """

    tp: dict[str, float] = field(default_factory=dict)
    fp: dict[str, float] = field(default_factory=dict)
    prior_weight: float = PRIOR_WEIGHT

    def update(self, sources: Iterable[str], violating: bool) -> None:
        book = self.tp if violating else self.fp
        for s in sources:
            book[s] = book.get(s, 0.0) + 1.0

    def known(self, source: str) -> bool:
        return source in self.tp or source in self.fp

    def precision(self, source: str, raw: float) -> float:
        tp, fp = self.tp.get(source, 0.0), self.fp.get(source, 0.0)
        return (raw * self.prior_weight + tp) / (self.prior_weight + tp + fp)

    def as_prior(self, n: float | None) -> SourceTable:
        """A copy whose every source counts at most ``n`` decisions (its precision kept): measured elsewhere,
        it is a prior that a world's own decisions can move (online calibration). ``None``: unchanged."""
        if n is None:
            return SourceTable(dict(self.tp), dict(self.fp), self.prior_weight)
        tp, fp = {}, {}
        for s in set(self.tp) | set(self.fp):
            a, b = self.tp.get(s, 0.0), self.fp.get(s, 0.0)
            k = min(1.0, n / (a + b)) if a + b > 0 else 1.0
            tp[s], fp[s] = a * k, b * k
        return SourceTable(tp, fp, self.prior_weight)

    def copy(self) -> SourceTable:
        return self.as_prior(None)

    def to_json(self) -> dict[str, Any]:
        return {"tp": self.tp, "fp": self.fp, "prior_weight": self.prior_weight}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SourceTable:
        return cls(dict(d.get("tp", {})), dict(d.get("fp", {})), float(d.get("prior_weight", PRIOR_WEIGHT)))


def source_scores(case: Case) -> dict[str, float]:
    """Each source of a case with its raw score (reports: :data:`REPORTS_PRIOR`)."""
    out = {s: REPORTS_PRIOR for s in case.sources if not s.startswith("reviewer:")}
    for s in case.signals.values():
        if not s.source.startswith("reviewer:"):
            out[s.source] = float(s.score)
    return out


# -- features ---------------------------------------------------------------------------------------------
def features_of(case: Case, ctx: CaseContext, now_ms: int, table: SourceTable | None = None,
                sources: Mapping[str, float] | None = None) -> dict[str, float]:
    """The features of ``case`` at ``now_ms`` (see :data:`FEATURES`); ``table`` gives the measured precision
    of each source (none: every source at its own score). ``sources`` overrides :func:`source_scores`."""
    srcs = dict(sources) if sources is not None else source_scores(case)
    reps = [ctx.reputation(r) for r in case.reporters]
    rule_max = model_max = linker = cluster = raw_max = 0.0
    raw_miss = 1.0
    for s in case.signals.values():
        if s.source.startswith("reviewer:"):
            continue
        sc = min(max(float(s.score), 0.0), 1.0)
        raw_max = max(raw_max, sc)
        raw_miss *= 1.0 - min(sc, 0.999)
        if s.source.startswith("rule:"):
            rule_max = max(rule_max, sc)
        elif s.source.startswith("model:"):
            model_max = max(model_max, sc)
        elif s.source.startswith("linker"):
            linker = max(linker, sc)
        elif s.source.startswith("cluster"):
            cluster = max(cluster, sc)
    p_report = 1.0
    for r in reps:
        p_report *= 1.0 - 0.5 * r
    scores = ctx.scores_of(case)
    row = {
        "p_signal_raw": 1.0 - raw_miss, "raw_max": raw_max, "n_signals": float(len(case.signals)),
        "n_sources": float(len(srcs)), **source_features(srcs, table),
        "rule_max": rule_max, "model_max": model_max, "linker": linker, "cluster": cluster,
        "p_report": 1.0 - p_report if reps else 0.0, "n_reporters": float(len(reps)),
        "mean_reputation": float(np.mean(reps)) if reps else 0.0, "min_reputation": min(reps) if reps else 0.0,
        "max_reputation": max(reps) if reps else 0.0, "n_reports_kept": float(len(case.reports)),
        "history": float(case.history), "severity": SEVERITY.get(case.queue, 0.5),
        "log_exposure": math.log1p(max(0.0, case.exposure)), "age_h": max(0.0, (now_ms - case.opened_ms) / 3.6e6),
        "quiet_h": max(0.0, (now_ms - case.updated_ms) / 3.6e6),
        "is_account": float(case.subject.kind == "account"), "is_post": float(case.subject.kind == "post"),
        "is_cluster": float(case.subject.kind == "cluster"),
        "queue_code": float(QUEUES.index(case.queue)) if case.queue in QUEUES else -1.0,
        "author_bot": float(scores.get("author:bot", 0.0)), "author_spam": float(scores.get("author:spam", 0.0)),
    }
    for n in SCORE_NAMES:
        row[f"score_{n}"] = float(scores.get(n, 0.0))
    return row


def matrix(rows: list[Mapping[str, float]]) -> np.ndarray:
    return np.array([[float(r.get(f, 0.0)) for f in FEATURES] for r in rows], dtype=np.float64).reshape(-1, len(FEATURES))


def _fold(key: str, n: int) -> int:
    return zlib.crc32(key.encode()) % n


# -- the model --------------------------------------------------------------------------------------------
@dataclass
class LearnedPrioritiser:
    """``fit`` returns self; learned state ends in ``_``. ``table_`` is the per-source precision measured on
    the training decisions; ``version`` is the registry version it was loaded from."""

    n_estimators: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 20
    seed: int = 0
    booster_: Any = None
    cal_x_: np.ndarray | None = None
    cal_y_: np.ndarray | None = None
    table_: SourceTable = field(default_factory=SourceTable)
    n_train_: int = 0
    n_cases_: int = 0
    importances_: dict[str, float] = field(default_factory=dict)
    meta_: dict[str, Any] = field(default_factory=dict)
    shape: dict[str, float] = field(default_factory=dict)   # the priority's shape and gate (empty: the formula's)
    version: str | None = None

    def _params(self) -> dict[str, Any]:
        return {"objective": "binary", "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
                "min_data_in_leaf": self.min_child_samples, "feature_fraction": 0.9, "bagging_fraction": 0.9,
                "bagging_freq": 1, "lambda_l2": 1.0, "num_threads": 1, "verbose": -1, "seed": self.seed}

    def fit(self, rows: list[Mapping[str, float]], y: list[int] | np.ndarray, groups: list[str] | None = None,
            table: SourceTable | None = None) -> LearnedPrioritiser:
        """Fit on feature rows with labels (1 violating); ``groups`` (one key per case) keeps the rows of a
        case in one fold of the calibration split; ``table`` is stored as the model's source precision."""
        import lightgbm as lgb
        from sklearn.isotonic import IsotonicRegression

        X, yy = matrix(list(rows)), np.asarray(y, dtype=int)
        if len(set(yy.tolist())) < 2:
            raise ValueError("need decisions of both kinds (violating and benign) to train")
        keys = list(groups) if groups is not None else [str(i) for i in range(len(yy))]

        def train(idx: np.ndarray) -> Any:
            return lgb.train(self._params(), lgb.Dataset(X[idx], yy[idx], feature_name=list(FEATURES)),
                             num_boost_round=self.n_estimators)

        folds = np.array([_fold(k, 5) for k in keys])
        oof = np.full(len(yy), np.nan)
        for f in range(5):
            te = np.flatnonzero(folds == f)
            tr = np.flatnonzero(folds != f)
            if len(te) and len(set(yy[tr].tolist())) == 2:
                oof[te] = train(tr).predict(X[te], num_threads=1)
        ok = ~np.isnan(oof)
        self.cal_x_ = self.cal_y_ = None
        if ok.sum() >= 10 and len(set(yy[ok].tolist())) == 2:
            iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-3, y_max=1 - 1e-3).fit(oof[ok], yy[ok])
            self.cal_x_ = np.asarray(iso.X_thresholds_, float)
            self.cal_y_ = np.asarray(iso.y_thresholds_, float)
        self.booster_ = train(np.arange(len(yy)))
        self.table_ = table or SourceTable()
        self.n_train_ = len(yy)
        self.n_cases_ = len(set(keys))
        gain = self.booster_.feature_importance(importance_type="gain")
        self.importances_ = {f: round(float(g), 1) for f, g in zip(FEATURES, gain, strict=True)}
        return self

    # -- serving ------------------------------------------------------------------------------------------
    def prior_table(self) -> SourceTable:
        """The per-source precision a new world starts from: the training table, each source capped at
        ``shape["prior_decisions"]`` decisions so that the world's own reviewer decisions move it."""
        n = self.shape.get("prior_decisions")
        return self.table_.as_prior(float(n) if n is not None else None)

    def table_for(self, ctx: Any) -> SourceTable:
        """The live per-source precision of ``ctx`` (``ctx.source_table``: the training prior plus this
        deployment's decisions) when it has one, else :meth:`prior_table`."""
        live = getattr(ctx, "source_table", None)
        return live if isinstance(live, SourceTable) else self.prior_table()

    def p_rows(self, rows: list[Mapping[str, float]]) -> np.ndarray:
        if not rows:
            return np.zeros(0)
        raw = np.asarray(self.booster_.predict(matrix(rows), num_threads=1), float)
        if self.cal_x_ is not None and self.cal_y_ is not None and len(self.cal_x_) > 1:
            # a little of the raw score keeps an order inside the isotonic plateaus
            return 0.999 * np.interp(raw, self.cal_x_, self.cal_y_) + 0.001 * raw
        return raw

    def p(self, cases: list[Case], ctx: CaseContext, now_ms: int) -> np.ndarray:
        """Calibrated P(violation) of each case (not capped by the corroboration gate)."""
        table = self.table_for(ctx)
        return self.p_rows([features_of(c, ctx, now_ms, table) for c in cases])

    def corroborated(self, cases: list[Case], ctx: CaseContext) -> list[bool]:
        """Whether each case has corroborated evidence (:func:`corroborated` with the live source precision
        and this model's thresholds)."""
        table = self.table_for(ctx)
        sup = float(self.shape.get("support", SUPPORT_PRECISION))
        strong = float(self.shape.get("strong", STRONG_PRECISION))
        return [corroborated([table.precision(s, raw) for s, raw in source_scores(c).items()], sup, strong)
                for c in cases]

    def priorities(self, cases: list[Case], ctx: CaseContext, now_ms: int) -> list[float]:
        """The harm product with the learned P. With a ``shape`` (chosen on training worlds): a case without
        corroborated evidence has its P capped at ``shape["cap"]`` (it ranks by calibrated expected harm among
        the weak cases, below the corroborated ones), P is sharpened by ``sharpness``, and the aging floor
        grows with P (a case nothing supports does not climb the queue by waiting alone)."""
        ps = self.p(cases, ctx, now_ms)
        if not self.shape:
            return [harm_priority(float(p), SEVERITY.get(c.queue, 0.5), c.exposure,
                                  max(0.0, (now_ms - c.opened_ms) / 3.6e6)) for c, p in zip(cases, ps, strict=True)]
        sh = self.shape
        cap, k = float(sh.get("cap", 1.0)), float(sh.get("sharpness", P_SHARPNESS))
        g, floor = float(sh.get("exposure_exponent", EXPOSURE_EXPONENT)), float(sh.get("floor", AGING_FLOOR_PER_HOUR))
        out = []
        for c, p, ok in zip(cases, ps, self.corroborated(cases, ctx), strict=True):
            p = float(p) if ok else min(float(p), cap)
            h = max(0.0, (now_ms - c.opened_ms) / 3.6e6)
            out.append(p ** k * SEVERITY.get(c.queue, 0.5) * (1.0 + max(0.0, c.exposure)) ** g
                       * (1.0 + AGING_PER_HOUR * h) + floor * h * p)
        return out

    # -- the registry ---------------------------------------------------------------------------------------
    def to_artifact(self) -> Any:
        from bastion.models.registry import Artifact

        if self.booster_ is None:
            raise ValueError("the review prioritiser is not trained")
        arrays = {"cal_x": self.cal_x_, "cal_y": self.cal_y_} if self.cal_x_ is not None else {}
        meta = {"kind": "lightgbm+isotonic", "feature_schema": list(FEATURES), "n_train": self.n_train_,
                "n_cases": self.n_cases_, "importances": self.importances_, **self.meta_, "shape": self.shape}
        return Artifact(meta=meta, arrays=arrays,  # type: ignore[arg-type]
                        texts={"model.txt": self.booster_.model_to_string(),
                               "sources.txt": json.dumps(self.table_.to_json(), sort_keys=True)})

    @classmethod
    def from_artifact(cls, artifact: Any) -> LearnedPrioritiser:
        from bastion.models.registry import ModelRegistry
        from bastion.models.trees import LazyBooster

        ModelRegistry([]).check_schema(artifact, list(FEATURES))
        model = cls()
        model.booster_ = LazyBooster(artifact.texts["model.txt"])
        model.table_ = SourceTable.from_json(json.loads(artifact.texts.get("sources.txt", "{}")))
        model.cal_x_ = artifact.arrays.get("cal_x")
        model.cal_y_ = artifact.arrays.get("cal_y")
        model.n_train_ = int(artifact.meta.get("n_train", 0))
        model.n_cases_ = int(artifact.meta.get("n_cases", 0))
        model.importances_ = dict(artifact.meta.get("importances", {}))
        model.shape = {k: float(v) for k, v in (artifact.meta.get("shape") or {}).items()}
        model.meta_ = {k: v for k, v in artifact.meta.items() if k not in ("feature_schema", "importances", "shape")}
        model.version = str(artifact.meta.get("version")) if artifact.meta.get("version") is not None else None
        return model

    def save(self, registry: Any, root: Any = None) -> Any:
        """Save into ``registry`` (a :class:`~bastion.models.registry.ModelRegistry`); returns the version path."""
        path = registry.save(MODEL_NAME, self.to_artifact(), root=root)
        self.version = path.name
        return path


def load_prioritiser(registry: Any) -> LearnedPrioritiser | None:
    """The newest trained prioritiser in ``registry``, or None (the queue then ranks by the formula)."""
    from bastion.models.registry import ModelError

    try:
        return LearnedPrioritiser.from_artifact(registry.load(MODEL_NAME))
    except (ModelError, KeyError, ValueError):
        return None


# -- training data ----------------------------------------------------------------------------------------
class _Reps:
    """Reporter reputation from (confirmed, rejected) counts with the Beta(1, 1) prior."""

    def __init__(self, counts: Mapping[str, tuple[float, float]]) -> None:
        self.counts = counts

    def __call__(self, reporter: str) -> float:
        c, r = self.counts.get(reporter, (0.0, 0.0))
        return (1.0 + c) / (2.0 + c + r)


@dataclass
class TrainingCase:
    """One decided case for training: its key, label, sources with raw scores and reporters, and its
    feature rows (each a function of the source table and the reporter reputation, so that both can be
    computed out of fold)."""

    key: str
    violating: bool
    sources: dict[str, float]
    reporters: set[str]
    rows: list[Callable[[SourceTable, Callable[[str], float]], dict[str, float]]]
    world: int | None = None      # the simulated world it came from (cross-world training)


def fit_cases(cases: list[TrainingCase], n_folds: int = 5, prior_decisions: float | None = None,
              **params: Any) -> LearnedPrioritiser:
    """Train from decided cases: the source table and reporter reputations of each row come from the cases of
    the other folds (no row sees its own label); the model keeps the table of all cases.

    When the cases carry their ``world``, a fold is a world: each row's source precision is the one measured on
    the *other* worlds (capped at ``prior_decisions`` decisions per source, as a new world sees it), reporters
    start at the prior (a reporter lives in one world), and the isotonic calibration is fitted on predictions
    for worlds the booster did not see."""
    full = SourceTable()
    for c in cases:
        full.update(c.sources, c.violating)
    by_world = all(c.world is not None for c in cases)
    if by_world:
        worlds = sorted({int(c.world) for c in cases if c.world is not None})
        index = {w: i for i, w in enumerate(worlds)}

        def fold_of(c: TrainingCase) -> int:
            return index[int(c.world)] if c.world is not None else 0
        n_folds = len(worlds)
    else:
        def fold_of(c: TrainingCase) -> int:
            return _fold(c.key, n_folds)
    fold_tables, fold_reps = [], []
    for f in range(n_folds):
        t = SourceTable()
        counts: dict[str, tuple[float, float]] = {}
        for c in cases:
            if fold_of(c) == f:
                continue
            t.update(c.sources, c.violating)
            if not by_world:
                for r in c.reporters:
                    a, b = counts.get(r, (0.0, 0.0))
                    counts[r] = (a + 1, b) if c.violating else (a, b + 1)
        fold_tables.append(t.as_prior(prior_decisions) if by_world else t)
        fold_reps.append(_Reps(counts))
    rows, y, groups = [], [], []
    for c in cases:
        f = fold_of(c)
        for make in c.rows:
            rows.append(make(fold_tables[f], fold_reps[f]))
            y.append(int(c.violating))
            groups.append(f"world:{c.world}" if by_world else c.key)
    model = LearnedPrioritiser(**params).fit(rows, y, groups, table=full)
    if by_world:
        model.n_cases_ = len(cases)
    if prior_decisions is not None:
        model.shape["prior_decisions"] = float(prior_decisions)
    return model


def train_from_decisions(decisions: list[dict[str, Any]], **params: Any) -> LearnedPrioritiser:
    """Train from the decisions table (``ReviewStore.decisions()``). Each decision stored its features at
    decision time, with the live reporter reputation of that moment; the source-precision features are
    recomputed out of fold from the decision's sources (``sig:SOURCE`` entries hold their raw scores)."""
    cases = []
    for d in decisions:
        if d["verdict"] not in ("violating", "benign") or not d.get("features"):
            continue
        feats = dict(d["features"])
        srcs = {k[4:]: float(v) for k, v in feats.items() if k.startswith("sig:")}
        for s in d.get("sources") or []:
            if not s.startswith("reviewer:"):
                srcs.setdefault(s, REPORTS_PRIOR)

        def make(table: SourceTable, _reps: Callable[[str], float], feats: dict[str, Any] = feats,
                 srcs: dict[str, float] = srcs) -> dict[str, float]:
            return {**{k: float(v) for k, v in feats.items() if not k.startswith("sig:")},
                    **source_features(srcs, table)}

        cases.append(TrainingCase(f"{d['subject_kind']}:{d['subject_id']}:{d['case_id']}",
                                  d["verdict"] == "violating", srcs, set(d.get("reporters") or []), [make]))
    return fit_cases(cases, **params)


def source_features(srcs: Mapping[str, float], table: SourceTable | None,
                    support: float = SUPPORT_PRECISION, strong: float = STRONG_PRECISION) -> dict[str, float]:
    """The source-precision features alone (as in :func:`features_of`): the best, mean, worst, second best and
    noisy-OR of the sources' measured precisions, how many sources are strong (>= ``strong``) or weak (below
    ``support``), and whether the case is corroborated (:func:`corroborated`)."""
    precs = sorted((table.precision(s, raw) if table is not None else raw for s, raw in srcs.items()), reverse=True)
    nor = 1.0
    for p in precs:
        nor *= 1.0 - min(max(p, 0.0), 0.999)
    return {"src_prec_max": precs[0] if precs else 0.0, "src_prec_mean": float(np.mean(precs)) if precs else 0.0,
            "src_prec_min": precs[-1] if precs else 0.0, "src_prec_nor": 1.0 - nor,
            "src_prec_n_known": float(sum(1 for s in srcs if table is not None and table.known(s))),
            "src_prec_second": precs[1] if len(precs) > 1 else 0.0,
            "n_strong_sources": float(sum(1 for p in precs if p >= strong)),
            "n_weak_sources": float(sum(1 for p in precs if p < support)),
            "corroborated": float(corroborated(precs, support, strong))}


def corroborated(precs: Iterable[float], support: float = SUPPORT_PRECISION, strong: float = STRONG_PRECISION
                 ) -> bool:
    """Two sources whose measured precision reaches ``support``, or one that reaches ``strong``.

    >>> corroborated([0.9]), corroborated([0.6, 0.55]), corroborated([0.6, 0.2])
    (True, True, False)
    """
    ps = [float(p) for p in precs]
    return any(p >= strong for p in ps) or sum(1 for p in ps if p >= support) >= 2


def decision_features(case: Case, ctx: CaseContext, now_ms: int, table: SourceTable | None) -> dict[str, float]:
    """What a decision stores: the features, plus each source's raw score as ``sig:SOURCE``."""
    srcs = source_scores(case)
    row = features_of(case, ctx, now_ms, table, srcs)
    row.update({f"sig:{s}": round(v, 6) for s, v in srcs.items()})
    return row
