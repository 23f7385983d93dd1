"""Feature matrices for the bot models: canonical accounts -> schema-ordered arrays, with a dataset's
unknown canonical features set to ``nan`` and its extra columns appended by name."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bastion.features.account import (
    ACTIVITY_SCHEMA,
    GILANI_CANONICAL_SCHEMA,
    PROFILE_SCHEMA,
    account_features,
    activity_features,
    profile_features,
    vector,
)
from bastion.models.bots.adapters import GILANI_EXTRA_SCHEMA, BotDataset
from bastion.models.bots.behaviour import BEHAVIOUR_SCHEMA
from bastion.state.model import Account

#: shipped models and the feature schema each one is trained on
MODEL_SCHEMAS: dict[str, tuple[str, ...]] = {
    "bot_profile": PROFILE_SCHEMA,
    "bot_activity": GILANI_CANONICAL_SCHEMA,
    "bot_behaviour": BEHAVIOUR_SCHEMA,
}
GILANI_EVAL_SCHEMA: tuple[str, ...] = (*GILANI_CANONICAL_SCHEMA, *GILANI_EXTRA_SCHEMA)

_PROFILE_SET = frozenset(PROFILE_SCHEMA)
_ACTIVITY_SET = frozenset(ACTIVITY_SCHEMA)
_PROFILE_IN_ORDER = tuple(profile_features(Account(id="_"), 0)) == PROFILE_SCHEMA  # dict order = schema order
_NEEDS: dict[tuple[str, ...], tuple[bool, bool, bool]] = {}  # schema -> (needs profile, activity, is PROFILE_SCHEMA)


def features_for(acc: Account, now_ms: int, schema: Sequence[str]) -> list[float]:
    """One account's vector for ``schema`` (only the extractors the schema needs are run)."""
    need = _NEEDS.get(schema) if isinstance(schema, tuple) else None
    if need is None:
        need = (any(f in _PROFILE_SET for f in schema), any(f in _ACTIVITY_SET for f in schema),
                _PROFILE_IN_ORDER and tuple(schema) == PROFILE_SCHEMA)
        if isinstance(schema, tuple):
            _NEEDS[schema] = need
    need_p, need_a, in_order = need
    if need_p and need_a:
        feats = account_features(acc, now_ms)
    elif need_a:
        feats = activity_features(acc, now_ms)
    else:
        feats = profile_features(acc, now_ms)
        if in_order:
            return list(feats.values())
    return vector(feats, schema)


def matrix(accounts: Sequence[Account], now_ms: Sequence[int] | np.ndarray | int,
           schema: Sequence[str]) -> np.ndarray:
    nows = [now_ms] * len(accounts) if isinstance(now_ms, int) else [int(t) for t in now_ms]
    return np.array([features_for(a, t, schema) for a, t in zip(accounts, nows, strict=True)],
                    dtype=np.float64).reshape(len(accounts), len(schema))


def dataset_matrix(ds: BotDataset, schema: Sequence[str]) -> np.ndarray:
    """Rows of ``ds`` in ``schema`` order: canonical features from the accounts, the dataset's unknown
    canonical features as nan, and its named extra columns where the schema asks for them."""
    canonical = [f for f in schema if ds.extras is None or f not in ds.extra_names]
    X = np.full((len(ds), len(schema)), np.nan)
    base = matrix(ds.accounts, ds.now_ms, canonical)
    col = {f: i for i, f in enumerate(schema)}
    for j, f in enumerate(canonical):
        if f not in ds.unknown_features:
            X[:, col[f]] = base[:, j]
    if ds.extras is not None:
        for j, f in enumerate(ds.extra_names):
            if f in col:
                X[:, col[f]] = ds.extras[:, j]
    return X
