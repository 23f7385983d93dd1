"""A compiled LightGBM forest for one-row predictions in the event loop.

LightGBM's Python API costs a few hundred microseconds per call whatever the batch size, which dominates
when the engine scores one account at a time. This evaluates the same trees (numerical splits, with
LightGBM's missing-value rules) with a handful of numpy operations per tree level across all trees at once.
It is checked against ``Booster.predict(raw_score=True)`` in the tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_MISSING_NONE, _MISSING_ZERO, _MISSING_NAN = 0, 1, 2


class CompiledForest:
    def __init__(self, dump: dict[str, Any]) -> None:
        feats: list[int] = []
        thrs: list[float] = []
        lefts: list[int] = []
        rights: list[int] = []
        dleft: list[bool] = []
        mtype: list[int] = []
        leaves: list[float] = []
        roots: list[int] = []
        depth = 0

        def walk(node: dict[str, Any], level: int) -> int:
            nonlocal depth
            depth = max(depth, level)
            if "leaf_value" in node:
                leaves.append(float(node["leaf_value"]))
                return -len(leaves)  # leaf k is encoded as -(k+1)
            if node.get("decision_type", "<=") != "<=":
                raise ValueError("only numerical '<=' splits are supported")
            idx = len(feats)
            feats.append(int(node["split_feature"]))
            thrs.append(float(node["threshold"]))
            dleft.append(bool(node.get("default_left", True)))
            mtype.append({"None": _MISSING_NONE, "Zero": _MISSING_ZERO, "NaN": _MISSING_NAN}[
                str(node.get("missing_type", "None"))])
            lefts.append(0)
            rights.append(0)
            lefts[idx] = walk(node["left_child"], level + 1)
            rights[idx] = walk(node["right_child"], level + 1)
            return idx

        for tree in dump["tree_info"]:
            roots.append(walk(tree["tree_structure"], 0))
        self.feature = np.asarray(feats, dtype=np.int64)
        self.threshold = np.asarray(thrs, dtype=np.float64)
        self.left = np.asarray(lefts, dtype=np.int64)
        self.right = np.asarray(rights, dtype=np.int64)
        self.default_left = np.asarray(dleft, dtype=bool)
        self.missing_type = np.asarray(mtype, dtype=np.int8)
        self.leaf_value = np.asarray(leaves, dtype=np.float64)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.depth = depth
        self._compile_flat()

    def _compile_flat(self) -> None:
        """Flat arrays for :meth:`raw_one_flat`: every split is decided in one vectorised pass, then each tree
        is walked by indexing a "chosen child" array (leaves point at themselves), ``depth`` times."""
        m = len(self.feature)
        n_leaves = len(self.leaf_value)

        def enc(child: np.ndarray) -> np.ndarray:  # leaf -(k+1) -> m + k
            return np.where(child >= 0, child, m - child - 1)

        self._flat_left = enc(self.left)
        self._flat_right = enc(self.right)
        self._flat_roots = enc(self.roots)
        self._mt_nan = self.missing_type == _MISSING_NAN
        self._mt_zero = self.missing_type == _MISSING_ZERO
        self._leaf_self = np.arange(m, m + n_leaves, dtype=np.int64)
        self._m = m
        self._compile_sibling()

    def _compile_sibling(self) -> None:
        """Arrays for :meth:`raw_one`: all nodes (splits and leaves) renumbered breadth-first so that the two
        children of a split are adjacent (right = left + 1) and the roots are 0..n_trees-1 in tree order. The
        row is expanded once into blocks of its values with ``nan`` (and, for ``Zero`` missing types, 0)
        replaced by -inf or +inf, and each split reads the block that sends a missing value its way: then
        "go right" is just ``value > threshold`` for every split (one gather and one comparison over all
        nodes), the chosen child is ``first_child + go_right``, and a leaf points at itself (threshold +inf)."""
        n_feat = int(self.feature.max()) + 1 if len(self.feature) else 1
        has_zero = bool((self.missing_type == _MISSING_ZERO).any())
        self._sib_ok = bool(np.isfinite(self.threshold).all())
        if not self._sib_ok:  # an infinite threshold would compare differently against the +-inf sentinels
            return
        n_trees = len(self.roots)
        n_nodes = len(self.feature) + len(self.leaf_value)
        first = np.zeros(n_nodes, dtype=np.int64)
        src = np.zeros(n_nodes, dtype=np.int64)
        thr = np.full(n_nodes, np.inf)
        leaf = np.zeros(n_nodes, dtype=np.float64)
        order = [int(r) for r in self.roots]   # old encoding: split i >= 0, leaf k as -(k+1)
        nxt = n_trees
        pos = 0
        while pos < len(order):
            old = order[pos]
            if old < 0:
                leaf[pos] = self.leaf_value[-old - 1]
                first[pos] = pos
            else:
                f = int(self.feature[old])
                t = float(self.threshold[old])
                mt = int(self.missing_type[old])
                if mt == _MISSING_NONE:
                    nan_left = t >= 0.0           # nan is read as 0.0
                    block = 0 if nan_left else 1
                else:
                    nan_left = bool(self.default_left[old])
                    block = (0 if nan_left else 1) + (2 if mt == _MISSING_ZERO else 0)
                src[pos] = block * n_feat + f
                thr[pos] = t
                first[pos] = nxt
                order.append(int(self.left[old]))
                order.append(int(self.right[old]))
                nxt += 2
            pos += 1
        n_blocks = 4 if has_zero else 2
        self._sib_first = first
        self._sib_src = src
        self._sib_thr = thr
        self._sib_leaf = leaf
        self._sib_roots = np.arange(n_trees, dtype=np.int64)
        self._sib_nfeat = n_feat
        self._sib_xsrc = np.tile(np.arange(n_feat, dtype=np.int64), n_blocks)
        fill = np.empty(n_blocks * n_feat)
        for b in range(n_blocks):
            fill[b * n_feat:(b + 1) * n_feat] = -np.inf if b % 2 == 0 else np.inf
        self._sib_fill = fill
        self._sib_zero = None
        if has_zero:
            zero = np.zeros(n_blocks * n_feat, dtype=bool)
            zero[2 * n_feat:] = True
            self._sib_zero = zero

    @classmethod
    def from_booster(cls, booster: Any) -> CompiledForest:
        """From a LightGBM booster, or from a :class:`LazyBooster`'s text without loading LightGBM."""
        if isinstance(booster, LazyBooster) and not booster.loaded:
            try:
                return cls(dump_from_model_text(booster.model_to_string()))
            except (ValueError, KeyError):
                pass
        return cls(booster.dump_model())

    def raw_one(self, x: np.ndarray) -> float:
        """The raw score (sum of leaf values) of one row; the same leaves summed in the same (tree) order, so
        the same float, as :meth:`raw_one_flat` and :meth:`raw_one_reference`."""
        if not self._sib_ok:
            return self.raw_one_flat(x)
        xx = x.take(self._sib_xsrc)
        missing = np.isnan(xx)
        if self._sib_zero is not None:
            missing |= self._sib_zero & (xx == 0.0)
        np.copyto(xx, self._sib_fill, where=missing)
        child = self._sib_first + (xx.take(self._sib_src) > self._sib_thr)
        node = self._sib_roots
        for _ in range(self.depth):
            node = child.take(node)
        return float(self._sib_leaf.take(node).sum())

    def raw_batch(self, X: np.ndarray) -> np.ndarray:
        """The raw scores of many rows (the live bot detector's micro-batches), the same floats as
        :meth:`raw_one` per row. :meth:`raw_one` already evaluates every tree of the forest at once; walking
        the rows as one more array axis was measured slower (behaviour model, 400 trees of depth up to 20,
        50-row batches: 0.33 ms a row against 0.11 ms a row this way), because each row's walk touches every
        node and the batch no longer stays in cache."""
        X = np.asarray(X, dtype=np.float64)
        return np.array([self.raw_one(row.copy()) for row in X]) if X.ndim == 2 else np.zeros(0)

    def raw_one_flat(self, x: np.ndarray) -> float:
        """The previous one-row path (all splits decided with explicit missing-value masks, children chosen
        by ``np.where``); kept for the equivalence tests and for forests with infinite thresholds."""
        m = self._m
        v = x[self.feature]
        nan = np.isnan(v)
        missing = (nan & (self._mt_nan | self._mt_zero)) | (self._mt_zero & (v == 0.0))
        v[nan] = 0.0
        go_left = np.where(missing, self.default_left, v <= self.threshold)
        child = np.concatenate((np.where(go_left, self._flat_left, self._flat_right), self._leaf_self))
        node = self._flat_roots
        for _ in range(self.depth):
            node = child[node]
        return float(self.leaf_value[node - m].sum())

    def raw_one_reference(self, x: np.ndarray) -> float:
        """The level-by-level walk :meth:`raw_one` replaces (kept for the equivalence tests)."""
        node = self.roots.copy()
        for _ in range(self.depth):
            inner = node >= 0
            if not inner.any():
                break
            n = node[inner]
            v = x[self.feature[n]]
            nan = np.isnan(v)
            mt = self.missing_type[n]
            missing = np.where(mt == _MISSING_NAN, nan, np.where(mt == _MISSING_ZERO, nan | (v == 0.0), False))
            v = np.where(nan, 0.0, v)
            go_left = np.where(missing, self.default_left[n], v <= self.threshold[n])
            node[inner] = np.where(go_left, self.left[n], self.right[n])
        return float(self.leaf_value[-node - 1].sum())


