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

Calibration (issue 16, setting ``bot_calibration``, off by default): with a :class:`BotCalibration` the raw
combination goes through :meth:`BotDetector._calibrated` - per-tier calibration, the profile-only evidence cap
and the out-of-distribution shrink (:mod:`bastion.models.bots.calibration`) - in :meth:`probability`,
:meth:`probability_batch`, :meth:`score_uncached` and :meth:`score_batch` alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bastion.features.account import account_features, vector
from bastion.models.bots.calibration import EVIDENCE_DROP, GROUPS, BotCalibration, tier_of
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
                 min_behaviour_events: int | None = None, calibration: BotCalibration | None = None) -> None:
        self.profile = profile
        #: issue 16: per-tier calibration, evidence cap and OOD shrink (None = the raw combination, as before)
        self.calibration = calibration
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
        calibration = options.pop("calibration", None)
        if calibration is True:
            calibration = BotCalibration.load()
        elif calibration is False:
            calibration = None
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
        return cls(profile, activity, behaviour=behaviour, calibration=calibration, **options)

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

    def _calibrated(self, tier: str, p_raw: float, xp: Sequence[float], xa: Sequence[float] | None,
                    pa: float | None, xb: Sequence[float] | None, pnp_raw: float | None
                    ) -> tuple[float, dict[str, Any]]:
        """The calibrated, evidence-capped, OOD-shrunk score of one account from its raw combination (the one
        function both :meth:`probability` and :meth:`probability_batch` apply; ``pnp_raw``: the non-profile
        evidence's raw probability when the caller computed it in bulk, else computed here if needed)."""
        cal = self.calibration
        assert cal is not None
        p_cal = cal.calibrate(tier, p_raw)
        np_kind = None
        if tier in ("pb", "pab"):
            np_kind = "behaviour"
            if pnp_raw is None and cal.needs_non_profile(p_cal):
                beh = self.behaviour
                assert beh is not None and xb is not None
                pnp_raw = beh.proba_one(cal.neutralised(xb, beh.feature_schema, "profile"))
        elif tier == "pa":
            np_kind, pnp_raw = "activity", pa
        if xb is not None:
            ood = cal.ood(xb, self.behaviour.feature_schema)  # type: ignore[union-attr]
        else:
            ood = cal.ood(xp, self.profile.feature_schema)
            if xa is not None:
                ood = ood + [n for n in cal.ood(xa, self.activity.feature_schema) if n not in ood]  # type: ignore[union-attr]
        p = cal.finish(tier, p_cal, pnp_raw, np_kind, bool(ood))
        capped = (p if not ood else cal.finish(tier, p_cal, pnp_raw, np_kind, False)) < p_cal
        return p, {"tier": tier, "raw": p_raw, "calibrated": p_cal, "ood": ood, "capped": capped}

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
        pa = None
        xa = None
        xb = None
        if use_activity:
            xa = vector(feats, self.activity.feature_schema)  # type: ignore[union-attr,arg-type]
            pa = self.activity.proba_one(np.array(xa))  # type: ignore[union-attr]
            z = 0.5 * (_logit(p) + _logit(pa))
            p = 1.0 / (1.0 + math.exp(-z))
        if use_behaviour:
            from bastion.models.bots.behaviour import behaviour_vector_from

            xb = behaviour_vector_from(feats, acc, state, now_ms)  # type: ignore[arg-type]
            pb = self.behaviour.proba_one(np.array(xb))  # type: ignore[union-attr]
            p = self._with_behaviour(p, pb)
        if self.calibration is not None:
            p = self._calibrated(tier_of(use_activity, use_behaviour), p, xp, xa, pa, xb, None)[0]
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
        pa: list[float] = []
        if act_idx:
            pa = activity.proba_rows(np.array(rows_a, dtype=np.float64))  # type: ignore[union-attr]
            for i, v in zip(act_idx, pa, strict=True):
                z = 0.5 * (_logit(p[i]) + _logit(v))
                p[i] = 1.0 / (1.0 + math.exp(-z))
        if beh_idx:
            pb = self.behaviour.proba_rows(np.array(rows_b, dtype=np.float64))  # type: ignore[union-attr]
            for i, v in zip(beh_idx, pb, strict=True):
                p[i] = self._with_behaviour(p[i], v)
        cal = self.calibration
        if cal is None:
            return p
        # the same per-account function as probability(); the non-profile evidence of the would-be capped
        # behaviour-tier accounts is computed in one pass (proba_rows == proba_one per row)
        act_pos = {i: j for j, i in enumerate(act_idx)}
        beh_pos = {i: j for j, i in enumerate(beh_idx)}
        beh = self.behaviour
        need = [i for i in beh_idx if cal.needs_non_profile(cal.calibrate(tier_of(i in act_pos, True), p[i]))]
        pnp: dict[int, float] = {}
        if need:
            schema = beh.feature_schema  # type: ignore[union-attr]
            rows = np.array([cal.neutralised(rows_b[beh_pos[i]], schema, "profile") for i in need])
            pnp = dict(zip(need, beh.proba_rows(rows), strict=True))  # type: ignore[union-attr]
        out = []
        for i, v in enumerate(p):
            ja, jb = act_pos.get(i), beh_pos.get(i)
            out.append(self._calibrated(tier_of(ja is not None, jb is not None), v, rows_p[i],
                                        rows_a[ja] if ja is not None else None,
                                        pa[ja] if ja is not None else None,
                                        rows_b[jb] if jb is not None else None, pnp.get(i))[0])
        return out

    def score_uncached(self, acc: Account, now_ms: int, state: Any = None) -> tuple[float, Explanation]:
        self.rescored += 1
        xp = np.array([features_for(acc, now_ms, self.profile.feature_schema)])
        p = pp = float(self.profile.predict_proba(xp)[0])
        expl = _explain(self.profile, xp, self.top)
        use_activity = self.activity is not None and acc.activity.n_events >= self.min_events
        xa = None
        pa = None
        if use_activity:
            xa = np.array([features_for(acc, now_ms, self.activity.feature_schema)])  # type: ignore[union-attr]
            pa = float(self.activity.predict_proba(xa)[0])  # type: ignore[union-attr]
            z = 0.5 * (_logit(p) + _logit(pa))
            p = 1.0 / (1.0 + math.exp(-z))
            expl = sorted(expl + [(f"activity:{n}", v) for n, v in self.activity.explain(xa, top=self.top)[0]],  # type: ignore[union-attr]
                          key=lambda kv: -abs(kv[1]))[: self.top]
        use_behaviour = self._use_behaviour(acc, state)
        xb = None
        if use_behaviour:
            from bastion.models.bots.behaviour import behaviour_vector

            beh = self.behaviour
            assert beh is not None
            xb = np.array([behaviour_vector(acc, state, now_ms)])
            p = self._with_behaviour(p, float(beh.predict_proba(xb)[0]))
            expl = sorted(expl + [(f"behaviour:{n}", v) for n, v in beh.explain(xb, top=self.top)[0]],
                          key=lambda kv: -abs(kv[1]))[: self.top]
        if self.calibration is None:
            return p, expl
        tier = tier_of(use_activity, use_behaviour)
        final, info = self._calibrated(tier, p, xp[0], xa[0] if xa is not None else None, pa,
                                       xb[0] if xb is not None else None, None)
        groups = self.evidence_groups(pp, pa, xb[0] if xb is not None else None)
        # which evidence produced the score (zero-weight entries), the tier, the OOD features and the cap
        expl = expl + [("evidence:" + ("+".join(groups) or "none"), 0.0), (f"tier:{tier}", 0.0)]
        expl += [(f"ood:{n}", 0.0) for n in info["ood"]]
        if info["capped"]:
            expl.append(("evidence:capped_profile_only", final - info["calibrated"]))
        return final, expl

    def evidence_groups(self, p_profile: float, p_activity: float | None, xb: np.ndarray | None) -> list[str]:
        """The feature groups that produced an account's score: with the behaviour model, each group whose
        neutralisation (reference benign values) lowers its log-odds by ``EVIDENCE_DROP`` or more; without
        it, ``profile`` / ``behaviour`` when the profile / activity model leans bot (p >= 0.5)."""
        cal = self.calibration
        assert cal is not None
        if xb is None:
            out = ["profile"] if p_profile >= 0.5 else []
            return out + (["behaviour"] if p_activity is not None and p_activity >= 0.5 else [])
        beh = self.behaviour
        assert beh is not None
        schema = beh.feature_schema
        rows = np.array([xb] + [cal.neutralised(xb, schema, g) for g in GROUPS])
        z = [_logit(v) for v in beh.proba_rows(rows)]
        return [g for g, zg in zip(GROUPS, z[1:], strict=True) if z[0] - zg >= EVIDENCE_DROP]

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
        p = np.asarray(self.profile.predict_proba(X))
        if self.calibration is None:
            return p
        # the profile tier: calibrated, capped (profile evidence alone) and OOD-shrunk as in the live path
        return np.array([self._calibrated("p", float(v), x, None, None, None, None)[0] for v, x in zip(p, X, strict=True)])

    def forget(self, account_id: str) -> None:
        self._cache.pop(account_id, None)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))
