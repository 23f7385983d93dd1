"""Account scores that mean what they say (issue 16): per-tier calibration, an evidence cap and an
out-of-distribution flag for the live bot detector, shipped as one JSON artifact (no pickle, no LightGBM).

The live detector combines up to three models, so an account's raw probability comes from one of four *tiers*:

* ``p``   - the profile model alone (fewer than ``min_behaviour_events`` (2) events, or no engine state);
* ``pa``  - profile + activity model (20+ events, no engine state);
* ``pb``  - profile + behaviour model (2-19 events, with the engine's state);
* ``pab`` - profile + activity + behaviour model (20+ events, with state).

:class:`BotCalibration` maps each tier's raw probability through its own beta calibration
(``sigmoid(a ln p - b ln(1 - p) + c)``, strictly increasing: no ties, so no ranking is lost inside a tier),
fitted on *calibration worlds* (randomized training-range worlds disjoint from the seeds the models were
trained on) and, for the profile tier, on out-of-fold scores of the real bot datasets.

Evidence: the feature groups are ``profile`` (handle, bio, avatar, counts, age), ``behaviour`` (activity
aggregates), ``graph`` (follow graph, identifiers, engaged posts); the bot detector reads no ``content``
features. The *non-profile* evidence of an account is the calibrated probability of the behaviour model
with the account's profile features replaced by a reference benign profile (the median of the calibration
worlds' benign rows), or of the activity model alone in tier ``pa``; tier ``p`` has none. The final score is
at most ``max(cap, non-profile evidence)``: profile cues alone never exceed ``cap`` (< 0.9, what
``BotScoreHigh`` acts on). A group *produced* the score when neutralising it (the same reference
substitution) lowers the behaviour model's log-odds by at least :data:`EVIDENCE_DROP`.

Out of distribution: the artifact stores a per-feature box (the calibration rows' 0.5%-99.5% quantiles,
widened by ``ood_margin`` of that range on each side). An account with a feature outside the box of the
features its tier reads is flagged (``ood:<feature>`` in its explanation) and its log-odds shrink toward the
tier's prior: ``z = z_prior + ood_shrink * (z - z_prior)``.

The artifact is written by ``bastion bots calibrate`` (:func:`bastion.evaluation.bots_calibration.fit_calibration`); the detector reads it with
:meth:`BotCalibration.load` and nothing else.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bastion.features.account import ACTIVITY_SCHEMA, PROFILE_SCHEMA
from bastion.features.graph import GRAPH_SCHEMA

TIERS = ("p", "pa", "pb", "pab")
GROUPS: dict[str, tuple[str, ...]] = {"profile": PROFILE_SCHEMA, "behaviour": ACTIVITY_SCHEMA,
                                      "graph": GRAPH_SCHEMA}
#: log-odds drop of the behaviour model when a group is neutralised for that group to count as evidence
EVIDENCE_DROP = 1.0
#: the compression of capped scores under the cap (keeps their order, never reaches the cap from below 0)
CAP_SQUEEZE = 0.05
ARTIFACT = Path(__file__).resolve().parent.parent.parent / "artifacts" / "bot_calibration" / "calibration.json"


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-min(max(z, -50.0), 50.0)))


def beta_map(p: float, abc: Sequence[float]) -> float:
    """Beta calibration of one probability: ``sigmoid(a ln p - b ln(1 - p) + c)``."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return sigmoid(abc[0] * math.log(p) - abc[1] * math.log(1 - p) + abc[2])


