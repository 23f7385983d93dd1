"""The live bot detector the engine calls per event: calibrated probability plus top feature contributions.

Cost control: a result is cached per account and recomputed only when the account's *scoring key* changes -
the number of its events crossed another multiple of ``rescore_every`` (default 16), a profile field changed,
a count (followers, following, posts, likes, listed) moved by more than ~19% (a quarter of a log2 step), or
the account's age crossed a log2 bucket. Between rescoring the call is a dictionary lookup plus the key
computation (a few microseconds).

Combination: the profile model always scores; once the account has ``min_events`` observed events the
activity model scores too and the two are averaged in log-odds (equal weight). That combination is a
documented default, not yet measured: the simulator evaluation will fix it.

Behaviour model: when the caller passes the engine's ``state`` and a ``bot_behaviour`` model is shipped
(profile + activity + follow-graph and identifier features, trained on simulator truth, see
:mod:`bastion.models.bots.behaviour`), accounts with ``min_behaviour_events`` events are scored by it too,
combined in log-odds with the real-data models' result: ``z = w * z_behaviour + (1 - w) * z_profile`` with
``w = behaviour_weight``, chosen on validation simulations (not the evaluation ones).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bastion.features.account import account_features, vector
from bastion.models.bots.features import MODEL_SCHEMAS, features_for, matrix
from bastion.models.bots.model import BotModel, SpecialistEnsemble
from bastion.models.registry import Artifact, ModelError, ModelRegistry
from bastion.state.model import Account

Explanation = list[tuple[str, float]]
DAY_MS = 86_400_000


def load_bot_model(artifact: Artifact) -> BotModel | SpecialistEnsemble:
    kind = artifact.meta.get("kind")
    if kind == BotModel.kind:
        return BotModel.from_artifact(artifact)
    if kind == SpecialistEnsemble.kind:
        return SpecialistEnsemble.from_artifact(artifact)
    raise ModelError(f"unknown bot model kind {kind!r}")


def _explain(model: BotModel | SpecialistEnsemble, x: np.ndarray, top: int) -> Explanation:
    if isinstance(model, SpecialistEnsemble):
        by_type = model.predict_proba_by_type(x)
        model = model.specialists_[int(np.argmax(by_type[0]))]
    return model.explain(x, top=top)[0]


def _bucket(x: float) -> int:
    return int(math.log2(x + 1.0) * 2.0)


class BotDetector:
    """Per-account bot scores for the live engine (see the module docstring for caching and combination)."""

    def __init__(self, profile: BotModel | SpecialistEnsemble, activity: BotModel | None = None, *,
                 rescore_every: int = 16, min_events: int = 20, top: int = 5, cache_size: int = 200_000,
                 behaviour: BotModel | None = None, behaviour_weight: float | None = None,
                 min_behaviour_events: int | None = None) -> None:
        self.profile = profile
        self.activity = activity
        self.behaviour = behaviour
        meta = getattr(behaviour, "meta_", {}) or {}
        self.behaviour_weight = float(behaviour_weight if behaviour_weight is not None
                                      else meta.get("combine_weight", 1.0))
        self.min_behaviour_events = int(min_behaviour_events if min_behaviour_events is not None
                                        else meta.get("min_events", 3))
        self.rescore_every = max(1, rescore_every)
        self.min_events = min_events
        self.top = top
        self.cache_size = cache_size
        self._cache: dict[str, tuple[tuple[Any, ...], tuple[float, Explanation]]] = {}
        self._pcache: dict[str, tuple[tuple[Any, ...], float]] = {}
        self.rescored = 0

    @classmethod
    def load(cls, registry: ModelRegistry | None = None, **options: Any) -> BotDetector:
        """The shipped (or newest user-trained) ``bot_profile`` and, when present, ``bot_activity`` models;
        refuses models whose feature schema differs from the live extractors."""
        registry = registry or ModelRegistry.default()
        art = registry.load("bot_profile")
        registry.check_schema(art, MODEL_SCHEMAS["bot_profile"])
        profile = load_bot_model(art)
        activity = None
        try:
            act_art = registry.load("bot_activity")
        except ModelError:
            act_art = None
        if act_art is not None:
            registry.check_schema(act_art, MODEL_SCHEMAS["bot_activity"])
            loaded = load_bot_model(act_art)
            activity = loaded if isinstance(loaded, BotModel) else None
        behaviour = None
        if options.pop("behaviour", True):
            try:
                beh_art = registry.load("bot_behaviour")
            except ModelError:
                beh_art = None
            if beh_art is not None:
                registry.check_schema(beh_art, MODEL_SCHEMAS["bot_behaviour"])
                behaviour = BotModel.from_artifact(beh_art)
                behaviour.meta_ = dict(beh_art.meta)  # type: ignore[attr-defined]
        return cls(profile, activity, behaviour=behaviour, **options)

    @property
    def threshold(self) -> float:
        return float(self.profile.threshold_)

    def _key(self, acc: Account, now_ms: int) -> tuple[Any, ...]:
        age = (now_ms - acc.created_ms) / DAY_MS if acc.created_ms else -1.0
        log2 = math.log2  # _bucket inlined (the key is computed on every call)
        return (acc.handle, acc.display_name, acc.bio, acc.url, acc.location, acc.verified, acc.default_profile,
                acc.default_profile_image, acc.created_ms, int(log2(acc.followers + 1.0) * 2.0),
                int(log2(acc.following + 1.0) * 2.0), int(log2(acc.posts + 1.0) * 2.0),
                int(log2(acc.likes_given + 1.0) * 2.0), int(log2(acc.listed + 1.0) * 2.0),
                int(log2(max(age, 0.0) + 1.0) * 2.0), acc.activity.n_events // self.rescore_every)

    def _use_behaviour(self, acc: Account, state: Any) -> bool:
        return (self.behaviour is not None and state is not None
                and acc.activity.n_events >= self.min_behaviour_events)

    def _with_behaviour(self, p: float, pb: float) -> float:
        w = self.behaviour_weight
        z = w * _logit(pb) + (1.0 - w) * _logit(p)
        return 1.0 / (1.0 + math.exp(-z))

    def score(self, acc: Account, now_ms: int, state: Any = None) -> tuple[float, Explanation]:
        """Calibrated bot probability and the top feature contributions (log-odds, + = bot-like)."""
        key = self._key(acc, now_ms)
        hit = self._cache.get(acc.id)
        if hit is not None and hit[0] == key:
            return hit[1]
        result = self.score_uncached(acc, now_ms, state)
        if len(self._cache) >= self.cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[acc.id] = (key, result)
        return result

    def probability(self, acc: Account, now_ms: int, state: Any = None) -> float:
        """The live probability of :meth:`score` without the explanation, one row through the compiled
        forests (no LightGBM call), cached with the same key as :meth:`score`."""
        key = self._key(acc, now_ms)
        hit = self._pcache.get(acc.id)
        if hit is not None and hit[0] == key:
            return hit[1]
        profile = self.profile
        use_activity = self.activity is not None and acc.activity.n_events >= self.min_events
        use_behaviour = self._use_behaviour(acc, state)
        # profile + activity features once for all three models (each extractor is pure: the same values as
        # one features_for call per model, which computed the profile features up to three times)
        feats = account_features(acc, now_ms) if use_activity or use_behaviour else None
        schema = profile.feature_schema
        xp = features_for(acc, now_ms, schema) if feats is None else vector(feats, schema)
        if not isinstance(profile, BotModel):
            p = float(profile.predict_proba(np.array([xp]))[0])
        else:
            p = profile.proba_one(np.array(xp))
        if use_activity:
            pa = self.activity.proba_one(np.array(vector(feats, self.activity.feature_schema)))  # type: ignore[union-attr,arg-type]
            z = 0.5 * (_logit(p) + _logit(pa))
            p = 1.0 / (1.0 + math.exp(-z))
        if use_behaviour:
            from bastion.models.bots.behaviour import behaviour_vector_from

            xb = behaviour_vector_from(feats, acc, state, now_ms)  # type: ignore[arg-type]
            pb = self.behaviour.proba_one(np.array(xb))  # type: ignore[union-attr]
            p = self._with_behaviour(p, pb)
        if len(self._pcache) >= self.cache_size:
            self._pcache.pop(next(iter(self._pcache)))
        self._pcache[acc.id] = (key, p)
        return p

    def key(self, acc: Account, now_ms: int) -> tuple[Any, ...]:
        """The scoring key: the probability is recomputed only when it moves (see the module docstring)."""
        return self._key(acc, now_ms)

    def probability_batch(self, accounts: Sequence[Account], now_ms: int, state: Any = None) -> list[float]:
        """:meth:`probability` of many accounts at one moment, uncached, each model run once over its rows
        (one vectorised pass through each compiled forest): the same floats as one :meth:`probability` call
        per account with an empty cache."""
        if not accounts:
            return []
        profile = self.profile
        activity = self.activity
        rows_p: list[list[float]] = []
        act_idx: list[int] = []
        rows_a: list[list[float]] = []
        beh_idx: list[int] = []
        rows_b: list[list[float]] = []
        for i, acc in enumerate(accounts):
            use_activity = activity is not None and acc.activity.n_events >= self.min_events
            use_behaviour = self._use_behaviour(acc, state)
            feats = account_features(acc, now_ms) if use_activity or use_behaviour else None
            if feats is None:
                rows_p.append(features_for(acc, now_ms, profile.feature_schema))
                continue
            rows_p.append(vector(feats, profile.feature_schema))
            if use_activity:
                act_idx.append(i)
                rows_a.append(vector(feats, activity.feature_schema))  # type: ignore[union-attr]
            if use_behaviour:
                from bastion.models.bots.behaviour import behaviour_vector_from

                beh_idx.append(i)
                rows_b.append(behaviour_vector_from(feats, acc, state, now_ms))
        if isinstance(profile, BotModel):
            p = profile.proba_rows(np.array(rows_p, dtype=np.float64))
        else:
            p = [float(v) for v in profile.predict_proba(np.array(rows_p, dtype=np.float64))]
        if act_idx:
            pa = activity.proba_rows(np.array(rows_a, dtype=np.float64))  # type: ignore[union-attr]
            for i, v in zip(act_idx, pa, strict=True):
                z = 0.5 * (_logit(p[i]) + _logit(v))
                p[i] = 1.0 / (1.0 + math.exp(-z))
        if beh_idx:
            pb = self.behaviour.proba_rows(np.array(rows_b, dtype=np.float64))  # type: ignore[union-attr]
            for i, v in zip(beh_idx, pb, strict=True):
                p[i] = self._with_behaviour(p[i], v)
        return p

    def score_uncached(self, acc: Account, now_ms: int, state: Any = None) -> tuple[float, Explanation]:
        self.rescored += 1
        xp = np.array([features_for(acc, now_ms, self.profile.feature_schema)])
        p = float(self.profile.predict_proba(xp)[0])
        expl = _explain(self.profile, xp, self.top)
        if self.activity is not None and acc.activity.n_events >= self.min_events:
            xa = np.array([features_for(acc, now_ms, self.activity.feature_schema)])
            pa = float(self.activity.predict_proba(xa)[0])
            z = 0.5 * (_logit(p) + _logit(pa))
            p = 1.0 / (1.0 + math.exp(-z))
            expl = sorted(expl + [(f"activity:{n}", v) for n, v in self.activity.explain(xa, top=self.top)[0]],
                          key=lambda kv: -abs(kv[1]))[: self.top]
        if self._use_behaviour(acc, state):
            from bastion.models.bots.behaviour import behaviour_vector

            beh = self.behaviour
            assert beh is not None
            xb = np.array([behaviour_vector(acc, state, now_ms)])
            p = self._with_behaviour(p, float(beh.predict_proba(xb)[0]))
            expl = sorted(expl + [(f"behaviour:{n}", v) for n, v in beh.explain(xb, top=self.top)[0]],
                          key=lambda kv: -abs(kv[1]))[: self.top]
        return p, expl

    def live_batch(self, accounts: Sequence[Account], now_ms: int) -> np.ndarray:
        """The live probability of :meth:`score` (profile model, averaged in log-odds with the activity model
        for accounts with enough events) for many accounts in one call, without explanations: the engine
        scores in micro-batches because one LightGBM call per account costs far more than per row."""
        if not accounts:
            return np.zeros(0)
        p = np.asarray(self.profile.predict_proba(matrix(accounts, now_ms, self.profile.feature_schema)),
                       dtype=float)
        if self.activity is not None:
            idx = [i for i, a in enumerate(accounts) if a.activity.n_events >= self.min_events]
            if idx:
                xa = matrix([accounts[i] for i in idx], now_ms, self.activity.feature_schema)
                pa = np.asarray(self.activity.predict_proba(xa), dtype=float)
                pp = np.clip(p[idx], 1e-6, 1 - 1e-6)
                pa = np.clip(pa, 1e-6, 1 - 1e-6)
                z = 0.5 * (np.log(pp / (1 - pp)) + np.log(pa / (1 - pa)))
                p[idx] = 1.0 / (1.0 + np.exp(-z))
        return p

    def score_batch(self, accounts: Sequence[Account], now_ms: int | Sequence[int]) -> np.ndarray:
        """Profile-model probabilities for many accounts at once (``bastion score accounts``)."""
        X = matrix(accounts, now_ms if not isinstance(now_ms, int) else now_ms, self.profile.feature_schema)
        return np.asarray(self.profile.predict_proba(X))

    def forget(self, account_id: str) -> None:
        self._cache.pop(account_id, None)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))