_MISSING_NAMES = {0: "None", 1: "Zero", 2: "NaN"}


def dump_from_model_text(text: str) -> dict[str, Any]:
    """The ``tree_info`` part of ``Booster.dump_model()`` read straight from LightGBM's text format, without
    LightGBM: numerical splits only (a categorical or linear tree raises ``ValueError``). Thresholds and leaf
    values are the text's ``%.17g`` doubles, so the compiled forest is the same as from ``dump_model``."""
    block: dict[str, str] | None = None
    blocks: list[dict[str, str]] = []
    for line in text.splitlines():
        if line.startswith("Tree="):
            block = {}
            blocks.append(block)
        elif line.startswith("end of trees"):
            break
        elif block is not None and "=" in line:
            k, _, v = line.partition("=")
            block[k] = v
    return {"tree_info": [{"tree_structure": _tree_from_text(b)} for b in blocks]}


def _tree_from_text(b: dict[str, str]) -> dict[str, Any]:
    if int(b.get("num_cat", "0")) or int(b.get("is_linear", "0")):
        raise ValueError("only numerical, non-linear trees are supported")
    leaves = [float(v) for v in b["leaf_value"].split()]
    if int(b["num_leaves"]) == 1:
        return {"leaf_value": leaves[0]}
    feat = [int(v) for v in b["split_feature"].split()]
    # dump_model writes an infinite threshold as +-1e300 (LightGBM's AvoidInf): the same here
    thr = [min(max(float(v), -1e300), 1e300) for v in b["threshold"].split()]
    dtype = [int(v) for v in b["decision_type"].split()]
    left = [int(v) for v in b["left_child"].split()]
    right = [int(v) for v in b["right_child"].split()]

    def node(i: int) -> dict[str, Any]:
        if i < 0:
            return {"leaf_value": leaves[~i]}
        if dtype[i] & 1:
            raise ValueError("only numerical '<=' splits are supported")
        return {"split_feature": feat[i], "threshold": thr[i], "decision_type": "<=",
                "default_left": bool(dtype[i] & 2), "missing_type": _MISSING_NAMES[(dtype[i] >> 2) & 3],
                "left_child": node(left[i]), "right_child": node(right[i])}

    return node(0)


class LazyBooster:
    """A LightGBM booster kept as its model text and built on first use: importing LightGBM (and the
    scikit-learn it imports) costs seconds of start-up, and the live scoring paths that use compiled forests
    (:meth:`CompiledForest.from_model_text`) never need it. Any booster method loads it."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._booster: Any = None

    @property
    def loaded(self) -> bool:
        return self._booster is not None

    def booster(self) -> Any:
        if self._booster is None:
            import lightgbm as lgb

            self._booster = lgb.Booster(model_str=self._text)
        return self._booster

    def model_to_string(self) -> str:
        return self._text

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.booster(), name)