@dataclass
class BotCalibration:
    """The loaded artifact: per-tier maps, the cap, the reference profile and the OOD box."""

    tiers: dict[str, list[float]]                 # tier -> beta (a, b, c)
    non_profile: dict[str, list[float]]           # 'behaviour' / 'activity' -> beta (a, b, c) of the ablated model
    prior: dict[str, float]                       # tier -> bot rate of its calibration rows
    cap: float
    reference: dict[str, float]                   # feature -> reference benign value (neutralisation)
    box: dict[str, tuple[float, float]]           # feature -> (low, high)
    ood_shrink: float = 0.5
    meta: dict[str, Any] = field(default_factory=dict)
    _idx: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    # -- persistence ---------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"kind": "bot-calibration/1", "tiers": self.tiers, "non_profile": self.non_profile,
                "prior": self.prior, "cap": self.cap, "reference": self.reference,
                "box": {k: list(v) for k, v in self.box.items()}, "ood_shrink": self.ood_shrink, "meta": self.meta}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BotCalibration:
        if d.get("kind") != "bot-calibration/1":
            raise ValueError(f"not a bot calibration artifact (kind {d.get('kind')!r})")
        for t in TIERS:
            if len(d["tiers"].get(t, ())) != 3:
                raise ValueError(f"bot calibration: tier {t!r} needs three coefficients")
        cap = float(d["cap"])
        if not 0.0 < cap < 1.0:
            raise ValueError("bot calibration: cap must be in (0, 1)")
        return cls(tiers={k: [float(x) for x in v] for k, v in d["tiers"].items()},
                   non_profile={k: [float(x) for x in v] for k, v in d["non_profile"].items()},
                   prior={k: float(v) for k, v in d["prior"].items()}, cap=cap,
                   reference={k: float(v) for k, v in d["reference"].items()},
                   box={k: (float(v[0]), float(v[1])) for k, v in d["box"].items()},
                   ood_shrink=float(d.get("ood_shrink", 0.5)), meta=dict(d.get("meta", {})))

    @classmethod
    def load(cls, path: Path | None = None) -> BotCalibration:
        p = Path(path or ARTIFACT)
        if not p.is_file():
            raise FileNotFoundError(f"bot calibration artifact {p} is missing: run `bastion bots calibrate` "
                                    "or turn the bot_calibration setting off")
        try:
            return cls.from_json(json.loads(p.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"bot calibration artifact {p} is unreadable: {e}") from None

    def save(self, path: Path | None = None) -> Path:
        p = Path(path or ARTIFACT)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n")
        return p

    # -- the pieces the detector applies -------------------------------------------------------------------
    def _schema_idx(self, schema: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        hit = self._idx.get(schema)
        if hit is None:
            cols = [i for i, n in enumerate(schema) if n in self.box]
            lo = np.array([self.box[schema[i]][0] for i in cols], dtype=np.float64)
            hi = np.array([self.box[schema[i]][1] for i in cols], dtype=np.float64)
            hit = self._idx[schema] = (np.array(cols, dtype=np.int64), lo, hi)
        return hit

    def ood(self, x: Sequence[float] | np.ndarray, schema: tuple[str, ...]) -> list[str]:
        """The features of ``x`` (in ``schema`` order) outside the stored box (missing values never are)."""
        cols, lo, hi = self._schema_idx(schema)
        if not len(cols):
            return []
        v = np.asarray(x, dtype=np.float64)[cols]
        with np.errstate(invalid="ignore"):
            out = (v < lo) | (v > hi)
        return [schema[int(cols[i])] for i in np.flatnonzero(out)]

    def neutralised(self, x: Sequence[float] | np.ndarray, schema: tuple[str, ...], group: str) -> np.ndarray:
        """``x`` with the features of ``group`` replaced by the reference benign values."""
        v = np.array(x, dtype=np.float64)
        names = set(GROUPS[group])
        for i, n in enumerate(schema):
            if n in names and n in self.reference:
                v[i] = self.reference[n]
        return v

    def calibrate(self, tier: str, p_raw: float) -> float:
        return beta_map(p_raw, self.tiers[tier])

    def needs_non_profile(self, p_cal: float) -> bool:
        return p_cal > self.cap

    def finish(self, tier: str, p_cal: float, p_np_raw: float | None, np_kind: str | None, ood: bool) -> float:
        """The final score from the calibrated one: the evidence cap (``p_np_raw``: the raw probability of
        the non-profile evidence, needed only when :meth:`needs_non_profile`), then the OOD shrink."""
        p = p_cal
        if p > self.cap:
            p_np = beta_map(p_np_raw, self.non_profile[np_kind]) if p_np_raw is not None and np_kind else 0.0
            m = max(self.cap, p_np)
            if p > m:
                p = m * (1.0 - CAP_SQUEEZE * (1.0 - p))
        if ood:
            zp = logit(self.prior[tier])
            p = sigmoid(zp + self.ood_shrink * (logit(p) - zp))
        return p


def tier_of(use_activity: bool, use_behaviour: bool) -> str:
    return "p" + ("a" if use_activity else "") + ("b" if use_behaviour else "")
